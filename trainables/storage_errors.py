"""A write that fails because the disk is full, read-only, over quota or not permitted: an outcome.

A retry fails the same way, so a trial that cannot write its checkpoint ends with the outcome
``storage_full`` (sweep_format.statuses; the path and errno in its ``stop_reason``), and ``ablate``
stops with one line instead of a traceback.

    except OSError as exc:
        if exc.errno in STORAGE_ERRNOS: print(write_failure(exc, "the checkpoint"))
"""

from __future__ import annotations

import errno
import os
import re

# ENOSPC full, EDQUOT over quota, EROFS read-only file system, EACCES/EPERM not permitted (e.g. an
# immutable folder, chattr +i), EFBIG a file over the file system's limit.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def write_failure(exc: OSError, what: str = "") -> str:
    """``PATH: cannot write WHAT (ENOSPC: No space left on device)``."""
    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"{exc.filename or 'storage'}: cannot write{' ' + what if what else ''} ({code}: {reason})"


def remedy(code: int | None) -> str:
    """What makes a write that failed with errno ``code`` succeed, for the line that says how to go on
    ("{remedy}, then `ablate resume ...`"): space for a full disk or quota, a larger file-size limit
    for EFBIG (a shell's `ulimit -f`, or a FAT disk's 4 GiB), write permission for the rest. ``None``
    (a failure known only by its text): both of the common ones."""
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "free space"
    if code == errno.EFBIG:
        return "raise the file-size limit (`ulimit -f`, or a file system that holds files this large)"
    if code in STORAGE_ERRNOS:
        return "make the storage writable"
    return "free space (or make the storage writable)"


def code_in(line: str) -> int | None:
    """The errno a ``write_failure`` line names (its ``(ENOSPC: ...)``), None if it names none: a
    failure that reached the driver as text (Ray passes a trial's exception on as its message)."""
    found = re.search(r"\((E[A-Z0-9]+): ", line)
    return getattr(errno, found.group(1), None) if found else None
