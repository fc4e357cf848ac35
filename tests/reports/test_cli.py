"""``ablate report`` and ``ablate ls`` from the command line, and their errors (exit code 2)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from ablate.cli import main


def test_report_command_writes_the_report(sweep_copy: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(sweep_copy)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0] == str(sweep_copy / "report" / "report.html")
    for name in ("report.html", "report.md", "trials.parquet", "epochs.parquet"):
        assert (sweep_copy / "report" / name).is_file()


def test_a_report_lists_the_first_trials_of_a_large_sweep_and_says_how_many(
        sweep_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 5,000-trial sweep's report listed every trial; above TRIALS_SHOWN rows the Trials table lists the
    first ones and says how many there are, and trials.parquet keeps them all."""
    import pandas as pd

    from reports import render

    monkeypatch.setattr(render, "TRIALS_ROWS", 3)
    assert main(["report", str(sweep_copy)]) == 0
    text = (sweep_copy / "report" / "report.md").read_text()
    trials = pd.read_parquet(sweep_copy / "report" / "trials.parquet")
    listed = text.split("## Trials", 1)[1]
    assert len(trials) == 4 and "The first 3 of the 4 trials, in the order Ray created them;" in listed
    assert [t for t in trials["trial_id"] if f"| {t} |" in listed] == list(trials["trial_id"][:3])

    # a failed trial after the first rows is listed too, with its reason: the Trials table is where the
    # report names an errored or oom trial, and it left out every one after the first rows
    last = sweep_copy / "trials" / f"{trials['trial_id'].iloc[-1]}.json"
    last.write_text(last.read_text().replace('"status": "completed"', '"status": "errored"', 1)
                    .replace('"reason": ""', '"reason": "ValueError: boom"', 1))
    assert main(["report", str(sweep_copy)]) == 0
    listed = (sweep_copy / "report" / "report.md").read_text().split("## Trials", 1)[1]
    assert ("The first 3 of the 4 trials, in the order Ray created them, then the 1 failed or damaged "
            "(collapsed, diverged, oom, errored, storage_full, damaged) after them;") in listed
    assert [t for t in trials["trial_id"] if f"| {t} |" in listed] == list(trials["trial_id"])
    assert "| errored |" in listed and "ValueError: boom" in listed


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: p, "no such folder"),
    (lambda p: p.mkdir(), "not a sweep folder, no spec.yaml"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("x")), "not a sweep folder, no spec.yaml"),
    (lambda p: p.write_text("x"), "a file, not a folder"),
    # a project folder whose own spec file is spec.yaml: no sweep (ablate run makes trials/ first)
    (lambda p: (p.mkdir(), (p / "spec.yaml").write_text("name: x\n")),
     "not a sweep folder: it holds spec.yaml but no trials/"),
])
def test_report_errors_name_the_path(tmp_path: Path, capsys: pytest.CaptureFixture, make, expected) -> None:
    target = tmp_path / "target"
    make(target)
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ablate report: error: {target}: {expected}")
    assert "spec.yaml and trials/" in err and "Traceback" not in err


@pytest.mark.parametrize(("content", "expected"), [
    (b"name: x\n", "trials: no trial records yet"),  # a sweep stopped before its first trial
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary", "spec.yaml: not a YAML text (UnicodeDecodeError)"),
    (b"a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
     "expands to more than 100,000 values"),
])
def test_a_damaged_spec_yaml_is_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 content: bytes, expected: str) -> None:
    target = tmp_path / "target"
    (target / "trials").mkdir(parents=True)  # a sweep folder, as ablate run makes it
    (target / "spec.yaml").write_bytes(content)
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ablate report: error: ") and expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_ls_lists_sweeps_in_an_aligned_table(real_sweep: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["ls", str(real_sweep.parent)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() [:2] == ["sweep", "description"]
    assert len(lines) == 2 and lines[1].startswith("tiny ")
    assert "tiny real sweep shared by the tests" in lines[1] and "4 completed" in lines[1]
    best = re.search(r" knn_top1 (\d+\.\d\d)  ", lines[1])
    assert best and lines[0].index("cost") == lines[1].index(best.group(1)) + len(best.group(1)) + 2
    cost = re.search(r"  ([\d.]+ CPU-s)  ", lines[1])  # the tiny sweep runs on CPU, for seconds
    assert cost and lines[1].index(cost.group(1)) == lines[0].index("cost")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d$", lines[1])


def test_ls_dates_a_copied_sweep_by_its_records(sweep_copy: Path, capsys: pytest.CaptureFixture) -> None:
    """A folder copied (`cp -r`, a download) has the copy's file times; "last update" is the newest time
    the trial records hold, as the sweep's drivers wrote it."""
    import datetime as dt
    import json
    import os

    from sweep_format.records import read_records

    def copied(later: float) -> str:  # every file's time set to `later`; that time as ls prints it
        for file in sweep_copy.rglob("*"):
            os.utime(file, (later, later))
        return dt.datetime.fromtimestamp(later).strftime("%Y-%m-%d %H:%M")

    newest = max(rec["updated_at"] for rec in read_records(sweep_copy))
    copy_time = copied(newest + 86_400 * 40)  # copied 40 days later
    assert main(["ls", str(sweep_copy.parent)]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.endswith(dt.datetime.fromtimestamp(newest).strftime("%Y-%m-%d %H:%M")), (line, copy_time)
    for file in (sweep_copy / "trials").glob("*.json"):  # records without times: the files' times
        rec = json.loads(file.read_text())
        file.write_text(json.dumps({k: v for k, v in rec.items() if k not in ("updated_at", "created_at")}))
    copy_time = copied(newest + 86_400 * 40)
    assert main(["ls", str(sweep_copy.parent)]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith(copy_time)


def test_ls_names_each_sweep_by_its_folder(sweep_copy: Path, capsys: pytest.CaptureFixture) -> None:
    """A copy (`cp -r runs/tiny runs/tiny-old`) kept its spec's name: two rows read 'tiny', and
    neither said which folder to resume."""
    import shutil

    shutil.copytree(sweep_copy, sweep_copy.parent / "tiny-old")
    assert main(["ls", str(sweep_copy.parent)]) == 0
    rows = [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == ["tiny", "tiny-old (name: tiny)"]


def test_ls_counts_the_trials_that_never_started(sweep_copy: Path, capsys: pytest.CaptureFixture) -> None:
    """A sweep stopped before its last trials started has no record of them: ls read '2 completed',
    a finished sweep to the eye; the spec's plan tells how many are missing."""
    for file in sorted((sweep_copy / "trials").glob("*.json"))[2:]:
        file.unlink()
    assert main(["ls", str(sweep_copy.parent)]) == 0
    assert "  2 completed, 2 not started  " in capsys.readouterr().out.splitlines()[1]


def test_ls_help_says_its_best_column_is_the_sweeps_metric(capsys: pytest.CaptureFixture) -> None:
    """It said "best final kNN top-1"; the column is the spec's metric in its mode (`loss 6.12` for a
    sweep that minimizes the loss), of the best configuration as reports.ranking picks it."""
    with pytest.raises(SystemExit) as exit_:
        main(["ls", "--help"])
    assert exit_.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "the best configuration's value of the sweep's metric" in help_text
    assert "kNN top-1" not in help_text


def test_report_help_names_the_table_a_grid_or_optuna_report_has(capsys: pytest.CaptureFixture) -> None:
    """It listed an 'ablation table' for every sweep: only a one-factor ablation's report has one; a grid's
    or an Optuna search's compares every configuration with the best (reports.render.table_heading)."""
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--help"])
    assert exit_.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "ablation table" not in help_text
    assert ("the table of configurations: a one-factor ablation's against its baseline, a grid's or "
            "Optuna's against the best;") in help_text


def test_ls_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["ls", str(tmp_path / "nope")]) == 2
    assert f"{tmp_path / 'nope'}: no such folder" in capsys.readouterr().err
    assert main(["ls", str(tmp_path)]) == 2
    assert "no sweeps here" in capsys.readouterr().err


@pytest.mark.parametrize("make", ["missing", "file", "locked"])
def test_ls_and_report_word_a_folder_that_is_not_one_alike(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, make: str) -> None:
    """`ablate ls` kept its own copy of the folder checks: 'is a file' where `ablate report` said 'is a
    file, not a folder', and 'cannot be listed (...)' without what it expected there."""
    from tests.helpers import lock_folder

    target = tmp_path / "target"
    if make == "file":
        target.write_text("x")
    elif make == "locked":
        target.mkdir()
        lock_folder(monkeypatch, target)
    reasons = []
    for command, expected in (("ls", "a storage folder holding sweep folders"), ("report", "a sweep folder")):
        assert main([command, str(target)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"ablate {command}: error: {target}: ") and f"(expected {expected}" in err, err
        reasons.append(err.split(f"{target}: ", 1)[1].split(" (expected ")[0])
    assert reasons[0] == reasons[1] == {"missing": "no such folder", "file": "a file, not a folder",
                                        "locked": "cannot be listed (Permission denied)"}[make]


def test_ls_lists_a_sweep_whose_report_folder_holds_a_link(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    """ls only reads a sweep's spec and records (layout.READ), as a source of `ablate compare` is read: it
    listed a sweep with a link in its report/ as '(unreadable: ... a symbolic link ...)', the write check's
    refusal. A link among what it reads is still named."""
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    (sweep / "report").mkdir()
    (sweep / "report" / "report.md").symlink_to(tmp_path / "spec.yaml")
    assert main(["ls", str(sweep.parent)]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert "unreadable" not in row and "  1 completed  " in row and "knn_top1 40.00" in row
    (sweep / "reference_knn.json").symlink_to(tmp_path / "spec.yaml")
    assert main(["ls", str(sweep.parent)]) == 0
    assert "(unreadable: " in capsys.readouterr().out.splitlines()[1]


def test_ls_names_a_folder_it_cannot_look_into_without_calling_it_a_sweep(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A root-owned lost+found on a mounted disk was listed as a broken sweep: '(unreadable: ...: cannot
    be listed (Permission denied) (expected a sweep folder holding spec.yaml and trials/ ...))'. It may be
    a colleague's sweep, so it keeps its row, which says only that it cannot be read."""
    from tests.helpers import crafted_sweep, good_record, lock_folder

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    (sweep.parent / "lost+found").mkdir()
    lock_folder(monkeypatch, sweep.parent / "lost+found")
    assert main(["ls", str(sweep.parent)]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert rows[0].startswith("crafted ") and "knn_top1 40.00" in rows[0]
    assert rows[1].split("  ")[:2] == ["lost+found", "(cannot be read by this user: whether it holds a sweep "
                                                     "is unknown)"], rows[1]
    assert "unreadable" not in rows[1] and "expected" not in rows[1]


@pytest.mark.parametrize("command", ["ls", "report"])
def test_output_to_a_closed_pipe_ends_quietly(command: str, sweep_copy: Path, capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``ablate report DIR | head`` whose reader has gone: exit 141 as a tool SIGPIPE ended, no traceback."""
    read, write = os.pipe()
    os.close(read)  # the reader (head) has exited
    with os.fdopen(write, "w") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        folder = sweep_copy.parent if command == "ls" else sweep_copy
        assert main([command, str(folder)]) == 141
    # closing flushed what was left to print: it went nowhere, without a BrokenPipeError
    assert capsys.readouterr().err == ""


def test_a_spec_yaml_metric_that_is_no_metric_is_refused_in_one_line(sweep_copy: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """A hand-edited ``metric`` is named (file, key, value, the allowed metrics), not shown as "no value
    after training yet"; the name older sweeps wrote still opens."""
    spec = sweep_copy / "spec.yaml"
    text = spec.read_text()
    spec.write_text(re.sub(r"(?m)^metric: .*$", "metric: os.system", text))
    assert main(["report", str(sweep_copy)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ablate report: error: {spec}: metric: 'os.system' is not a metric a sweep ranks "
                          "by (allowed: knn_top1, knn_top5, loss, dino_loss, teacher_entropy, kl_teacher_"
                          "student)") and len(err.strip().splitlines()) == 1
    assert main(["ls", str(sweep_copy.parent)]) == 0
    out = capsys.readouterr().out
    assert "(unreadable: " in out and "metric: 'os.system' is not a metric" in out
    spec.write_text(re.sub(r"(?m)^metric: .*$", "metric: best_knn_top1", text))
    assert main(["report", str(sweep_copy)]) == 0
    capsys.readouterr()
    spec.write_text(re.sub(r"(?m)^mode: .*$", "mode: maximum", text))  # was ranked 'max' without a word
    assert main(["report", str(sweep_copy)]) == 2
    err = capsys.readouterr().err
    assert err == (f"ablate report: error: {spec}: mode: 'maximum' is not a ranking direction (allowed: "
                   "max, min)\n")


def test_a_spec_yaml_mode_against_its_metric_is_refused_in_one_line(sweep_copy: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    """spec.yaml edited to 'mode: min' for knn_top1 (which `ablate run` refuses): the report, ls and
    compare ranked the worst trial best, with 'lower is better' the only hint."""
    spec = sweep_copy / "spec.yaml"
    spec.write_text(re.sub(r"(?m)^mode: .*$", "mode: min", spec.read_text()))
    assert main(["report", str(sweep_copy)]) == 2
    err = capsys.readouterr().err
    assert err == (f"ablate report: error: {spec}: mode: 'min': knn_top1 is better when higher, so mode: max "
                   "(mode: min would call the worst trial best)\n")
    assert main(["ls", str(sweep_copy.parent)]) == 0
    assert "mode: 'min': knn_top1 is better when higher, so mode: max" in capsys.readouterr().out


@pytest.mark.parametrize(("code", "advice"), [
    ("EROFS", "the sweep's records are unchanged. To report a sweep folder you cannot write, copy it "
              "(`cp -r {sweep} COPY`) and `ablate report COPY`"),
    ("ENOSPC", "the sweep's records are unchanged: free space, then `ablate report {sweep}`"),
    ("EFBIG", "the sweep's records are unchanged: raise the file-size limit (`ulimit -f`, or a file system "
              "that holds files this large), then `ablate report {sweep}`"),
])
def test_a_folder_the_report_cannot_be_written_in_says_what_to_do(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, code: str,
        advice: str) -> None:
    """A colleague's sweep folder on a read-only or shared disk: `ablate report` said only 'cannot write
    ... (EROFS: Read-only file system); nothing else was changed', with no way to get the report."""
    import errno
    import tempfile

    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    record = (sweep / "trials" / "a.json").read_bytes()

    def refused(*args: object, **kwargs: object) -> None:
        number = getattr(errno, code)
        raise OSError(number, os.strerror(number), str(sweep / "report" / ".x-trials.parquet.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    assert main(["report", str(sweep)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ablate report: error: cannot write {sweep / 'report'}"), err
    assert err[0].endswith(f"({code}: {os.strerror(getattr(errno, code))}); {advice.format(sweep=sweep)}")
    assert (sweep / "trials" / "a.json").read_bytes() == record


def test_a_disk_that_fills_while_a_table_is_written_is_named_and_keeps_the_earlier_table(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk under Arrow's parquet writer (an OSError naming no file, as write() raises it) said
    'cannot write the output (ENOSPC: ...)', not which file."""
    import errno

    import pyarrow.parquet as pq

    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    table = sweep / "report" / "trials.parquet"
    table.parent.mkdir()
    table.write_bytes(b"the earlier table")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq, "write_table", full)
    assert main(["report", str(sweep)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ablate report: error: cannot write {table} (ENOSPC: No space left on device); the "
                   f"sweep's records are unchanged: free space, then `ablate report {sweep}`"]
    assert table.read_bytes() == b"the earlier table"
    assert sorted(p.name for p in table.parent.iterdir()) == ["trials.parquet"]


@pytest.mark.parametrize("command", ["report", "compare", "resume", "ls"])
def test_a_sweep_a_newer_ablate_wrote_is_refused_in_one_line_and_left_as_it_is(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A record of a later version was read as damaged: `ablate report` replaced the sweep's report with
    one of damaged trials, exit 0, and `ablate resume` ran the trials again beside their records."""
    from sweep_format.records import VERSION
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a"), {**good_record("b"), "version": VERSION + 1}])
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    argv = [str(sweep)]
    if command == "compare":
        (tmp_path / "other").mkdir()
        other = crafted_sweep(tmp_path / "other", [good_record("a")])
        argv = [str(other), *argv, "--out", str(tmp_path / "cmp")]
    code = main([command, *argv])
    captured = capsys.readouterr()
    why = (f"{sweep / 'trials' / 'b.json'}: trial record version {VERSION + 1}, written by a newer ablate "
           f"(this one reads version {VERSION}); upgrade ablate to report, compare or resume the sweep")
    if command == "ls":  # the sweeps beside it are still listed
        assert code == 0 and f"(unreadable: {why})" in captured.out
    else:
        assert code == 2 and captured.err.splitlines() == [f"ablate {command}: error: {why}"]
    assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "cmp").exists()


def test_ls_lists_a_sweep_folder_this_user_may_not_enter_as_one_it_cannot_read(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A colleague's sweep folder (made under umask 077) was left out of `ablate ls` in silence, while
    `ablate report` of it said it cannot be listed. It has a row, which cannot tell it from a folder
    that holds no sweep (test_ls_names_a_folder_it_cannot_look_into_without_calling_it_a_sweep)."""
    import shutil

    from tests.helpers import crafted_sweep, good_record, lock_folder

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    shut = sweep.parent / "colleague"
    shutil.copytree(sweep, shut)
    lock_folder(monkeypatch, shut)
    assert main(["ls", str(sweep.parent)]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["colleague", "crafted"]
    assert "(cannot be read by this user: whether it holds a sweep is unknown)" in rows[0]
    assert "1 completed" in rows[1]


def test_a_trials_folder_that_cannot_be_listed_is_named_not_reported_empty(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A colleague's sweep whose trials/ this user may not list said 'no trial records yet (... is the
    sweep still starting ...?)'; `ablate resume` of it started every trial again."""
    from tests.helpers import crafted_sweep, good_record, lock_folder

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    lock_folder(monkeypatch, sweep / "trials")
    assert main(["report", str(sweep)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"ablate report: error: {sweep / 'trials'}: cannot be listed (EACCES: Permission denied), so no "
        "trial record of the sweep can be read: ask its owner for access"]
    assert not (sweep / "report").exists()
