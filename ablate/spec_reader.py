"""Validation of a raw spec tree into a ``SweepSpec``: every error names the file, key path, value
and what is allowed (see ``ablate.spec.load_spec``)."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from ablate.spec import (
    ALGORITHMS,
    BASELINE,
    MAX_POINTS,
    METRICS,
    NAME_PATTERN,
    TOP_KEYS,
    BundleDist,
    ChoiceDist,
    Dist,
    FloatDist,
    IntDist,
    Resources,
    Scheduler,
    Search,
    SpecError,
    Stop,
    SweepSpec,
    available_samplers,
)
from trainables.config import ConfigError, DINOConfig, make_config, unknown_key_message


class SpecReader:
    """Validates the raw YAML tree; every error names the file, key path, value and what is allowed."""

    def __init__(self, source: Path, sets: list[tuple[str, str]]) -> None:
        self.source, self.sets = source, sets

    # --- errors --------------------------------------------------------------------------
    def error(self, path: str, message: str, related: tuple[str, ...] = ()) -> SpecError:
        where = f"{path}: " if path else ""
        return SpecError(f"{self.source}: {where}{message}{self._set_note((path, *related))}")

    def bad(self, path: str, value: Any, allowed: str, related: tuple[str, ...] = ()) -> SpecError:
        return self.error(path, f"got {value!r}; {allowed}", related)

    def _set_note(self, paths: tuple[str, ...]) -> str:
        def touches(a: str, b: str) -> bool:
            return bool(a and b) and (a == b or a.startswith((b + ".", b + "[")) or b.startswith(a + "."))

        items = [item for key, item in self.sets if any(touches(p, key) for p in paths)]
        return f" (from --set {', --set '.join(items)})" if items else ""

    def config(self, values: dict[str, Any], path: str) -> DINOConfig:
        try:
            return make_config(values)
        except ConfigError as exc:  # a rule tying keys together has no single key: drop its placeholder
            raise self.error(path, str(exc).replace("(config)='': ", "")) from None

    # --- typed values --------------------------------------------------------------------
    def mapping(self, value: Any, path: str, allowed: tuple[str, ...] | None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.bad(path, value, "expected a mapping of keys to values")
        for key in value if allowed is not None else ():
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" Did you mean {close[0]}?" if close else ""
                if not path and key in DINOConfig.model_fields:
                    hint = f" {key} is a trainer key: put it under `trainer:` (--set trainer.{key}=...)."
                raise self.error(_join(path, key), f"unknown key {key!r}.{hint} Allowed keys"
                                 f"{' in ' + path if path else ''}: {', '.join(allowed)}")
        return value

    def integer(self, path: str, value: Any, minimum: int | None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            at_least = f" >= {minimum}" if minimum is not None else ""
            raise self.bad(path, value, f"expected an integer{at_least}")
        return value

    def number(self, path: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.bad(path, value, "expected a number")
        return value

    def boolean(self, path: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.bad(path, value, "expected true or false")
        return value

    def one_of(self, path: str, value: Any, allowed: tuple[str, ...] | list[str]) -> str:
        if value not in allowed:
            close = difflib.get_close_matches(str(value), allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise self.bad(path, value, f"allowed: {', '.join(allowed)}{hint}")
        return value

    # --- the spec ------------------------------------------------------------------------
    def spec(self, data: dict[str, Any]) -> SweepSpec:
        self.mapping(data, "", TOP_KEYS)
        name = data.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name in (".", ".."):
            raise self.bad("name", name, "required: a folder name of letters, digits, '-', '_', '.' "
                           "(e.g. teacher-temps)")
        description = data.get("description") or ""
        if not isinstance(description, str):
            raise self.bad("description", description, "expected text")
        trainer = self.trainer(data.get("trainer"))
        search = self.search(data.get("search"))
        if "space" not in data:
            raise self.error("space", "missing: the parameters to search, e.g. "
                             "space: {teacher_temp: {type: float, low: 0.02, high: 0.08}}")
        space = self.space(data["space"], trainer, search.algorithm)
        self.grid_size(space, search.algorithm)
        return SweepSpec(
            name=name, description=description, trainer=trainer, space=space, search=search,
            metric=self.one_of("metric", data.get("metric", "knn_top1"), METRICS),
            mode=self.one_of("mode", data.get("mode", "max"), ("max", "min")),
            repeats=self.integer("repeats", data.get("repeats", 1), 1),
            scheduler=self.scheduler(data.get("scheduler"), self.config(trainer, "trainer").epochs),
            resources=self.resources(data.get("resources")), stop=self.stop(data.get("stop")),
            loggers=self.loggers(data.get("loggers")), source=self.source)

    def loggers(self, raw: Any) -> list[str]:
        """Experiment trackers by name; whether each one's package is installed is checked at run."""
        from ablate.trackers import TRACKERS

        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self.bad("loggers", raw, f"expected a list, e.g. [tensorboard, mlflow]; allowed: "
                           f"{', '.join(TRACKERS)}")
        return [self.one_of(f"loggers[{i}]", name, list(TRACKERS)) for i, name in enumerate(raw)]

    def trainer(self, raw: Any) -> dict[str, Any]:
        trainer = self.mapping(raw, "trainer", None)
        for key, value in trainer.items():
            self.trainer_key(f"trainer.{key}", key)
            self.config({key: value}, f"trainer.{key}")  # each key alone: the error names it
        self.config(trainer, "trainer")  # then the rules that tie keys together
        return dict(trainer)

    def trainer_key(self, path: str, key: Any) -> None:
        if key not in DINOConfig.model_fields:
            raise self.error(path, unknown_key_message(str(key)))
        if key == "seed":
            raise self.error(path, "a trial's seed is search.seed + its repeat index; set search.seed "
                             "(and repeats for several seeds) instead")

    def search(self, raw: Any) -> Search:
        keys = ("algorithm", "sampler", "num_samples", "seed", "max_concurrent_trials")
        d = {k: v for k, v in self.mapping(raw, "search", keys).items() if v is not None
             or k == "max_concurrent_trials"}
        algorithm = self.one_of("search.algorithm", d.get("algorithm", "optuna"), ALGORITHMS)
        search = Search(algorithm=algorithm, sampler=None, num_samples=None,
                        seed=self.integer("search.seed", d.get("seed", 0), 0))
        if algorithm == "optuna":
            search.sampler = self.one_of("search.sampler", d.get("sampler", "tpe"), available_samplers())
            search.num_samples = self.integer("search.num_samples", d.get("num_samples", 8), 1)
        else:
            for key in ("sampler", "num_samples"):
                if key in d:
                    raise self.error(f"search.{key}", f"got {d[key]!r}, but {key} applies to algorithm "
                                     f"optuna only ({algorithm} runs every point of its list); remove it "
                                     f"(or --set search.{key}=null)",
                                     ("search.algorithm",))
        if d.get("max_concurrent_trials") is not None:
            search.max_concurrent_trials = self.integer(
                "search.max_concurrent_trials", d["max_concurrent_trials"], 1)
        return search

    def scheduler(self, raw: Any, epochs: int) -> Scheduler:
        d = self.mapping(raw, "scheduler", ("type", "grace_period", "reduction_factor"))
        kind = self.one_of("scheduler.type", d.get("type", "none"), ("none", "asha"))
        if kind == "none":
            extra = [k for k in ("grace_period", "reduction_factor") if k in d]
            if extra:
                raise self.error(f"scheduler.{extra[0]}", f"got {d[extra[0]]!r}, but it applies to "
                                 "type: asha only; set scheduler.type: asha or remove it")
            return Scheduler()
        grace = self.integer("scheduler.grace_period", d.get("grace_period", 1), 1)
        if grace > epochs:
            raise self.bad("scheduler.grace_period", grace, f"must be <= trainer.epochs ({epochs}): "
                           "ASHA lets every trial run grace_period epochs", ("trainer.epochs",))
        factor = self.number("scheduler.reduction_factor", d.get("reduction_factor", 2))
        if factor <= 1:
            raise self.bad("scheduler.reduction_factor", factor, "expected a number > 1 (e.g. 2, 3, 4)")
        return Scheduler(kind, grace, float(factor))

    def resources(self, raw: Any) -> Resources:
        d = self.mapping(raw, "resources", ("cpu", "gpu", "gpu_auto_fraction"))
        cpu = self.number("resources.cpu", d.get("cpu", 1))
        if cpu <= 0:
            raise self.bad("resources.cpu", cpu, "expected a number of CPUs per trial > 0")
        gpu = d.get("gpu", "auto")
        if gpu != "auto":
            gpu = self.gpu_share("resources.gpu", gpu, zero_ok=True)
        fraction = self.gpu_share("resources.gpu_auto_fraction", d.get("gpu_auto_fraction", 1.0),
                                  zero_ok=False)
        return Resources(cpu=cpu, gpu=gpu, gpu_auto_fraction=fraction)

    def gpu_share(self, path: str, value: Any, zero_ok: bool) -> float:
        allowed = (("'auto' or " if zero_ok else "") + "the share of one GPU per trial: "
                   + ("0 (CPU only), " if zero_ok else "")
                   + "1, or 1/n so that whole trials fill a GPU (0.5, 0.25, 0.2, 0.125, 0.1, ...)")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.bad(path, value, f"expected {allowed}")
        if value == 0 and zero_ok:
            return 0
        if not 0 < value <= 1 or abs(1 / value - round(1 / value)) > 1e-6:
            raise self.bad(path, value, f"expected {allowed}")
        return value

    def stop(self, raw: Any) -> Stop:
        d = self.mapping(raw, "stop", ("patience", "collapse", "nonfinite"))
        return Stop(patience=self.integer("stop.patience", d.get("patience", 3), 1),
                    collapse=self.boolean("stop.collapse", d.get("collapse", True)),
                    nonfinite=self.boolean("stop.nonfinite", d.get("nonfinite", True)))

    # --- the space -----------------------------------------------------------------------
    def space(self, raw: Any, trainer: dict[str, Any], algorithm: str) -> dict[str, Dist]:
        entries = self.mapping(raw, "space", None)
        if not entries:
            raise self.bad("space", raw, "needs at least one parameter, e.g. "
                           "teacher_temp: {type: choice, values: [0.02, 0.04]}")
        space: dict[str, Dist] = {}
        for name, entry in entries.items():
            path = f"space.{name}"
            d = self.mapping(entry, path, None)
            if "type" not in d:
                raise self.error(f"{path}.type", "missing; allowed: float, int, choice")
            kind = self.one_of(f"{path}.type", d.get("type"), ("float", "int", "choice"))
            if _is_bundle(name, d):
                space[name] = self.bundle(path, d, trainer)
                continue
            if name not in DINOConfig.model_fields:
                close = difflib.get_close_matches(str(name), list(DINOConfig.model_fields), n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise self.error(path, f"{name!r} is not a trainer key.{hint} A space entry is named after "
                                 "the trainer key it searches; only a bundle (type: choice, values: "
                                 "[{label: TEXT, set: {trainer_key: value, ...}}, ...]) may have another "
                                 f"name. Trainer keys: {', '.join(DINOConfig.model_fields)}")
            self.trainer_key(path, name)
            if kind == "choice":
                space[name] = self.choice(path, name, d, trainer, algorithm)
            else:
                space[name] = self.range(path, name, d, trainer, kind, algorithm)
        self.no_overlap(space)
        return space

    def range(self, path: str, name: str, d: dict[str, Any], trainer: dict[str, Any], kind: str,
              algorithm: str) -> FloatDist:
        self.mapping(d, path, ("type", "low", "high", "log", "step"))
        annotation = DINOConfig.model_fields[name].annotation
        if annotation not in (int, float) or (annotation is int and kind == "float"):
            use = "type: int" if annotation is int else "type: choice"
            raise self.bad(f"{path}.type", kind, f"{name} is not a float key; use {use}")
        read = (lambda p, v: self.integer(p, v, None)) if kind == "int" else self.number
        for key in ("low", "high"):
            if key not in d:
                raise self.error(f"{path}.{key}", f"missing: a {kind} range needs low and high")
            read(f"{path}.{key}", d[key])
            self.config({**trainer, name: d[key]}, f"{path}.{key}")
        low, high = d["low"], d["high"]
        if low > high:
            raise self.error(path, f"low {low!r} is above high {high!r}; low must be <= high")
        log = self.boolean(f"{path}.log", d.get("log", False))
        if log and low <= 0:
            raise self.bad(f"{path}.low", low, "a log range needs low > 0 (or set log: false)")
        step = d.get("step")
        if step is not None:
            read(f"{path}.step", step)
            if step <= 0 or log:
                raise self.bad(f"{path}.step", step, "expected a step > 0, and no step with log: true "
                               "(Optuna cannot combine them)")
        elif algorithm != "optuna":
            raise self.error(path, f"a {kind} range in algorithm {algorithm} needs a step (the values "
                             "low, low+step, ... are run), or use type: choice", ("search.algorithm",))
        if kind == "int":
            return IntDist(low, high, log, step)
        return FloatDist(float(low), float(high), log, None if step is None else float(step))

    def choice(self, path: str, name: str, d: dict[str, Any], trainer: dict[str, Any],
               algorithm: str) -> ChoiceDist:
        self.mapping(d, path, ("type", "values"))
        values = self.values_list(path, d)
        seen: list[Any] = []
        for i, value in enumerate(values):
            vpath = f"{path}.values[{i}]"
            if isinstance(value, dict):
                raise self.bad(vpath, value, f"a value of {name}; a mapping of several trainer keys is "
                               "a bundle, which needs a space name that is not a trainer key "
                               "(e.g. crop_split)")
            normal = getattr(self.config({**trainer, name: value}, vpath), name)
            if normal in seen:
                raise self.bad(vpath, value, f"each value once (it repeats values[{seen.index(normal)}])")
            seen.append(normal)
            if algorithm == "optuna" and not isinstance(value, (str, int, float, bool, type(None))):
                raise self.bad(vpath, value, "Optuna chooses among numbers, strings and booleans only; "
                               "for list values use a bundle ({label, set}) or algorithm grid/ablation",
                               ("search.algorithm",))
        return ChoiceDist(list(values))

    def values_list(self, path: str, d: dict[str, Any]) -> list[Any]:
        values = d.get("values")
        if not isinstance(values, list) or not values:
            raise self.bad(f"{path}.values", values, "a choice needs a non-empty list of values")
        return values

    def bundle(self, path: str, d: dict[str, Any], trainer: dict[str, Any]) -> BundleDist:
        self.mapping(d, path, ("type", "values"))
        bundles: dict[str, dict[str, Any]] = {}
        for i, value in enumerate(self.values_list(path, d)):
            vpath = f"{path}.values[{i}]"
            entry = self.mapping(value, vpath, ("label", "set"))
            label, overrides = entry.get("label"), self.mapping(entry.get("set"), f"{vpath}.set", None)
            if not isinstance(label, str) or not label.strip() or label == BASELINE or label in bundles:
                raise self.bad(f"{vpath}.label", label, "a unique, non-empty text label "
                               f"(not {BASELINE!r}, which means the trainer section's values)")
            if not overrides:
                raise self.bad(f"{vpath}.set", entry.get("set"), "a non-empty mapping of trainer keys")
            for key, v in overrides.items():
                self.trainer_key(f"{vpath}.set.{key}", key)
                self.config({**trainer, key: v}, f"{vpath}.set.{key}")
            self.config({**trainer, **overrides}, f"{vpath}.set")
            bundles[label] = dict(overrides)
        return BundleDist(bundles)

    def no_overlap(self, space: dict[str, Dist]) -> None:
        """A trainer key may be set by one space entry only."""
        owner: dict[str, str] = {}
        for name, dist in space.items():
            keys = {k for b in dist.bundles.values() for k in b} if isinstance(dist, BundleDist) else {name}
            for key in sorted(keys):
                if key in owner:
                    raise self.error(f"space.{name}", f"sets {key}, which space.{owner[key]} also sets; "
                                     "a trainer key may be searched by one space entry only")
                owner[key] = name

    def grid_size(self, space: dict[str, Dist], algorithm: str) -> None:
        if algorithm == "optuna":
            return
        sizes = [dist.count() for dist in space.values()]
        total = math.prod(sizes) if algorithm == "grid" else 1 + sum(sizes)
        if total > MAX_POINTS:
            raise self.bad("space", f"{total} points", f"at most {MAX_POINTS} points for {algorithm}; "
                           "use fewer values or larger steps, or algorithm optuna")


def _is_bundle(name: Any, d: dict[str, Any]) -> bool:
    values = d.get("values")
    return (name not in DINOConfig.model_fields and d.get("type") == "choice"
            and isinstance(values, list) and bool(values) and all(isinstance(v, dict) for v in values))


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)
