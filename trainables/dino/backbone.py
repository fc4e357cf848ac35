"""Backbones: any timm model by name, with no classifier; weights only from a local file."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from trainables.config import ConfigError


def is_vit(model: nn.Module) -> bool:
    return hasattr(model, "patch_embed") and hasattr(model, "blocks")


def build_backbone(arch: str, img_size: int, patch_size: int, drop_path_rate: float,
                   pretrained_weights: str | None = None) -> nn.Module:
    """A timm model returning pooled features ([CLS] after the final norm for ViTs).

    ViTs get ``img_size``/``patch_size`` and ``dynamic_img_size=True`` so that positional
    embeddings are interpolated for the smaller local crops; other models ignore them.

    Example::

        vit = build_backbone("vit_tiny_patch16_224", img_size=32, patch_size=4, drop_path_rate=0.1)
        feats = vit(torch.randn(2, 3, 16, 16))   # (2, 192): local crops work too
    """
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('_')[0]}*")[:8]
        raise ConfigError(f"arch={arch!r}: not a timm model name. Similar: {', '.join(close) or 'none'}")
    try:
        model = timm.create_model(arch, pretrained=False, num_classes=0, img_size=img_size,
                                  patch_size=patch_size, dynamic_img_size=True,
                                  drop_path_rate=drop_path_rate)
    except TypeError:  # not a ViT: no image/patch size arguments
        model = timm.create_model(arch, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate)
    if pretrained_weights:
        load_pretrained(model, pretrained_weights)
    return model


def load_pretrained(model: nn.Module, path: str) -> None:
    """Load backbone weights from a local file (a timm/torchvision state dict or a DINO checkpoint)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"pretrained_weights={path!r}: no such file (weights are never downloaded; "
                          "give the path of a local .pth/.safetensors file)")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(str(file))
    else:
        state = torch.load(file, map_location="cpu", weights_only=False)
    for key in ("teacher", "state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
    if is_vit(model) and "pos_embed" in state:
        from timm.layers import resample_abs_pos_embed
        n_prefix = 0 if getattr(model, "no_embed_class", False) else model.num_prefix_tokens
        state["pos_embed"] = resample_abs_pos_embed(
            state["pos_embed"], new_size=model.patch_embed.grid_size, num_prefix_tokens=n_prefix)
    result = model.load_state_dict(state, strict=False)
    if len(result.missing_keys) == len(model.state_dict()):
        raise ConfigError(f"pretrained_weights={path!r}: no key matches the backbone {type(model).__name__}")
