"""One driver per sweep folder (issue 19, point 2): a live driver's lock refuses a second run or
resume in one line naming it; a stale lock (its driver killed) is reported and taken over."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from ablate.cli import main
from ablate.errors import UserError
from ablate.folder import create
from ablate.lock import SweepLock
from ablate.sweep_spec import load_spec
from sweep_format.layout import LOCK_FILE
from tests.helpers import OPTUNA_SPEC, write_spec


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A sweep folder as `ablate run` creates it, before its first trial."""
    folder = tmp_path / "runs" / "tiny"
    create(load_spec(write_spec(tmp_path, OPTUNA_SPEC)), folder)
    return folder


def test_a_held_lock_refuses_a_second_driver(sweep: Path) -> None:
    with SweepLock(sweep, "run"):
        holder = rf"this sweep is being driven by `ablate run` \(pid {os.getpid()} on {socket.gethostname()}"
        with pytest.raises(UserError, match=holder):
            SweepLock(sweep, "resume").acquire()
    with SweepLock(sweep, "resume"):  # released: the next driver gets it, silently
        holder = json.loads((sweep / LOCK_FILE).read_text())
        assert (holder["command"], holder["pid"]) == ("resume", os.getpid())
    assert (sweep / LOCK_FILE).read_text() == ""  # a clean stop leaves no stale lock


def test_resume_of_a_live_sweep_exits_2_before_ray(sweep: Path, capsys: pytest.CaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ablate.sweep.start_ray", lambda *a, **k: pytest.fail("Ray started"))
    with SweepLock(sweep, "run"):
        assert main(["resume", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ablate resume: error: {sweep}: this sweep is being driven by `ablate run`")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_stale_lock_is_reported_and_taken_over(sweep: Path, capsys: pytest.CaptureFixture) -> None:
    (sweep / LOCK_FILE).write_text(json.dumps({"host": "gone-host", "pid": 424242, "command": "run",
                                               "since": 1.0e9}))  # its driver was SIGKILLed: no flock
    with SweepLock(sweep, "resume"):
        pass
    err = capsys.readouterr().err
    assert "a stale lock of `ablate run` (pid 424242 on gone-host" in err and "taking it over" in err


def test_a_second_run_that_finds_its_folder_made_meanwhile_is_refused(sweep: Path) -> None:
    spec = load_spec(sweep / "spec.yaml")
    with pytest.raises(UserError, match="another `ablate run` created this sweep folder just now"):
        create(spec, sweep)  # the race: both passed the existence check before Ray started


def test_ls_says_which_running_trials_a_killed_driver_left(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    """A driver killed with SIGKILL leaves its trials recorded `running`: `ablate ls` listed them as
    running for good. Its lock file names a process that is gone: they are said to be left so."""
    import subprocess
    import sys

    from tests.helpers import crafted_sweep, good_record

    running = {**good_record("b"), "status": "running", "params": {"teacher_temp": 0.04}, "point": 1}
    sweep = crafted_sweep(tmp_path, [good_record("a"), running])
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    lock = sweep / LOCK_FILE
    for pid, listed in ((os.getpid(), "1 completed, 1 running"),
                        (int(gone), f"1 completed, 1 left running by a driver that is gone "
                                    f"(`ablate resume {sweep}` continues them)")):
        holder = {"host": socket.gethostname(), "pid": pid, "command": "run", "since": 1e9}
        lock.write_text(json.dumps(holder))
        assert main(["ls", str(sweep.parent)]) == 0
        assert listed in capsys.readouterr().out
    lock.write_text("")  # a driver that stopped cleanly (and left a record running, should that happen)
    assert main(["ls", str(sweep.parent)]) == 0
    assert "1 left running by a driver that is gone" in capsys.readouterr().out


def test_report_says_which_running_trials_a_killed_driver_left(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    """`ablate ls` said a killed driver's `running` trials were left so; `ablate report` of the same
    folder still counted them as '1 running', as if the sweep were live. It says what ls says now, and
    only reads: the records and trials.parquet keep the recorded status."""
    import subprocess
    import sys

    import pandas as pd

    from tests.helpers import crafted_sweep, good_record

    running = {**good_record("b"), "status": "running", "params": {"teacher_temp": 0.04}, "point": 1}
    sweep = crafted_sweep(tmp_path, [good_record("a"), running])
    record = (sweep / "trials" / "b.json").read_bytes()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    words = f"left running by a driver that is gone (`ablate resume {sweep}` continues them)"
    for pid, counted in ((os.getpid(), "2 trials (1 completed, 1 running), search"),
                         (int(gone), f"2 trials (1 completed, 1 {words}), search")):
        holder = {"host": socket.gethostname(), "pid": pid, "command": "run", "since": 1e9}
        (sweep / LOCK_FILE).write_text(json.dumps(holder))
        assert main(["report", str(sweep)]) == 0
        md, html = ((sweep / "report" / name).read_text() for name in ("report.md", "report.html"))
        assert counted in md
        assert (f"The `running` ones were {words}" in md) is (pid != os.getpid())
        assert ("a driver that is gone (<code>ablate resume" in html) is (pid != os.getpid())
        statuses = pd.read_parquet(sweep / "report" / "trials.parquet")["status"].tolist()
        assert statuses == ["completed", "running"]
        assert (sweep / "trials" / "b.json").read_bytes() == record
    capsys.readouterr()


@pytest.mark.parametrize("pid", [10**20, 2**40, 0, -1])
def test_a_lock_file_edited_elsewhere_is_stale_not_a_traceback(sweep: Path, pid: int,
                                                               capsys: pytest.CaptureFixture) -> None:
    """A lock file is text anyone may have edited. A pid beyond any process's raised OverflowError in
    `ablate ls`, `report` and `resume`, a time beyond the clock's did in `resume`, pid 0 or -1 asked
    os.kill about process groups (and called the driver alive), and its command's escapes reached the
    terminal. Now such a pid is a driver that is gone, the time is left out, the text is printable."""
    from ablate.lock import driven

    (sweep / LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": pid,
                                               "command": "run\x1b]0;owned\x07", "since": 1e300}))
    assert driven(sweep) is False
    assert main(["ls", str(sweep.parent)]) == 0
    with SweepLock(sweep, "resume"):
        pass
    err = capsys.readouterr().err
    assert f"a stale lock of `ablate run]0;owned` (pid {pid} on {socket.gethostname()}) (that driver" in err
    assert "\x1b" not in err and "Traceback" not in err


def test_a_lock_file_that_is_a_link_is_not_followed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A driver.lock linked to another sweep's lock (or any file) in someone else's folder: `ablate ls`
    read the file it points to as this sweep's lock and trusted it ('1 running', driven by a live
    process it is not driven by), `ablate report` read it before refusing the link, and a lock taken
    through it wrote into the file outside. Now ls names the link in the sweep's row, as a link among
    the other files it reads (layout.LISTED), and nothing opens the file it points to."""
    from ablate.lock import driven
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [{**good_record("a"), "status": "running"}])
    elsewhere = tmp_path / "other" / LOCK_FILE
    elsewhere.parent.mkdir()
    text = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "command": "run", "since": 1e9})
    elsewhere.write_text(text)
    (sweep / LOCK_FILE).symlink_to(elsewhere)
    assert driven(sweep) is None  # unknown: not the other sweep's True
    assert main(["ls", str(sweep.parent)]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert (f"(unreadable: {sweep / LOCK_FILE}: a symbolic link (to {elsewhere}) inside {sweep}; ablate "
            "reads a sweep only from its own folder: replace the link with a copy of what it points "
            "to)") in row
    assert "running" not in row
    with pytest.raises(OSError):
        SweepLock(sweep, "resume").acquire()
    assert elsewhere.read_text() == text
