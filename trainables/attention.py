"""[CLS] self-attention maps of a DINO teacher: the picture of the paper's Fig. 1.

Caron et al. 2021 show that the last-block attention of the [CLS] token of a self-supervised
ViT segments objects without labels. This module computes those maps, as facebookresearch/dino
``visualize_attention.py`` does: the [CLS] row of the last block's softmax(q k^T * scale), per
head, over the patch tokens (the [CLS] and register tokens dropped), on the (H/p, W/p) patch
grid; upsampled to the image by nearest neighbour (``scale_factor=patch_size``); optionally
thresholded to the smallest set of patches holding ``threshold`` of the attention mass.

It also loads the teacher backbone of a run folder (``ablate train``), a sweep trial folder
(``checkpoint_NNNNNN/checkpoint.pt``, the latest is used) or a checkpoint file, and the held-out
images of the run's dataset. No Ray, no plotting: see ``ablate.attention_plot`` for figures.

Example::

    teacher = load_teacher("runs/vit")                        # backbone, config, epoch
    images = held_out_images(teacher.config, n=4)             # (4, 3, 32, 32), normalized
    maps = cls_attention_maps(teacher.backbone, images)       # AttentionMaps
    maps.maps.shape                                           # (4, heads, 8, 8) with patch 4
    masks = threshold_mask(maps.mean, 0.6)                    # (4, 8, 8) bool
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sweep_format.files import loads, not_a_file
from sweep_format.layout import TUNE_DIR, folder_problem
from trainables.checkpoint import load_pt
from trainables.config import TORCHVISION, ConfigError, DINOConfig, make_config
from trainables.data import READABLE, build_datasets, to_rgb, torchvision_missing, torchvision_root
from trainables.dino.augment import IMAGENET_MEAN, IMAGENET_STD, eval_transform
from trainables.dino.backbone import build_backbone, is_vit
from trainables.dino.trainer import CHECKPOINT_NAME, resolve_device
from trainables.image_files import check_regular, open_image
from trainables.trial import checkpoints_in

VIT_EXAMPLE = "vit_tiny_patch16_224"


# --- the maps ---------------------------------------------------------------------------------
@dataclass
class AttentionMaps:
    """Last-block [CLS] attention of a batch of images.

    ``cls_attention``: (B, heads, N) the [CLS] row over all N tokens (prefix tokens included;
    each row sums to 1). ``maps``: (B, heads, h, w) its patch part on the patch grid.
    """

    cls_attention: torch.Tensor
    maps: torch.Tensor
    patch_size: int
    num_prefix_tokens: int

    @property
    def mean(self) -> torch.Tensor:
        """(B, h, w): the maps averaged over heads."""
        return self.maps.mean(dim=1)

    def upsampled(self, maps: torch.Tensor | None = None) -> torch.Tensor:
        """Maps (default: per head) at image resolution, nearest, as the DINO code does."""
        return upsample(self.maps if maps is None else maps, self.patch_size)


def require_vit(backbone: nn.Module, arch: str) -> None:
    """A ConfigError unless ``backbone`` is a ViT with a [CLS] token."""
    if not is_vit(backbone):
        raise ConfigError(f"arch {arch!r} has no self-attention: attention maps need a ViT "
                          f"(e.g. --set arch={VIT_EXAMPLE})")
    if getattr(backbone, "cls_token", None) is None:
        raise ConfigError(f"arch {arch!r} has no [CLS] token (it pools patch tokens): [CLS] attention "
                          f"maps need a ViT with a class token (e.g. --set arch={VIT_EXAMPLE})")


def patch_size_of(backbone: nn.Module) -> int:
    size = cast(Any, backbone.patch_embed).patch_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


@torch.no_grad()
def last_block_attention(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, N) softmax attention of the last block, whatever its attention kernel.

    The fused kernel (``F.scaled_dot_product_attention``) never materializes the attention
    matrix, so for one forward pass the block runs its explicit path (``fused_attn=False``) and
    the input of ``attn_drop`` - the softmax output, after any qk-norm, rotary embedding or
    relative position bias the model adds - is captured. The model is left as it was.
    """
    attn = cast(Any, backbone).blocks[-1].attn
    if not hasattr(attn, "attn_drop") or not hasattr(attn, "fused_attn"):
        raise ConfigError(f"{type(attn).__name__}: unsupported attention module (needs timm's "
                          "fused_attn switch and attn_drop, as in timm's ViT Attention)")
    captured: list[torch.Tensor] = []
    hook = attn.attn_drop.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    fused, training = attn.fused_attn, backbone.training
    attn.fused_attn = False
    backbone.eval()
    try:
        backbone(images)
    finally:
        hook.remove()
        attn.fused_attn = fused
        backbone.train(training)
    if not captured or captured[-1].ndim != 4:
        raise ConfigError(f"{type(attn).__name__}: no attention matrix seen in the last block")
    return captured[-1].float()


def crop_to_patches(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Whole patches only (bottom/right remainder dropped), as the DINO code crops."""
    h, w = images.shape[-2] // patch_size, images.shape[-1] // patch_size
    if h == 0 or w == 0:
        raise ConfigError(f"images of {tuple(images.shape[-2:])} px are smaller than one "
                          f"{patch_size}px patch")
    return images[..., :h * patch_size, :w * patch_size]


def cls_attention_maps(backbone: nn.Module, images: torch.Tensor) -> AttentionMaps:
    """Per-head [CLS]-to-patch attention of the last block on the (H/p, W/p) patch grid."""
    p = patch_size_of(backbone)
    images = crop_to_patches(images, p)
    h, w = images.shape[-2] // p, images.shape[-1] // p
    attention = last_block_attention(backbone, images)
    n_prefix = int(getattr(backbone, "num_prefix_tokens", 1))
    cls_row = attention[:, :, 0, :]  # timm puts [CLS] first, then register tokens
    if cls_row.shape[-1] != n_prefix + h * w:
        raise ConfigError(f"{cls_row.shape[-1]} tokens for a {h}x{w} patch grid and {n_prefix} "
                          "prefix tokens: cannot place the attention on the image")
    maps = cls_row[:, :, n_prefix:].reshape(images.shape[0], -1, h, w)
    return AttentionMaps(cls_attention=cls_row, maps=maps, patch_size=p, num_prefix_tokens=n_prefix)


def upsample(maps: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(..., h, w) -> (..., h*p, w*p), nearest neighbour."""
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    up = F.interpolate(flat, scale_factor=patch_size, mode="nearest")
    return up.reshape(*lead, *up.shape[-2:])


def threshold_mask(maps: torch.Tensor, threshold: float) -> torch.Tensor:
    """Boolean (..., h, w): the top patches whose attention adds up to ``threshold`` of the mass.

    DINO's ``visualize_attention.py``: sort ascending, normalize, cumulative sum, keep the
    patches where the cumulative mass exceeds ``1 - threshold``.
    """
    if not 0 < threshold <= 1:
        raise ConfigError(f"threshold={threshold}: must be in (0, 1], the share of attention mass kept")
    flat = maps.reshape(*maps.shape[:-2], -1)
    values, order = torch.sort(flat, dim=-1)
    values = values / values.sum(dim=-1, keepdim=True)
    keep_sorted = torch.cumsum(values, dim=-1) > (1 - threshold)
    keep = torch.empty_like(keep_sorted).scatter_(-1, order, keep_sorted)
    return keep.reshape(maps.shape)


# --- images -------------------------------------------------------------------------------------
def evenly_spaced(total: int, n: int) -> list[int]:
    """``n`` indices spread over ``range(total)`` (all of them if ``n >= total``)."""
    if n >= total:
        return list(range(total))
    return [int(i) for i in np.linspace(0, total - 1, n).round()]


def held_out_images(cfg: DINOConfig, n: int, size: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """``n`` evenly spaced test-split images of the run's dataset, eval-transformed; and names.

    Nothing is downloaded: ``cfg`` is a checkpoint's, which anyone may have written, and its
    ``download: true`` with any ``data_path`` made torchvision fetch a dataset into the folder the
    file chose. A torchvision dataset whose files are not there is a ConfigError
    (``held_out_problem``)."""
    if problem := held_out_problem(cfg):
        raise ConfigError(problem)
    _, test = build_datasets(cfg.model_copy(update={"download": False}))
    transform = eval_transform(size or cfg.global_crops_size)
    indices = evenly_spaced(len(test), n)  # type: ignore[arg-type]
    images = [transform(to_rgb(test[i][0])) for i in indices]
    return torch.stack(images), [f"{cfg.dataset} test #{i}" for i in indices]


def held_out_problem(cfg: DINOConfig) -> str:
    """Why the held-out images of ``cfg``'s torchvision dataset cannot be read without a download
    (its ``data_path`` is no folder, or lacks the dataset's files); "" when they can, or when the
    dataset is not torchvision's."""
    if cfg.dataset not in TORCHVISION:
        return ""
    root = torchvision_root(cfg)
    what = folder_problem(root)
    if not what:
        missing = torchvision_missing(cfg)
        if not missing:
            return ""
        what = f"no {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
    asked = " (the checkpoint's download=true is not followed)" if cfg.download else ""
    return (f"dataset {cfg.dataset!r} of the checkpoint: its files are not under data_path={str(root)!r} "
            f"({what}), and ablate attention downloads nothing{asked}: draw images of your own with "
            f"--image FILE (without --images), or download the {cfg.dataset} files there first with "
            f"`ablate train --set dataset={cfg.dataset} --set {shlex.quote(f'data_path={root}')} --set "
            "download=true --out DIR`")  # quoted: the path is the checkpoint's, and the line is for pasting


def load_image_files(paths: list[str | Path], size: int) -> tuple[torch.Tensor, list[str]]:
    """Image files, resized (short side) and center-cropped to ``size``, normalized."""
    transform = eval_transform(size)
    images = []
    for path in paths:
        file = Path(path)
        if not file.is_file():
            what = "a folder; give image files (--image DIR/a.jpg --image DIR/b.jpg)" if file.is_dir() else \
                not_a_file(file)
            raise ConfigError(f"--image {file}: {what}")
        try:
            with open_image(file) as img:
                images.append(transform(to_rgb(img)))
        except PermissionError as exc:  # an image all the same: the remedy is a chmod
            raise ConfigError(f"--image {file}: cannot be read ({exc.strerror}); {READABLE}") from None
        except OSError as exc:
            raise ConfigError(f"--image {file}: not a readable image ({exc})") from None
    return torch.stack(images), [Path(p).name for p in paths]


def to_display(images: torch.Tensor) -> np.ndarray:
    """Normalized (B, 3, H, W) tensors -> (B, H, W, 3) floats in [0, 1] for plotting."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images.cpu() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()


# --- teachers from runs, trials and checkpoint files --------------------------------------------
@dataclass
class Teacher:
    """A teacher backbone (eval mode) with the config and epoch of the checkpoint it came from."""

    backbone: nn.Module
    config: DINOConfig
    epoch: int
    checkpoint: Path | None  # None for the untrained network


SOURCES = f"a run folder of `ablate train`, a sweep trial folder or a {CHECKPOINT_NAME} file"


def resolve_checkpoint(source: str | Path) -> Path:
    """The checkpoint file of a run folder, a sweep trial folder (latest) or a checkpoint file."""
    path = Path(source)
    if not path.exists():
        raise ConfigError(f"{path}: no such file or folder (give {SOURCES})")
    if not path.is_dir():
        return _regular(path)
    if _file_entry(path / CHECKPOINT_NAME):
        return _regular(path / CHECKPOINT_NAME)
    trial = [c / CHECKPOINT_NAME for c in checkpoints_in(path) if _file_entry(c / CHECKPOINT_NAME)]
    if trial:
        return _regular(trial[0])  # the newest
    hint = ""
    if (path / TUNE_DIR).is_dir():
        hint = f" (a sweep folder: pass one of its trial folders, {path / TUNE_DIR}/<trial>)"
    raise ConfigError(f"{path}: no {CHECKPOINT_NAME} and no checkpoint_NNNNNN/{CHECKPOINT_NAME} "
                      f"inside{hint}; the run has not finished an epoch yet, or this is not a run folder")


def _file_entry(path: Path) -> bool:
    """Whether ``path`` is there as something other than a folder: a checkpoint, or what stands in its
    place (a FIFO, a device), which ``_regular`` names."""
    return path.exists() and not path.is_dir()


def _regular(file: Path) -> Path:
    """``file`` when it is a regular file (``check_regular``, which opens nothing); a ConfigError naming
    it when not: torch.load of a FIFO waits for a writer for ever, and a FIFO or device in a run folder's
    place of its checkpoint was reported as no checkpoint at all."""
    try:
        check_regular(file)
    except OSError as exc:
        raise ConfigError(f"{file}: {exc}; give {SOURCES}") from None
    return file


def _read_checkpoint(file: Path) -> dict[str, Any]:
    state = load_pt(file, "checkpoint")  # weights-only: a file that would run code is refused
    if not isinstance(state, dict) or "teacher" not in state:
        keys = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise ConfigError(f"{file}: not a DINO checkpoint of ablate (no 'teacher' entry; found {keys})")
    return state


def _config_of(state: dict[str, Any], file: Path) -> DINOConfig:
    values = state.get("config")
    where = f"{file}: "
    if values is None:  # a Ray trial checkpoint: fall back to the trial's params.json
        params = file.parent.parent / "params.json"
        if not params.is_file():
            raise ConfigError(f"{file}: no 'config' in the checkpoint and no params.json beside it")
        values = {k: v for k, v in _read_params(params).items() if k in DINOConfig.model_fields}
        where = f"{params}: "
    return make_config(values, where)


def _read_params(params: Path) -> dict[str, Any]:
    """A Ray trial's params.json (its config); a ConfigError naming it when it is not a JSON object."""
    try:
        values = loads(params.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{params}: not a readable trial config "
                          f"({exc.__class__.__name__}: {exc})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{params}: expected the trial's config (a JSON object), found "
                          f"{type(values).__name__}")
    return values


def _backbone(cfg: DINOConfig, device: str) -> nn.Module:
    # pretrained_weights are not loaded: the checkpoint's weights replace them (or, for the
    # untrained network, they may not exist on this machine).
    backbone = build_backbone(cfg.arch, cfg.global_crops_size, cfg.patch_size, 0.0, None)
    require_vit(backbone, cfg.arch)
    return backbone.to(resolve_device(device)).eval()


def load_teacher(source: str | Path, device: str = "auto") -> Teacher:
    """The teacher backbone of a run folder, sweep trial folder or checkpoint file."""
    file = resolve_checkpoint(source)
    state = _read_checkpoint(file)
    cfg = _config_of(state, file)
    backbone = _backbone(cfg, device)
    weights = {k.removeprefix("backbone."): v for k, v in state["teacher"].items()
               if k.startswith("backbone.")}
    try:
        backbone.load_state_dict(weights)
    except RuntimeError as exc:
        raise ConfigError(f"{file}: teacher weights do not fit arch {cfg.arch!r} ({exc})") from None
    return Teacher(backbone, cfg, int(state.get("epoch", 0)), file)


def untrained_teacher(cfg: DINOConfig, device: str = "auto") -> Teacher:
    """The network a run with ``cfg`` starts from: random init with the config's seed.

    The trainer seeds every generator with ``cfg.seed`` and builds the student backbone first,
    then copies it to the teacher; seeding torch alone reproduces those weights. The global RNG
    state is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        backbone = _backbone(cfg, device)
    return Teacher(backbone, cfg, 0, None)
