"""The one error of the reports package: a path that is not what a report needs."""

from __future__ import annotations


class ReportError(ValueError):
    """A missing, empty or foreign folder or file; the message names the path and what was expected.

    The CLI turns it into a clean ``ablate ...: error: ...`` message (exit code 2).
    """
