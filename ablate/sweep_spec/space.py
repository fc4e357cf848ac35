"""The ``space`` section: one distribution per searched parameter (float, int, choice, bundle).

Each distribution checks its own shape when it is read; ``check(name, trainer, algorithm)`` then
checks it against the trainer key it searches (bounds, types) and the search algorithm, with the
spec's ``trainer`` section applied. Formats: ``search_spaces/README.md``, "Distributions".
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from ablate.sweep_spec.base import SpecModel, bad, spec_error
from ablate.sweep_spec.trainer import check_searched_key, check_values
from reports.columns import taken
from sweep_format.metrics import METRICS
from sweep_format.space import DIST_TYPES, is_bundle, range_count, range_grid
from sweep_format.text import did_you_mean
from sweep_format.values import values_equal
from trainables.config import DINOConfig, value_kinds

BASELINE = "baseline"  # reserved bundle label: "the trainer section's values"
BUNDLE_FORM = "{label: TEXT, set: {trainer_key: value, ...}}"


def _path(name: str, at: str) -> str:
    return f"space.{name}" + (("" if at.startswith("[") else ".") + at if at else "")


class _Range(SpecModel):
    """``low``..``high`` (both included); log-uniform with ``log``; the grid low, low+step, ... with step."""

    type: Literal["float", "int"]
    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _shape(self) -> _Range:
        if self.low > self.high:
            raise spec_error(f"low {self.low!r} is above high {self.high!r}; low must be <= high")
        if self.log and self.low <= 0:
            raise bad(self.low, "a log range needs low > 0 (or set log: false)", "low")
        if self.step is not None and (self.step <= 0 or self.log):
            raise bad(self.step, "expected a step > 0, and no step with log: true (Optuna cannot "
                      "combine them)", "step")
        if self.step is not None and self.low < self.high and self.count() == 1:
            raise bad(self.step, f"a step above high - low ({self.high - self.low:g}) leaves low the only "
                      "value, never high; use a smaller step, or type: choice for one value", "step")
        return self

    def count(self) -> int:
        assert self.step is not None, "a range without step has no grid"
        return range_count(self.low, self.high, self.step)

    def check(self, name: str, trainer: dict[str, Any], algorithm: str) -> None:
        kind = self.type
        kinds = value_kinds(DINOConfig.model_fields[name].annotation)  # knn_memory_size: int or none
        if kinds not in ({int}, {float}) or (kinds == {int} and kind == "float"):
            use = "type: int" if kinds == {int} else "type: choice"
            raise bad(kind, f"{name} is not {'an' if kind == 'int' else 'a'} {kind} key; use {use}",
                      _path(name, "type"))
        for key in ("low", "high"):
            check_values({**trainer, name: getattr(self, key)}, _path(name, key))
        if self.step is None and algorithm != "optuna":
            article = "an" if kind == "int" else "a"
            raise spec_error(f"{article} {kind} range in algorithm {algorithm} needs a step (the values low, "
                             "low+step, ... are run), or use type: choice", _path(name, ""),
                             ("search.algorithm",))

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.model_dump(exclude_none=True)}


class FloatDist(_Range):
    """A float in [low, high], e.g. ``{type: float, low: 0.01, high: 0.1, log: true}``."""

    type: Literal["float"] = "float"

    def grid_values(self) -> list[float]:
        assert self.step is not None, "a range without step has no grid"
        return range_grid(self.low, self.high, self.step, integer=False)


class IntDist(_Range):
    """An integer in [low, high], e.g. ``{type: int, low: 0, high: 8, step: 2}``."""

    type: Literal["int"] = "int"
    low: int
    high: int
    step: int | None = None

    def count(self) -> int:
        assert self.step is not None, "a range without step has no grid"
        return range_count(self.low, self.high, self.step)

    def grid_values(self) -> list[int]:
        """Every integer of a range without step (``configs_of`` checks small ones value by value)."""
        return range_grid(self.low, self.high, self.step or 1, integer=True)

    def largest(self) -> int:
        """The largest value a trial can get: ``high``, or the last grid point at or below it."""
        return self.high if self.step is None else self.low + (self.count() - 1) * self.step


class ChoiceDist(SpecModel):
    """One of ``values`` (each valid for the trainer key), e.g. ``{type: choice, values: [256, 1024]}``."""

    type: Literal["choice"] = "choice"
    values: list[Any]

    @model_validator(mode="after")
    def _shape(self) -> ChoiceDist:
        if not self.values:
            raise bad(self.values, "a choice needs a non-empty list of values", "values")
        return self

    def count(self) -> int:
        return len(self.values)

    def grid_values(self) -> list[Any]:
        return list(self.values)

    def check(self, name: str, trainer: dict[str, Any], algorithm: str) -> None:
        seen: list[Any] = []
        for i, value in enumerate(self.values):
            at = _path(name, f"values[{i}]")
            if isinstance(value, dict):
                raise bad(value, f"a value of {name}; a mapping of several trainer keys is a bundle, which "
                          "needs a space name that is not a trainer key (e.g. crop_split)", at)
            normal = getattr(check_values({**trainer, name: value}, at), name)
            same = next((j for j, earlier in enumerate(seen) if values_equal(earlier, normal)), None)
            if same is not None:  # the same point as the sweep compares points (sweep_format.values)
                raise bad(value, f"each value once (it repeats values[{same}])", at)
            seen.append(normal)
            if algorithm == "optuna" and not isinstance(value, (str, int, float, bool, type(None))):
                raise bad(value, "Optuna chooses among numbers, strings and booleans only; for list values "
                          "use a bundle ({label, set}) or algorithm grid/ablation", at, ("search.algorithm",))

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Bundle(SpecModel):
    """One labelled set of trainer keys, e.g. ``{label: s=0.24, set: {global_crops_scale: [0.24, 1]}}``."""

    label: str
    overrides: dict[str, Any] = Field(alias="set")

    @model_validator(mode="after")
    def _shape(self) -> Bundle:
        if not self.label.strip() or self.label == BASELINE:
            raise bad(self.label, f"a unique, non-empty text label (not {BASELINE!r}, which means the "
                      "trainer section's values)", "label")
        if not self.overrides:
            raise bad(self.overrides, "a non-empty mapping of trainer keys", "set")
        return self


class BundleDist(SpecModel):
    """A choice among labelled sets of trainer keys, e.g. a crop-scale split s that sets
    ``global_crops_scale: [s, 1]`` and ``local_crops_scale: [0.05, s]`` together.

    The searcher sees only the labels (hashable strings); ``SweepSpec.expand`` turns a label back
    into trainer overrides.
    """

    type: Literal["choice"] = "choice"
    choices: list[Bundle] = Field(alias="values")

    @model_validator(mode="after")
    def _unique(self) -> BundleDist:
        labels = [b.label for b in self.choices]
        for i, label in enumerate(labels):
            if label in labels[:i]:
                first = labels.index(label)
                raise bad(label, f"a unique label (values[{first}] has it)", f"values[{i}].label")
        return self

    @property
    def values(self) -> list[str]:
        """The labels, what the searcher chooses among."""
        return [b.label for b in self.choices]

    @property
    def bundles(self) -> dict[str, dict[str, Any]]:
        """Label -> the trainer keys it sets."""
        return {b.label: dict(b.overrides) for b in self.choices}

    def count(self) -> int:
        return len(self.choices)

    def grid_values(self) -> list[str]:
        return self.values

    def check(self, name: str, trainer: dict[str, Any], algorithm: str) -> None:
        if name in DINOConfig.model_fields:
            raise bad(self.choices[0].overrides, f"a value of {name}; a mapping of several trainer keys is a "
                      "bundle, which needs a space name that is not a trainer key (e.g. crop_split)",
                      _path(name, "values[0]"))
        keys = {key for bundle in self.choices for key in bundle.overrides}
        seen: list[DINOConfig] = []
        for i, bundle in enumerate(self.choices):
            at = _path(name, f"values[{i}].set")
            for key, value in bundle.overrides.items():
                check_searched_key(key, f"{at}.{key}")
                check_values({**trainer, key: value}, f"{at}.{key}")
            config = check_values({**trainer, **bundle.overrides}, at)
            same = next((j for j, earlier in enumerate(seen)
                         if all(values_equal(getattr(earlier, k), getattr(config, k)) for k in keys)), None)
            if same is not None:  # two labels, one configuration: as a choice's repeated value
                raise bad(bundle.overrides, f"each setting once (it sets what values[{same}], "
                          f"{self.choices[same].label!r}, sets)", at)
            seen.append(config)

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _dist_tag(entry: Any) -> str | None:
    """Which model reads a space entry: its ``type``, or ``bundle`` for a choice among {label, set}."""
    if not isinstance(entry, dict) or entry.get("type") not in DIST_TYPES:
        return None
    return "bundle" if is_bundle(entry) else str(entry["type"])


DIST_TYPE_ERROR = "dist_type"  # pydantic error type of an entry without a valid `type`; the loader words it
Dist = Annotated[
    Annotated[FloatDist, Tag("float")] | Annotated[IntDist, Tag("int")]
    | Annotated[ChoiceDist, Tag("choice")] | Annotated[BundleDist, Tag("bundle")],
    Discriminator(_dist_tag, custom_error_type=DIST_TYPE_ERROR, custom_error_message="bad type")]
DIST_TAGS = ("float", "int", "choice", "bundle")  # pydantic puts the tag into an error's path


def check_name(name: str, dist: Any) -> None:
    """A space entry is named after the trainer key it searches; only a bundle may have another name."""
    if isinstance(dist, BundleDist):
        if taken(name, METRICS):
            raise spec_error(f"{name!r} names a column of the report's trials table (reports/SCHEMA.md), "
                             f"which a bundle's column would collide with; name it otherwise, e.g. "
                             f"{name}_choice", _path(name, ""))
        return
    if name not in DINOConfig.model_fields:
        close = did_you_mean(name, DINOConfig.model_fields)
        hint = f" Did you mean {close}?" if close else ""
        raise spec_error(f"{name!r} is not a trainer key.{hint} A space entry is named after the trainer "
                         f"key it searches; only a bundle (type: choice, values: [{BUNDLE_FORM}, ...]) may "
                         f"have another name. Trainer keys: {', '.join(DINOConfig.model_fields)}",
                         _path(name, ""))
    check_searched_key(name, _path(name, ""))


def check_no_overlap(space: dict[str, Any]) -> None:
    """A trainer key may be set by one space entry only."""
    owner: dict[str, str] = {}
    for name, dist in space.items():
        keys = {k for b in dist.bundles.values() for k in b} if isinstance(dist, BundleDist) else {name}
        for key in sorted(keys):
            if key in owner:
                raise spec_error(f"sets {key}, which space.{owner[key]} also sets; a trainer key may be "
                                 "searched by one space entry only", _path(name, ""))
            owner[key] = name
