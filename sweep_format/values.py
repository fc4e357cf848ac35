"""When two values of a searched parameter are the same point of a sweep, and how a value is written.

A value goes through YAML, JSON records and Optuna's storage on its way, so 0.1 may come back as
0.1000000001 and a list as a tuple; every comparison of points (the records' ``point``, resuming a
sweep, the reports' baseline) uses ``values_equal``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def yaml_word(value: bool | None) -> str:
    """``true``, ``false`` or ``null``: a boolean or None as YAML writes it, and as the spec's author wrote
    it (Python's True, False and None are no YAML). The one spelling of labels and error messages."""
    return "null" if value is None else "true" if value else "false"


def fmt_value(value: Any, digits: int = 4) -> str:
    """A searched value as a label, a table or a plot shows it: ``0.04425``, ``true``, ``null``, ``[0.4, 1]``
    (floats to ``digits`` significant digits; a record's label keeps 6; numpy scalars as Python's)."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, str)):
        value = value.item()  # numpy scalar
    if value is None or isinstance(value, bool):
        return yaml_word(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt_value(v, digits) for v in value) + "]"
    return str(value)


def same_point(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two trials' searched values are one point: the same parameters, each value equal."""
    return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)


def values_equal(a: Any, b: Any) -> bool:
    """Parameter values as equal as a sweep means them (0.1 == 0.1000000001, [0.4, 1] == (0.4, 1.0))."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


# A number's key is its value to 6 significant digits, and every number nearer to 0 than _ZERO is one
# key: the numbers values_equal takes for one (rel_tol 1e-9, abs_tol 1e-12) then span at most two
# neighbouring keys, whose items same_point sorts out.
_ZERO = 1e-5


def _number_key(x: float) -> tuple[str, float]:
    return ("number", 0.0 if abs(x) < _ZERO else float(f"{x:.6g}"))


def _value_key(value: Any) -> Hashable:
    """The key a value is filed under (``PointIndex``)."""
    if isinstance(value, (list, tuple)):
        return ("list", *map(_value_key, value))
    if isinstance(value, (int, float)):  # bool too: True is 1
        return _number_key(float(value))
    try:
        hash(value)
    except TypeError:  # a dict, say: compared by same_point alone
        return ("unhashable", type(value).__name__)
    return value


def _value_keys(value: Any) -> list[Hashable]:
    """The keys of every value ``values_equal`` takes for ``value``."""
    if isinstance(value, (list, tuple)):
        return [("list", *keys) for keys in itertools.product(*map(_value_keys, value))]
    if isinstance(value, (int, float)) and math.isfinite(value):
        reach = max(2e-9 * abs(float(value)), 2e-12)  # isclose's tolerance, from either side
        return list(dict.fromkeys((_number_key(float(value) - reach), _number_key(float(value) + reach))))
    return [_value_key(value)]


class PointIndex(Generic[T]):
    """Items filed by their point: the items whose point is ``same_point`` as a given one, in the order
    they were added, looked up in a few keys instead of a scan of them all (resuming a sweep of
    thousands of points compared every trial with every other: minutes).

        trials = PointIndex((t.params, t) for t in study_trials)
        trials.all({"teacher_temp": 0.04})    # every trial of that point, first added first
    """

    def __init__(self, items: Iterable[tuple[dict[str, Any], T]] = ()) -> None:
        self._keys: dict[Hashable, list[tuple[int, dict[str, Any], T]]] = {}
        self._added = 0
        for params, item in items:
            self.add(params, item)

    def add(self, params: dict[str, Any], item: T) -> None:
        key = (tuple(sorted(params)), *(_value_key(params[k]) for k in sorted(params)))
        self._keys.setdefault(key, []).append((self._added, params, item))
        self._added += 1

    def all(self, params: dict[str, Any]) -> list[T]:
        names = tuple(sorted(params))
        found = [entry for values in itertools.product(*(_value_keys(params[k]) for k in names))
                 for entry in self._keys.get((names, *values), ())]
        return [item for _, theirs, item in sorted(found, key=lambda e: e[0]) if same_point(theirs, params)]

    def first(self, params: dict[str, Any]) -> T | None:
        found = self.all(params)
        return found[0] if found else None
