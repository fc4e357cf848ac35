"""When two values of a searched parameter are the same point of a sweep.

A value goes through YAML, JSON records and Optuna's storage on its way, so 0.1 may come back as
0.1000000001 and a list as a tuple; every comparison of points (the records' ``point``, resuming a
sweep, the reports' baseline) uses ``values_equal``.
"""

from __future__ import annotations

import math
from typing import Any


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
