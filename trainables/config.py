"""The one configuration object of a DINO training run.

Every hyperparameter lives here, with its default and its meaning. The same names are used in
YAML files, in ``--set key=value`` overrides, in checkpoints, in metrics and in report columns.
Names follow the official code (facebookresearch/dino, ``main_dino.py``) where it has one.

The defaults are DINO as published, sized for the embedded ``digit_scenes`` data on a laptop CPU
(see README, "Why the defaults differ from the paper"); the paper's ImageNet values are given in each
field's description.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DATASETS = ("digit_scenes", "digits", "synthetic", "cifar10", "cifar100", "stl10", "imagefolder")


class ConfigError(ValueError):
    """A user-facing configuration error: says which key, what was given, what is allowed."""


class DINOConfig(BaseModel):
    """All hyperparameters of one DINO run (paper value in brackets where it differs)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    # --- backbone -------------------------------------------------------------------------
    arch: str = Field(
        "test_resnet", description="Any timm model name; test_resnet: timm's tiny ResNet, the one that "
        "learns within the default budget on 1 CPU core [vit_small_patch16_224].")
    patch_size: int = Field(16, ge=1, description="ViT patch size (ignored by CNNs) [16].")
    pretrained_weights: str | None = Field(
        None, description="Local file with backbone weights; never downloaded [none].")
    drop_path_rate: float = Field(0.1, ge=0, lt=1, description="Student stochastic depth [0.1].")

    # --- DINO head ------------------------------------------------------------------------
    out_dim: int = Field(1024, ge=2, description="Prototypes K of the last layer [65536].")
    head_nlayers: int = Field(3, ge=1, description="MLP layers before the bottleneck [3].")
    head_hidden_dim: int = Field(512, ge=1, description="Hidden width of the head MLP [2048].")
    head_bottleneck_dim: int = Field(128, ge=1, description="L2-normalized bottleneck [256].")
    norm_last_layer: bool = Field(True, description="Freeze weight_g of the last layer [true].")
    use_bn_in_head: bool = Field(False, description="BatchNorm in the head MLP [false].")
    use_ln_in_head: bool = Field(
        False, description="LayerNorm in the head MLP (the seed repository's variant) [false].")

    # --- teacher and loss -----------------------------------------------------------------
    momentum_teacher: float = Field(
        0.98, ge=0, le=1, description="EMA momentum start, cosine to 1 [0.996].")
    warmup_teacher_temp: float = Field(0.03, gt=0, description="Teacher temp at epoch 0 [0.04].")
    teacher_temp: float = Field(
        0.03, gt=0, description="Teacher temp after warmup [0.04-0.07]; 0.04 nears the uniform collapse "
        "on digit_scenes in 1 seed of 5.")
    warmup_teacher_temp_epochs: int = Field(
        0, ge=0, description="Epochs of linear teacher-temp warmup [30].")
    student_temp: float = Field(0.1, gt=0, description="Student temperature [0.1].")
    center_momentum: float = Field(0.9, ge=0, le=1, description="Center EMA momentum [0.9].")
    centering: Literal["center", "sinkhorn_knopp", "none"] = Field(
        "center", description="Teacher normalization: DINO centering, DINOv2 Sinkhorn-Knopp, "
        "or none (collapse ablation) [center].")
    koleo_weight: float = Field(
        0.0, ge=0, description="DINOv2 KoLeo regularizer on student global [CLS] [0].")

    # --- optimization ---------------------------------------------------------------------
    optimizer: Literal["adamw", "sgd", "lars"] = Field(
        "adamw", description="adamw, sgd (momentum 0.9) or lars, as the official code [adamw; "
        "sgd for its ResNet-50 recipe].")
    lr: float = Field(
        8e-3, gt=0, description="Peak lr at batch 256, scaled by batch*accum*workers/256 [5e-4; sgd 0.03].")
    min_lr: float = Field(1e-6, ge=0, description="Final lr of the cosine schedule [1e-6].")
    warmup_epochs: int = Field(1, ge=0, description="Linear lr warmup epochs [10].")
    weight_decay: float = Field(0.04, ge=0, description="Weight decay start [0.04].")
    weight_decay_end: float = Field(0.4, ge=0, description="Weight decay end, cosine [0.4].")
    clip_grad: float = Field(
        3.0, ge=0, description="Per-parameter gradient norm clip, 0 disables [3.0].")
    freeze_last_layer: int = Field(
        1, ge=0, description="Epochs during which the last layer is frozen [1].")
    batch_size: int = Field(32, ge=1, description="Images per step (per device) [1024 total].")
    grad_accum_steps: int = Field(1, ge=1, description="Micro-batches per optimizer step [1].")
    epochs: int = Field(8, ge=1, description="Training epochs [100-800].")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPUs with native bf16 (compute capability >= 8.0), "
        "else fp16 with a scaler; fp32 on CPU [fp16].")
    compile: bool = Field(False, description="torch.compile the backbones (first steps are slower).")

    # --- multi-crop -----------------------------------------------------------------------
    global_crops_size: int = Field(32, ge=8, description="Global crop side in px [224].")
    local_crops_size: int = Field(16, ge=4, description="Local crop side in px [96].")
    global_crops_scale: tuple[float, float] = Field(
        (0.4, 1.0), description="RandomResizedCrop scale of global crops [(0.4, 1)].")
    local_crops_number: int = Field(4, ge=0, description="Local crops per image [8].")
    local_crops_scale: tuple[float, float] = Field(
        (0.05, 0.4), description="RandomResizedCrop scale of local crops [(0.05, 0.4)].")
    blur_radius_relative: bool = Field(
        True, description="Gaussian blur radius (0.1, 2) px scaled by crop side / 224 (global) or "
        "/ 96 (local), as the official radius is for 224/96 px crops; false: absolute [false].")
    augment_device: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="auto: in-memory datasets augmented batched on the training device, "
        "image folders cropped by CPU workers and coloured on a GPU; cpu: per-image PIL pipeline; "
        "gpu: as auto, but a CUDA device is required.")

    # --- data and evaluation --------------------------------------------------------------
    dataset: Literal[DATASETS] = Field(  # type: ignore[valid-type]
        "digit_scenes", description="digit_scenes (bundled digits in random scenes, the default), "
        "digits (bundled 8x8, upsampled), synthetic, cifar10, cifar100, stl10, imagefolder.")
    data_path: str | None = Field(None, description="Folder of torchvision data / imagefolder.")
    download: bool = Field(False, description="Let torchvision download the dataset.")
    num_workers: int | None = Field(
        None, ge=0, description="DataLoader worker processes for per-image augmentation; none: the "
        "trial's CPUs - 1 on CUDA, else 0.")
    skip_bad_images: bool = Field(
        False, description="imagefolder: skip unreadable image files (counted, warned) instead of failing.")
    seed: int = Field(0, ge=0, description="Seed of every random number generator.")
    eval_every: int = Field(1, ge=0, description="kNN evaluation period in epochs, 0: end only.")
    knn_k: int = Field(20, ge=1, description="Neighbours of the weighted kNN vote [20].")
    knn_temperature: float = Field(0.07, gt=0, description="kNN vote temperature [0.07].")
    knn_memory_size: int | None = Field(
        None, ge=1, description="Random subset of the train images used as kNN memory; none: all.")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")

    @field_validator("global_crops_scale", "local_crops_scale")
    @classmethod
    def _scale_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not (0 < lo <= hi <= 1):
            raise ValueError(f"needs 0 < low <= high <= 1, got ({lo}, {hi})")
        return (float(lo), float(hi))

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError(f"must be auto, cpu, cuda or cuda:N, got {v!r}")

    @model_validator(mode="after")
    def _consistent(self) -> DINOConfig:
        if self.use_bn_in_head and self.use_ln_in_head:
            raise ValueError("use_bn_in_head and use_ln_in_head cannot both be true")
        if self.augment_device == "gpu" and self.device == "cpu":
            raise ValueError("augment_device 'gpu' needs a CUDA device (device auto, cuda or cuda:N)")
        if self.dataset == "imagefolder" and not self.data_path:
            raise ValueError("dataset 'imagefolder' needs data_path (a folder with train/ and val/)")
        return self

    # ------------------------------------------------------------------------------------
    @property
    def ncrops(self) -> int:
        return 2 + self.local_crops_number

    @property
    def ln_out_dim(self) -> float:
        return math.log(self.out_dim)

    def effective_lr(self, world_size: int = 1) -> float:
        """The paper's linear scaling rule: lr * global batch / 256.

        The global batch is ``batch_size`` (per worker) x ``grad_accum_steps`` x ``world_size``
        data-parallel workers, so N workers x batch b get the lr of one process with batch N*b.
        """
        return self.lr * self.batch_size * self.grad_accum_steps * world_size / 256.0


def config_keys() -> list[str]:
    return list(DINOConfig.model_fields)


# Where a run executes, not what it computes: these may change when a run is resumed.
PLACEMENT_KEYS = ("device", "num_workers")


def config_differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for each key (bar PLACEMENT_KEYS) that two config dumps disagree on."""
    keys = [k for k in DINOConfig.model_fields if k not in PLACEMENT_KEYS]
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # YAML/JSON dumps turn tuples into lists
    # A key one side lacks (a config written before the key existed) holds its default: no change.
    return [f"{k}: {before[k]!r} -> {after[k]!r}" for k in keys
            if k in before and k in after and norm(before[k]) != norm(after[k])]


def describe_keys() -> str:
    """One line per key: name, default, description (for --help and errors)."""
    lines = []
    for name, field in DINOConfig.model_fields.items():
        lines.append(f"  {name:<28} {field.default!r:<24} {field.description or ''}")
    return "\n".join(lines)


def unknown_key_message(key: str, where: str = "") -> str:
    close = difflib.get_close_matches(key, config_keys(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return (f"{where}unknown trainer key {key!r}.{hint} Valid keys: {', '.join(config_keys())}")


def make_config(values: dict[str, Any], where: str = "") -> DINOConfig:
    """Build a DINOConfig, turning pydantic's errors into one readable ConfigError."""
    for key in values:
        if key not in DINOConfig.model_fields:
            raise ConfigError(unknown_key_message(key, where))
    try:
        return DINOConfig(**values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, values, where)) from None


def format_validation_error(exc: ValidationError, values: dict[str, Any], where: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(config)"
        key = str(err["loc"][0]) if err["loc"] else ""
        given = values.get(key, "<missing>") if key else ""
        field = DINOConfig.model_fields.get(key)
        allowed = f" ({field.description})" if field and field.description else ""
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}{loc}={given!r}: {msg}{allowed}")
    return "\n".join(parts)
