"""The one configuration object of a DINO training run.

Every hyperparameter lives here, with its default and its meaning. The same names are used in
YAML files, in ``--set key=value`` overrides, in checkpoints, in metrics and in report columns.
Names follow the official code (facebookresearch/dino, ``main_dino.py``) where it has one.

The defaults are DINO as published, sized for the embedded ``digit_scenes`` data on a laptop CPU
(see README, "Why the defaults differ from the paper"); the paper's ImageNet values are given in each
field's description.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import re
import reprlib
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from sweep_format.text import did_you_mean
from sweep_format.values import yaml_word
from trainables.errors import ConfigError as ConfigError  # its own module: the CLI imports it first

DATASETS = ("digit_scenes", "digits", "synthetic", "cifar10", "cifar100", "stl10", "imagefolder")
TORCHVISION = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "stl10": "STL10"}  # dataset -> its class
TORCHVISION_ROOT = "./data"  # where a torchvision dataset is looked for when data_path is not set
FILE_DATASETS = ("imagefolder", *TORCHVISION)  # the datasets read from data_path; the others are built in
# The data keys only some datasets read, and which; set for another dataset they change nothing. All
# but image folders are held in memory (trainables.data.in_memory) and augmented in batches on the device
# (trainables.dino.trainer), so DataLoader workers are for image folders, and for any dataset with
# augment_device: cpu (PER_IMAGE_KEYS), whose per-image pipeline runs in them.
DATASET_KEYS = {"download": tuple(TORCHVISION), "skip_bad_images": ("imagefolder",),
                "num_workers": ("imagefolder",)}
PER_IMAGE_KEYS = ("num_workers",)
# Keys that name a file or folder, and what leaving one out means. An empty or blank path names none: it
# was read as the key left out, in silence (a blank one, made absolute, as a file in the current folder).
PATH_KEYS = {"pretrained_weights": "none",
             "data_path": f"the default, {TORCHVISION_ROOT} for a torchvision dataset"}
# Upper bounds that keep schedules, heads and seeds within memory and range (the paper's values are
# far below them).
MAX_EPOCHS = 10_000
MAX_STEPS = 100_000_000  # epochs x steps per epoch: each per-step schedule holds 8 bytes a step
MAX_OUT_DIM = 1 << 20
MAX_TEMP = 1e4
MAX_SEED = 2**31 - 1
MAX_CROP = 4096  # px of a crop side (and of an image ablate attention draws)
DEVICES = "auto, cpu, cuda or cuda:N"


class DINOConfig(BaseModel):
    """All hyperparameters of one DINO run (paper value in brackets where it differs)."""

    # Exact types (no 2.0 or true for an integer, no "4" for 4) and finite numbers, as README promises.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False)

    # --- backbone -------------------------------------------------------------------------
    arch: str = Field(
        "test_resnet", description="Any timm model name; test_resnet: timm's tiny ResNet, the one that "
        "learns within the default budget on 1 CPU core [vit_small_patch16_224].")
    patch_size: int = Field(16, ge=1, le=1024, description="ViT patch size (ignored by CNNs); an arch "
                            "named with other patches (vit_small_patch8_224) needs it set [16].")
    pretrained_weights: str | None = Field(
        None, description="Local file with backbone weights; never downloaded; null: random initialization.")
    drop_path_rate: float = Field(0.1, ge=0, lt=1, description="Student stochastic depth [0.1].")

    # --- DINO head ------------------------------------------------------------------------
    out_dim: int = Field(1024, ge=2, le=MAX_OUT_DIM, description="Prototypes K of the last layer [65536].")
    head_nlayers: int = Field(3, ge=1, le=64, description="MLP layers before the bottleneck [3].")
    head_hidden_dim: int = Field(512, ge=1, le=65536, description="Hidden width of the head MLP [2048].")
    head_bottleneck_dim: int = Field(128, ge=1, le=65536, description="L2-normalized bottleneck [256].")
    norm_last_layer: bool = Field(True, description="Freeze weight_g of the last layer [true].")
    use_bn_in_head: bool = Field(False, description="BatchNorm in the head MLP [false].")
    use_ln_in_head: bool = Field(
        False, description="LayerNorm in the head MLP (the seed repository's variant) [false].")

    # --- teacher and loss -----------------------------------------------------------------
    momentum_teacher: float = Field(
        0.98, ge=0, le=1, description="EMA momentum start, cosine to 1 [0.996].")
    warmup_teacher_temp: float = Field(0.03, gt=0, le=MAX_TEMP, description="Teacher temp at epoch 0 [0.04].")
    teacher_temp: float = Field(
        0.03, gt=0, le=MAX_TEMP, description="Teacher temp after warmup [0.04-0.07]; 0.04 nears the uniform "
        "collapse "
        "on digit_scenes in 1 seed of 5.")
    warmup_teacher_temp_epochs: int = Field(
        0, ge=0, le=MAX_EPOCHS, description="Epochs of linear teacher-temp warmup [30].")
    student_temp: float = Field(0.1, gt=0, le=MAX_TEMP, description="Student temperature [0.1].")
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
    warmup_epochs: int = Field(1, ge=0, le=MAX_EPOCHS, description="Linear lr warmup epochs [10].")
    weight_decay: float = Field(0.04, ge=0, description="Weight decay start [0.04].")
    weight_decay_end: float = Field(0.4, ge=0, description="Weight decay end, cosine [0.4].")
    clip_grad: float = Field(
        3.0, ge=0, description="Per-parameter gradient norm clip, 0 disables [3.0].")
    freeze_last_layer: int = Field(
        1, ge=0, le=MAX_EPOCHS, description="Epochs during which the last layer is frozen [1].")
    batch_size: int = Field(32, ge=1, le=1 << 20, description="Images per step (per device) [1024 total].")
    grad_accum_steps: int = Field(1, ge=1, le=1 << 16, description="Micro-batches per optimizer step [1].")
    epochs: int = Field(8, ge=1, le=MAX_EPOCHS, description="Training epochs [100-800].")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on GPUs with native bf16 (compute capability >= 8.0), "
        "else fp16 with a scaler; fp32 on CPU [fp16].")
    compile: bool = Field(False, description="torch.compile the backbones (first steps are slower).")

    # --- multi-crop -----------------------------------------------------------------------
    global_crops_size: int = Field(32, ge=8, le=MAX_CROP, description="Global crop side in px [224].")
    local_crops_size: int = Field(16, ge=4, le=MAX_CROP, description="Local crop side in px [96].")
    global_crops_scale: tuple[float, float] = Field(
        (0.4, 1.0), description="RandomResizedCrop scale of global crops [(0.4, 1)].")
    local_crops_number: int = Field(4, ge=0, le=256, description="Local crops per image [8].")
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
    data_path: str | None = Field(None, description="Folder of the dataset's files: torchvision's for "
                                     f"{', '.join(TORCHVISION)} (null: {TORCHVISION_ROOT}); for imagefolder, "
                                     "one holding train/<class>/ and val/<class>/ with the images.")
    download: bool = Field(False, description="Let torchvision download the dataset.")
    num_workers: int | None = Field(
        None, ge=0, le=1024, description="DataLoader worker processes for per-image augmentation; null: the "
        "trial's CPUs - 1 on CUDA, else 0.")
    skip_bad_images: bool = Field(
        False, description="imagefolder: skip unreadable image files (counted, warned) instead of failing.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of every random number generator.")
    eval_every: int = Field(
        1, ge=0, le=MAX_EPOCHS, description="kNN evaluation period in epochs, 0: end only.")
    knn_k: int = Field(20, ge=1, le=100_000, description="Neighbours of the weighted kNN vote [20].")
    knn_temperature: float = Field(0.07, gt=0, le=MAX_TEMP, description="kNN vote temperature [0.07].")
    knn_memory_size: int | None = Field(
        None, ge=1, le=MAX_SEED,
        description="Random subset of the train images used as kNN memory; null: all.")
    device: str = Field("auto", description=f"{DEVICES}.")

    @field_validator("*", mode="before")
    @classmethod
    def _exact_type(cls, value: Any, info: ValidationInfo) -> Any:
        """A value of the key's own type: integers for int keys (not 2.0, not true), numbers for float
        keys (not true), true/false for flags, text for names; pairs of numbers for crop scales."""
        field = cls.model_fields[str(info.field_name)]
        expected = exact_type_problem(field.annotation, value) if value is not None else ""
        if expected:
            raise ValueError(f"expected {expected}")
        return value

    @field_validator(*PATH_KEYS)
    @classmethod
    def _path_given(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("an empty path names no file; give one, or leave the key out (or write null) "
                             f"for {PATH_KEYS[str(info.field_name)]}")
        return v

    @field_validator("global_crops_scale", "local_crops_scale")
    @classmethod
    def _scale_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi <= 1):
            raise ValueError(f"needs 0 < low <= high <= 1, got ({lo}, {hi})")
        return (float(lo), float(hi))

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if problem := device_problem(v):
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> DINOConfig:
        if self.use_bn_in_head and self.use_ln_in_head:
            raise ValueError("use_bn_in_head and use_ln_in_head cannot both be true")
        if self.koleo_weight and self.batch_size == 1:  # its nearest neighbour is itself: no gradient
            raise ValueError(f"koleo_weight {self.koleo_weight} with batch_size 1: KoLeo spreads the images "
                             "of a batch apart, and a lone image's nearest neighbour is itself, so the term "
                             "would be a constant with no gradient; set batch_size >= 2, or koleo_weight: 0")
        if self.augment_device == "gpu" and self.device == "cpu":
            raise ValueError("augment_device 'gpu' needs a CUDA device (device auto, cuda or cuda:N)")
        if self.dataset == "imagefolder" and not self.data_path:
            raise ValueError("dataset 'imagefolder' needs data_path (a folder with train/ and val/)")
        if self.data_path and self.dataset not in FILE_DATASETS:  # it would train on the built-in set
            raise ValueError(f"data_path {self.data_path!r} is not read by dataset {self.dataset!r}, which "
                             "is built in: for your own images set dataset: imagefolder (data_path with "
                             f"train/ and val/), for torchvision's files {', '.join(TORCHVISION)}; or remove "
                             "data_path")
        named = re.search(r"_patch(\d+)", self.arch)
        if named and "patch_size" not in self.model_fields_set and int(named.group(1)) != self.patch_size:
            # timm builds the model with the patch_size it is given: a ViT-S/8 would run as a ViT-S/16
            raise ValueError(f"arch {self.arch!r} has {named.group(1)}-pixel patches, but patch_size is "
                             f"{self.patch_size} (the default), which would replace them: set patch_size: "
                             f"{named.group(1)} to keep them, or the size you want")
        return self

    # ------------------------------------------------------------------------------------
    @property
    def ncrops(self) -> int:
        return 2 + self.local_crops_number

    @property
    def ln_out_dim(self) -> float:
        return math.log(self.out_dim)

    def gpu_settings(self) -> list[str]:
        """The settings that keep the run off a CPU (a CUDA device, GPU augmentation, fp16 with its
        scaler), as ``key='value'``; empty when it can run on a CPU."""
        asks = {"device": self.device.startswith("cuda"), "augment_device": self.augment_device == "gpu",
                "precision": self.precision == "fp16"}
        return [f"{key}={getattr(self, key)!r}" for key, needed in asks.items() if needed]

    def unfinished_warmups(self, world_size: int = 1) -> list[str]:
        """The warmups longer than the run (the paper's 30 and 10 epochs kept for a short run): the
        value they ramp to is never reached, so it is not the value the run measures. A last layer
        frozen for the whole run (freeze_last_layer 1 of a 1-epoch run) never trains at all, and a
        min_lr above the peak (of ``world_size`` workers) turns the lr's cosine decay into a rise."""
        late = {"warmup_teacher_temp_epochs": "the teacher temperature never reaches teacher_temp",
                "warmup_epochs": "the learning rate never reaches its peak"}
        notes = [f"{key} {getattr(self, key)} > epochs {self.epochs}: {what}" for key, what in late.items()
                 if getattr(self, key) > self.epochs]
        if self.freeze_last_layer >= self.epochs:  # the official rule: no update while epoch < freeze
            notes.append(f"freeze_last_layer {self.freeze_last_layer} >= epochs {self.epochs}: the last "
                         "layer never trains (the prototypes keep their initial weights, and "
                         "norm_last_layer has no effect)")
        if self.min_lr > (peak := self.effective_lr(world_size)):  # min_lr is not scaled by the batch
            notes.append(f"min_lr {self.min_lr:g} > the peak lr {peak:g} (lr {self.lr:g} x batch "
                         f"{self.batch_size * self.grad_accum_steps * world_size} / 256): after the warmup "
                         "the learning rate rises to min_lr instead of decaying")
        if self.warmup_teacher_temp_epochs == self.epochs == 1:  # official schedule: linspace(w, t, 1) = [w]
            notes.insert(0, "warmup_teacher_temp_epochs 1 = epochs 1: the one epoch runs at "
                            f"warmup_teacher_temp; {late['warmup_teacher_temp_epochs']}")
        return notes

    def unread_keys(self) -> list[str]:
        """Why each of the ``DATASET_KEYS`` that asks for something (not unset, 0 or false, which ask for
        nothing and get it) changes nothing, when the dataset does not read it (num_workers 4 with the
        in-memory digit_scenes: no worker starts): said, not refused."""
        return list(self.unread().values())

    def unread(self) -> dict[str, str]:
        """``unread_keys``' notes by key; a key that asks for something and is not among them is read."""
        notes = {}
        for key, readers in DATASET_KEYS.items():
            value, per_image = getattr(self, key), key in PER_IMAGE_KEYS
            read = self.dataset in readers or (per_image and self.augment_device == "cpu")
            if value and not read:
                verb = "reads" if len(readers) == 1 else "read"
                also = ", or any dataset with augment_device: cpu" if per_image else ""
                notes[key] = (f"{key} {json.dumps(value)} has no effect on dataset {self.dataset!r}: only "
                              f"{', '.join(readers)} {verb} it{also}; leave it out")
        return notes

    def crop_sizes(self) -> dict[str, int]:
        """The crops' sides the backbone sees, by key: the global crops', and the local crops' when
        there are any."""
        local = {"local_crops_size": self.local_crops_size} if self.local_crops_number else {}
        return {"global_crops_size": self.global_crops_size, **local}

    def effective_lr(self, world_size: int = 1) -> float:
        """The paper's linear scaling rule: lr * global batch / 256.

        The global batch is ``batch_size`` (per worker) x ``grad_accum_steps`` x ``world_size``
        data-parallel workers, so N workers x batch b get the lr of one process with batch N*b.
        """
        return self.lr * self.batch_size * self.grad_accum_steps * world_size / 256.0


def device_problem(name: str) -> str:
    """Why torch would not take ``name`` as the trainer's device; "" for auto, cpu, cuda and cuda:N (N
    in ASCII digits: "cuda:١" passes str.isdigit and ends torch.device in a RuntimeError)."""
    index = name.removeprefix("cuda:")
    if name in ("auto", "cpu", "cuda") or (index != name and index.isascii() and index.isdigit()):
        return ""
    return f"must be {DEVICES}, got {name!r}"


def arch_problem(arch: str) -> str | None:
    """Why ``arch`` cannot be built (not a timm model name), with the closest names; None if it can. The
    one wording of an unknown backbone: ``ablate train`` and ``ablate run`` refuse it before anything
    starts, and ``build_backbone`` where no check came first.

    Example: ``arch_problem("vit_smal_patch16_224")`` -> "arch='vit_smal_patch16_224': not a timm
    model name (any of timm's N models works); did you mean vit_small_patch16_224, ...?"
    """
    import timm  # only when an arch is checked: timm takes a second to import

    if timm.is_model(arch):
        return None
    names = timm.list_models()
    lower = arch.lower()  # timm's names are lower case: RESNET18 is resnet18's
    close = difflib.get_close_matches(lower, names, n=5, cutoff=0.6)
    close = close or timm.list_models(f"*{lower.split('_')[0]}*")[:5]
    hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models() for the names"
    return f"arch={arch!r}: not a timm model name (any of timm's {len(names)} models works); {hint}"


def value_kinds(annotation: Any) -> set[Any]:
    """The kinds of value a key takes besides ``None`` (``int | None`` -> ``{int}``)."""
    kinds = set(get_args(annotation)) if get_origin(annotation) in (Union, UnionType) else {annotation}
    kinds.discard(type(None))
    return kinds


def exact_type_problem(annotation: Any, value: Any) -> str:
    """What a value of ``annotation`` must be, when ``value`` is not one ("" when it is)."""
    kinds = value_kinds(annotation)
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kinds == {int}:
        return "" if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if kinds == {float}:
        if isinstance(value, str) and _looks_numeric(value):  # quoted in YAML ('1e-3'), or a str in Python
            if not math.isfinite(float(value)):  # nan, inf: text to YAML too, and never allowed
                return "a finite number"
            return f"a number, not text (write {value} without quotes)"
        return "" if is_number else "a number"
    if kinds == {bool}:
        return "" if isinstance(value, bool) else "true or false"
    if kinds == {str} and isinstance(value, (bool, int, float, datetime.date)):  # a name YAML read as no
        kind = "" if isinstance(value, bool) else "the date " if isinstance(value, datetime.date) else \
            "the number "  # text: 2024-06-01, 123, yes
        return f"text (YAML reads it as {kind}{short(value)}: quote it)"
    if kinds == {str} or get_origin(annotation) is Literal:
        return "" if isinstance(value, str) else "text"
    if get_origin(annotation) is tuple:
        pair = isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        return "" if pair else "a pair of numbers, e.g. [0.4, 1.0]"
    return ""


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _YamlRepr(reprlib.Repr):
    """``repr``, bounded, with what YAML read shown as it was written, at any depth (``[0.1, null]``):
    true, false and null as YAML writes them (sweep_format.values.yaml_word), a date (YAML reads
    ``2024-06-01`` as one) as its ISO text. reprlib calls ``repr_<type name>``."""

    def repr_bool(self, value: bool, level: int) -> str:
        return yaml_word(value)

    def repr_NoneType(self, value: None, level: int) -> str:  # reprlib: repr_ + type(None).__name__
        return yaml_word(value)

    def repr_date(self, value: datetime.date, level: int) -> str:
        return value.isoformat()

    repr_datetime = repr_date


_REPR = _YamlRepr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 60, 60, 6, 6, 3


def short(value: Any) -> str:
    """``repr(value)``, bounded (an error message never prints an unbounded value), with YAML's words for
    what YAML read: ``teacher_temp=null``, ``epochs=true``, ``name: got 2024-06-01``."""
    return _REPR.repr(value)


def config_keys() -> list[str]:
    return list(DINOConfig.model_fields)


# Where a run executes, not what it computes: these may change when a run is resumed.
PLACEMENT_KEYS = ("device", "num_workers")


def config_differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for each key (bar PLACEMENT_KEYS) that two config dumps disagree on."""
    keys = [k for k in DINOConfig.model_fields if k not in PLACEMENT_KEYS]
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # YAML/JSON dumps turn tuples into lists
    # A key one side lacks (a config written before the key existed) holds its default: no change.
    return [f"{k}: {short(before[k])} -> {short(after[k])}" for k in keys
            if k in before and k in after and norm(before[k]) != norm(after[k])]


def describe_keys() -> str:
    """One line per key: name, default, description (for --help and errors)."""
    lines = []
    for name, field in DINOConfig.model_fields.items():
        lines.append(f"  {name:<28} {short(field.default):<24} {field.description or ''}")
    return "\n".join(lines)


def key_not_text(key: Any) -> str:
    """What is wrong with a key YAML read as a number, a boolean or null (``1:``, ``yes:``, ``null:``)."""
    return (f"the key {short(key)} is not text; keys are names (quote a key YAML reads as a number, "
            "true/false or null)")


def unknown_key_message(key: Any, where: str = "") -> str:
    if not isinstance(key, str):  # a CONFIG file's `1:`: difflib raised a TypeError on it
        return f"{where}{key_not_text(key)}"
    close = did_you_mean(key, config_keys())
    hint = f" Did you mean {close}?" if close else ""
    return (f"{where}unknown trainer key {key!r}.{hint} Valid keys: {', '.join(config_keys())}")


# pydantic's error type -> the one wording of a type or bound refused, for trainer keys (make_config)
# and the spec's own (ablate.sweep_spec.loader); pydantic's ("Input should be less than or equal to
# 10000") was the trainer's while the spec said "expected an integer <= 10000"
EXPECTED = {
    "int_type": "expected an integer", "int_from_float": "expected an integer",
    "float_type": "expected a number", "finite_number": "expected a finite number",
    "bool_type": "expected true or false", "string_type": "expected text", "list_type": "expected a list",
    "dict_type": "expected a mapping of keys to values",
    "greater_than_equal": "expected {kind} >= {ge}", "greater_than": "expected {kind} > {gt}",
    "less_than_equal": "expected {kind} <= {le}", "less_than": "expected {kind} < {lt}",
}


def expected_words(err: ErrorDetails) -> str:
    """``err`` (one of pydantic's errors) in EXPECTED's words, a bound as written (10000, not 10000.0);
    "" for an error type EXPECTED does not word."""
    words = EXPECTED.get(err["type"])
    if words is None:
        return ""
    ctx = err.get("ctx", {})
    bound = ctx.get("ge", ctx.get("gt", ctx.get("le", ctx.get("lt"))))  # an int bound is an int key's
    written = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in ctx.items()}
    return words.format(**written, kind="an integer" if isinstance(bound, int) else "a number")


def make_config(values: dict[str, Any], where: str = "") -> DINOConfig:
    """Build a DINOConfig, turning pydantic's errors into one readable ConfigError."""
    for key in values:
        if key not in DINOConfig.model_fields:
            raise ConfigError(unknown_key_message(key, where))
    try:
        return DINOConfig(**values)
    except ValidationError as exc:
        cross_key = any(not err["loc"] for err in exc.errors())
        raise ConfigError(format_validation_error(exc, values, where), cross_key) from None


def format_validation_error(exc: ValidationError, values: dict[str, Any], where: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(config)"
        key = str(err["loc"][0]) if err["loc"] else ""
        given = values.get(key, "<missing>") if key else ""
        field = DINOConfig.model_fields.get(key)
        msg = expected_words(err) or err["msg"].removeprefix("Value error, ")
        takes = field.description if field else None  # what the key takes, unless msg says it
        allowed = f" ({takes})" if takes and takes.rstrip(".") not in msg else ""
        if err["type"] == "value_error" and not err["loc"]:  # a rule of its own, its message names the key
            parts.append(f"{where}{msg}")
            continue
        parts.append(f"{where}{loc}={short(given)}: {msg}{allowed}")
    return "\n".join(parts)
