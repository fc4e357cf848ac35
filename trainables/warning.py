"""The one form of a warning line on stderr: ``ablate: warning: TEXT``, or ``ablate train: warning: TEXT``
for a command that names itself (as its errors do: ``ablate train: error: ...``).

The trainer writes some (a one-class image folder, a damaged checkpoint passed over) and cannot import
``ablate``, so the form lives here; ``ablate.errors`` re-exports it for the CLI's own warnings.

    warn("the study continues in memory")             # ablate: warning: the study continues in memory
    warn("training on CPU: no GPU", command="train")  # ablate train: warning: training on CPU: no GPU
"""

from __future__ import annotations

import sys


def warn(text: str, command: str = "") -> None:
    """Print ``text`` as one warning line on stderr (the stream of the moment: a test's, a redirected one)."""
    print(f"ablate{' ' + command if command else ''}: warning: {text}", file=sys.stderr)
