"""A sweep stopped by signals and resumed from its own files (issue 19, points 1 and 3), through real
process groups as a terminal, `timeout`, Slurm or Kubernetes send them:

1. SIGTERM, on a local Ray (its processes in the driver's session: `timeout` signals them too):
   exit 143, every unfinished record `interrupted` (none `running`), the resume hint;
2. every pickle in the folder replaced by one that runs code when loaded: `ablate resume` loads none
   of them; then SIGHUP: exit 129;
3. every Ray experiment file deleted (only the weights-only checkpoints kept): the sweep still
   resumes; then Ctrl-C twice, the second during the shutdown: exit 130, still no record `running`;
4. a last `ablate resume` finishes every trial, its epochs 0..N, with nothing lost.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ablate.folder import load_sweep_spec
from tests.helpers import TINY_TRAINER, write_spec

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "ablate.cli"]
ENV = {**os.environ, "RAY_AUTH_MODE": "token"}
EPOCHS = 6


class Payload:
    """Unpickling it calls ``open(marker, "w")``: proof that a file from the folder ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def records(sweep: Path) -> list[dict]:
    return [json.loads(f.read_text()) for f in sorted((sweep / "trials").glob("*.json"))]


def epochs_reported(sweep: Path) -> int:
    return sum(len(r["epochs"]) for r in records(sweep)) if (sweep / "trials").is_dir() else 0


def terminal_signals() -> None:
    """The dispositions a command typed at a terminal starts with, whatever started the tests
    (CI under ``nohup`` ignores SIGHUP, a script's ``cmd &`` SIGINT)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def signalled(command: list[str], sweep: Path, *signals: int,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``command`` in its own process group; once it has added an epoch to the records, send it
    ``signals`` (the group, as a terminal does), 0.3 s apart."""
    start = epochs_reported(sweep)
    driver = subprocess.Popen(command, env=env or ENV, start_new_session=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, preexec_fn=terminal_signals)
    deadline = time.time() + 300
    while time.time() < deadline and epochs_reported(sweep) <= start + 1:
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        time.sleep(0.2)
    for sig in signals:
        os.killpg(driver.pid, sig)
        time.sleep(0.3)
    out, err = driver.communicate(timeout=180)
    return subprocess.CompletedProcess(command, driver.returncode, out, err)


def assert_stopped(result: subprocess.CompletedProcess, sweep: Path, code: int, cause: str) -> None:
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "*** SIGTERM received" not in result.stderr
    assert f"trials finished; continue with `ablate resume {sweep}`" in result.stderr
    statuses = {r["status"] for r in records(sweep)}
    assert "running" not in statuses and "interrupted" in statuses, statuses
    assert all(cause in r["reason"] for r in records(sweep) if r["status"] == "interrupted")


def test_signals_then_resume_from_the_folders_own_files(ray_cluster: str, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, f"""
name: signals
trainer: {dict(TINY_TRAINER, epochs=EPOCHS)}
space:
  teacher_temp: {{type: float, low: 0.02, high: 0.08}}
search: {{algorithm: optuna, sampler: random, num_samples: 3, seed: 2}}
resources: {{cpu: 1, gpu: 0}}
""")
    storage, sweep = tmp_path / "runs", tmp_path / "runs" / "signals"
    resume = [*CLI, "resume", str(sweep), "--address", ray_cluster]
    # a local Ray's processes were in the group and died first: the driver hung 60 s on the lost GCS,
    # then exited 1 with every record `running` (the cluster of the other steps is out of the group)
    local = {k: v for k, v in ENV.items() if k != "RAY_ADDRESS"}
    first = signalled([*CLI, "run", str(spec), "--storage", str(storage), "--num-cpus", "2"], sweep,
                      signal.SIGTERM, env=local)
    assert_stopped(first, sweep, 143, "SIGTERM received")

    marker = tmp_path / "pwned"
    pickles = sorted(sweep.rglob("*.pkl"))
    assert pickles, "Ray wrote no pickle: nothing to craft"
    for file in pickles:
        file.write_bytes(pickle.dumps(Payload(marker)))
    second = signalled(resume, sweep, signal.SIGHUP)
    assert not marker.exists(), "a pickle from the sweep folder ran on resume"
    assert_stopped(second, sweep, 129, "SIGHUP received")

    tune = sweep / "tune"  # every file of Ray's, deepest first; the checkpoints stay
    for path in sorted(tune.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if any(part.startswith("checkpoint_") for part in path.relative_to(tune).parts):
            continue
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        else:
            path.unlink()
    left = [p for p in tune.rglob("*") if p.is_file() and "checkpoint_" not in str(p.relative_to(tune))]
    assert not left and list(tune.rglob("checkpoint_*/checkpoint.pt")), left
    third = signalled(resume, sweep, signal.SIGINT, signal.SIGINT)  # the second during the shutdown
    assert_stopped(third, sweep, 130, "")

    last = subprocess.run(resume, env=ENV, capture_output=True, text=True, timeout=600)
    assert last.returncode == 0, last.stderr[-3000:]
    assert not marker.exists()
    final = records(sweep)
    assert len(final) == 3 and {r["status"] for r in final} == {"completed"}
    assert all([e["epoch"] for e in r["epochs"]] == list(range(EPOCHS + 1)) for r in final), [
        ([e["epoch"] for e in r["epochs"]], r["restarts"], r["trial_dirs"]) for r in final]
    restarted = [r for r in final if r["restarts"]]
    assert restarted and all(x["why"] == "ablate resume" for r in restarted for x in r["restarts"])
    assert any(x["from_epoch"] >= 1 for r in restarted for x in r["restarts"])  # from a checkpoint
    history = [json.loads(line)["event"] for line in (sweep / "history.jsonl").read_text().splitlines()]
    assert history.count("start") == 4 and history.count("end") == 4


def test_a_signal_the_caller_ignores_stays_ignored() -> None:
    """`nohup ablate run ... &`: SIGHUP is ignored and must stay so (a closed terminal does not stop
    the sweep); SIGTERM, not ignored, gets the sweep's handler, and both are given back after."""
    from ablate.ending import Signals

    before = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with Signals() as signals:
            signals.install()  # again, as after ray.init
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == signals._handle
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)



def test_an_error_of_tunes_own_loop_leaves_no_record_running(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    """Ray's memory monitor killed a trial's actor as Tune set it up (a busy machine, measured): Tune's
    loop raised a RuntimeError out of `tuner.fit()`; the driver ended in a traceback, exit 1, and left
    the trial `running` for good. Now it is `interrupted` with the error, and the resume hint follows,
    saying the sweep stopped on an error."""
    from ablate.ending import Signals, SweepStopped, fit
    from ablate.ray_logs import RayLogFile
    from ablate.summary import conclude
    from tests.helpers import crafted_sweep, good_record

    running = {**good_record("b"), "status": "running", "params": {"teacher_temp": 0.04}, "point": 1}
    sweep = crafted_sweep(tmp_path, [good_record("a"), running])

    class Tuner:
        def fit(self) -> None:
            raise RuntimeError("Caught unexpected exception: 1 worker(s) were killed due to the node running "
                               "low on memory. Memory on the node (IP: 127.0.0.1) was 22.84GB used\nmore")

    # as in a sweep: Ray's loggers write to ray.log (elsewhere in this process Ray's own stderr handler
    # may hold the stream of an earlier test's capture, closed by now: a "Logging error" on stderr)
    with RayLogFile() as logs, pytest.raises(SweepStopped) as stopped:
        logs.capture()
        logs.attach(sweep)
        fit(Tuner(), sweep, load_sweep_spec(sweep), Signals())
    assert "ablate: the sweep stopped\nTraceback" in (sweep / "ray.log").read_text()  # the whole error
    rec = json.loads((sweep / "trials" / "b.json").read_text())
    assert rec["status"] == "interrupted"
    assert ("the sweep stopped: RuntimeError: Caught unexpected exception: 1 worker(s) were killed due to "
            "the node running low on memory.") in rec["reason"]
    assert json.loads((sweep / "trials" / "a.json").read_text())["status"] == "completed"
    stop = stopped.value
    assert conclude(sweep, 2, interrupted=True, exit_code=stop.exit_code, ended=stop.ended) == 1
    err = capsys.readouterr().err
    assert "ablate: the sweep stopped: Ray's loop raised RuntimeError: Caught unexpected exception" in err
    assert f"ablate resume {sweep}" in err and "Traceback" not in err
    # nobody interrupted it: the hint said "ablate: interrupted: 1 of 2 trials finished; ..." all the same
    assert f"ablate: stopped on an error: 1 of 2 trials finished; continue with `ablate resume {sweep}`" \
        in err
    assert "interrupted" not in err, err


def test_a_ctrl_c_before_any_trial_started_is_said_once_as_interrupted(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """Ctrl-C a few seconds into `ablate run search_spaces/temps.yaml`, as Tune waited for its first
    trial's actor: Tune logged its stop and ended its loop as it ends a finished one, and the view,
    seeing no trial running, printed "sweep done in 0:05: no trials" above the interrupted line and
    its resume hint. The ending is decided once (ablate.ending.fit): stopped, never done."""
    import io
    import logging

    from ablate.ending import Signals, SweepInterrupted, fit
    from ablate.live import LiveView
    from ablate.recorder import TrialRecorder
    from ablate.summary import conclude
    from ablate.sweep_spec import load_spec
    from tests.helpers import crafted_sweep

    sweep = crafted_sweep(tmp_path, [])
    view = LiveView(TrialRecorder(load_spec(sweep / "spec.yaml"), sweep), stream=io.StringIO())

    class Tuner:  # what Tune's loop does on a Ctrl-C before any trial started
        def fit(self) -> None:
            view.setup()
            logging.getLogger("ray.tune.tune").warning("Stop signal received (e.g. via SIGINT/Ctrl+C), "
                                                       "ending Ray Tune run.")
            view.on_experiment_end([])

    with pytest.raises(SweepInterrupted) as stopped:
        fit(Tuner(), sweep, load_sweep_spec(sweep), Signals(), view)
    said = view.out.getvalue()
    assert "sweep done" not in said and "sweep stopped after" in said and "no trial started" in said, said
    assert conclude(sweep, 2, interrupted=True, exit_code=stopped.value.exit_code) == 130
    err = capsys.readouterr().err
    assert f"ablate: interrupted: 0 of 2 trials finished; continue with `ablate resume {sweep}`" in err
    assert "sweep done" not in err


def test_tunes_ctrl_c_handler_is_given_back_once_the_sweep_is_done(tmp_path: Path) -> None:
    """Tune installs its SIGINT handler in the fit and leaves it there when the fit ends: a Ctrl-C in
    Ray's shutdown or the report, and a SIGTERM or SIGHUP (which Signals hands to Ctrl-C's handler),
    only set Tune's flag, and `ablate run` wrote its report and exited 0."""
    from ablate.ending import Signals, fit
    from tests.helpers import crafted_sweep, good_record

    other = {**good_record("b"), "params": {"teacher_temp": 0.04}, "point": 1}
    sweep = crafted_sweep(tmp_path, [good_record("a"), other])

    class Tuner:
        def fit(self) -> None:
            signal.signal(signal.SIGINT, lambda signum, frame: None)  # as Tune's, which only sets a flag

    before = signal.getsignal(signal.SIGINT)
    try:
        fit(Tuner(), sweep, load_sweep_spec(sweep), Signals())
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_sigterm_while_the_report_is_written_is_said_and_ends_143(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture) -> None:
    """Past the sweep's own handlers, a SIGTERM in the report killed the driver without a word (exit 143,
    no report, no line), where Ctrl-C printed the hint. ``killed`` stands for SIGTERM's default action."""
    import ablate.summary
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])

    def killed(signum: int, frame: object) -> None:
        raise AssertionError("SIGTERM took its default action: the driver would be killed without a word")

    def report(*args: object) -> int:
        signal.raise_signal(signal.SIGTERM)
        return 0

    before = signal.signal(signal.SIGTERM, killed)
    try:
        monkeypatch.setattr(ablate.summary, "finish", report)
        assert ablate.summary.conclude(sweep, 1) == 143
    finally:
        signal.signal(signal.SIGTERM, before)
    assert (f"ablate: interrupted: 1 of 1 trials finished; `ablate report {sweep}` writes the report"
            ) in capsys.readouterr().err


DROPPED = """\
import signal, sys, time
{install}

class Dropped:  # raises the interrupt where Python ignores errors, as a weakref callback of matplotlib's did
    def __del__(self):
        raise KeyboardInterrupt

signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(KeyboardInterrupt("SIGTERM")))
obj = Dropped()
try:
    del obj
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        time.sleep(0.01)
    print("went on")
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.parametrize("keep", [True, False])
def test_an_interrupt_raised_where_python_ignores_errors_is_delivered_again(keep: bool) -> None:
    """A Ctrl-C that Python raised inside a weakref callback or a ``__del__`` (the report's figures make
    thousands) printed "Exception ignored in ... KeyboardInterrupt" with a traceback, and ablate went
    on as if none had come: ``keep_interrupts`` (ablate.cli.main) delivers it again, silently."""
    twice = "from ablate.ending import keep_interrupts; keep_interrupts(); keep_interrupts()"  # one hook
    install = twice if keep else ""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                         os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", DROPPED.format(install=install)], capture_output=True,
                          text=True, env=env, timeout=120)
    if keep:
        assert done.stdout.strip() == "interrupted" and done.stderr == "", done.stderr
    else:  # Python's own behaviour, which the test stands on
        assert done.stdout.strip() == "went on" and "Exception ignored" in done.stderr


def test_a_sweep_with_a_planned_trial_that_has_no_record_is_never_done(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """Tune ended its loop normally with one of a grid's 2 trials never started and no word of it to the
    callbacks: the view said "sweep done in 0:47: 1 completed" and the run exited 0, the trial forgotten.
    Now the sweep stopped, says how many never started, and the resume hint runs them (exit 1)."""
    import io

    from ablate.ending import Signals, SweepStopped, fit
    from ablate.live import LiveView
    from ablate.recorder import TrialRecorder
    from ablate.summary import conclude
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    view = LiveView(TrialRecorder(load_sweep_spec(sweep), sweep), stream=io.StringIO(), interactive=False)

    class Tuner:
        def fit(self) -> None:
            view.on_experiment_end([])

    with pytest.raises(SweepStopped) as stopped:
        fit(Tuner(), sweep, load_sweep_spec(sweep), Signals(), view)
    said = view.out.getvalue()
    assert "sweep done" not in said and "sweep stopped after" in said, said
    stop = stopped.value
    assert conclude(sweep, 2, interrupted=True, exit_code=stop.exit_code, ended=stop.ended) == 1
    err = capsys.readouterr().err
    assert "ablate: the sweep stopped: 1 of its 2 planned trials never started" in err
    assert f"1 of 2 trials finished; continue with `ablate resume {sweep}`" in err
    # an Optuna sweep plans asks, not records: a setting asked for again is not run again (ablate.study),
    # so one record of num_samples 2 over a choice is a sweep that ended, not one that lost a trial
    spec = load_sweep_spec(sweep)
    spec.search.algorithm, spec.search.sampler, spec.search.num_samples = "optuna", "random", 2
    fit(Tuner(), sweep, spec, Signals(), None)
