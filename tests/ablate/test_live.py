"""The live sweep view: one line per event off a terminal, one in-place view on a terminal (a pty).

The view reads the records the TrialRecorder writes (the recorder comes first among the callbacks),
and names the best configuration by the one ranking rule, in the summary's words."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ablate.live import LiveView, fmt_duration
from ablate.recorder import TrialRecorder
from ablate.sweep_spec import load_spec
from tests.helpers import TINY_TRAINER, write_spec
from trainables.trial import LastReport

LINE = re.compile(r"^\[\d+:\d\d\] ")


def grid(folder: Path, values: list[float], epochs: int, asha: bool = False):
    """A grid spec over teacher_temp, its recorder in ``folder``, and fake Ray trials of it."""
    scheduler = "{type: asha, grace_period: 1}" if asha else "{type: none}"
    spec = load_spec(write_spec(folder, f"""
name: live
trainer: {dict(TINY_TRAINER, epochs=epochs)}
space:
  teacher_temp: {{type: choice, values: {values}}}
search: {{algorithm: grid}}
scheduler: {scheduler}
"""))
    recorder = TrialRecorder(spec, folder / "sweep")
    error = folder / "error.txt"
    error.write_text("Traceback ...\nRuntimeError: boom\n")
    trials = [SimpleNamespace(trial_id=f"t{i}", config={**TINY_TRAINER, "epochs": epochs, "teacher_temp": v,
                                                         "repeat": 0},
                              path=str(folder / f"t{i}"), error_file=str(error), error_msg="")
              for i, v in enumerate(values)]
    return recorder, trials


class Both:
    """Ray's calls to the callbacks, in their order: the recorder first, then the view."""

    def __init__(self, recorder: TrialRecorder, view: LiveView) -> None:
        self.callbacks = [recorder, view]

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: [getattr(c, name)(*args, **kwargs) for c in self.callbacks]


def drive(folder: Path, **view_options) -> LiveView:
    """Four trials of 4 epochs: one completes, one collapses at epoch 2, one errors, one is stopped early."""
    recorder, trials = grid(folder, [0.02, 0.04, 0.06, 0.08], epochs=4, asha=True)
    view = LiveView(recorder, **view_options)
    both = Both(recorder, view)
    view.setup()
    for t in trials:
        both.on_trial_start(0, trials, t)
    for epoch in range(5):
        both.on_trial_result(0, trials, trials[0], {"epoch": epoch, "loss": 3.0 - epoch / 4,
                                                   "knn_top1": 40.0 + epoch, "time_this_iter_s": 2.0,
                                                   "trial_outcome": "completed" if epoch == 4 else "running"})
    both.on_trial_complete(0, trials, trials[0])
    for epoch in range(3):
        collapsed = epoch == 2
        both.on_trial_result(0, trials, trials[1], {
            "epoch": epoch, "loss": 4.1, "knn_top1": 12.0, "time_this_iter_s": 2.0, "collapsed": collapsed,
            "trial_outcome": "collapsed" if collapsed else "running",
            "stop_reason": "teacher entropy at ln(out_dim) for 2 epochs" if collapsed else ""})
    both.on_trial_complete(0, trials, trials[1])
    both.on_trial_error(0, trials, trials[2])
    both.on_trial_result(0, trials, trials[3], {"epoch": 1, "loss": 3.5, "knn_top1": 30.0,
                                               "time_this_iter_s": 2.0, "trial_outcome": "running"})
    both.on_trial_complete(0, trials, trials[3])
    view.on_experiment_end(trials)
    view.end(finished=True)  # ablate.ending.fit: tuner.fit() returned, no signal
    return view


def test_non_terminal_prints_one_line_per_event(tmp_path: Path) -> None:
    out = io.StringIO()
    drive(tmp_path, stream=out, every=2)
    lines = out.getvalue().splitlines()
    assert all(LINE.match(line) for line in lines), lines
    text = "\n".join(lines)
    assert sum("started" in line for line in lines) == 4
    assert "trial 1/4 started  t0  teacher_temp=0.02" in text
    # every 2nd epoch while running (2), the last one is the "completed" line
    assert [line for line in lines if "t0  epoch" in line] == [lines[4]]
    assert "t0  epoch 2/4  loss 2.5000  kNN top-1 42.00%" in lines[4]
    assert re.search(r"t0  completed  loss 2.0000  kNN top-1 44.00%  epochs 4/4  \[1/4 done", text)
    collapsed = [line for line in lines if "collapsed" in line and "sweep done" not in line]
    assert len(collapsed) == 1 and "reason: teacher entropy at ln(out_dim) for 2 epochs" in collapsed[0]
    assert "t2  errored" in text and "reason: RuntimeError: boom" in text
    assert "t3  stopped early" in text and "after 1/4 epochs" in text
    # the best configuration by the summary's rule and words, not the collapsed one
    assert lines[-1].endswith("best knn_top1 (max): 44 (teacher_temp=0.02; mean of 1)"), lines[-1]
    assert "1 completed, 1 stopped early, 1 collapsed, 1 errored" in lines[-1]
    assert len(lines) == 4 + 1 + 4 + 1


def test_a_retried_trial_says_why_and_which_retry_before_it_starts_again(tmp_path: Path) -> None:
    """On the first GPU run a failing trial printed "started" three times and nothing between. It failed
    after the epoch it reported last (it read "failed at epoch 1", the epoch that had ended well)."""
    recorder, trials = grid(tmp_path, [0.02], epochs=4)
    out = io.StringIO()
    view = LiveView(recorder, stream=out, interactive=True)  # a terminal: the line is printed there too
    both, trial = Both(recorder, view), trials[0]
    both.on_trial_start(0, trials, trial)
    both.on_trial_result(0, trials, trial, {"epoch": 1, "loss": 3.0, "time_this_iter_s": 1.0})
    trial.num_failures, trial.max_failures = 1, 2
    both.on_trial_recover(0, trials, trial)
    view.close()
    line = next(line for line in out.getvalue().splitlines() if "failed" in line)
    assert "trial 1/1 t0  failed after epoch 1: RuntimeError: boom; Ray runs it again from its last " in line
    assert line.endswith("(retry 1 of 2)")


def test_a_trial_ray_retries_is_not_said_to_be_resumed(tmp_path: Path) -> None:
    """Off a terminal, Ray's retry of a failed trial started with "(resumed; recorded up to epoch 2)", the
    words of a trial `ablate resume` continues; a later run's start of it is still "resumed"."""
    recorder, trials = grid(tmp_path, [0.02], epochs=4)
    view = LiveView(recorder, stream=io.StringIO())
    both, trial = Both(recorder, view), trials[0]
    both.on_trial_start(0, trials, trial)
    both.on_trial_result(0, trials, trial, {"epoch": 2, "loss": 3.0, "time_this_iter_s": 1.0})
    trial.num_failures, trial.max_failures = 1, 2
    both.on_trial_recover(0, trials, trial)
    both.on_trial_start(0, trials, trial)
    started = [line for line in view.stream.getvalue().splitlines() if " started " in line]
    assert started[-1].endswith("teacher_temp=0.02  (Ray's retry; recorded up to epoch 2)"), started
    later = LiveView(TrialRecorder(recorder.spec, recorder.sweep_dir), stream=io.StringIO())
    Both(later.recorder, later).on_trial_start(0, trials, trial)
    assert later.stream.getvalue().rstrip().endswith("(resumed; recorded up to epoch 2)")


def test_a_trial_retried_before_its_first_checkpoint_is_said_to_start_over(tmp_path: Path) -> None:
    """Ray's memory monitor killed a trial before its first epoch ended: "Ray runs it again from its last
    checkpoint", of a trial that had none (epoch 0 writes none); it started over."""
    recorder, trials = grid(tmp_path, [0.02], epochs=4)
    view = LiveView(recorder, stream=io.StringIO())
    both, trial = Both(recorder, view), trials[0]
    both.on_trial_start(0, trials, trial)
    both.on_trial_result(0, trials, trial, {"epoch": 0, "knn_top1": 30.0})
    trial.num_failures, trial.max_failures = 1, 2
    both.on_trial_recover(0, trials, trial)
    (line,) = [line for line in view.stream.getvalue().splitlines() if "failed" in line]
    assert line.endswith("failed before its first epoch ended: RuntimeError: boom; Ray runs it again from "
                         "the start (retry 1 of 2)"), line


def test_a_trial_killed_as_its_first_checkpoints_result_was_on_its_way_is_said_to_continue_from_it(
        tmp_path: Path) -> None:
    """The process died after Ray copied epoch 1's checkpoint into the trial folder, before the result
    reached the driver: the retry continues from that checkpoint (trainables.trial.checkpoints_to_restore),
    and the line said "failed before its first epoch ended ... from the start"."""
    recorder, trials = grid(tmp_path, [0.02], epochs=4)
    view = LiveView(recorder, stream=io.StringIO())
    both, trial = Both(recorder, view), trials[0]
    both.on_trial_start(0, trials, trial)
    both.on_trial_result(0, trials, trial, {"epoch": 0, "knn_top1": 30.0})
    kept = tmp_path / "sweep" / "tune" / "t0" / "checkpoint_000000"
    kept.mkdir(parents=True)
    LastReport.save(kept, {"epoch": 1, "knn_top1": 31.0})
    trial.num_failures, trial.max_failures = 1, 2
    both.on_trial_recover(0, trials, trial)
    (line,) = [line for line in view.stream.getvalue().splitlines() if "failed" in line]
    assert line.endswith("failed after epoch 1: RuntimeError: boom; its checkpoint of epoch 1 is kept, its "
                         "result unrecorded; Ray runs it again from its last checkpoint (retry 1 of 2)"), line


def test_a_checkpoint_a_trial_could_not_restore_from_is_named_once(tmp_path: Path) -> None:
    """A resumed trial whose checkpoint was damaged or crafted restarted from an earlier epoch under
    "(continues from epoch 29)", and the note its every epoch carried was never shown."""
    recorder, trials = grid(tmp_path, [0.02], epochs=4)
    out = io.StringIO()
    view = LiveView(recorder, stream=out, interactive=True)  # a terminal: the line is printed there too
    both, trial = Both(recorder, view), trials[0]
    both.on_trial_start(0, trials, trial)
    note = ("tune/t0/checkpoint_000003/checkpoint.pt: refused to load this checkpoint: ...; no usable "
            "checkpoint is left, so the trial restarts from epoch 0")
    for epoch in (0, 1):
        both.on_trial_result(0, trials, trial, {"epoch": epoch, "loss": 3.0, "restore_note": note})
    view.close()
    lines = [line for line in out.getvalue().splitlines() if "refused" in line]
    assert len(lines) == 1 and lines[0].endswith(f"] trial 1/1 t0  {note}"), lines


def test_a_resumed_trial_says_the_epoch_it_continues_from_once_its_checkpoint_does(tmp_path: Path) -> None:
    """The start line said "(continues from epoch N)" with N the record's last epoch: a trial retried
    after diverging at epoch 1 restarted from its epoch-0 checkpoint under "continues from epoch 1"."""
    recorder, trials = grid(tmp_path, [0.02], epochs=4)
    out = io.StringIO()
    view = LiveView(recorder, stream=out, interactive=False)
    both, trial = Both(recorder, view), trials[0]
    both.on_trial_start(0, trials, trial)
    both.on_trial_result(0, trials, trial, {"epoch": 0, "loss": 3.0})
    both.on_trial_result(0, trials, trial, {"epoch": 1, "loss": 3.0})
    both.on_trial_start(0, trials, trial)  # run again (resume --retry)
    for epoch in (0, 1):
        both.on_trial_result(0, trials, trial, {"epoch": epoch, "loss": 3.0, "restored_from_epoch": 0})
    view.close()
    lines = out.getvalue().splitlines()
    assert lines[-1].endswith("trial 1/1 t0  continues from epoch 0 (its newest usable checkpoint)")
    assert lines[-2].endswith("(resumed; recorded up to epoch 1)")
    assert "continues from epoch 1" not in out.getvalue()


def test_progress_and_eta(tmp_path: Path) -> None:
    recorder, trials = grid(tmp_path, [0.02, 0.04], epochs=4)
    view = LiveView(recorder, stream=io.StringIO())
    for t in trials:
        view.on_trial_start(0, trials, t)
    assert view.eta() is None  # nothing measured yet
    for epoch in (1, 2):
        view.on_trial_result(0, trials, trials[0], {"epoch": epoch, "time_this_iter_s": 3.0})
    view.on_trial_result(0, trials, trials[1], {"epoch": 1, "time_this_iter_s": 3.0})
    # 8 planned, 3 done: 5 epochs x 3 s over 2 running trials, but trial 1's 3 epochs come one by one
    assert (view.epochs_done(), view.epochs_planned(), view.eta()) == (3, 8, 9.0)
    view.on_trial_complete(0, trials, trials[1])  # stopped early at epoch 1: 3 epochs never run
    assert view.epochs_planned() == 5 and view.eta() == pytest.approx(2 * 3.0)
    assert fmt_duration(3725) == "1:02:05" and fmt_duration(65) == "1:05" and fmt_duration(None) == "?"


def test_the_eta_shares_what_is_left_among_the_trials_that_ran_at_once(tmp_path: Path) -> None:
    """As a trial ended, before the next one started, one trial was running, and the ETA then printed
    was one trial at a time: the main job on 2 CPUs said "ETA 20:41" after its first trial (8:47 in all)."""
    recorder, trials = grid(tmp_path, [0.02, 0.04, 0.06, 0.08], epochs=4)
    view = LiveView(recorder, stream=io.StringIO())
    for t in trials[:2]:
        view.on_trial_start(0, trials, t)
    for epoch in (1, 2, 3, 4):
        view.on_trial_result(0, trials, trials[0], {"epoch": epoch, "time_this_iter_s": 3.0})
    view.on_trial_result(0, trials, trials[1], {"epoch": 1, "time_this_iter_s": 3.0})
    view.on_trial_complete(0, trials, trials[0])
    # 16 planned, 5 done: 11 epochs x 3 s over the 2 trials that ran at once (not the 1 running now)
    assert (view.epochs_done(), view.epochs_planned(), view.eta()) == (5, 16, pytest.approx(11 * 3.0 / 2))
    view.on_trial_start(0, trials, trials[2])
    view.on_trial_start(0, trials, trials[3])  # 3 running: 11 / 3 epochs each, but 4 left in trials 2, 3
    assert view.eta() == pytest.approx(4 * 3.0)
    for t in trials[2:]:
        view.on_trial_complete(0, trials, t)  # stopped at once: trial 2's 3 epochs are all that is left
    assert view.eta() == pytest.approx(3 * 3.0)  # one trial's epochs run one after the other


def test_the_view_survives_pickling(tmp_path: Path) -> None:
    import pickle

    recorder, _ = grid(tmp_path, [0.02], epochs=1)
    view = LiveView(recorder, stream=io.StringIO())
    copy = pickle.loads(pickle.dumps(view))  # Tune saves callbacks with the experiment (never read back)
    assert copy.stream is None and copy.num_trials == 1


TERMINAL_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tests.ablate.test_live import Both, grid
    from ablate.live import LiveView
    recorder, trials = grid(Path(sys.argv[1]), [0.04, 0.05], epochs=6)
    view = LiveView(recorder, stream=sys.stdout)
    both = Both(recorder, view)
    view.setup()
    for t in trials:
        both.on_trial_start(0, trials, t)
    for epoch in range(7):
        for t in trials:
            both.on_trial_result(0, trials, t, {"epoch": epoch, "loss": 3.0, "knn_top1": 40.0 + epoch,
                                                "time_this_iter_s": 1.0, "trial_outcome": "running",
                                                "stop_reason": ""})
        time.sleep(0.3)
    both.on_trial_result(0, trials, trials[1], {"epoch": 6, "trial_outcome": "diverged",
                                                "stop_reason": "loss is nan at step 12"})
    both.on_trial_complete(0, trials, trials[0])
    both.on_trial_complete(0, trials, trials[1])
    view.on_experiment_end(trials)
    view.end(finished=True)
""")


def read_all(fd: int, proc: subprocess.Popen, timeout: float = 60) -> bytes:
    chunks, deadline = [], time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the child closed the pty
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)


def test_terminal_draws_one_view_in_place(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "COLUMNS": "120",
           "LINES": "40", "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-c", TERMINAL_SCRIPT, str(tmp_path)], stdout=slave,
                            stderr=slave, env=env)
    os.close(slave)
    try:
        raw = read_all(master, proc)
        assert proc.wait(timeout=30) == 0, raw.decode(errors="replace")[-2000:]
    finally:
        os.close(master)
    text = raw.decode("utf-8", errors="replace")
    assert "\x1b[2K" in text and re.search(r"\x1b\[\d*A", text)  # erase line, cursor up: redrawn in place
    assert "━" in text  # the progress bar
    final = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text.split("\x1b[2K")[-1])
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert "trials 2/2  epochs 12/12" in plain
    assert "best knn_top1 (max): 46 (teacher_temp=0.04; mean of 1)" in plain
    assert plain.count("t1  diverged") == 1 and "reason: loss is nan at step 12" in plain  # printed once
    assert "sweep done" in final
    # redrawn several times, yet the screen grew only by the view (5 lines) and the event lines (3)
    ups = sum(int(n or 1) for n in re.findall(r"\x1b\[(\d*)A", text))
    assert ups >= 3 * 4 and text.count("\n") - ups <= 8, (text.count("\n"), ups)


@pytest.mark.slow
def test_a_real_sweep_off_a_terminal(tracked_sweep: tuple[Path, str]) -> None:
    sweep, text = tracked_sweep
    lines = text.splitlines()
    assert all(LINE.match(line) for line in lines), lines  # nothing but the view's own lines
    assert sum(" started " in line for line in lines) == 2
    assert sum(" completed  loss " in line for line in lines) == 2
    assert lines[-1].split("] ", 1)[1].startswith("sweep done in ") and "2 completed" in lines[-1]
    # epoch 1 of 2 printed once per trial (every = ceil(2 / 3) = 1), the last epoch is the end line
    assert sum(" epoch 1/2 " in line for line in lines) == 2
    assert len(lines) == 2 + 2 + 2 + 1
    assert (sweep / "ray.log").is_file() and "ray" in (sweep / "ray.log").read_text()


def test_the_view_ranks_by_the_specs_metric_and_covers_an_earlier_run(tmp_path: Path) -> None:
    """metric teacher_entropy, mode min: the view names what the summary names, over every trial of the
    sweep; a resumed sweep's view counts the trials an earlier run finished (issue 18, point 4)."""
    recorder, trials = grid(tmp_path, [0.02, 0.04, 0.06], epochs=2)
    recorder.spec.metric, recorder.spec.mode = "teacher_entropy", "min"
    both = Both(recorder, LiveView(recorder, stream=io.StringIO()))
    for t, knn, entropy in zip(trials[:2], (95.0, 60.0), (5.0, 2.0), strict=True):
        both.on_trial_start(0, trials, t)
        for e in (0, 1, 2):
            both.on_trial_result(0, trials, t, {"epoch": e, "knn_top1": knn, "teacher_entropy": entropy,
                                                "trial_outcome": "completed" if e == 2 else "running"})
        both.on_trial_complete(0, trials, t)
    resumed = LiveView(TrialRecorder(recorder.spec, recorder.sweep_dir), stream=io.StringIO())
    assert resumed.best_text() == "best teacher_entropy (min): 2 (teacher_temp=0.04; mean of 1)"
    assert sum(r.ended_at is not None for r in resumed.rows.values()) == 2 and resumed.epochs_done() == 4
    again = Both(resumed.recorder, resumed)
    again.on_trial_start(0, trials, trials[2])
    again.on_trial_result(0, trials, trials[2], {"epoch": 1, "knn_top1": 99.0, "teacher_entropy": 0.5})
    resumed.on_experiment_end(trials)
    resumed.end(finished=False)  # interrupted: the running trial is never called best
    end = resumed.stream.getvalue().rstrip().splitlines()[-1]
    assert "sweep stopped after " in end and "2 completed, 1 unfinished" in end and "sweep done" not in end
    assert resumed.stream.getvalue().rstrip().endswith("best teacher_entropy (min): 2 (teacher_temp=0.04; "
                                                       "mean of 1)")


def test_a_stopped_sweeps_last_line_counts_the_records_as_the_summary_does(tmp_path: Path) -> None:
    """SIGTERM with two trials running: `fit` marks their records `interrupted` (the one that found the
    disk full `storage_full`) before the view's last line, which said "2 unfinished" above the
    summary's "trials: 2 interrupted", left out a damaged record the summary counts, and said "no
    trial ... has a knn_top1 measured after training" of a sweep that `ablate ls` and the report rank,
    marked partial, by a trial's value at epoch 1."""
    from ablate.records import mark_interrupted

    recorder, trials = grid(tmp_path, [0.02, 0.04, 0.06], epochs=4)
    view = LiveView(recorder, stream=io.StringIO())
    both = Both(recorder, view)
    for t in trials:
        both.on_trial_start(0, trials, t)
    for epoch in (0, 1):
        both.on_trial_result(0, trials, trials[0], {"epoch": epoch, "knn_top1": 40.0 + epoch, "loss": 3.0})
    both.on_trial_result(0, trials, trials[1], {"epoch": 0, "knn_top1": 30.0})
    both.on_trial_result(0, trials, trials[2], {"epoch": 0, "knn_top1": 30.0})
    row = {"epoch": 1, "knn_top1": 30.0, "trial_outcome": "storage_full", "stop_reason": "ENOSPC"}
    with pytest.raises(Exception, match="ENOSPC"):
        both.on_trial_result(0, trials, trials[2], row)
    (recorder.sweep_dir / "trials" / "x.json").write_text("{")
    mark_interrupted(recorder.sweep_dir, cause="SIGTERM received")
    view.end(finished=False)
    end = view.stream.getvalue().rstrip().splitlines()[-1]
    assert "sweep stopped after " in end and ": 1 storage_full, 2 interrupted, 1 damaged; " in end, end
    assert end.endswith("no best yet: no trial that counts has ended with a knn_top1 measured after training "
                        "(unfinished ones are ranked only as partial, in `ablate ls` and the report)"), end


def test_a_trial_tune_errors_before_it_starts_is_recorded_said_and_exits_1(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A data-parallel grid of 2 on 2 CPUs: Tune reused trial 1's actor for trial 2, its reset timed out
    (the Ray Train run still shutting down), and Tune errored trial 2 without calling on_trial_start or
    on_trial_error. It had no record; the view said "sweep done: 1 completed" and the run exited 0."""
    from ablate.summary import finish
    from sweep_format.records import read_records

    recorder, trials = grid(tmp_path, [0.02, 0.04], epochs=1)
    told: list[tuple[str, bool]] = []
    recorder.search = SimpleNamespace(on_trial_complete=lambda tid, error: told.append((tid, error)))
    (tmp_path / "sweep" / "trials").mkdir(parents=True)
    (tmp_path / "sweep" / "spec.yaml").write_text((tmp_path / "spec.yaml").read_text())
    view = LiveView(recorder, stream=io.StringIO(), interactive=False)
    both = Both(recorder, view)
    view.setup()
    both.on_trial_start(0, trials, trials[0])
    for epoch in (0, 1):
        both.on_trial_result(0, trials, trials[0], {"epoch": epoch, "loss": 3.0, "knn_top1": 40.0 + epoch,
                                                   "trial_outcome": "completed" if epoch else "running"})
    both.on_trial_complete(0, trials, trials[0])
    reset = tmp_path / "reset_error.txt"  # what Trial.handle_error writes (ray/tune/experiment/trial.py)
    reset.write_text("Failure # 1 (occurred at 2026-12-08_00-51-16)\nTrainable runner reuse requires "
                     "reset_config() to be implemented and return True.\n")
    trials[0].status, trials[1].status, trials[1].error_file = "TERMINATED", "ERROR", str(reset)
    both.on_experiment_end(trials)
    view.end(finished=True)

    ends = {r["trial_id"]: (r["status"], r["reason"]) for r in read_records(tmp_path / "sweep")}
    assert ends == {"t0": ("completed", ""), "t1": ("errored", "Trainable runner reuse requires "
                                                    "reset_config() to be implemented and return True. "
                                                    "(the whole error: trials/t1.error.txt)")}
    assert told == [("t1", True)]  # the searcher too (an Optuna study kept the trial RUNNING)
    said = view.out.getvalue()
    assert "trial t1  errored" in said and "reset_config()" in said
    assert "sweep done in" in said and "1 completed, 1 errored" in said
    assert finish(tmp_path / "sweep", total=2) == 1
    err = capsys.readouterr().err
    assert "ablate: trial t1 errored: Trainable runner reuse" in err
    assert "1 trial errored; `ablate resume" in err
