"""The end of a sweep: report with the attention panel (ViT), best configuration, summary table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ablate.summary import finish


def test_finish_builds_report_with_attention_panel(real_sweep: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture):
    sweep = tmp_path / "tiny"
    shutil.copytree(real_sweep, sweep)
    assert finish(sweep) == 0
    out = capsys.readouterr().out
    assert "best knn_top1 (max):" in out and "report.html" in out
    panel = sweep / "report" / "attention.png"
    assert panel.is_file() and panel.stat().st_size > 10_000
    html = (sweep / "report" / "report.html").read_text()
    assert "Attention maps" in html and "data:image/png;base64" in html
    md = (sweep / "report" / "report.md").read_text()
    assert "Attention maps" in md


def set_status(sweep: Path, index: int, **changes: object) -> str:
    file = sorted((sweep / "trials").glob("*.json"))[index]
    file.write_text(json.dumps({**json.loads(file.read_text()), **changes}))
    return file.stem


def test_errored_trials_exit_1_and_are_named(real_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    sweep = tmp_path / "tiny"
    shutil.copytree(real_sweep, sweep)
    bad = set_status(sweep, 0, status="errored", reason="RuntimeError: boom")
    assert finish(sweep, total=4) == 1
    err = capsys.readouterr().err
    assert f"trial {bad} errored: RuntimeError: boom" in err and "ablate resume" in err
    assert "ablate: 1 trial errored;" in err  # it read '1 trial(s) errored'
    set_status(sweep, 1, status="oom", reason="out of memory")
    set_status(sweep, 2, status="oom", reason="out of memory")
    assert finish(sweep, total=4) == 1
    assert "ablate: 2 trials ran out of memory" in capsys.readouterr().err


def test_interrupted_sweep_exits_130_and_never_names_a_running_trial_best(
        real_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    sweep = tmp_path / "tiny"
    shutil.copytree(real_sweep, sweep)
    for i in range(4):  # nothing finished: every trial was running when Ctrl-C came
        set_status(sweep, i, status="interrupted")
    assert finish(sweep, total=6, interrupted=True) == 130
    captured = capsys.readouterr()
    assert "best" not in captured.out
    assert f"interrupted: 0 of 6 trials finished; continue with `ablate resume {sweep}`" in captured.err


def test_the_attention_panel_draws_the_trial_the_api_calls_best(real_sweep: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch):
    """Best, baseline and worst: the best repeat of each configuration by the ranking rule, the same
    trial as ``ablate.load(...).best`` (the panel drew a configuration's first repeat instead)."""
    import ablate
    import ablate.attention_plot
    from ablate.summary import attention_panel
    from reports.sweepdir import open_sweep
    from sweep_format.layout import trial_folder

    sweep = tmp_path / "tiny"
    shutil.copytree(real_sweep, sweep)
    drawn: dict[str, Path] = {}
    monkeypatch.setattr(ablate.attention_plot, "render_comparison_panel",
                        lambda sources, out: drawn.update(sources))
    trials = ablate.load(sweep).trials
    point = trials.groupby("point")["knn_top1"].mean().idxmax()
    repeats = trials[trials["point"] == point].sort_values("repeat")
    # the second repeat of the best configuration is its best one
    trials.loc[repeats.index, "knn_top1"] = [99.5, 100.5]
    attention_panel(open_sweep(sweep), trials)
    best = [folder for label, folder in drawn.items() if label.startswith("best (100.0)")]
    assert best == [trial_folder(sweep, repeats["trial_dir"].iloc[1])]
    assert len(drawn) == 2 and any(label.startswith("worst (") for label in drawn)


def test_a_damaged_record_is_not_said_to_be_retried(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A record cut short (a copy, a disk) ended every `ablate resume` with '1 trial(s) errored;
    `ablate resume DIR` retries them', which it never does: a damaged record is never read again. The
    summary says what resume does with it and what the user can do; an errored trial is still retried."""
    from tests.helpers import crafted_sweep, good_record

    errored = {**good_record("b"), "status": "errored", "reason": "RuntimeError: boom", "point": 1,
               "params": {"teacher_temp": 0.04}}
    sweep = crafted_sweep(tmp_path, [good_record("a"), errored])
    (sweep / "trials" / "c.json").write_text('{"format": "ablate.trial", "ver')
    assert finish(sweep) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == ["ablate: trial b errored: RuntimeError: boom",
                       "ablate: trial c damaged: trials/c.json: not readable as JSON (JSONDecodeError: "
                       "Unterminated string starting at: line 1 column 28 (char 27))"]
    assert err[2] == (f"ablate: 1 trial record damaged: ablate reads nothing from it, and `ablate resume "
                      f"{sweep}` runs a damaged trial's setting again as a new trial only where no other "
                      "record holds it; restore each file from a copy of the sweep folder, or move it out "
                      f"of {sweep / 'trials'}")
    assert err[3:] == [f"ablate: 1 trial errored; `ablate resume {sweep}` retries them"]
    (sweep / "trials" / "b.json").unlink()
    assert finish(sweep) == 1
    assert "errored" not in capsys.readouterr().err


@pytest.mark.parametrize("code, advice", [
    ("EACCES", ". To report a sweep folder you cannot write, copy it (`cp -r {sweep} COPY`) and "
               "`ablate report COPY`"),
    ("ENOSPC", ": free space, then `ablate report {sweep}`"),
    ("EFBIG", ": raise the file-size limit (`ulimit -f`, or a file system that holds files this large), then "
              "`ablate report {sweep}`"),
])
def test_a_report_the_end_of_a_sweep_cannot_write_says_what_to_do(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, code: str,
        advice: str) -> None:
    """`ablate resume` of a colleague's finished sweep on a read-only disk (nothing left to run) said the
    report would be written 'once there is space', for a folder that is not full but not writable."""
    import errno
    import os

    import reports.render
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    table = sweep / "report" / "trials.parquet"

    def refused(*args: object, **kwargs: object) -> None:
        number = getattr(errno, code)
        raise OSError(number, os.strerror(number), str(table))

    monkeypatch.setattr(reports.render, "build_report", refused)
    assert finish(sweep) == 0  # the summary is still printed; the records are the sweep's result
    err = capsys.readouterr().err.splitlines()
    why = os.strerror(getattr(errno, code))
    assert err == [f"ablate: warning: {table}: cannot write the report ({code}: {why}); the records are kept"
                   f"{advice.format(sweep=sweep)}"]


def test_an_interrupt_as_the_last_trial_ended_points_to_no_report_it_just_wrote(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """SIGTERM as the last trial ended: the summary wrote the report ("report: .../report.html"), then
    said "1 of 1 trials finished; `ablate report DIR` writes the report", as if it had not."""
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    assert finish(sweep, total=1, interrupted=True, exit_code=143) == 143
    out, err = capsys.readouterr()
    assert f"report: {sweep / 'report' / 'report.html'}" in out
    assert "ablate: interrupted: 1 of 1 trials finished; nothing is left to run" in err
    assert "ablate report" not in err


def test_an_interrupted_sweep_ends_in_its_records_words_however_the_hint_is_reached(tmp_path: Path) -> None:
    """How an interrupted sweep ended was written in SweepInterrupted and again as four defaults of
    ablate.summary: both now say it as the status its unfinished records are marked with."""
    from ablate.ending import SweepInterrupted
    from ablate.summary import resume_hint
    from sweep_format.statuses import INTERRUPTED

    assert SweepInterrupted(tmp_path).ended == INTERRUPTED
    assert resume_hint(tmp_path, 1, 2) == resume_hint(tmp_path, 1, 2, ended=SweepInterrupted(tmp_path).ended)
    assert resume_hint(tmp_path, 1, 2).startswith(f"ablate: {INTERRUPTED}: 1 of 2 trials finished; ")
