"""A searched parameter as a sweep's ``spec.yaml`` writes it (its ``space`` entry): which values
its trials can get.

    {type: choice, values: [0.02, 0.04]}                   # these values
    {type: choice, values: [{label: s=0.24, set: {...}}]}  # a bundle: its labels
    {type: float, low: 0.02, high: 0.06, step: 0.02}       # 0.02, 0.04, 0.06 in a grid or ablation
    {type: float, low: 0.01, high: 0.1, log: true}         # a range Optuna samples: no list

ablate.sweep_spec validates entries and builds its distributions on these rules (a stepped range's
grid, what makes a choice a bundle); the reports read a finished folder's entries with them, so a
grid over a stepped range is shown value by value, as it ran.
"""

from __future__ import annotations

import math
from typing import Any

# What a sweep is measured on: its reference kNN and every trial's kNN are of one dataset's images, so
# a space may not vary these trainer keys, and sweeps that differ in them are not ranked together.
MEASURED_ON = ("dataset", "data_path")
DIST_TYPES = ("float", "int", "choice")  # what ``type:`` accepts (a bundle is a choice)
LISTED = ("grid", "ablation")  # search algorithms that run every value of a stepped range
MAX_LISTED = 10_000  # a hand-written folder's range of more values than a sweep can run is not listed


def is_bundle(entry: Any) -> bool:
    """A choice among ``{label, set}`` mappings (several trainer keys per value)."""
    values = entry.get("values") if isinstance(entry, dict) else None
    return (isinstance(entry, dict) and entry.get("type") == "choice" and isinstance(values, list)
            and bool(values) and all(isinstance(v, dict) for v in values))


def keys_set(name: str, entry: Any) -> set[str]:
    """The trainer keys a parameter sets: a bundle's keys (every value's ``set``), else its name."""
    if not is_bundle(entry):
        return {name}
    return {str(k) for v in entry["values"] if isinstance(v.get("set"), dict) for k in v["set"]}


def range_count(low: float, high: float, step: float) -> int:
    """How many values ``low, low + step, ... <= high`` holds."""
    return math.floor((high - low) / step + 1e-9) + 1


def range_grid(low: float, high: float, step: float, integer: bool) -> list[Any]:
    """``low, low + step, ... <= high`` (floats rounded to 12 decimals: 0.1 + 2 * 0.1 is 0.3)."""
    if integer:
        return list(range(int(low), int(high) + 1, int(step)))
    return [round(low + i * step, 12) for i in range(range_count(low, high, step))]


def values_of(entry: Any, algorithm: str) -> list[Any] | None:
    """The values a parameter's trials get, in the spec's order: a choice's values, a bundle's
    labels, a stepped range's grid when ``algorithm`` runs every value (grid, ablation); None for
    a range that is sampled (Optuna). A bare list (hand-written) is its values."""
    if isinstance(entry, list):
        return entry
    if not isinstance(entry, dict):
        return None
    if is_bundle(entry):
        return [v.get("label") for v in entry["values"]]
    if entry.get("type") == "choice" and isinstance(entry.get("values"), list):
        return list(entry["values"])
    bounds = [entry.get(k) for k in ("low", "high", "step")]
    numbers = [float(v) for v in bounds if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if algorithm not in LISTED or entry.get("type") not in ("float", "int") or len(numbers) < len(bounds):
        return None
    low, high, step = numbers
    if step <= 0 or high < low or range_count(low, high, step) > MAX_LISTED:
        return None
    return range_grid(low, high, step, entry["type"] == "int")


def is_log(entry: Any) -> bool:
    """A range sampled log-uniformly (``log: true``)."""
    return isinstance(entry, dict) and entry.get("log") is True
