"""The sweep spec: one YAML file saying which trainer keys to search, how, and what stays fixed.

A spec is validated completely (every key, every bound against the trainer's own rules) before
anything starts, so a typo costs a second, not a cluster. The format is documented key by key in
``search_spaces/README.md``.

Example::

    spec = load_spec("search_spaces/paper.yaml", sets=["trainer.epochs=2"])
    spec.num_trials                      # 12
    spec.points()[:2]                    # [{'teacher_temp': 0.04, ...}, {'teacher_temp': 0.02, ...}]
    spec.point_label(spec.points()[1])   # 'teacher_temp=0.02'
    spec.trial_config(spec.points()[1])  # the DINOConfig of that trial
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from ablate.errors import UserError
from ablate.overrides import load_yaml, parse_sets, set_dotted
from trainables.config import DINOConfig, make_config

TOP_KEYS = ("name", "description", "trainer", "space", "search", "metric", "mode", "repeats",
            "scheduler", "resources", "stop", "loggers")
METRICS = ("knn_top1", "knn_top5", "loss", "dino_loss", "teacher_entropy", "kl_teacher_student")
ALGORITHMS = ("optuna", "grid", "ablation")
# sampler name -> (class in optuna.samplers, modules it needs beyond Optuna)
SAMPLERS = {"tpe": ("TPESampler", ()), "random": ("RandomSampler", ()),
            "cmaes": ("CmaEsSampler", ("cmaes",)), "gp": ("GPSampler", ("torch", "scipy"))}
BASELINE = "baseline"  # reserved bundle label: "the trainer section's values"
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
MAX_POINTS = 10_000


class SpecError(UserError):
    """A mistake in a sweep spec or in its ``--set`` overrides (file, key path, value, what is allowed)."""


# --- distributions of the searched parameters ---------------------------------------------------
@dataclass
class FloatDist:
    """A float in [low, high]; log-uniform with ``log``, on the grid low, low+step, ... with ``step``."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    type: ClassVar[str] = "float"

    def count(self) -> int:
        assert self.step is not None, "a range without step has no grid"
        return math.floor((self.high - self.low) / self.step + 1e-9) + 1

    def grid_values(self) -> list[float]:
        return [round(self.low + i * self.step, 12) for i in range(self.count())]  # type: ignore[operator]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high, "log": self.log}
        return out | ({"step": self.step} if self.step is not None else {})


@dataclass
class IntDist(FloatDist):
    """An integer in [low, high] (both included)."""

    low: int
    high: int
    step: int | None = None
    type: ClassVar[str] = "int"

    def count(self) -> int:
        assert self.step is not None, "a range without step has no grid"
        return (self.high - self.low) // self.step + 1

    def grid_values(self) -> list[int]:  # type: ignore[override]
        return list(range(self.low, self.high + 1, self.step))  # type: ignore[arg-type]


@dataclass
class ChoiceDist:
    """One of ``values`` (each a valid value of the trainer key)."""

    values: list[Any]
    type: ClassVar[str] = "choice"

    def count(self) -> int:
        return len(self.values)

    def grid_values(self) -> list[Any]:
        return list(self.values)

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "values": _plain(self.values)}


@dataclass
class BundleDist:
    """A choice among labelled sets of trainer keys, e.g. a crop-scale split s that sets
    ``global_crops_scale: [s, 1]`` and ``local_crops_scale: [0.05, s]`` together.

    The searcher sees only the labels (hashable strings); ``SweepSpec.expand`` turns a label back
    into trainer overrides.
    """

    bundles: dict[str, dict[str, Any]]  # label -> trainer overrides
    type: ClassVar[str] = "choice"

    @property
    def values(self) -> list[str]:
        return list(self.bundles)

    def count(self) -> int:
        return len(self.bundles)

    def grid_values(self) -> list[str]:
        return self.values

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type,
                "values": [{"label": k, "set": _plain(v)} for k, v in self.bundles.items()]}


Dist = FloatDist | IntDist | ChoiceDist | BundleDist


# --- the other sections ---------------------------------------------------------------------------
@dataclass
class Search:
    algorithm: str = "optuna"
    sampler: str | None = "tpe"  # optuna only, else None
    num_samples: int | None = 8  # optuna only, else None
    seed: int = 0
    max_concurrent_trials: int | None = None


@dataclass
class Scheduler:
    type: str = "none"
    grace_period: int = 1
    reduction_factor: float = 2.0


@dataclass
class Resources:
    cpu: float = 1.0
    gpu: float | str = "auto"
    gpu_auto_fraction: float = 1.0

    def gpu_per_trial(self, cluster_has_gpu: bool) -> float:
        if self.gpu == "auto":
            return self.gpu_auto_fraction if cluster_has_gpu else 0.0
        return float(self.gpu)


@dataclass
class Stop:
    patience: int = 3
    collapse: bool = True
    nonfinite: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"patience": self.patience, "collapse": self.collapse, "nonfinite": self.nonfinite}


# --- the spec -------------------------------------------------------------------------------------
@dataclass
class SweepSpec:
    """A validated sweep: fixed ``trainer`` overrides, the ``space`` searched, and how to search it."""

    name: str
    trainer: dict[str, Any]
    space: dict[str, Dist]
    search: Search = field(default_factory=Search)
    description: str = ""
    metric: str = "knn_top1"
    mode: str = "max"
    repeats: int = 1
    scheduler: Scheduler = field(default_factory=Scheduler)
    resources: Resources = field(default_factory=Resources)
    stop: Stop = field(default_factory=Stop)
    loggers: list[str] = field(default_factory=list)  # experiment trackers (ablate.trackers)
    source: Path = Path("<spec>")

    def trainer_config(self) -> DINOConfig:
        """The baseline: trainer defaults with this spec's ``trainer`` overrides."""
        return make_config(self.trainer, f"{self.source}: trainer.")

    def expand(self, params: dict[str, Any]) -> dict[str, Any]:
        """Searched values -> trainer overrides (a bundle label becomes the keys it sets)."""
        out: dict[str, Any] = {}
        for key, value in params.items():
            dist = self.space.get(key)
            if isinstance(dist, BundleDist):
                if value not in self.bundles()[key]:
                    raise SpecError(f"{self.source}: space.{key}: no bundle labelled {value!r}; "
                                    f"labels: {', '.join(map(repr, dist.values))}")
                out.update(self.bundles()[key][value])
            elif key in DINOConfig.model_fields:
                out[key] = value
            else:
                raise SpecError(f"{self.source}: {key!r} is neither a searched parameter nor a "
                                f"trainer key; searched: {', '.join(self.space)}")
        return out

    def trial_config(self, params: dict[str, Any]) -> DINOConfig:
        """The full trainer config of one point (baseline with the point's values)."""
        return make_config({**self.trainer, **self.expand(params)}, f"{self.source}: ")

    def bundles(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Bundle parameters: name -> label -> trainer overrides (``baseline`` -> {} included)."""
        return {name: {**dist.bundles, BASELINE: {}} for name, dist in self.space.items()
                if isinstance(dist, BundleDist)}

    def choice_values(self, name: str) -> list[Any]:
        """The values a searcher chooses among for a ``choice`` parameter (labels for bundles)."""
        return list(self.space[name].values)  # type: ignore[union-attr]

    def baseline_point(self) -> dict[str, Any]:
        """The baseline's value of every searched parameter (a bundle: the label equal to it)."""
        base = self.trainer_config()
        point: dict[str, Any] = {}
        for name, dist in self.space.items():
            if isinstance(dist, BundleDist):
                same = [label for label in dist.values if self.is_baseline(name, label)]
                point[name] = same[0] if same else BASELINE
            else:
                point[name] = _plain(getattr(base, name))
        return point

    def is_baseline(self, name: str, value: Any) -> bool:
        """Whether setting ``name`` to ``value`` leaves the baseline config unchanged."""
        base, overrides = self.trainer_config(), self.expand({name: value})
        changed = self.trial_config({name: value})
        return all(getattr(changed, k) == getattr(base, k) for k in overrides)

    def points(self) -> list[dict[str, Any]]:
        """Every point to run, each a complete assignment of the space (grid and ablation only).

        grid: the full product of the value lists. ablation: the baseline first, then each value of
        each parameter with the others at the baseline (values equal to the baseline skipped).
        """
        names = list(self.space)
        if self.search.algorithm == "grid":
            lists = [dist.grid_values() for dist in self.space.values()]
            return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]
        if self.search.algorithm == "ablation":
            base = self.baseline_point()
            points = [dict(base)]
            for name, dist in self.space.items():
                points += [{**base, name: v} for v in dist.grid_values() if not self.is_baseline(name, v)]
            return points
        raise SpecError(f"{self.source}: search.algorithm: optuna chooses its points while it runs; "
                        "points() exists for grid and ablation only")

    def point_label(self, point: dict[str, Any]) -> str:
        """A short name: ablation -> 'baseline' or what differs from it; grid/optuna -> every value."""
        if self.search.algorithm == "ablation":
            items = [(k, v) for k, v in point.items() if not self.is_baseline(k, v)]
            if not items:
                return BASELINE
        else:
            items = list(point.items())
        return ", ".join(v if isinstance(self.space.get(k), BundleDist) else f"{k}={_fmt(v)}"
                         for k, v in items)

    @property
    def num_trials(self) -> int:
        if self.search.algorithm == "optuna":
            return int(self.search.num_samples or 0) * self.repeats
        return len(self.points()) * self.repeats

    def as_dict(self) -> dict[str, Any]:
        """The resolved spec, every default filled in (only the keys that apply)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        search: dict[str, Any] = {"algorithm": self.search.algorithm}
        if self.search.algorithm == "optuna":
            search |= {"sampler": self.search.sampler, "num_samples": self.search.num_samples}
        search |= {"seed": self.search.seed, "max_concurrent_trials": self.search.max_concurrent_trials}
        scheduler: dict[str, Any] = {"type": self.scheduler.type}
        if self.scheduler.type == "asha":
            scheduler |= {"grace_period": self.scheduler.grace_period,
                          "reduction_factor": self.scheduler.reduction_factor}
        return out | {
            "trainer": _plain(self.trainer),
            "space": {name: dist.as_dict() for name, dist in self.space.items()},
            "search": search, "metric": self.metric, "mode": self.mode, "repeats": self.repeats,
            "scheduler": scheduler,
            "resources": {"cpu": self.resources.cpu, "gpu": self.resources.gpu,
                          "gpu_auto_fraction": self.resources.gpu_auto_fraction},
            "stop": self.stop.as_dict(),
        } | ({"loggers": list(self.loggers)} if self.loggers else {})

    def dump(self) -> str:
        """YAML of the resolved spec; ``load_spec`` reads it back to an equal spec."""
        return yaml.safe_dump(self.as_dict(), sort_keys=False, default_flow_style=None)


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so values dump to YAML and compare equal to what YAML loads."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def available_samplers() -> list[str]:
    """The ``search.sampler`` names the installed Optuna (and its optional dependencies) can run."""
    samplers = importlib.import_module("optuna.samplers")
    return [name for name, (cls, needs) in SAMPLERS.items()
            if hasattr(samplers, cls) and all(importlib.util.find_spec(m) for m in needs)]


# --- loading --------------------------------------------------------------------------------------
def load_spec(path: str | Path, sets: list[str] | None = None) -> SweepSpec:
    """Read a spec, apply ``--set a.b=value`` items (dotted paths into the spec), validate it all."""
    source = Path(path)
    try:
        data = load_yaml(source)
        pairs = parse_sets(sets)
    except UserError as exc:
        message = str(exc)
        raise SpecError(message if message.startswith(str(source)) else f"{source}: {message}") from None
    applied = [(key, item) for (key, _), item in zip(pairs, sets or [], strict=True)]
    for (key, value), (_, item) in zip(pairs, applied, strict=True):
        try:
            set_dotted(data, key, value)
        except UserError as exc:
            raise SpecError(f"{source}: {exc} (from --set {item})") from None
    from ablate.spec_reader import SpecReader

    return SpecReader(source, applied).spec(data)
