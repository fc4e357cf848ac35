"""One driver per sweep folder: ``driver.lock`` says who runs the sweep now.

``ablate run`` and ``ablate resume`` hold an exclusive ``flock`` on ``<sweep>/driver.lock`` for as
long as they drive the sweep, and write into it who they are (host, pid, command, since when). A
second ``run`` or ``resume`` of the same folder is refused in one line naming the holder. The
kernel releases the lock when its process dies, so a driver killed with SIGKILL (or a lost
machine) leaves a *stale* lock: its text is still there, nobody holds it; the next driver says so
and takes it over. On a file system without ``flock`` the text alone decides: a holder on this
host whose process is gone is stale, one on another host is trusted.

    with SweepLock(sweep_dir, "resume"):
        ...   # drive the sweep
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ablate.errors import UserError, warn
from sweep_format.files import loads
from sweep_format.layout import LOCK_FILE
from sweep_format.text import printable, shell_word


class SweepLock:
    """The exclusive right to drive the sweep in ``sweep_dir`` (a context manager)."""

    def __init__(self, sweep_dir: Path, command: str) -> None:
        self.path, self.command = Path(sweep_dir) / LOCK_FILE, command
        self.fd: int | None = None

    def __enter__(self) -> SweepLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        # a link is not followed (ELOOP): run and resume refuse one in one line before (layout.WRITTEN)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            held = not self._flock(fd)
            previous = holder(fd)
            if held or (self.flock_missing and previous and alive(previous)):
                raise UserError(in_use(self.path.parent, previous))
            if previous:
                warn(f"{self.path}: a stale lock of {describe(previous)} (that driver is gone, e.g. killed); "
                     "taking it over")
            write_holder(fd, {"host": socket.gethostname(), "pid": os.getpid(), "command": self.command,
                              "since": time.time()})
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def _flock(self, fd: int) -> bool:
        """Whether this process got the lock (True also where the file system has no flock)."""
        self.flock_missing = False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            self.flock_missing = True
        return True

    def release(self) -> None:
        """Empty the file (a clean stop leaves no stale lock) and let go of it."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):  # a full or read-only disk: the next driver finds it stale
            os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing releases the flock
        self.fd = None


def driven(sweep_dir: Path) -> bool | None:
    """Whether a driver may be running the sweep now, by what its lock file says: a clean stop empties
    it; a driver killed with SIGKILL leaves its text, naming a process that is gone (``alive``: one on
    another host is trusted). The file is only read: a reader that took the lock, however briefly,
    could make a starting ``ablate run`` refuse the folder. None (unknown) where it is a symbolic link,
    which is not followed: its readers refuse it in one line (``sweep_format.layout.LISTED``, ``WRITTEN``)."""
    try:  # a FIFO: no wait; a link: not followed
        fd = os.open(Path(sweep_dir) / LOCK_FILE, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:  # no lock file: never driven, or by an ablate that wrote none
        return None if exc.errno == errno.ELOOP else False
    try:
        previous = holder(fd)
    except OSError:
        return True  # unreadable: it cannot be said to be stale
    finally:
        os.close(fd)
    return previous is not None and alive(previous)


def holder(fd: int) -> dict[str, Any] | None:
    """What the lock file says about its holder (None when empty or unreadable)."""
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        data = loads(raw) if raw.strip() else None
    except ValueError:
        return {"host": "?", "pid": "?", "command": "?", "since": None}
    return data if isinstance(data, dict) else None


def write_holder(fd: int, data: dict[str, Any]) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(data).encode())
    os.fsync(fd)


def alive(data: dict[str, Any]) -> bool:
    """Whether the holder may still run: on another host it cannot be checked, so it is trusted. A
    lock file is text anyone may have edited: a pid no process can have (0 or less, which ``kill``
    reads as a process group, or beyond the system's pids) is a driver that is gone."""
    pid = data.get("pid")
    if data.get("host") != socket.gethostname() or not isinstance(pid, int) or isinstance(pid, bool):
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def describe(data: dict[str, Any] | None) -> str:
    if not data:
        return "another ablate process"
    since, when = data.get("since"), ""
    if isinstance(since, float):
        with contextlib.suppress(OverflowError, OSError, ValueError):  # a time no clock reads: left out
            when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since))
    command, pid, host = (printable(str(data.get(key)))[:60] for key in ("command", "pid", "host"))
    return f"`ablate {command}` (pid {pid} on {host}{when})"


def in_use(sweep_dir: Path, data: dict[str, Any] | None) -> str:
    return (f"{sweep_dir}: this sweep is being driven by {describe(data)}; one driver per sweep folder. "
            "Wait for it to finish, or stop it (Ctrl-C, or kill its pid), then `ablate resume "
            f"{shell_word(sweep_dir)}`")


def hold_run_folder(out: Path) -> int | None:
    """An ``ablate train`` run's right to its folder ``out``: an exclusive ``flock`` on the folder itself,
    so that no file is added to it; the caller closes the returned descriptor (None where the file system
    has no ``flock``). A second ``ablate train`` on the same folder while the first trains (started again
    in another terminal, or after a Ctrl-C that a background job ignores) appended its epochs to the
    first one's metrics.jsonl, every epoch twice, and wrote over its checkpoint; it is refused in one line."""
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"--out {out}: another `ablate train` is training in this folder now; one run per "
                        "folder. Wait for it to end, or stop it (Ctrl-C, or kill its process), then run "
                        "this command again") from None
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        return None
    return fd
