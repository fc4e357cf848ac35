"""YAML as ablate reads it (specs, ``--set`` values, a sweep's ``spec.yaml``): safe and bounded.

``yaml.safe_load`` builds no Python objects beyond plain data, but its aliases can make a few
hundred bytes stand for billions of values (the "billion laughs"), which anything that walks the
data (validation, an error message, a JSON dump) would then expand. ``load`` refuses data that
expands to more than ``MAX_VALUES`` values: a sweep spec holds a few dozen.

    data = load(Path("spec.yaml").read_text())   # TooLarge when aliases blow it up
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_VALUES = 100_000


class TooLarge(ValueError):
    """The YAML expands (through its aliases) to more than ``MAX_VALUES`` values."""


def load(text: str, max_values: int = MAX_VALUES) -> Any:
    data = yaml.safe_load(text)
    check_size(data, max_values)
    return data


def check_size(data: Any, max_values: int = MAX_VALUES) -> None:
    """TooLarge when walking ``data`` (every alias expanded) meets more than ``max_values`` values."""
    seen, stack = 0, [data]
    while stack:
        item = stack.pop()
        seen += 1
        if seen > max_values:
            raise TooLarge(f"expands to more than {max_values:,} values (YAML aliases?); a spec holds a few "
                           "dozen: write the values out, without anchors and aliases")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
