"""A disk that fills up mid-sweep (issue 19, point 4): Optuna's SQLite, Ray's own files, a trial's
checkpoint and the records all live on it. The sweep stops with one line naming the sweep folder and
the error, exit 2, no record left `running`; once space is freed, `ablate resume` finishes it."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import TINY_TRAINER, write_spec

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "ablate.cli"]
ENV = {**os.environ, "RAY_AUTH_MODE": "token"}


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 32 MiB tmpfs to hold the sweep (root mounts it; elsewhere the test cannot make a full disk)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
    except OSError:
        mounted = False
    if not mounted:
        pytest.skip("cannot mount a small tmpfs here (needs root): no full disk to test with")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def last_epoch(record: Path) -> int:
    try:
        rows = json.loads(record.read_text())["epochs"]
    except ValueError:
        return -1
    return rows[-1]["epoch"] if rows else -1


def fill(folder: Path) -> Path:
    """Write until the disk is full; the filler's path (delete it to free the space)."""
    filler = folder / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_disk_that_fills_up_mid_sweep_stops_it_in_one_line_and_resume_finishes(ray_cluster: str,
                                                                                  small_disk: Path,
                                                                                  tmp_path: Path) -> None:
    spec = write_spec(tmp_path, f"""
name: full
trainer: {dict(TINY_TRAINER, epochs=5)}
space:
  teacher_temp: {{type: float, low: 0.02, high: 0.08}}
search: {{algorithm: optuna, sampler: random, num_samples: 2, seed: 0}}
resources: {{cpu: 1, gpu: 0}}
""")
    storage, sweep = small_disk / "runs", small_disk / "runs" / "full"
    driver = subprocess.Popen([*CLI, "run", str(spec), "--storage", str(storage), "--num-cpus", "2"], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not any(last_epoch(f) >= 1 for f in (sweep / "trials").glob("*.json")):
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        time.sleep(0.2)
    filler = fill(small_disk)
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 2, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("ablate run: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert str(sweep) in errors[0], errors[0]
    assert any(word in errors[0] for word in ("ENOSPC", "disk is full", "No space left")), errors[0]
    assert f"then `ablate resume {sweep}`" in errors[0]
    statuses = {json.loads(f.read_text())["status"] for f in (sweep / "trials").glob("*.json")}
    assert statuses <= {"interrupted", "storage_full", "completed"} and "running" not in statuses, statuses

    filler.unlink()  # space is back; the session's cluster resumes it (a new local Ray costs its start)
    resumed = subprocess.run([*CLI, "resume", str(sweep), "--address", ray_cluster], env=ENV,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = [json.loads(f.read_text()) for f in (sweep / "trials").glob("*.json")]
    assert len(final) == 2 and {r["status"] for r in final} == {"completed"}
    assert all([e["epoch"] for e in r["epochs"]] == [0, 1, 2, 3, 4, 5] for r in final)
