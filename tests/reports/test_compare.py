"""``ablate compare``: two sweeps side by side, from folders or trials.parquet files; clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from ablate.cli import main
from reports.compare import SECTIONS


def renamed_copy(sweep: Path, dest: Path, name: str, space: dict | None = None) -> Path:
    shutil.copytree(sweep, dest)
    spec = yaml.safe_load((dest / "spec.yaml").read_text())
    spec["name"] = name
    if space is not None:
        spec["space"] = space
    (dest / "spec.yaml").write_text(yaml.safe_dump(spec))
    return dest


def test_compare_two_sweeps(real_sweep: Path, report_dir: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture) -> None:
    other = renamed_copy(real_sweep, tmp_path / "tiny_b", "tiny_b")
    out = tmp_path / "cmp"
    # one sweep as a folder, the other as the trials.parquet of its report
    assert main(["compare", str(other), str(report_dir / "trials.parquet"), "--out", str(out)]) == 0
    assert str(out / "report.html") in capsys.readouterr().out
    trials = pq.read_table(out / "trials.parquet").to_pandas()
    assert trials["sweep"].value_counts().to_dict() == {"tiny_b": 4, "tiny": 4}
    assert trials["teacher_temp"].dtype == "float64"
    assert len(pq.read_table(out / "epochs.parquet")) == 2 * len(pq.read_table(report_dir / "epochs.parquet"))
    md = (out / "report.md").read_text()
    for heading in SECTIONS:
        assert f"## {heading}\n" in md
    for param in ("teacher_temp", "student_temp", "warmup_teacher_temp_epochs"):
        assert f"### {param}\n" in md and f"plots/effect_{param}.png" in md
    # the shared parameter side by side: one column per sweep
    assert "| teacher_temp | tiny_b | tiny |" in md
    assert "raw pixels kNN (%)" in md and "untrained kNN (%)" in md and "| 100.00 |" in md  # the references
    assert "<img" in (out / "report.html").read_text()
    assert "The sweeps share every trainer setting they do not search." in md  # a copy: the same


def test_compare_names_the_settings_in_which_the_sweeps_differ(real_sweep: Path, tmp_path: Path) -> None:
    """Two sweeps on different datasets (or epochs, archs) were compared value against value without a
    word: the settings they differ in are listed, and different data is said to make values apart."""
    from reports.compare import differing_settings, load_source, settings_note, unique_names

    other = renamed_copy(real_sweep, tmp_path / "b", "b")
    spec = yaml.safe_load((other / "spec.yaml").read_text())
    ran = spec["resolved"]["trainer"]
    ran["dataset"], ran["epochs"] = "digits", ran["epochs"] + 7
    ran["teacher_temp"] = 0.5  # searched: never listed
    (other / "spec.yaml").write_text(yaml.safe_dump(spec))
    sources = [load_source(real_sweep), load_source(other)]
    unique_names(sources)
    differ = differing_settings(sources)
    assert sorted(differ["setting"]) == ["dataset", "epochs"]
    assert differ.set_index("setting").loc["dataset"].to_dict() == {"tiny": "synthetic", "b": "digits"}
    note = settings_note(differ, sources)
    assert note.startswith("The sweeps differ in the trainer settings below")
    assert "ran on different data (dataset)" in note
    out = tmp_path / "cmp"
    assert main(["compare", str(real_sweep), str(other), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "No best sweep: they ran on different data (dataset)" in md and "**Best: " not in md
    assert "| dataset | synthetic | digits |" in md
    sources[1].info.pop("fixed")  # a trials.parquet written before ablate kept the settings
    assert differing_settings(sources).empty
    assert settings_note(differing_settings(sources), sources).startswith("b: no trainer settings in the")


def test_compare_without_a_shared_parameter_is_a_user_error(real_sweep: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    other = renamed_copy(real_sweep, tmp_path / "ema", "ema",
                         space={"momentum_teacher": {"type": "choice", "values": [0.99, 0.996]}})
    assert main(["compare", str(real_sweep), str(other), "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err
    assert "share no searched parameter" in err and "ema" in err and "momentum_teacher" in err
    assert not (tmp_path / "cmp").exists()


def test_compare_without_a_shared_metric_is_a_user_error(report_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    trials = pd.read_parquet(report_dir / "trials.parquet")
    broken = tmp_path / "broken" / "trials.parquet"
    broken.parent.mkdir()
    trials.assign(knn_top1=float("nan"), sweep="broken").to_parquet(broken)
    good = report_dir / "trials.parquet"
    assert main(["compare", str(good), str(broken), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no shared metric" in err and str(broken) in err


def test_compare_needs_two_inputs(report_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", str(report_dir.parent), "--out", str(tmp_path / "o")]) == 2
    assert "two or more sweeps" in capsys.readouterr().err


@pytest.mark.parametrize("second", ["{a}", "{a}/", "{a}/report/trials.parquet", "{a}/../a"])
def test_compare_refuses_the_same_sweep_twice(tmp_path: Path, capsys: pytest.CaptureFixture, second: str):
    a = tmp_path / "a"
    (a / "report").mkdir(parents=True)
    out = tmp_path / "cmp"
    assert main(["compare", str(a), second.format(a=a), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ablate compare: error: {a} and {Path(second.format(a=a))} are the same sweep (")
    assert "Traceback" not in err
    assert not out.exists()


def sweep_file(folder: Path, name: str, rows: list[tuple[float, float, str, bool]], metric: str = "knn_top1",
               mode: str = "max") -> Path:
    """A trials.parquet of sweep ``name``: (knn_top1, teacher_entropy, status, collapsed) per point."""
    from reports.parquet import write_parquet

    trials = pd.DataFrame([{"sweep": name, "trial_id": f"{name}{i}", "point": i,
                            "teacher_temp": 0.01 * (i + 1), "knn_top1": k, "knn_epoch": 2,
                            "teacher_entropy": h, "status": s, "collapsed": c}
                           for i, (k, h, s, c) in enumerate(rows)]).astype({"collapsed": "boolean"})
    path = folder / name / "trials.parquet"
    write_parquet(trials, path, {"sweep": name, "params": ["teacher_temp"], "metric": metric, "mode": mode})
    return path


def best_paragraph(out: Path) -> str:
    return next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("**Best: "))


def test_the_best_sweep_follows_the_ranking_rule(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The sweeps' own metric and mode decide (lower entropy wins under mode min), and a sweep whose
    every configuration collapsed is never best over a working one, as within a sweep."""
    a = sweep_file(tmp_path, "a", [(60.0, 2.0, "completed", False)], "teacher_entropy", "min")
    b = sweep_file(tmp_path, "b", [(50.0, 1.0, "completed", False)], "teacher_entropy", "min")
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "min")]) == 0
    assert best_paragraph(tmp_path / "min").startswith(
        "**Best: b** (teacher_temp=0.01) with teacher_entropy 1.00, -1.00 vs the best of a.")
    broken = sweep_file(tmp_path, "broken", [(70.0, 6.9, "collapsed", True), (65.0, 6.9, "flagged", True)])
    working = sweep_file(tmp_path, "working", [(45.0, 4.0, "completed", False)])
    assert main(["compare", str(broken), str(working), "--out", str(tmp_path / "col")]) == 0
    assert best_paragraph(tmp_path / "col").startswith(
        "**Best: working** (teacher_temp=0.01) with kNN top-1 45.00 %")
    md = (tmp_path / "col" / "report.md").read_text()
    assert "completed, flagged, collapsed and diverged trials" in md  # the statuses the ranking counts


def test_sweeps_ranked_by_different_metrics_are_compared_on_knn(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    a = sweep_file(tmp_path, "a", [(60.0, 2.0, "completed", False)], "teacher_entropy", "min")
    b = sweep_file(tmp_path, "b", [(50.0, 1.0, "completed", False)])
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "o")]) == 0
    md = (tmp_path / "o" / "report.md").read_text()
    assert "rank by different metrics (a: teacher_entropy (min); b: knn_top1 (max))" in md
    assert best_paragraph(tmp_path / "o").startswith(
        "**Best: a** (teacher_temp=0.01) with kNN top-1 60.00 %, +10.00 points vs the best of b.")


def test_compare_prints_each_file_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """It wrote epochs.parquet and printed three files, never that one."""
    from reports.parquet import write_parquet

    a = sweep_file(tmp_path, "a", [(60.0, 2.0, "completed", False)])
    b = sweep_file(tmp_path, "b", [(50.0, 1.0, "completed", False)])
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "bare")]) == 0
    names = ["report.html", "report.md", "trials.parquet"]
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "bare" / name) for name in names]
    assert not (tmp_path / "bare" / "epochs.parquet").exists()  # no epochs in these sources
    for path in (a, b):
        name = path.parent.name
        epochs = pd.DataFrame({"sweep": [name], "trial_id": [f"{name}0"], "epoch": [1], "knn_top1": [55.0]})
        write_parquet(epochs.astype({"epoch": "Int64"}), path.with_name("epochs.parquet"), {"sweep": name})
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [str(tmp_path / "cmp" / name) for name in [*names, "epochs.parquet"]]
    assert all(Path(line).is_file() for line in printed)


@pytest.mark.parametrize("inside", ["s", "s/report", "s/report/deeper"])
def test_compare_never_writes_into_a_sweep_folder(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  inside: str) -> None:
    """--out runs/a/report replaced sweep a's report and trials.parquet with the comparison."""
    a = sweep_file(tmp_path, "a", [(60.0, 2.0, "completed", False)])
    b = sweep_file(tmp_path, "b", [(50.0, 1.0, "completed", False)])
    sweep = tmp_path / "s"
    for folder in ("report", "trials"):
        (sweep / folder).mkdir(parents=True)
    (sweep / "spec.yaml").write_text("name: s\n")
    before = sorted(p.relative_to(sweep) for p in sweep.rglob("*"))
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / inside)]) == 2
    err = capsys.readouterr().err
    assert f"inside the sweep folder {sweep}" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.relative_to(sweep) for p in sweep.rglob("*")) == before


@pytest.mark.parametrize("inside", ["project", "project/compare"])
def test_a_folder_whose_own_spec_file_is_spec_yaml_is_no_sweep(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                               inside: str) -> None:
    """--out in (or below) a project folder holding a spec.yaml someone wrote, and no trials/, was
    refused as "inside the sweep folder": compare had its own rule (spec.yaml alone). The layout's
    one rule (sweep_format.layout.sweep_around) says it is no sweep: the comparison is written, the
    spec file left as it was."""
    a = sweep_file(tmp_path, "a", [(60.0, 2.0, "completed", False)])
    b = sweep_file(tmp_path, "b", [(50.0, 1.0, "completed", False)])
    spec = tmp_path / "project" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text("name: mine\n")
    out = tmp_path / inside
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0, capsys.readouterr().err
    assert pd.read_parquet(out / "trials.parquet")["sweep"].tolist() == ["a", "b"]
    assert (out / "report.md").is_file() and spec.read_text() == "name: mine\n"


def test_compare_never_replaces_an_input_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--out the folder of an input trials.parquet (a sweep's tables copied from another machine)
    replaced that input, and the epochs.parquet beside it, with the comparison's."""
    a = sweep_file(tmp_path, "a", [(60.0, 2.0, "completed", False)])
    b = sweep_file(tmp_path, "b", [(50.0, 1.0, "completed", False)])
    before = a.read_bytes()
    assert main(["compare", str(a), str(b), "--out", str(a.parent)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"holds the input {a}" in err[0], err
    assert a.read_bytes() == before and sorted(p.name for p in a.parent.iterdir()) == ["trials.parquet"]
    assert main(["compare", str(a), str(b), "--out", str(tmp_path)]) == 0  # beside the inputs: fine


def test_an_out_that_is_no_folder_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """--out FILE or below one ended in FileExistsError / NotADirectoryError tracebacks, --out where no
    folder can be made (/proc/x) in FileNotFoundError, and --out '' wrote the comparison into the
    folder ablate ran in."""
    import errno

    a = sweep_file(tmp_path, "a", [(60.0, 2.0, "completed", False)])
    b = sweep_file(tmp_path, "b", [(50.0, 1.0, "completed", False)])
    file = tmp_path / "notes.txt"
    file.write_text("x")
    for out in (file, file / "cmp"):
        assert main(["compare", str(a), str(b), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--out {out}: {file} is a file, not a folder" in err and "Traceback" not in err
    monkeypatch.chdir(tmp_path / "a")
    assert main(["compare", str(a), str(b), "--out", ""]) == 2
    assert "--out '': give a folder for the comparison" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["trials.parquet"]

    def no_such_place(self, *args, **kwargs):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")

    monkeypatch.setattr(Path, "mkdir", no_such_place)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err
    assert f"--out {tmp_path / 'cmp'}: cannot make this folder (ENOENT: No such file or directory)" in err
    assert "Traceback" not in err


def crafted_file(folder: Path, change: str) -> Path:
    """sweep_file's trials.parquet of sweep "x" with one thing of the wrong kind (``change``)."""
    import json

    import pyarrow as pa

    path = sweep_file(folder, "x", [(60.0, 2.0, "completed", False), (50.0, 1.0, "completed", False)])
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"ablate"])
    if change == "point":
        table = table.set_column(table.schema.get_field_index("point"), "point", pa.array(["a", "b"]))
    elif change == "list":
        table = table.set_column(table.schema.get_field_index("teacher_temp"), "teacher_temp",
                                 pa.array([[0.01], [0.02]]))
    elif change == "metadata":
        meta = [1, 2]
    else:
        meta[change] = {"params": "teacher_temp", "metric": "os.system", "fixed": ["dataset"],
                        "searched": [["knn_top1", "up"]]}[change]
    metadata = {**table.schema.metadata, b"ablate": json.dumps(meta)}
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


@pytest.mark.parametrize(("change", "why"), [
    ("point", "column 'point' holds 'a', not integers"),
    ("list", "column 'teacher_temp' is of type list<element: double> (ablate's tables hold plain columns"),
    ("params", "its ablate metadata's params is 'teacher_temp', not a list of names"),
    ("metadata", "its ablate metadata is not a JSON object"),
    ("metric", "its ablate metadata's metric is 'os.system', not one of knn_top1"),
    ("fixed", "its ablate metadata's fixed is ['dataset'], not an object of trainer settings"),
    ("searched",
     "its ablate metadata's searched is [['knn_top1', 'up']], not a list of [metric, mode] pairs"),
])
def test_a_crafted_trials_file_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      change: str, why: str) -> None:
    """A trials.parquet from elsewhere with a text point, a list column or metadata of the wrong kind
    ended in a traceback (ValueError, TypeError: unhashable, AttributeError), or was read as something
    else (params 'teacher_temp' as the parameters t, e, a, c, ...)."""
    crafted = crafted_file(tmp_path, change)
    good = sweep_file(tmp_path, "b", [(50.0, 1.0, "completed", False)])
    assert main(["compare", str(crafted), str(good), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ablate compare: error: {crafted}: {why}"), err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("damage", "why"), [
    ("empty", "not readable as a parquet table (ArrowInvalid: Parquet file size is 0 bytes)"),
    ("text", "not readable as a parquet table (ArrowInvalid: Parquet magic bytes not found in footer."),
    ("pandas", "its pandas metadata is not as pandas writes it (KeyError: 'columns')"),
])
@pytest.mark.parametrize("table", ["trials.parquet", "epochs.parquet"])
def test_a_damaged_table_is_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, table: str,
                                              damage: str, why: str) -> None:
    """An epochs.parquet beside the trials.parquet given that is not a parquet table (empty, a text,
    a copy cut short) ended `ablate compare` in pyarrow's traceback, as did pandas metadata that is not
    as pandas writes it, in either table. Now one line names the file and why; nothing is written."""
    from reports.parquet import write_parquet

    good = sweep_file(tmp_path, "b", [(50.0, 1.0, "completed", False)])
    given = sweep_file(tmp_path, "a", [(60.0, 2.0, "completed", False)])
    epochs = pd.DataFrame({"sweep": ["a"], "trial_id": ["a0"], "epoch": [1], "knn_top1": [55.0]})
    write_parquet(epochs.astype({"epoch": "Int64"}), given.with_name("epochs.parquet"), {"sweep": "a"})
    damaged = given.with_name(table)
    if damage == "pandas":
        written = pq.read_table(damaged)
        metadata = {**written.schema.metadata, b"pandas": b"{}"}
        pq.write_table(written.replace_schema_metadata(metadata), damaged)
    else:
        damaged.write_text("" if damage == "empty" else "trial_id,knn_top1\na0,60\n")
    assert main(["compare", str(given), str(good), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"ablate compare: error: {damaged}: {why}"), err
    assert err[0].endswith("; expected a table written by `ablate report`")
    assert not (tmp_path / "o").exists()


def test_a_fifo_given_as_a_table_is_refused_not_waited_on(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    """A named pipe given where a trials.parquet goes was opened as the table, and `ablate compare`
    waited for a writer for ever, printing nothing. Now one line names it; nothing is written."""
    import os
    import signal

    class Hung(BaseException):  # no OSError, which the reader takes as an unreadable table
        pass

    def hung(*_: object) -> None:
        raise Hung("waited on a FIFO")

    good = sweep_file(tmp_path, "b", [(50.0, 1.0, "completed", False)])
    fifo = tmp_path / "trials.parquet"
    os.mkfifo(fifo)
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        assert main(["compare", str(fifo), str(good), "--out", str(tmp_path / "o")]) == 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ablate compare: error: {fifo}: not a regular file (a FIFO, socket or device) "
                   "(expected a sweep folder (spec.yaml + trials/) or a trials.parquet written by "
                   "`ablate report`)"]
    assert not (tmp_path / "o").exists()


def two_crafted_sweeps(tmp_path: Path) -> tuple[Path, Path]:
    from tests.helpers import crafted_sweep, good_record

    a = crafted_sweep(tmp_path, [good_record("a")])
    return a, renamed_copy(a, a.parent / "b", "b")


def test_a_source_whose_report_holds_a_link_is_read(tmp_path: Path) -> None:
    """compare only reads a source, and never its report/: a link there (to plots kept elsewhere) made
    it refuse the sweep as if it would write through the link."""
    from reports.compare import check_out, load_source

    a, _ = two_crafted_sweeps(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (a / "report").mkdir()
    (a / "report" / "plots").symlink_to(outside)
    check_out(tmp_path / "cmp", [a])
    assert load_source(a).trials["trial_id"].tolist() == ["a"]
    assert not list(outside.iterdir())


@pytest.mark.parametrize("own", ["report.md", "plots/a.png", "trials.parquet"])
def test_an_out_folder_holding_files_no_comparison_wrote_is_refused(tmp_path: Path, own: str,
                                                                    capsys: pytest.CaptureFixture) -> None:
    """--out notes/ replaced the user's own notes/report.md (or plots/, or a trials.parquet of another
    tool) with the comparison's, exit 0. A folder an earlier comparison wrote is still rewritten."""
    a, b = two_crafted_sweeps(tmp_path)
    out = tmp_path / "notes"
    (out / own).parent.mkdir(parents=True, exist_ok=True)
    (out / own).write_text("mine")
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"ablate compare: error: --out {out}: holds a {own.split('/')[0]}{'/' if '/' in own else ''} that no "
        "`ablate compare` wrote (no comparison's trials.parquet beside it), which the comparison would "
        "replace; choose another folder, or move it"]
    assert (out / own).read_text() == "mine" and len(list(out.rglob("*"))) == 1 + ("/" in own)
    again = tmp_path / "cmp"
    assert main(["compare", str(a), str(b), "--out", str(again)]) == 0
    assert main(["compare", str(a), str(b), "--out", str(again)]) == 0, capsys.readouterr().err


def test_a_comparison_stopped_while_it_is_drawn_leaves_no_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the comparison was drawn ('ablate compare: interrupted', exit 130) left the --out
    folder it had made, empty, or with an empty plots/ in it."""
    a, b = two_crafted_sweeps(tmp_path)
    out = tmp_path / "new" / "cmp"

    def stopped(*args: object, **kwargs: object) -> None:
        (out / "plots").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr("reports.compare.comparison_document", stopped)
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 130
    assert capsys.readouterr().err == "ablate compare: interrupted\n"
    assert not (tmp_path / "new").exists()


def test_a_source_whose_driver_lock_is_a_link_is_read_and_only_ls_and_resume_refuse_it(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """compare never reads a source's driver.lock, but refused a sweep whose lock was a link (it shared
    ls's list of what is read, and ls reads the lock). ls, which reads the lock, and resume, which takes
    it, still refuse to follow it; ablate.load(...).trials reads the records only, as compare does."""
    import ablate

    a, b = two_crafted_sweeps(tmp_path)
    elsewhere = tmp_path / "other.lock"
    elsewhere.write_text("")
    (a / "driver.lock").symlink_to(elsewhere)
    out = tmp_path / "cmp"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / "report.md").is_file() and elsewhere.read_text() == ""
    assert ablate.load(a).trials["trial_id"].tolist() == ["a"]
    refused = (f"{a / 'driver.lock'}: a symbolic link (to {elsewhere}) inside {a}; ablate ")
    capsys.readouterr()
    assert main(["ls", str(a.parent)]) == 0
    assert f"(unreadable: {refused}reads a sweep only from its own folder" in capsys.readouterr().out
    assert main(["resume", str(a)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"ablate resume: error: {refused}writes"), err


@pytest.mark.parametrize("entry", ["spec.yaml", "trials/a.json"])
def test_a_source_that_reads_through_a_link_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                       entry: str) -> None:
    """What compare reads of a source (its spec, its records) is the sweep's own, as for ablate report."""
    a, b = two_crafted_sweeps(tmp_path)
    moved = tmp_path / "moved"
    (a / entry).rename(moved)
    (a / entry).symlink_to(moved)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"ablate compare: error: {a / entry}: a symbolic link (to {moved}) inside {a}; ablate reads a sweep "
        "only from its own folder: replace the link with a copy of what it points to"]
    assert not (tmp_path / "cmp").exists()


def test_an_out_whose_plots_folder_is_a_link_is_refused(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    """The comparison's plots were written through --out's plots/ link into the folder it points to."""
    a, b = two_crafted_sweeps(tmp_path)
    outside, out = tmp_path / "outside", tmp_path / "cmp"
    outside.mkdir()
    out.mkdir()
    (out / "plots").symlink_to(outside)
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"ablate compare: error: --out {out}: {out / 'plots'}: a symbolic link (to {outside}) inside {out}; "
        "ablate writes and deletes files only inside its own folders: replace the link with a copy of what "
        "it points to"]
    assert not list(outside.iterdir()) and [p.name for p in out.iterdir()] == ["plots"]


def test_the_best_sweeps_lead_names_the_settings_the_sweeps_differ_in() -> None:
    """temps (2 epochs) against the same spec with ASHA (3 epochs): the line read 'Best: asha ... with
    knn_top1 40.65 %, +4.40 points vs the best of temps', the spec's key for its metric and the lead
    given as a finding, while the table of settings further down said the two trained for 2 and 3 epochs."""
    from reports.compare import best_line

    bests = pd.DataFrame({"sweep": ["temps", "asha"], "label": ["teacher_temp=0.035", "teacher_temp=0.044"],
                          "point": [0, 1], "mean": [36.25, 40.65], "n": [2, 1], "collapsed": [0, 0]})
    line = best_line(bests, "knn_top1", "max", ["epochs"])
    assert line == ("**Best: asha** (teacher_temp=0.044) with kNN top-1 40.65 %, +4.40 points vs the best "
                    "of temps (the sweeps also differ in `epochs`, below: the lead may come from those "
                    "settings, not from what they searched).")
    assert "differ" not in best_line(bests, "knn_top1", "max")


def test_a_shared_value_pooling_configurations_has_no_interval() -> None:
    """temps against its ASHA copy: warmup_teacher_temp_epochs 2 held two configurations of temps, and
    the table gave '34.17 ± 3.78 (4)', a t-interval over configurations the sweep chose, beside the
    plot that draws none there; a value of one configuration's repeats keeps its interval."""
    from reports.compare import side_by_side

    counted = pd.DataFrame({"sweep": ["temps"] * 6, "point": [0, 0, 1, 1, 2, 2],
                            "warmup_teacher_temp_epochs": [0, 0, 2, 2, 2, 2],
                            "knn_top1": [37.22, 35.28, 36.85, 33.06, 35.28, 31.48]})
    table = side_by_side(counted, "warmup_teacher_temp_epochs", ["temps"])
    assert table["temps"].tolist()[1] == "34.17 (4)"
    assert table["temps"].tolist()[0].startswith("36.25 ± ") and table["temps"].tolist()[0].endswith(" (2)")


def test_the_leaderboards_side_by_side_put_parameters_first_and_one_delta_column(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An Optuna sweep over (teacher_temp, student_temp) against a one-factor ablation over
    (teacher_temp, out_dim): the Leaderboard had 'out_dim' after 'beats raw pixels' at the far end, and
    two delta columns, 'Δ vs best' ('–' in every ablation row) and 'Δ vs baseline' ('–' in every other)."""
    from reports.parquet import write_parquet

    def sweep(name: str, params: list[str], rows: list[dict], algorithm: str) -> Path:
        trials = pd.DataFrame([{"sweep": name, "trial_id": f"{name}{i}", "point": i, "knn_epoch": 2,
                                "status": "completed", "collapsed": False, **r} for i, r in enumerate(rows)])
        path = tmp_path / name / "trials.parquet"
        write_parquet(trials.astype({"collapsed": "boolean"}), path,
                      {"sweep": name, "params": params, "metric": "knn_top1", "mode": "max",
                       "algorithm": algorithm})
        return path

    opt = sweep("opt", ["teacher_temp", "student_temp"],
                [{"teacher_temp": 0.04, "student_temp": 0.1, "knn_top1": 60.0},
                 {"teacher_temp": 0.02, "student_temp": 0.2, "knn_top1": 55.0}], "optuna")
    abl = sweep("abl", ["teacher_temp", "out_dim"],
                [{"teacher_temp": 0.04, "out_dim": 256, "knn_top1": 50.0, "is_baseline": True},
                 {"teacher_temp": 0.04, "out_dim": 1024, "knn_top1": 52.0, "is_baseline": False}], "ablation")
    assert main(["compare", str(opt), str(abl), "--out", str(tmp_path / "cmp")]) == 0
    md = (tmp_path / "cmp" / "report.md").read_text()
    board = md.split("## Leaderboard", 1)[1].split("\n## ", 1)[0]
    header = next(line for line in board.splitlines() if line.startswith("| sweep"))
    assert header.startswith("| sweep | # | teacher_temp | student_temp | out_dim | kNN top-1 (%) | "
                             "repeats | Δ vs best or baseline |")
    assert "| abl | 1 | 0.04 | – | 1024 | 52.00 | 1 | +2.00 |" in board
    assert "| opt | 1 | 0.04 | 0.1 | – | 60.00 | 1 | (best) |" in board


def test_a_value_two_sweeps_write_alike_is_one_tick_of_the_shared_plot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Optuna sampled teacher_temp 0.0600007, an ablation ran 0.06: the side-by-side table had one
    '0.06' row, the plot beside it two ticks both labelled '0.06'."""
    from matplotlib.figure import Figure

    from reports import plots
    from reports.compare import as_tabled

    figures: list[Figure] = []
    monkeypatch.setattr(plots, "save", lambda fig, path: figures.append(fig) or path)
    counted = pd.DataFrame({"sweep": ["opt", "opt", "abl", "abl"], "point": [0, 1, 0, 1],
                            "teacher_temp": [0.060000759936117566, 0.0137, 0.06, 0.04],
                            "knn_top1": [60.0, 61.0, 62.0, 63.0], "collapsed": [False] * 4,
                            "status": ["completed"] * 4})
    sampled = 0.060000759936117566
    assert list(as_tabled(counted, "teacher_temp")["teacher_temp"]) == [sampled, 0.0137, sampled, 0.04]
    plots.effect_plot(as_tabled(counted, "teacher_temp"), "teacher_temp", tmp_path / "e.png", hue="sweep",
                      categorical=True)
    figures[0].canvas.draw()
    assert [t.get_text() for t in figures[0].axes[0].get_xticklabels()] == ["0.0137", "0.04", "0.06"]


def test_compare_says_a_sweep_re_ranked_by_another_metric_than_it_searched(tmp_path: Path) -> None:
    """A sweep searched by knn_top1 whose spec.yaml was edited to rank by loss: `ablate ls` and its report
    say so (SweepDir.reranked), compare said nothing, from its folder or its report's trials.parquet. It
    now says it in the same words (reports.sweepdir.reranking), naming the sweep."""
    from reports.compare import build_comparison
    from reports.parquet import read_metadata
    from reports.render import build_report
    from tests.helpers import crafted_sweep, good_record

    records = [{**good_record(t), "metric": "knn_top1", "mode": "max"} for t in ("a", "b")]
    (tmp_path / "one").mkdir()
    searched = crafted_sweep(tmp_path / "one", records)
    reranked = renamed_copy(searched, tmp_path / "two" / "reranked", "reranked")
    spec = reranked / "spec.yaml"
    text = spec.read_text().replace("metric: knn_top1", "metric: loss")
    spec.write_text(text.replace("mode: max", "mode: min"))
    assert yaml.safe_load(spec.read_text())["metric"] == "loss"
    said = ("**reranked: spec.yaml ranks by loss, the sweep searched knn_top1**: the search chose the "
            "configurations to try by the metric it was given; the comparison ranks by `knn_top1`.")
    table = build_report(reranked) / "trials.parquet"
    assert read_metadata(table)["searched"] == [["knn_top1", "max"]]  # for compare to read of the file alone
    for source in (reranked, table):
        md = (build_comparison([searched, source], tmp_path / "cmp") / "report.md").read_text()
        assert said in md, md[:1500]
        assert "crafted: spec.yaml" not in md  # the sweep that ranks by what it searched: nothing said
