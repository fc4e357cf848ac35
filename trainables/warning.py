"""The one form of a warning and of an error line on stderr: ``ablate: warning: TEXT``, or ``ablate train:
warning: TEXT`` for a command that names itself, as its errors do (``ablate train: error: TEXT``).

The trainer writes some warnings (a one-class image folder, a damaged checkpoint passed over) and cannot
import ``ablate``, so the form lives here; ``ablate.errors`` re-exports both for the CLI.

    warn("the study continues in memory")             # ablate: warning: the study continues in memory
    warn("training on CPU: no GPU", command="train")  # ablate train: warning: training on CPU: no GPU
    print_error("spec.yaml: no such file", "run")     # ablate run: error: spec.yaml: no such file
"""

from __future__ import annotations

import sys


def warn(text: str, command: str = "") -> None:
    """Print ``text`` as one warning line on stderr (the stream of the moment: a test's, a redirected one)."""
    print(_line("warning", text, command), file=sys.stderr)


def print_error(text: str, command: str = "") -> None:
    """Print ``text`` as the error line of ``command`` on stderr; the caller exits (``USAGE_EXIT``)."""
    print(_line("error", text, command), file=sys.stderr)


def _line(kind: str, text: str, command: str) -> str:
    return f"ablate{' ' + command if command else ''}: {kind}: {text}"
