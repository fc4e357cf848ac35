"""The kernel's OOM-kill counts as the driver reads them, and which death each kill explains."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate import oom_kills
from ablate.oom_kills import CGROUP, MACHINE, Count, KillLedger, logged_kill, read_count


def fake_root(tmp_path: Path, cgroup: str, files: dict[str, str]) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


VMSTAT = "pgfault 100\noom_kill 7\nnr_foll_pin_acquired 0\n"


@pytest.mark.parametrize(("cgroup", "files", "count"), [
    # cgroup v1 (this machine's /proc/self/cgroup, shortened): the memory controller's own line
    ("5:devices:/\n4:memory:/process_api/f6c5/ablate_h56\n0::/\n",
     {"sys/fs/cgroup/memory/process_api/f6c5/ablate_h56/memory.oom_control":
      "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "proc/vmstat": VMSTAT}, Count(CGROUP, 3)),
    # cgroup v2 (a systemd desktop's terminal)
    ("0::/user.slice/user-1000.slice/session-2.scope\n",
     {"sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope/memory.events":
      "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n", "proc/vmstat": VMSTAT},
     Count(CGROUP, 2)),
    # no cgroup file to read (not mounted): the machine's count
    ("0::/user.slice\n", {"proc/vmstat": VMSTAT}, Count(MACHINE, 7)),
    ("0::/\n", {}, None),  # no /proc/vmstat either (or a kernel older than 4.13): nothing to weigh
])
def test_the_count_is_the_drivers_memory_cgroups_else_the_machines(
        tmp_path: Path, cgroup: str, files: dict[str, str], count: Count) -> None:
    assert read_count(fake_root(tmp_path, cgroup, files)) == count


def test_each_kill_explains_one_death_on_the_drivers_node_since_its_trial_started() -> None:
    """Two trials die, the kernel killed once: the first death claims it, the second is Ray's words. A
    kill before a trial started, or a death on another node, is never claimed."""
    counts = iter(Count(CGROUP, n) for n in (5, 5, 6, 6, 6, 6, 8))
    ledger = KillLedger({"10.0.0.5"}, read=lambda: next(counts))
    ledger.start("a")
    ledger.start("b")  # 5 kills before either started
    assert ledger.claim("a", "10.0.0.5") == Count(CGROUP, 1)  # 6: one kill since a started
    assert ledger.claim("b", "127.0.0.1") is None  # still 6: a claimed it
    ledger.start("c")
    assert ledger.claim("c", "10.0.0.9") is None  # another node: its kernel's count is not read here
    ledger.start("d")
    assert ledger.claim("d", "10.0.0.5") == Count(CGROUP, 2)
    assert KillLedger({"10.0.0.5"}, read=lambda: None).claim("e", "10.0.0.5") is None  # never started


def test_the_kernel_log_names_the_killed_pid_or_says_nothing_where_unreadable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What this machine's kernel logged of the reproduction's kill (dmesg), as /dev/kmsg records."""
    log = tmp_path / "kmsg"
    log.write_text(
        "6,3170,51293212201,-;Memory cgroup out of memory: Killed process 19823 (ray::ImplicitFu) "
        "total-vm:16320212kB, anon-rss:2178900kB, file-rss:392228kB, shmem-rss:0kB, UID:0 pgtables:6472kB "
        "oom_score_adj:1000\n")
    monkeypatch.setattr(oom_kills, "KERNEL_LOG", log)
    assert logged_kill(19823) is True
    assert logged_kill(1982) is False  # not a prefix of another pid
    monkeypatch.setattr(oom_kills, "KERNEL_LOG", tmp_path / "unreadable")
    assert logged_kill(19823) is None  # dmesg_restrict: open() refused (EPERM), as without CAP_SYSLOG
    monkeypatch.setattr(oom_kills, "KERNEL_LOG", tmp_path)
    assert logged_kill(19823) is None  # opened, but a read fails (EISDIR here): not "it names no such pid"
