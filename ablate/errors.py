"""User-facing errors: printed as one clear message, exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import errno
from pathlib import Path

from sweep_format.text import shell_word
from trainables.errors import ConfigError
from trainables.storage_errors import STORAGE_ERRNOS as STORAGE_ERRNOS  # one set, the trainable's
from trainables.storage_errors import remedy
from trainables.warning import print_error as print_error  # one form of an error line, beside:
from trainables.warning import warn as warn  # one form of a warning line, the trainer's

USAGE_EXIT = 2


class UserError(Exception):
    """A mistake of the user's (bad file, key, value, folder): message says what and what is allowed."""


USER_ERRORS: tuple[type[Exception], ...] = (UserError, ConfigError)


class StorageFull(UserError):
    """A write of the sweep failed (disk full, read-only, over quota): the sweep stops with one line."""


def storage_failure(exc: OSError, args: argparse.Namespace) -> str:
    """One line: the path and errno of a failed write, what is saved, and how to continue."""
    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    what = f"cannot write {exc.filename or 'the output'} ({code}: {exc.strerror})"
    if args.command == "train":
        from sweep_format.layout import CHECKPOINT_NAME

        if not (Path(args.out) / CHECKPOINT_NAME).is_file():  # it stopped before its first checkpoint
            return f"{what}; no epoch was saved yet (nothing to resume); {remedy(exc.errno)}, then train anew"
        return (f"{what}; {args.out}/{CHECKPOINT_NAME} still holds the last finished epoch (a checkpoint "
                f"is replaced only once fully written); {remedy(exc.errno)}, then "
                f"`ablate train --out {shell_word(args.out)} --resume`")
    if args.command in ("run", "resume"):
        where = args.sweep if args.command == "resume" else f"{args.storage}/<name>"
        return (f"{what}; the sweep folder {where} keeps finished trials and each running trial's "
                f"last checkpoint; {remedy(exc.errno)}, then `ablate resume {shell_word(where)}`")
    if args.command == "report":  # a colleague's folder, a shared or read-only disk: the records stay
        return f"{what}; the sweep's records are unchanged{report_advice(exc, args.sweep)}"
    return f"{what}; nothing else was changed"


def report_advice(exc: OSError, sweep: object) -> str:
    """How to get the report of ``sweep`` that ``exc`` stopped (``ablate report``, or the report at the
    end of ``ablate run``/``resume``): free space (or raise the file-size limit), or report a copy of a
    folder this user cannot write."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f": {remedy(exc.errno)}, then `ablate report {shell_word(sweep)}`"
    return (f". To report a sweep folder you cannot write, copy it (`cp -r {sweep} COPY`) and "
            "`ablate report COPY`")
