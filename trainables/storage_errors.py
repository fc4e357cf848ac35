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

# ENOSPC full, EDQUOT over quota, EROFS read-only file system, EACCES/EPERM not permitted (e.g. an
# immutable folder, chattr +i), EFBIG a file over the file system's limit.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def write_failure(exc: OSError, what: str = "") -> str:
    """``PATH: cannot write WHAT (ENOSPC: No space left on device)``."""
    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return f"{exc.filename or 'storage'}: cannot write{' ' + what if what else ''} ({code}: {reason})"
