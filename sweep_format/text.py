"""Text read from a sweep folder, made safe to print: no terminal control characters, no lone surrogates.

A record's reason, a trial id or a spec's description is text anyone may have written; printed as
it is, an escape sequence in it would retitle the terminal, clear it or hide lines (``ablate ls``,
the summary, the live view) and reach the reports. Tabs and newlines stay.

    printable("\\x1b]0;owned\\x07done")   # ']0;owneddone'
    printable_tree(record)                 # the same for every string in a JSON value
    cut_at_word("Set max_restarts and max_task_retries", 24)   # 'Set max_restarts and…'
    whole_error_at("trials/3.error.txt")       # ' (the whole error: trials/3.error.txt)'
    shell_word("runs/my sweep")                # "'runs/my sweep'", as a command to paste names it
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Iterable
from typing import Any

# C0 controls but tab and newline, DEL, and the C1 controls (U+0080-U+009F, e.g. CSI)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# a lone surrogate: no Unicode text (a JSON or YAML \udce9 escape, or a byte of a file name that is not
# UTF-8, as Python keeps it); Arrow, and so every table of the reports, cannot hold one
SURROGATE = re.compile("[\ud800-\udfff]")
# the same characters as JSON writes them (\u001b, \r, \b, \f, \udce9), to find them in a file's text
# before parsing it (a false alarm, such as a path's backslash before a b, only costs the walk)
ESCAPED_CONTROL = re.compile(r"\\(?:u00(?:0[0-8b-fB-F]|1[0-9a-fA-F]|7[fF]|[89][0-9a-fA-F])|[rbf]"
                             r"|u[dD][89a-fA-F][0-9a-fA-F]{2})")


def did_you_mean(value: object, allowed: Iterable[str], n: int = 3, cutoff: float = 0.6) -> str:
    """The names of ``allowed`` closest to ``value``, as close as the closest one (at most ``n``), "a, b"
    ("" when none is close): the one suggestion rule of every "did you mean" (a spec's key, value or
    metric, a trainer key, an option). knn_top: both knn_top1 and knn_top5; num_sample: num_samples,
    not sampler as well. A name in another case is the one meant (MAX: max, ASHA: asha, which no
    ratio of the letters found)."""
    text, names = str(value), list(allowed)
    if same := [c for c in names if c.lower() == text.lower()]:
        return ", ".join(same)
    score = {c: difflib.SequenceMatcher(None, text, c).ratio()
             for c in difflib.get_close_matches(text, names, n=n, cutoff=cutoff)}
    best = max(score.values(), default=0.0)
    return ", ".join(c for c in names if c in score and score[c] >= best - 1e-9)  # in ``allowed``'s order


def shell_word(path: object) -> str:
    """``path`` as one word of a command a line tells the user to run (`ablate resume 'runs/my sweep'`):
    quoted where a shell would split or read it (a space, a quote, ``$``), printable; pasted as printed,
    `ablate resume runs/my sweep` gave resume two folders."""
    return shlex.quote(printable(str(path)))


def plural(n: float, word: str) -> str:
    """``word`` as ``n`` of it reads: 1 trial, 2 trials."""
    return word if n == 1 else word + "s"


def printable(text: str) -> str:
    """``text`` without control characters, and with each lone surrogate written out (``\\xe9`` for
    a file name's byte that is not UTF-8, ``\\udce9`` otherwise)."""
    return SURROGATE.sub(_written_out, CONTROL.sub("", text))


def _written_out(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


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
    return bool(CONTROL.search(text) or SURROGATE.search(text) or ESCAPED_CONTROL.search(text))


CUT = "…"  # ends a text cut to fit one line
# characters of a reason or an error shown on one line: a trial's reason (the live view, ablate ls, the
# reports) and a failed run's error in the CLI, with ``whole_error_at``'s note when it has one
LINE_MAX = 300


def whole_error_at(where: str) -> str:
    """The note after an error's one line that says where its whole text is (a file, a folder)."""
    return f" (the whole error: {where})"


def cut_at_word(text: str, limit: int) -> str:
    """``text`` when it has at most ``limit`` characters, else its start cut after the last whole word
    that fits, ending in "…" (``limit`` characters at most). One word longer than ``limit`` is cut
    inside it."""
    if len(text) <= limit:
        return text
    keep = limit - len(CUT)
    head = text[:keep]
    if not text[keep].isspace():  # the cut falls inside a word: drop the part of it that fits
        whole = re.match(r"(.*\S)\s", head, re.DOTALL)
        head = whole.group(1) if whole else head
    return head.rstrip() + CUT
