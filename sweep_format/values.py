"""When two values of a searched parameter are the same point of a sweep, and how a value is written.

A value goes through YAML, JSON records and Optuna's storage on its way, so 0.1 may come back as
0.1000000001 and a list as a tuple; every comparison of points (the records' ``point``, resuming a
sweep, the reports' baseline) uses ``values_equal``.
"""

from __future__ import annotations

import math
from typing import Any


def fmt_value(value: Any, digits: int = 4) -> str:
    """A searched value as a label, a table or a plot shows it: ``0.04425``, ``true``, ``[0.4, 1]``
    (floats to ``digits`` significant digits; a record's label keeps 6; numpy scalars as Python's)."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, str)):
        value = value.item()  # numpy scalar
    if isinstance(value, bool):
        return "true" if value else "false"
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
