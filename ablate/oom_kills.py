"""The kernel's count of out-of-memory kills, as the driver reads it without privileges, and which
trial's death a kill may explain.

A trial's worker that the kernel's OOM killer kills (its memory grew faster than Ray's memory monitor
samples, or the monitor is off: ``RAY_memory_monitor_refresh_ms=0``) dies with SIGKILL and without a
word: Ray says only that the worker "unexpectedly exits". The kernel counts every such kill, per
memory cgroup (cgroup v2 ``memory.events``, v1 ``memory.oom_control``: ``oom_kill``), which holds the
driver and the local Ray it started (its workers are its children), and per machine (``/proc/vmstat``).
The driver reads the count as each trial starts and as it dies; a rise that no earlier death claimed
is the evidence ``ablate.records.failure_of`` weighs and words. The kernel's log, which names the
killed pid, is read only where this user may (``kernel.dmesg_restrict`` off, or root).

    ledger = KillLedger({"127.0.0.1"})   # the driver's node: its counts say nothing of other nodes'
    ledger.start(trial_id)                # as a trial starts
    ledger.claim(trial_id, "127.0.0.1")   # as it dies: Count(scope="cgroup", kills=1), or None
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

CGROUP = "cgroup"  # the kills among the processes of the driver's memory cgroup
MACHINE = "machine"  # every kill on the machine (other users', other containers')
KERNEL_LOG = Path("/dev/kmsg")
OOM_KILL = re.compile(r"^oom_kill (\d+)$", re.MULTILINE)


class Count(NamedTuple):
    """OOM kills the kernel counted, and over which processes (``CGROUP`` or ``MACHINE``)."""

    scope: str
    kills: int


def read_count(root: Path = Path("/")) -> Count | None:
    """The kernel's count of OOM kills in this process's memory cgroup; the machine's where the cgroup's
    is unreadable (a cgroup file system not mounted); None where neither is (macOS, kernels < 4.13)."""
    for file in cgroup_files(root):
        if (kills := count_in(file)) is not None:
            return Count(CGROUP, kills)
    kills = count_in(root / "proc/vmstat")
    return None if kills is None else Count(MACHINE, kills)


def cgroup_files(root: Path) -> list[Path]:
    """The file holding this process's memory cgroup's ``oom_kill``: cgroup v1's memory controller
    first (a hybrid set-up also lists a v2 line), then v2's."""
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    fields = [ln.split(":", 2) for ln in lines if ln.count(":") >= 2]
    v1 = [path for _, controllers, path in fields if "memory" in controllers.split(",")]
    v2 = [ln[3:] for ln in lines if ln.startswith("0::")]
    fs = root / "sys/fs/cgroup"
    return ([fs / "memory" / p.lstrip("/") / "memory.oom_control" for p in v1]
            + [fs / p.lstrip("/") / "memory.events" for p in v2])


def count_in(file: Path) -> int | None:
    try:
        found = OOM_KILL.search(file.read_text())
    except OSError:
        return None
    return int(found[1]) if found else None


def logged_kill(pid: int) -> bool | None:
    """Whether the kernel's log (``KERNEL_LOG``) says it killed ``pid`` for memory ("Killed process PID
    (...)"); None where this user may not read it."""
    pattern = re.compile(rf"Killed process {pid} \(")
    try:
        fd = os.open(KERNEL_LOG, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return any(pattern.search(line) for line in kernel_records(fd))
    except OSError:  # not a log this user may read to its end
        return None
    finally:
        os.close(fd)


def kernel_records(fd: int) -> Iterable[str]:
    """``/dev/kmsg``'s records, one a read, oldest first (a plain file: its lines)."""
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 8192)
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # a record overwritten while reading: the next one
                continue
            if exc.errno == errno.EAGAIN:  # the end of the log
                break
            raise
        if not chunk:
            break
        pending += chunk
    yield from pending.decode(errors="replace").splitlines()


class KillLedger:
    """The OOM kills of the driver's node since each running trial started, each explaining one death.

    ``node_ips``: the driver's node's addresses; a death elsewhere is never explained by its counts.
    """

    def __init__(self, node_ips: Iterable[str], read: Callable[[], Count | None] = read_count) -> None:
        self.node_ips, self.read = set(node_ips), read
        self.at_start: dict[str, Count | None] = {}
        self.claimed: Count | None = None  # the count up to which kills explained a death

    def start(self, key: str) -> None:
        self.at_start[key] = self.read()

    def claim(self, key: str, ip: str | None) -> Count | None:
        """The kills since ``key`` started that no earlier death claimed (one of them is now claimed);
        None when there are none, when it died on another node, or when the count is unreadable."""
        start = self.at_start.pop(key, None)
        local = ip is not None and (ip in self.node_ips or ip.startswith("127."))
        now = self.read() if local and start is not None else None
        if now is None or start is None or now.scope != start.scope:
            return None
        base = max(start.kills, self.claimed.kills if self.claimed and self.claimed.scope == now.scope else 0)
        if now.kills <= base:
            return None
        self.claimed = Count(now.scope, base + 1)
        return Count(now.scope, now.kills - base)
