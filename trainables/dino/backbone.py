"""Backbones: any timm model by name, with no classifier; weights only from a local file."""

from __future__ import annotations

import functools
import types
from typing import Any, cast

import timm
import torch
from torch import nn

from sweep_format.files import not_a_file, user_path
from trainables.checkpoint import load_pt
from trainables.config import ConfigError, arch_problem


def is_vit(model: nn.Module) -> bool:
    return hasattr(model, "patch_embed") and hasattr(model, "blocks")


def pointwise_weights_nhwc(model: nn.Module) -> None:
    """Give every 1x1 convolution weight NHWC strides: the same memory and values.

    With NHWC activations oneDNN returns a 1x1 kernel's weight gradient with NHWC strides
    ((C, 1, C, C) where NCHW has (C, 1, 1, 1): only the strides of the 1-sized dims differ). A
    gradient must have its parameter's strides for DDP's bucket views (PyTorch's "Grad strides do
    not match bucket view strides" warning, and a copy of each such gradient every step). oneDNN
    may round a few sums differently with such weights, so only DDP's CPU path uses it."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.weight.shape[2:] == (1, 1):
            module.weight.data = module.weight.data.to(memory_format=torch.channels_last)


def build_backbone(arch: str, img_size: int, patch_size: int, drop_path_rate: float,
                   pretrained_weights: str | None = None) -> nn.Module:
    """A timm model returning pooled features ([CLS] after the final norm for ViTs).

    ViTs get ``img_size``/``patch_size`` and ``dynamic_img_size=True`` so that positional
    embeddings are interpolated for the smaller local crops. A model with a fixed input size
    (BEiT, CaiT, ConViT, LeViT, EfficientFormer, CoAtNet, MaxViT, Hiera, GCViT, VOLO, PiT, ...:
    ``img_size`` but no dynamic size) is built for ``img_size``, the global crops; other models
    take neither.

    Example::

        vit = build_backbone("vit_tiny_patch16_224", img_size=32, patch_size=4, drop_path_rate=0.1)
        feats = vit(torch.randn(2, 3, 16, 16))   # (2, 192): local crops work too
    """
    if problem := arch_problem(arch):
        raise ConfigError(problem)
    model = sized_model(arch, img_size, patch_size, drop_path_rate)
    pool_cls_token(model)
    if pretrained_weights:
        load_pretrained(model, pretrained_weights)
    return model


class PatchSizeError(ConfigError):
    """A model that takes ``patch_size`` cannot be built with the one asked for; ``own`` is the patch
    size timm builds it with."""

    def __init__(self, message: str, own: int) -> None:
        super().__init__(message)
        self.own = own


def sized_model(arch: str, img_size: int, patch_size: int, drop_path_rate: float) -> nn.Module:
    """``arch`` built with the most of the size arguments it takes: a dynamic size and patches, else a
    fixed size with or without patches, else its own. A model that takes ``patch_size`` but cannot be
    built with it (NesT's blocks need a grid they tile, Twins' stages one they halve, VitaMin counts its
    patches on its stem's feature map) is refused naming the patch size it is built with: it kept those
    in silence, and the run's patch_size said another. A model that cannot be built at all is a
    ConfigError, not timm's traceback."""
    tries: tuple[dict[str, Any], ...] = (
        {"img_size": img_size, "patch_size": patch_size, "dynamic_img_size": True},
        {"img_size": img_size, "patch_size": patch_size}, {"img_size": img_size}, {})
    refused: Exception | None = None  # patch_size taken, but not this value
    for sizes in tries:
        try:
            model = create(arch, drop_path_rate, sizes)
        except ConfigError:
            raise
        except (TypeError, AssertionError, ValueError) as exc:  # no such argument, or not with this value
            failed = exc
            refused = refused or (exc if "patch_size" in sizes and not isinstance(exc, TypeError) else None)
            continue
        own = patches(model)
        if refused is not None and "patch_size" not in sizes and own and own != patch_size:
            raise PatchSizeError(f"patch_size={patch_size}: arch {arch!r} cannot be built with {patch_size} "
                                 f"px patches for global_crops_size={img_size} ({said(refused)}); "
                                 f"{own_patch_fix(arch, own)}", own)
        return model
    raise ConfigError(f"arch={arch!r}: timm cannot build it, with img_size={img_size} (global_crops_size) "
                      f"and patch_size={patch_size} or with its own sizes ({said(failed)}); "
                      "choose another arch")


def said(exc: Exception) -> str:
    """An exception in a few words: its type and the first line of its message."""
    first = str(exc).strip().split("\n", 1)[0]
    return f"{type(exc).__name__}{': ' + first if first else ''}"


def own_patch_fix(arch: str, own: int) -> str:
    return f"set patch_size: {own} (the patches timm makes {arch} with)"


def pool_cls_token(model: nn.Module) -> None:
    """DINO's features of a ViT are its [CLS] token after the final norm (the head's input, the token
    whose attention maps are shown). BEiT and EVA-02 pool the mean of their patch tokens instead and
    PE-core an attention pooler: where a [CLS] token is there, it is what they return (their fc_norm,
    a per-token LayerNorm, normalizes it as the final norm would). A distilled DeiT or PiT returns the
    mean of its [CLS] and distillation tokens (timm's inference path for its two classifiers): it
    returns its [CLS] token (the distillation token still attends in every block). LeViT and
    EfficientFormer, also distilled, have no [CLS] token: with num_classes=0 both their heads are the
    identity on the mean of the patch tokens, a CNN's pooled feature, which they keep."""
    pool = getattr(model, "global_pool", "token")
    if getattr(model, "cls_token", None) is not None and isinstance(pool, str) and pool != "token":
        cast(Any, model).reset_classifier(0, global_pool="token")
    if getattr(model, "cls_token", None) is not None and getattr(model, "head_dist", None) is not None:
        cast(Any, model).forward_head = types.MethodType(cls_token_head, model)


def cls_token_head(model: nn.Module, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
    """A distilled ViT's head without its classifiers: the [CLS] token of the normed tokens ``x``
    (B, tokens, C) -> (B, C); ``pre_logits`` is the same (the classifiers are timm's Identity)."""
    return cast(Any, model).head_drop(x[:, 0])


def create(arch: str, drop_path_rate: float, sizes: dict[str, Any]) -> nn.Module:
    """timm's ``arch`` without a classifier, built with ``sizes``; a model without stochastic depth
    (DenseNet, GhostNet, Inception, VGG, ...: no ``drop_path_rate`` argument) is built without it
    when the rate is 0, and refused otherwise (the rate would be ignored)."""
    try:
        return timm.create_model(arch, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate,
                                 **sizes)
    except TypeError as exc:
        if "drop_path_rate" not in str(exc):
            raise
        if drop_path_rate:
            raise ConfigError(no_drop_path(arch, drop_path_rate)) from None
    return timm.create_model(arch, pretrained=False, num_classes=0, **sizes)


def no_drop_path(arch: str, drop_path_rate: float) -> str:
    return (f"drop_path_rate={drop_path_rate}: arch {arch!r} has no stochastic depth (timm builds it "
            "without drop_path_rate), so the rate would be ignored; set drop_path_rate: 0")


@functools.lru_cache(maxsize=256)
def drop_path_problem(arch: str, patch_size: int, img: int, drop_path_rate: float) -> str:
    """Why the student cannot be built with ``drop_path_rate`` (``no_drop_path``); "" when it can, or
    when the rate is 0. On the meta device: no weights, no memory."""
    if not drop_path_rate:
        return ""
    try:
        with torch.device("meta"):
            build_backbone(arch, img, patch_size, drop_path_rate)
    except ConfigError as exc:
        return str(exc)
    except Exception:  # a model the meta device cannot build: the real build says what is wrong
        return ""
    return ""


def feature_dim(model: nn.Module) -> int:
    """The width of the pooled features ``model`` returns (the DINO head's input). timm's
    ``num_features`` is the last stage's width; models with a pre-logits layer after pooling
    (MobileNetV3/V4, GhostNet, LCNet, HGNetV2: a 1x1 conv to 1024-2048) return ``head_hidden_size``
    features, and a head built on ``num_features`` failed its first step with a shape error."""
    return int(getattr(model, "head_hidden_size", None) or cast(int, model.num_features))


def check_crop_sizes(arch: str, patch_size: int, crops: dict[str, int]) -> None:
    """ConfigError naming every crop size (``crops``: key -> pixels, the global crops' first) that the
    backbone cannot take, and the size to set instead: a ViT's or Swin's patch embedding needs whole
    patches, a ConvNeXt's stages need 32 px, a model with a fixed input size takes its global crops'
    size only, ... (``size_problem``: one forward pass per size on the meta device). A patch size the
    model cannot be built with is said first, with the crops' fixes for the patches to set."""
    img = next(iter(crops.values()))
    try:
        bad = {key: problem for key, size in crops.items()
               if (problem := size_problem(arch, patch_size, img, size))}
    except PatchSizeError as exc:
        try:
            check_crop_sizes(arch, exc.own, crops)
        except ConfigError as crop:
            raise ConfigError(f"{exc}; {crop}") from None
        raise
    if bad:
        model = meta_backbone(arch, patch_size, img)
        if model is None:
            model = build_backbone(arch, img, patch_size, 0.0)
        taken = f" with patch_size={patch_size}" if patches(model) == patch_size else ""  # it took them
        said = "; ".join(f"{key}={crops[key]} ({problem})" for key, problem in bad.items())
        raise ConfigError(f"{said}: arch {arch!r}{taken} cannot take "
                          f"{'these crops' if len(bad) > 1 else 'this crop'}"
                          + "".join(f"; {fix}" for fix in crop_fixes(arch, patch_size, crops, bad)))


def crop_fixes(arch: str, patch_size: int, crops: dict[str, int], bad: dict[str, str]) -> list[str]:
    """What to set for the crops in ``bad``. The local crops' fixes are for the global crops' size (or
    patch size) their fix sets: a HaloNet's 32 px global crops and then its 16 px local crops were two
    refusals, one after the other."""
    first, *_ = crops
    fixes, after, patch = [], dict(crops), patch_size
    for key in crops:
        moved = key != first and (after[first], patch) != (crops[first], patch_size)
        if not (size_problem(arch, patch, after[first], crops[key]) if moved else key in bad):
            continue
        fix, sets = crop_fix(arch, patch, after, key)
        if fix:
            fixes.append(fix)
        if key == first:
            patch = sets.pop("patch_size", patch)
            after.update(sets)
    return fixes


def crop_fix(arch: str, patch_size: int, crops: dict[str, int], key: str) -> tuple[str, dict[str, int]]:
    """What to set instead of the crop ``crops[key]`` the backbone cannot take, and the values it sets:
    the next size up it takes (a ViT/14's 42 px for 32, a CNN's 32 px for 16; a local crop's no larger
    than the global crops), else the size timm makes the model for (an EfficientFormer's 224 px), else
    timm's own patches (CoaT's 4 px); for a model with a fixed input size, which takes nothing but the
    size it is built for, the global crops' size or no local crops. "" when none fits. Found with the
    model built for the global crops, on the meta device (a model that cannot be built there fits
    nothing)."""
    first, *_ = crops
    img, size = crops[first], crops[key]
    fixed = (key != first and meta_fits(arch, patch_size, img, img)
             and not meta_fits(arch, patch_size, img, 2 * img))
    if fixed:
        return (f"it takes only crops of the size it is built for, {first}={img}: set {key}: {img}, or "
                "local_crops_number: 0"), {}
    if fit := next_fit(arch, patch_size, img, size, img if img > size else 4 * size):
        return f"set {key}: {fit} (the next size it takes)", {key: fit}
    native = timm_size(arch)
    if key == first and native and meta_fits(arch, patch_size, native, native):
        return f"set {key}: {native} (the size timm makes {arch} for)", {key: native}
    own = own_patch(arch, img)
    if own and own != patch_size and meta_fits(arch, own, img, size):
        return own_patch_fix(arch, own), {"patch_size": own}
    return "", {}


def own_patch(arch: str, img: int) -> int | None:
    """The patch size timm gives ``arch`` when none is asked for (CoaT's 4 px); None if it has none."""
    for sizes in ({"img_size": img}, {}):
        try:
            with torch.device("meta"):
                return patches(create(arch, 0.0, sizes))
        except Exception:
            continue
    return None


def patches(model: nn.Module) -> int | None:
    """The side of ``model``'s first patch embedding (its ``patch_embed``, CoaT's ``patch_embed1``, ...);
    None for a model without one."""
    for module in model.modules():
        size = getattr(module, "patch_size", None)
        size = size[0] if isinstance(size, (tuple, list)) and size else size
        if isinstance(size, int) and not isinstance(size, bool):
            return size
    return None


def next_fit(arch: str, patch_size: int, img: int, size: int, high: int) -> int | None:
    """The smallest size above ``size``, up to ``high`` (a local crop: the global crops' size), that the
    backbone built for ``img`` px takes; None if ``high`` does not fit. The next whole number of patches
    for a model with patches, else a bisection (a CNN takes every size from its smallest up): a dozen
    forward passes, not one per size. A model with windows (MaxViT, HaloNet) takes only the sizes its
    stride rounds to whole windows: the bisection's size (MaxViT's 223 px) is moved to the last size of
    its run (224 px), the one it is made for, the one a user writes."""
    model = meta_backbone(arch, patch_size, img)
    step = patches(model) if model is not None else None
    if step and step > 1 and meta_fits(arch, patch_size, img, (size // step + 1) * step):
        return (size // step + 1) * step
    low, limit = size, high  # low does not fit; high must
    if not meta_fits(arch, patch_size, img, high):
        return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if meta_fits(arch, patch_size, img, middle) else (middle, high)
    return windows_fit(arch, patch_size, img, high, limit, stride(model))


def stride(model: nn.Module | None) -> int | None:
    """How many pixels of input one pixel of ``model``'s last feature map spans (32 for most); None if
    timm does not say."""
    info = getattr(model, "feature_info", None)
    last = info[-1] if isinstance(info, list) and info else None
    return int(last["reduction"]) if isinstance(last, dict) and last.get("reduction") else None


def windows_fit(arch: str, patch_size: int, img: int, fit: int, high: int, step: int | None) -> int:
    """``fit``, or for a model that takes the next multiple of its stride ``step`` (up to ``high``) but
    not the size after it (windows: a CNN takes every size from its smallest up), the last size of the
    run of sizes from ``fit`` up that it takes."""
    top = -(-fit // step) * step if step else fit
    if top == fit or top > high or not meta_fits(arch, patch_size, img, top) \
            or meta_fits(arch, patch_size, img, top + 1):
        return fit
    while fit < top and meta_fits(arch, patch_size, img, fit + 1):
        fit += 1
    return fit


def timm_size(arch: str) -> int | None:
    """The input size timm makes ``arch`` for (224 for most ImageNet models); None if it says none."""
    cfg = timm.models.get_pretrained_cfg(arch)
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return int(size[-1]) if size else None


def meta_fits(arch: str, patch_size: int, img: int, size: int) -> bool:
    """Whether the backbone built for ``img`` px embeds a ``size`` px crop on the meta device."""
    try:
        model = meta_backbone(arch, patch_size, img)
    except ConfigError:  # timm cannot build it for img px
        return False
    return model is not None and not crop_problem(model, size, "meta")


@functools.lru_cache(maxsize=4096)
def size_problem(arch: str, patch_size: int, img: int, size: int) -> str:
    """Why the backbone built for ``img`` px cannot embed a ``size`` px crop; "" when it can. A forward
    pass on the meta device (no weights, no memory: tens of milliseconds); a size that fails there is
    tried on the real model before it is refused (an operation the meta device lacks is not the
    config's fault). Remembered for the process: a sweep's trial processes build one trainer after
    another, and the points of a grid over crop sizes share their sizes (100 points of 10 global x 10
    local sizes: 110 forward passes, not 200 passes and 100 models)."""
    meta = meta_backbone(arch, patch_size, img)
    if meta is not None and not crop_problem(meta, size, "meta"):
        return ""
    return crop_problem(build_backbone(arch, img, patch_size, 0.0).eval(), size, "cpu")


@functools.lru_cache(maxsize=64)
def meta_backbone(arch: str, patch_size: int, img: int) -> nn.Module | None:
    """The backbone on the meta device, in eval mode (read it, never train it); None for a model that
    cannot be built there. A name that is no model raises ConfigError."""
    try:
        with torch.device("meta"):
            return build_backbone(arch, img, patch_size, 0.0).eval()
    except ConfigError:
        raise
    except Exception:
        return None


def lone_crop_problem(arch: str, patch_size: int, img: int, size: int) -> str:
    """Why the backbone cannot train on one ``size`` px image alone (its BatchNorm needs more than one
    value per channel, and a CNN's last stages see 1 x 1 px); "" when it can. On the meta device, and
    for real when that fails there (an operation the meta device lacks is not the config's fault)."""
    try:
        with torch.device("meta"):
            meta = build_backbone(arch, img, patch_size, 0.0).train()
        if not crop_problem(meta, size, "meta"):
            return ""
    except ConfigError:
        raise
    except Exception:  # a model that cannot be built on the meta device: tried for real
        pass
    return crop_problem(build_backbone(arch, img, patch_size, 0.0).train(), size, "cpu")


def crop_problem(model: nn.Module, size: int, device: str) -> str:
    """Why ``model`` cannot embed one ``size`` x ``size`` image on ``device``; "" when it can."""
    try:
        with torch.device(device), torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    except Exception as exc:
        return str(exc).strip().split("\n", 1)[0] or type(exc).__name__
    return ""


def load_pretrained(model: nn.Module, path: str) -> list[str]:
    """Load backbone weights from a local file (a timm/torchvision state dict or a DINO checkpoint).

    Returns the backbone's weights the file does not hold, which keep their random initialization
    (resnet18's file loaded into a resnet34: its third and later blocks of each stage)."""
    file = user_path(path)
    if not file.is_file():  # a folder or /dev/zero is there, but is no weights file either
        raise ConfigError(f"pretrained_weights={path!r}: {not_a_file(file)} (weights are never downloaded; "
                          "give the path of a local .pth/.safetensors file)")
    state: Any
    if file.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            state = load_file(str(file))
        except (SafetensorError, OSError) as exc:  # truncated, not safetensors, unreadable
            raise ConfigError(f"{file}: not a readable safetensors pretrained_weights file (truncated or "
                              f"not a safetensors file: {str(exc).strip()[:120]})") from None
    else:
        state = load_pt(file, "pretrained_weights file")
    for key in ("teacher", "state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"pretrained_weights={path!r}: not a state dict (found {type(state).__name__})")
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
    if is_vit(model) and "pos_embed" in state:
        from timm.layers import resample_abs_pos_embed
        n_prefix = 0 if getattr(model, "no_embed_class", False) else model.num_prefix_tokens
        state["pos_embed"] = resample_abs_pos_embed(
            state["pos_embed"], new_size=cast(Any, model.patch_embed).grid_size, num_prefix_tokens=n_prefix)
    check_pretrained_keys(model, state, path)
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a key matches but its shape does not
        first = str(exc).split("\n\t", 2)[1] if "\n\t" in str(exc) else str(exc)
        raise ConfigError(f"pretrained_weights={path!r}: does not fit {type(model).__name__} "
                          f"({first})") from None
    return sorted(weight_names(model) - set(state))


def weight_names(model: nn.Module) -> set[str]:
    """The names of ``model``'s weights and buffers a file may hold. BatchNorm's num_batches_tracked
    counters are bookkeeping, not weights: never a match (a file matching only those loads nothing),
    never missing."""
    return {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}


def unloaded_note(path: str, model: nn.Module, missing: list[str]) -> str:
    """What to say of the backbone weights a pretrained_weights file left out ("" when none): they train
    from their random initialization, which the run's results do not show."""
    if not missing:
        return ""
    return (f"pretrained_weights={path!r}: {len(missing)} of the {len(weight_names(model))} weights of "
            f"{type(model).__name__} are not in the file and start from random values (e.g. "
            f"{', '.join(missing[:3])}); is it the weights of another arch?")


def check_pretrained_keys(model: nn.Module, state: dict[str, Any], path: str) -> None:
    """A file none of whose weights are loaded is a mistake (wrong file, arch or key prefix)."""
    wanted = weight_names(model)
    if not wanted & set(state):
        theirs = ", ".join(sorted(state)[:3]) or "none"
        ours = ", ".join(sorted(wanted)[:3])
        raise ConfigError(f"pretrained_weights={path!r}: no weight matches the backbone "
                          f"{type(model).__name__} (file keys: {theirs}...; expected e.g. {ours}...)")
