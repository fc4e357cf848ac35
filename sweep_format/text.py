"""Text read from a sweep folder, made safe to print: no terminal control characters.

A record's reason, a trial id or a spec's description is text anyone may have written; printed as
it is, an escape sequence in it would retitle the terminal, clear it or hide lines (``ablate ls``,
the summary, the live view) and reach the reports. Tabs and newlines stay.

    printable("\\x1b]0;owned\\x07done")   # ']0;owneddone'
    printable_tree(record)                 # the same for every string in a JSON value
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls but tab and newline, DEL, and the C1 controls (U+0080-U+009F, e.g. CSI)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# the same characters as JSON writes them (\u001b, \r, \b, \f), to find them in a file's text before
# parsing it (a false alarm, such as a path's backslash before a b, only costs the walk)
ESCAPED_CONTROL = re.compile(r"\\(?:u00(?:0[0-8b-fB-F]|1[0-9a-fA-F]|7[fF]|[89][0-9a-fA-F])|[rbf])")


def printable(text: str) -> str:
    return CONTROL.sub("", text)


def printable_tree(value: Any) -> Any:
    """``value`` (JSON or YAML data) with ``printable`` applied to every string, keys included."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_tree(k): printable_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable_tree(v) for v in value]
    return value


def has_control(text: str) -> bool:
    """Whether a JSON or YAML file's text holds a control character, raw or escaped."""
    return bool(CONTROL.search(text) or ESCAPED_CONTROL.search(text))
