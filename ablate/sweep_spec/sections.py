"""The ``search``, ``scheduler``, ``resources`` and ``stop`` sections of a sweep spec.

Each is a model whose defaults are the documented ones (``search_spaces/README.md``, "Format
reference"); rules that need another section (a grace period against ``trainer.epochs``) are
checked by ``SweepSpec``.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ablate.sweep_spec.base import SpecModel, bad, one_of, spec_error
from trainables.config import MAX_SEED
from trainables.stop_rules import StopRules

# sampler name -> (class in optuna.samplers, modules it needs beyond Optuna)
SAMPLERS = {"tpe": ("TPESampler", ()), "random": ("RandomSampler", ()),
            "cmaes": ("CmaEsSampler", ("cmaes",)), "gp": ("GPSampler", ("torch", "scipy"))}
MAX_SAMPLES = 100_000  # more trials per sweep (Optuna samples, or settings x repeats) is a typo until --force
TOO_MANY = f"at most {MAX_SAMPLES} trials per sweep unless you mean it: pass --force to `ablate run`"
FORCE = "force"  # the validation context's key: load_spec(force=...), `ablate run --force`
OPTUNA_ONLY = ("sampler", "num_samples")


def forced(info: ValidationInfo) -> bool:
    """Whether the spec is loaded with ``force`` (``ablate run --force``): more than ``MAX_SAMPLES``
    trials are then meant, not a typo."""
    return bool((info.context or {}).get(FORCE))


def available_samplers() -> list[str]:
    """The ``search.sampler`` names the installed Optuna (and its optional dependencies) can run."""
    samplers = importlib.import_module("optuna.samplers")
    return [name for name, (cls, needs) in SAMPLERS.items()
            if hasattr(samplers, cls) and all(importlib.util.find_spec(m) for m in needs)]


class Search(SpecModel):
    """How points are chosen: Optuna samples ``num_samples`` of them, grid/ablation list them all."""

    algorithm: Literal["optuna", "grid", "ablation"] = "optuna"
    sampler: str | None = None  # optuna only: "tpe" when not given
    num_samples: int | None = Field(default=None, ge=1)  # optuna only: 8 when not given
    seed: int = Field(default=0, ge=0, le=MAX_SEED)  # the trainer's seed range (trials add their repeat)
    max_concurrent_trials: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _optuna_only(self, info: ValidationInfo) -> Search:
        if self.algorithm != "optuna":
            for key in OPTUNA_ONLY:
                if getattr(self, key) is not None:
                    fewer = ("; for fewer trials, shorten a value list: --set 'space.NAME.values=[...]'"
                             if key == "num_samples" else "")
                    raise bad(getattr(self, key), f"{key} applies to algorithm optuna only ({self.algorithm} "
                              f"runs every point of its lists); remove it (or --set search.{key}=null)"
                              f"{fewer}", key, ("algorithm",))
            return self
        self.sampler = one_of(self.sampler or "tpe", available_samplers(), "sampler")
        self.num_samples = self.num_samples or 8
        if self.num_samples > MAX_SAMPLES and not forced(info):
            raise bad(self.num_samples, TOO_MANY, "num_samples")
        return self


class Scheduler(SpecModel):
    """Early stopping: none, or ASHA (``grace_period`` epochs for every trial, then halving)."""

    type: Literal["none", "asha"] = "none"
    grace_period: int = Field(default=1, ge=1)
    reduction_factor: float = Field(default=2.0, gt=1.0)

    @model_validator(mode="after")
    def _asha_only(self) -> Scheduler:
        extra = [k for k in ("grace_period", "reduction_factor") if k in self.model_fields_set]
        if self.type == "none" and extra:
            raise bad(getattr(self, extra[0]), "it applies to type: asha only; set scheduler.type: asha "
                      "or remove it", extra[0], ("type",))
        return self


# Ray reserves CPUs and GPUs in steps of 1/RESOURCE_STEPS; a smaller share than one step is refused by Ray
# when a trial starts (ray._common.ray_option_utils: 'cannot go beyond 0.0001'), the sweep folder made.
RESOURCE_STEPS = 10_000
SMALLEST_SHARE = f"at least {1 / RESOURCE_STEPS:g}, the smallest share Ray reserves"
GPU_SHARES = f"1, or 1/n so that whole trials fill a GPU (0.5, 0.25, 0.2, 0.125, 0.1, ..., {SMALLEST_SHARE})"


def below_ray_step(value: float) -> bool:
    """Whether a positive share is smaller than Ray's step, by Ray's own rule (a share that rounds to 0)."""
    return 0 < value and int(value * RESOURCE_STEPS) == 0


def gpu_share(value: Any, zero_ok: bool) -> float:
    """``value`` if it is 1 or 1/n of a GPU (or 0 where CPU-only is allowed)."""
    allowed = ("'auto' or " if zero_ok else "") + "the share of one GPU per trial: " \
        + ("0 (CPU only), " if zero_ok else "") + GPU_SHARES
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(value, f"expected {allowed}")
    if value == 0 and zero_ok:
        return 0.0
    if not 0 < value <= 1 or below_ray_step(value) or abs(1 / value - round(1 / value)) > 1e-6:
        raise bad(value, f"expected {allowed}")
    return float(value)


class Resources(SpecModel):
    """What one trial gets: CPUs, a GPU share, and its number of training workers (see README)."""

    cpu: float = Field(default=1.0, gt=0.0)
    gpu: float | Literal["auto"] = "auto"
    gpu_auto_fraction: float = 1.0
    workers: int = Field(default=1, ge=1)

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: float) -> float:
        if below_ray_step(value):
            raise bad(value, f"expected a number of CPUs per trial {SMALLEST_SHARE}")
        return value

    @field_validator("gpu", mode="before")
    @classmethod
    def _gpu(cls, value: Any) -> Any:
        return value if value == "auto" else gpu_share(value, zero_ok=True)

    @field_validator("gpu_auto_fraction", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> float:
        return gpu_share(value, zero_ok=False)

    @model_validator(mode="after")
    def _whole_gpus_for_workers(self) -> Resources:
        if self.workers > 1 and self.gpu != "auto" and 0 < self.gpu < 1:
            raise spec_error(f"fractional resources.gpu needs resources.workers: 1 (got gpu {self.gpu}, "
                             f"workers {self.workers}): each data-parallel worker needs a whole GPU", "gpu",
                             ("workers",))
        if self.workers > 1 and self.gpu == "auto" and self.gpu_auto_fraction < 1:
            raise spec_error(f"fractional resources.gpu_auto_fraction needs resources.workers: 1 (got "
                             f"{self.gpu_auto_fraction}, workers {self.workers}): each data-parallel "
                             "worker needs a whole GPU", "gpu_auto_fraction", ("workers",))
        return self

    def gpu_per_trial(self, cluster_has_gpu: bool) -> float:
        if self.gpu == "auto":
            return self.gpu_auto_fraction if cluster_has_gpu else 0.0
        return float(self.gpu)


class Stop(SpecModel):
    """When a trial is stopped early: a collapse lasting ``patience`` epochs, a non-finite loss."""

    patience: int = Field(default=StopRules.patience, ge=1)  # the trainable's rules own the defaults
    collapse: bool = StopRules.collapse
    nonfinite: bool = StopRules.nonfinite

    def as_dict(self) -> dict[str, Any]:
        return {"patience": self.patience, "collapse": self.collapse, "nonfinite": self.nonfinite}
