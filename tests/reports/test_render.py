"""report.md / report.html of a real sweep: every section, embedded plots, importance, attention."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import optuna
import pandas as pd
import pytest

from reports import parquet
from reports.render import ABLATION_TABLE, AGAINST_BEST, ATTENTION, SECTIONS, build_report, sections

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_has_every_section(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    html = (report_dir / "report.html").read_text()
    for heading in sections(is_ablation=False):  # an Optuna sweep
        assert f"\n## {heading}\n" in md
        assert re.search(rf"<h2 id=\"[a-z-]+\">{heading}</h2>", html), heading
    assert f"## {ATTENTION}" not in md  # no attention.png: the section is left out silently
    assert "**Best: teacher_temp=" in md  # the verdict at the top
    assert "Not computed: too few finished Optuna trials (2, need 4)." in md


def test_html_is_self_contained_and_md_links_exist(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    html = (report_dir / "report.html").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {"plots/effect_teacher_temp.png", "plots/learning_curves.png", "plots/collapse.png",
            "plots/parallel.png"} <= set(links)
    for link in links:
        assert (report_dir / link).read_bytes().startswith(PNG)
    sources = re.findall(r'<img alt="[^"]*" src="([^"]+)"', html)
    assert len(sources) == len(links)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert base64.b64decode(sources[0].split(",", 1)[1]).startswith(PNG)
    assert "http://" not in html and "https://" not in html and "<script" not in html
    leftovers = [p for p in report_dir.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_attention_maps_are_embedded_when_present(sweep_copy: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().imshow([[0, 1], [1, 0]])
    (sweep_copy / "report").mkdir()
    fig.savefig(sweep_copy / "report" / "attention.png")  # as `ablate attention` leaves it
    out = build_report(sweep_copy)
    md = (out / "report.md").read_text()
    assert f"## {ATTENTION}\n\n![teacher \\[CLS\\] attention maps](attention.png)" in md  # alt text escaped
    data = base64.b64encode((out / "attention.png").read_bytes()).decode()
    assert data in (out / "report.html").read_text()


def test_importance_from_the_optuna_study(sweep_copy: Path) -> None:
    # A study where only teacher_temp matters: fANOVA must rank it first.
    (sweep_copy / "optuna.db").unlink()
    study = optuna.create_study(study_name="tiny", storage=f"sqlite:///{sweep_copy / 'optuna.db'}",
                                direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: 70 - 1e4 * (t.suggest_float("teacher_temp", 0.01, 0.1, log=True) - 0.04) ** 2
                   + 0 * t.suggest_float("student_temp", 0.05, 0.2), n_trials=16)
    out = build_report(sweep_copy)
    md = (out / "report.md").read_text()
    section = md.split("## Parameter importance")[1].split("\n## ")[0]
    assert "![parameter importance](plots/importance.png)" in section
    rows = dict(re.findall(r"\| (\w+) \| ([0-9.]+) \|", section))
    assert float(rows["teacher_temp"]) > 0.8 > float(rows["student_temp"])


def test_importance_left_out_without_optuna_db(sweep_copy: Path) -> None:
    (sweep_copy / "optuna.db").unlink()
    md = (build_report(sweep_copy) / "report.md").read_text()
    assert "Not computed: no optuna.db in the sweep folder" in md
    assert "plots/importance.png" not in md


def test_interrupted_sweep_still_reports(sweep_copy: Path) -> None:
    for state in (sweep_copy / "tune").glob("experiment_state-*.json"):
        state.unlink()  # killed before Ray saved its state
    for file in (sweep_copy / "trials").glob("*.json"):  # every trial killed after epoch 1
        rec = json.loads(file.read_text())
        file.write_text(json.dumps({**rec, "status": "running", "epochs": rec["epochs"][:2]}))
    out = build_report(sweep_copy)
    trials = parquet.pq.read_table(out / "trials.parquet").to_pandas()
    assert set(trials["status"]) == {"running"} and set(trials["epochs_done"]) == {1}
    md = (out / "report.md").read_text()
    assert "No trial has finished yet" in md and "4 trials (4 running)" in md
    assert all(f"## {h}" in md for h in sections(is_ablation=False))


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "trials.parquet"
    target.write_bytes(b"old")

    def broken(table, where) -> None:  # write_parquet hands Arrow an open file (names may not be UTF-8)
        where.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(parquet.pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        parquet.write_parquet(pd.DataFrame({"a": [1]}), target)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_a_full_disk_mid_report_leaves_report_md_and_html_of_one_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """ENOSPC while report.html was written left the new report.md beside the old report.html, the
    page `ablate report` names first: it showed the earlier run's results as if current."""
    import errno
    import os

    from ablate.cli import main
    from reports import render
    from reports.document import Document
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    run = iter(["earlier run", "this run"])
    monkeypatch.setattr(render, "sweep_document", lambda *a, **k: Document(next(run)))  # no plots: fast
    assert main(["report", str(sweep)]) == 0
    real = Path.write_text

    def full(self: Path, *args, **kwargs):
        if self.name.endswith("-report.html.tmp"):  # as f.write() raises it: no file named
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    assert main(["report", str(sweep)]) == 2
    report = sweep / "report"
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"ablate report: error: cannot write {report / 'report.html'} (ENOSPC: No space left on device)")
    assert "earlier run" in (report / "report.md").read_text()
    assert "earlier run" in (report / "report.html").read_text()
    assert not [p.name for p in report.iterdir() if p.name.endswith(".tmp")]


def test_a_full_disk_mid_report_leaves_the_last_report_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """ENOSPC at the report's third file (its first plot, after both tables) left the new
    trials.parquet (5 trials) and epochs.parquet beside report.md and report.html of the last run (4
    trials): the tables newer than the pages that describe them. Now a failed write replaces nothing."""
    import errno
    import os

    from ablate.cli import main
    from sweep_format import files
    from tests.helpers import crafted_sweep, good_record

    def record(i: int) -> dict:
        temp, knn = [(0.02, 40.0), (0.02, 41.0), (0.04, 35.0), (0.04, 36.0), (0.04, 37.0)][i]
        rec = {**good_record(f"t{i}"), "point": int(temp == 0.04), "params": {"teacher_temp": temp},
               "seed": i % 2, "repeat": i % 2}
        rec["epochs"] = [rec["epochs"][0], {**rec["epochs"][1], "knn_top1": knn, "teacher_entropy": 1.0}]
        return rec

    def folder(report: Path) -> dict[str, bytes]:
        return {str(p.relative_to(report)): p.read_bytes() for p in sorted(report.rglob("*")) if p.is_file()}

    sweep = crafted_sweep(tmp_path, [record(i) for i in range(4)])
    assert main(["report", str(sweep)]) == 0
    report = sweep / "report"
    before = folder(report)
    assert {"trials.parquet", "epochs.parquet", "report.md", "plots/learning_curves.png"} <= set(before)
    files.write_json(sweep / "trials" / "t4.json", record(4))
    made = files.tempfile.mkstemp
    started: list[str] = []

    def full(*args, **kwargs):
        started.append(kwargs["suffix"])
        if len(started) == 3:  # the third file of the report
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return made(*args, **kwargs)

    monkeypatch.setattr(files.tempfile, "mkstemp", full)
    capsys.readouterr()
    assert main(["report", str(sweep)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert started[:2] == ["-trials.parquet.tmp", "-epochs.parquet.tmp"]
    assert line.startswith(f"ablate report: error: cannot write {report / 'plots' / started[2][1:-4]} "
                           "(ENOSPC: No space left on device)")
    assert folder(report) == before  # pages, tables and plots: the last report's, no temporary file
    monkeypatch.undo()  # space freed
    assert main(["report", str(sweep)]) == 0
    md, html = (report / "report.md").read_text(), (report / "report.html").read_text()
    assert len(parquet.read_parquet(report / "trials.parquet")) == 5
    assert "\n5 trials (5 completed)" in md and "<p>5 trials (5 completed)" in html
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    embedded = [base64.b64decode(s) for s in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]
    assert embedded == [(report / link).read_bytes() for link in links]  # the plots written with it


def test_the_header_promises_marks_only_where_the_tables_make_them() -> None:
    """A sweep ranked by loss: the header said 'a configuration that does not beat raw pixels is
    marked', and no table marked one (the mark is a kNN top-1 comparison), so a digits sweep whose
    every trial sat 10 points under raw pixels read as if none did."""
    from reports.render import reference_line

    reference = {"pixel_knn_top1": 98.06, "untrained_knn_top1": 80.28}
    assert reference_line(reference).endswith("a configuration that does not beat raw pixels is marked.")
    line = reference_line(reference, marked=False)
    assert "**raw pixels 98.06 %**" in line and "is marked" not in line
    assert "compare each trial's kNN top-1 under Trials" in line


@pytest.mark.parametrize("text, expected", [
    ('{"pixel_knn_top1": 22.87, "untrai', "not shown, reference_knn.json is damaged: not readable as JSON "
     "(JSONDecodeError: Unterminated string starting at: line 1 column 27 (char 26))."),
    ("[22.87, 29.5]", "not shown, reference_knn.json is damaged: holds [22.87, 29.5], not a JSON object of "
     "pixel_knn_top1 and untrained_knn_top1."),
    ('{"pixel_knn_top1": "22.87", "untrained_knn_top1": 29.5}', "**raw pixels –**, **untrained network "
     "29.50 %**. Not shown: reference_knn.json is damaged: pixel_knn_top1 is '22.87', not a percentage from "
     "0 to 100."),
])
def test_a_damaged_reference_file_is_named_not_reported_as_never_recorded(tmp_path: Path, text: str,
                                                                          expected: str) -> None:
    """A truncated reference_knn.json, or one of other types, was reported as 'not recorded for this
    sweep', as if ablate run had never measured the baselines. Now the header names the file and what is
    wrong with it, and shows the value that is whole."""
    from reports.render import reference_line
    from reports.sweepdir import SweepDir

    (tmp_path / "reference_knn.json").write_text(text)
    sweep = SweepDir(tmp_path, {})
    line = reference_line(sweep.reference, damage=sweep.reference_damage)
    assert line == f"Reference kNN top-1 of the dataset: {expected}"
    (tmp_path / "reference_knn.json").unlink()  # a sweep that never wrote one
    line = reference_line(sweep.reference, damage=sweep.reference_damage)
    assert line == "Reference kNN top-1 of the dataset: not recorded for this sweep."


def test_a_trial_that_never_trained_shows_its_knn_as_the_untrained_networks() -> None:
    """An errored trial (ended before its first epoch) was listed under Trials with kNN top-1 29.81 and
    best '–': the untrained network's value read as that trial's result."""
    from reports.render import knn_cell

    assert knn_cell(29.81, 0, 0) == "29.81 (untrained)"
    assert knn_cell(34.07, 1, 1) == "34.07" and knn_cell(34.07, 2, 3) == "34.07 (epoch 2)"
    assert knn_cell(29.81, 0, 1) == "29.81 (epoch 0)"  # trained on past it without evaluation
    assert knn_cell(float("nan"), 1, 1) == "–"


def test_a_leaderboard_cut_at_ten_says_so(tmp_path: Path) -> None:
    """The paper.yaml ablation has 12 configurations: the leaderboard showed 10 rows and nothing said
    that two more exist."""
    from reports.analysis import analyse
    from reports.document import Document
    from reports.render import add_leaderboard

    def section(points: int) -> str:
        trials = pd.DataFrame({"trial_id": [f"t{i}" for i in range(points)], "point": range(points),
                               "teacher_temp": [0.01 * (i + 1) for i in range(points)],
                               "knn_top1": [50.0 + i for i in range(points)], "status": "completed",
                               "collapsed": pd.array([False] * points, dtype="boolean")})
        doc = Document("t")
        add_leaderboard(doc, analyse(trials, {"params": ["teacher_temp"], "algorithm": "grid"}))
        return doc.markdown(tmp_path)

    assert ("The top 10 of 12 configurations; the table of configurations against the best below lists every "
            "one.") in section(12)
    assert "configurations; the table" not in section(10)
    # what it does not count, every status (the list lacked oom and storage_full: a copy of statuses')
    note = ("Counts completed, flagged, collapsed and diverged trials (stopped early, oom, errored, "
            "storage_full, interrupted, running, pending and damaged ones are listed under Trials)")
    assert note in section(10)


def test_an_ablations_effect_plot_holds_only_its_own_line(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """paper.yaml (one factor at a time): the teacher_temp plot's point at the baseline 0.04 pooled every
    trial with teacher_temp 0.04, i.e. the baseline and every other factor's variations (out_dim 4096,
    crop scale 0.08, ...), and drew their spread as a '95% CI over repeats'."""
    from reports import plots
    from reports.analysis import analyse
    from reports.document import Document
    from reports.render import add_effects
    from reports.sweepdir import SweepDir

    space = {"teacher_temp": {"type": "choice", "values": [0.02, 0.04]},
             "out_dim": {"type": "choice", "values": [1024, 4096]}}
    sweep = SweepDir(tmp_path, {"name": "s", "space": space, "search": {"algorithm": "ablation"}})
    rows = [(0.04, 1024, 60.0, True), (0.02, 1024, 62.0, False), (0.04, 4096, 20.0, False)]
    trials = pd.DataFrame([{"trial_id": f"t{i}", "point": i, "teacher_temp": t, "out_dim": d, "knn_top1": k,
                            "status": "completed", "is_baseline": b} for i, (t, d, k, b) in enumerate(rows)])
    trials["collapsed"] = pd.array([False] * 3, dtype="boolean")
    result = analyse(trials, sweep.param_info())
    plotted: dict[str, pd.DataFrame] = {}
    def effect_plot(data: pd.DataFrame, param: str, out: Path, **_: object) -> None:
        plotted[param] = data

    monkeypatch.setattr(plots, "effect_plot", effect_plot)
    add_effects(Document("t"), sweep, result, trials, tmp_path)
    assert sorted(plotted["teacher_temp"]["knn_top1"]) == [60.0, 62.0]  # not the out_dim 4096 trial
    assert sorted(plotted["out_dim"]["knn_top1"]) == [20.0, 60.0]
    grid = analyse(trials, {**sweep.param_info(), "algorithm": "grid"})  # other searches: every trial
    plotted.clear()
    add_effects(Document("t"), sweep, grid, trials, tmp_path)
    assert len(plotted["teacher_temp"]) == 3


def test_an_interrupted_sweep_counts_the_trials_it_never_started(tmp_path: Path) -> None:
    """A temps sweep of 3 trials stopped by Ctrl-C after 2 had started: its report said '2 trials
    (2 interrupted)', as if the sweep had been of 2 (ablate ls said '1 not started')."""
    from reports.render import sweep_document
    from reports.sweepdir import SweepDir
    from reports.tables import status_counts

    space = {"teacher_temp": {"type": "float", "low": 0.01, "high": 0.1, "log": True}}
    sweep = SweepDir(tmp_path, {"name": "s", "space": space, "search": {"algorithm": "optuna"}})
    trials = pd.DataFrame({"trial_id": ["a", "b"], "point": [0, 1], "teacher_temp": [0.02, 0.04],
                           "status": ["interrupted"] * 2, "knn_top1": [29.8, 29.8], "knn_epoch": [0, 0],
                           "epochs_done": [0, 0], "epochs_planned": [3, 3], "best_knn_top1": [None, None],
                           "stop_reason": ["SIGINT", "SIGINT"], "repeat": [0, 0],
                           "collapsed": pd.array([False, False], dtype="boolean")})
    epochs = pd.DataFrame({"trial_id": ["a", "b"], "epoch": [0, 0], "knn_top1": [29.8, 29.8]})
    doc = sweep_document(sweep, trials, epochs, tmp_path, planned=3)
    assert "2 of 3 trials (2 interrupted, 1 not started), search `optuna`" in doc.markdown(tmp_path)
    assert status_counts(trials) == "2 interrupted" and status_counts(trials, 2) == "2 interrupted"
    assert status_counts(trials.iloc[0:0], 3) == "3 not started"


def test_an_interrupted_sweep_says_so_under_its_headline_with_the_resume_command(tmp_path: Path) -> None:
    """An 8-trial Optuna sweep stopped by SIGTERM (4 completed, 2 interrupted, 2 not started): the report
    opened with 'Best: ...' and said neither that the result is partial nor how to continue; `ablate
    resume` appeared only in the stop reasons of the last section's table."""
    from reports.render import sweep_document
    from reports.sweepdir import SweepDir

    space = {"teacher_temp": {"type": "float", "low": 0.01, "high": 0.1, "log": True}}
    sweep = SweepDir(tmp_path / "my runs" / "s",
                     {"name": "s", "space": space, "search": {"algorithm": "optuna"}})
    trials = pd.DataFrame({"trial_id": ["a", "b", "c"], "point": [0, 1, 2],
                           "teacher_temp": [0.02, 0.04, 0.06],
                           "status": ["completed", "completed", "interrupted"],
                           "knn_top1": [40.0, 35.0, 29.8], "knn_epoch": [3, 3, 0],
                           "epochs_done": [3, 3, 0], "epochs_planned": [3, 3, 3],
                           "best_knn_top1": [40.0, 35.0, None], "stop_reason": [None, None, "SIGTERM"],
                           "repeat": [0, 0, 0], "collapsed": pd.array([False] * 3, dtype="boolean")})
    epochs = pd.DataFrame({"trial_id": ["a", "b", "c"], "epoch": [0, 0, 0], "knn_top1": [29.8] * 3})
    text = sweep_document(sweep, trials, epochs, tmp_path, planned=5).markdown(tmp_path)
    stopped = ("**The sweep stopped before its end** (1 trial interrupted, 2 not started): the ranking "
               f"covers the trials that finished. `ablate resume '{tmp_path}/my runs/s'` continues it")
    assert stopped in text and text.index("**Best: ") < text.index(stopped) < text.index("## Leaderboard")
    finished = trials.assign(status="completed")
    text = sweep_document(sweep, finished, epochs, tmp_path).markdown(tmp_path)
    assert "stopped before its end" not in text


def test_an_interrupted_sweep_with_no_trial_finished_says_its_ranking_is_partial(tmp_path: Path) -> None:
    """Ctrl-C during the first epochs of a 4-trial sweep, 2 trials interrupted after epoch 1: the summary
    said "no best yet", `ablate ls` "(partial)", but the report opened with "**Best: ...**" and "the ranking
    covers the trials that finished", above its own note that no trial had finished."""
    from reports.render import sweep_document
    from reports.sweepdir import SweepDir

    space = {"teacher_temp": {"type": "float", "low": 0.01, "high": 0.1, "log": True}}
    sweep = SweepDir(tmp_path / "s", {"name": "s", "space": space, "search": {"algorithm": "optuna"}})
    trials = pd.DataFrame({"trial_id": ["a", "b"], "point": [0, 1], "teacher_temp": [0.02, 0.04],
                           "status": ["interrupted"] * 2, "knn_top1": [34.1, 35.8], "knn_epoch": [1, 1],
                           "epochs_done": [1, 1], "epochs_planned": [3, 3], "best_knn_top1": [34.1, 35.8],
                           "stop_reason": ["SIGINT"] * 2, "repeat": [0, 0],
                           "collapsed": pd.array([False, False], dtype="boolean")})
    epochs = pd.DataFrame({"trial_id": ["a", "a", "b", "b"], "epoch": [0, 1, 0, 1],
                           "knn_top1": [29.8, 34.1, 29.8, 35.8]})
    text = sweep_document(sweep, trials, epochs, tmp_path, planned=4).markdown(tmp_path)
    assert "**Best (partial: no trial ran its schedule): teacher_temp=0.04** with kNN top-1 35.80 %" in text
    assert ("(2 trials interrupted, 2 not started): no trial has finished, so the ranking is of the "
            "unfinished trials' last values.") in text
    assert "covers the trials that finished" not in text


def test_a_single_trial_sweep_reads_in_the_singular(tmp_path: Path) -> None:
    """`--set search.num_samples=1 --set repeats=1`: the header said '1 trials (1 completed), ...,
    1 configurations' and the verdict 'with kNN top-1 (%) 33.70 %', its unit twice."""
    from reports.render import sweep_document
    from reports.sweepdir import SweepDir

    space = {"teacher_temp": {"type": "float", "low": 0.01, "high": 0.1, "log": True}}
    sweep = SweepDir(tmp_path, {"name": "s", "space": space, "search": {"algorithm": "optuna"}})
    trials = pd.DataFrame({"trial_id": ["a"], "point": [0], "teacher_temp": [0.035], "status": ["completed"],
                           "knn_top1": [33.7], "knn_epoch": [1], "epochs_done": [1], "epochs_planned": [1],
                           "best_knn_top1": [33.7], "stop_reason": [""], "repeat": [0],
                           "collapsed": pd.array([False], dtype="boolean")})
    epochs = pd.DataFrame({"trial_id": ["a", "a"], "epoch": [0, 1], "knn_top1": [29.8, 33.7],
                           "loss": [None, 6.8]})
    md = sweep_document(sweep, trials, epochs, tmp_path, planned=1).markdown(tmp_path)
    assert "\n1 trial (1 completed), search `optuna`, 1 configuration, ranked by" in md
    assert "**One configuration ranked: teacher_temp=0.035** with kNN top-1 33.70 % (repeats: 1)." in md


def test_the_table_of_all_configurations_is_cut_and_says_so(tmp_path: Path) -> None:
    """An Optuna sweep of 300 trials: report.md and report.html listed all 300 configurations under
    "Configurations against the best" (and the leaderboard said the table lists every one)."""
    from reports.analysis import analyse
    from reports.document import Document
    from reports.power import add_power
    from reports.render import add_ablation, add_leaderboard

    def report(points: int) -> tuple[str, str]:
        trials = pd.DataFrame({"trial_id": [f"t{i}" for i in range(points)], "point": range(points),
                               "teacher_temp": [0.01 + 0.0003 * i for i in range(points)],
                               "knn_top1": [30.0 + (37 * i % points) / 10 for i in range(points)],
                               "status": "completed",
                               "collapsed": pd.array([False] * points, dtype="boolean")})
        result = analyse(trials, {"params": ["teacher_temp"], "algorithm": "optuna"})
        doc = Document("t")
        add_leaderboard(doc, result)
        add_ablation(doc, result)
        add_power(doc, result.points, result.params)
        return doc.markdown(tmp_path), doc.html()

    md, html = report(300)
    table = md.split(f"## {AGAINST_BEST}\n\n")[1].split("\n\n")[1]  # after the note under the heading
    assert len(table.splitlines()) == 2 + 50  # header, rule, the top 50
    cut = ("The top 50 of 300 configurations; the other 250 are left out here: trials.parquet holds all "
           "of them")
    assert cut in md and cut in html
    assert ("The top 10 of 300 configurations; the table of configurations against the best below lists the "
            "top 50, trials.parquet "
            "all of them.") in md
    assert "The top 10 of 300 configurations; the other 290 are left out here" in md  # seed power's table
    md, _ = report(50)
    table = md.split(f"## {AGAINST_BEST}\n\n")[1].split("\n\n")[1]
    assert len(table.splitlines()) == 2 + 50 and "The top 50 of" not in md  # every one, nothing said
    assert ("The top 10 of 50 configurations; the table of configurations against the best below lists "
            "every one.") in md


def seeded_record(tid: str, temp: float, seed: int, knn: float, collapsed: bool) -> dict:
    """A trial of the crafted 2-point grid (teacher_temp 0.02 or 0.04) that ran its 1 epoch."""
    from tests.helpers import good_record

    rec = good_record(tid)
    rec.update(point=[0.02, 0.04].index(temp), params={"teacher_temp": temp}, seed=seed, repeat=seed,
               status="collapsed" if collapsed else "completed", collapsed=collapsed)
    rec["epochs"][-1].update(knn_top1=knn, collapsed=collapsed)
    return rec


@pytest.mark.parametrize("collapsed", [True, False])
def test_the_headline_of_an_all_collapsed_sweep_gives_no_seed_noise_verdict(tmp_path: Path,
                                                                             collapsed: bool) -> None:
    """Every trial collapsed: the headline said 'No working configuration ... Ranked first:
    teacher_temp=0.04 ...: +0.93 points vs the runner-up teacher_temp=0.02 (10.20 ± 0.50 %; beyond
    seed noise: yes (paired p=0.0013, 3 seeds))', a significance verdict between two failures, under
    a Seed power section saying there is no effect to power."""
    from tests.helpers import crafted_sweep

    knn = {0.02: [10.0, 10.4, 10.2], 0.04: [11.0, 11.3, 11.1]}  # 0.04 leads by 0.9-1.0 on every seed
    sweep = crafted_sweep(tmp_path, [seeded_record(f"t{temp}-{seed}", temp, seed, v, collapsed)
                                     for temp, values in knn.items() for seed, v in enumerate(values)])
    md = (build_report(sweep) / "report.md").read_text()
    [line] = [x for x in md.splitlines() if x.startswith(("**No working configuration", "**Best:"))]
    if collapsed:
        assert line.startswith("**No working configuration: every ranked configuration has a collapsed "
                               "trial**")
        assert line.endswith("+0.93 points vs the runner-up teacher_temp=0.02 (10.20 ± 0.50 %); no "
                             "seed-noise verdict: a gap between collapsed configurations is not an effect "
                             "of the hyperparameters on a working DINO teacher.")
        assert "beyond seed noise" not in line
        assert "no configuration trained a working DINO teacher, so there is no effect to power" in md
        rows = [x for x in md.splitlines() if x.startswith("| 0.02 | 10.20 ±")]  # the ablation table
        assert rows and all("| no verdict (all collapsed) |" in x and "paired p" not in x for x in rows)
    else:  # working configurations keep their verdict
        assert line.startswith("**Best: teacher_temp=0.04**")
        assert "+0.93 points vs the runner-up teacher_temp=0.02 (10.20 ± 0.50 %; beyond seed noise: yes " \
               "(paired p=" in line
        rows = [x for x in md.splitlines() if x.startswith("| 0.02 | 10.20 ±")]
        assert rows and all("| yes (paired p=" in x for x in rows)


def test_the_leaderboard_names_its_metric_and_delta_as_its_table_does(tmp_path: Path) -> None:
    """temps.yaml: the note over a table headed 'kNN top-1 (%)' and 'Δ vs best' read 'Final knn_top1,
    mean ± 95% t-interval over seed repeats; Δ in its units', the spec's key and no unit; and a sweep
    with one scored configuration read 'Fewer than two configurations have a final knn_top1'."""
    from reports.analysis import analyse
    from reports.document import Document
    from reports.power import add_power
    from reports.render import add_leaderboard

    def note(metric: str, points: int = 2) -> str:
        trials = pd.DataFrame({"trial_id": [f"t{i}" for i in range(points)], "point": range(points),
                               "teacher_temp": [0.02, 0.04][:points], metric: [44.0, 46.0][:points],
                               "status": "completed", "knn_epoch": 8,
                               "collapsed": pd.array([False] * points, dtype="boolean")})
        result = analyse(trials, {"params": ["teacher_temp"], "algorithm": "optuna", "metric": metric,
                                  "mode": "max" if metric == "knn_top1" else "min"})
        doc = Document("t")
        add_leaderboard(doc, result)
        add_power(doc, result.points, result.params, result.metric)
        return doc.markdown(tmp_path)

    assert "*Final kNN top-1, mean ± 95% t-interval over seed repeats; Δ in points. Counts" in \
        note("knn_top1")
    assert "Final loss, mean ± 95% t-interval over seed repeats; Δ in its units." in note("loss")
    assert "Fewer than two configurations have a final kNN top-1: nothing to compare." in note("knn_top1", 1)


def test_a_parameter_that_took_one_value_gets_no_table_or_plot(tmp_path: Path) -> None:
    """paper.yaml with out_dim's list shortened to the baseline's [1024]: the ablation table had an
    'out_dim' table of the baseline alone, the effects a plot of one point, the parallel plot an axis
    of one value, each read as an effect. They are left out, and a note names the value."""
    from reports.render import sweep_document
    from reports.sweepdir import SweepDir

    space = {"teacher_temp": {"type": "choice", "values": [0.04, 0.08]},
             "out_dim": {"type": "choice", "values": [1024]}}
    sweep = SweepDir(tmp_path, {"name": "s", "space": space, "search": {"algorithm": "ablation"}})
    n = 2
    trials = pd.DataFrame({"trial_id": ["a", "b"], "point": [0, 1], "teacher_temp": [0.04, 0.08],
                           "out_dim": [1024, 1024], "status": ["completed"] * n, "knn_top1": [34.1, 34.4],
                           "knn_epoch": [1] * n, "epochs_done": [1] * n, "epochs_planned": [1] * n,
                           "best_knn_top1": [34.1, 34.4], "stop_reason": [""] * n, "repeat": [0] * n,
                           "is_baseline": [True, False], "collapsed": pd.array([False] * n, dtype="boolean")})
    epochs = pd.DataFrame({"trial_id": ["a", "a", "b", "b"], "epoch": [0, 1, 0, 1],
                           "knn_top1": [29.8, 34.1, 29.8, 34.4], "loss": [None, 6.8, None, 6.9]})
    doc = sweep_document(sweep, trials, epochs, tmp_path, planned=n)
    assert "### out_dim" not in doc.markdown(tmp_path) and "### teacher_temp" in doc.markdown(tmp_path)
    images = [path.name for kind, path, _ in doc.blocks if kind == "image"]
    assert "effect_teacher_temp.png" in images and "effect_out_dim.png" not in images
    notes = " ".join(text for kind, text, _ in doc.blocks if kind == "note")
    for where in ("the ablation table", "these plots", "this plot"):
        assert f"Not in {where}: out_dim=1024, the only value it took in the trials ranked here" in notes


def test_asha_stopped_trials_are_said_where_they_are_left_out_or_mixed_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """temps.yaml with ASHA (grace 1, 3 epochs): two of four trials stopped at epochs 1 and 2. The effect
    plots drew the two that finished with no word of the others, and the importances, fitted to all
    four, did not say that two values were measured after fewer epochs."""
    from reports import render
    from reports.importance import Importance
    from reports.render import sweep_document
    from reports.sweepdir import SweepDir

    monkeypatch.setattr(render, "param_importance", lambda *_: Importance(
        values={"fANOVA": {"teacher_temp": 1.0}}, n_trials=4))
    space = {"teacher_temp": {"type": "float", "low": 0.01, "high": 0.1, "log": True}}
    sweep = SweepDir(tmp_path, {"name": "s", "space": space, "search": {"algorithm": "optuna"}})
    n, knn, at = 4, [40.6, 39.8, 34.8, 34.9], [3, 3, 1, 2]
    temps = [0.044, 0.035, 0.062, 0.012]
    trials = pd.DataFrame({"trial_id": list("abcd"), "point": range(n), "teacher_temp": temps,
                           "status": ["completed", "completed", "stopped early", "stopped early"],
                           "knn_top1": knn, "knn_epoch": at, "epochs_done": at, "epochs_planned": [3] * n,
                           "best_knn_top1": knn, "stop_reason": [""] * n, "repeat": [0] * n,
                           "collapsed": pd.array([False] * n, dtype="boolean")})
    epochs = pd.DataFrame({"trial_id": list("abcd"), "epoch": at, "knn_top1": knn, "loss": [6.8] * n})
    md = sweep_document(sweep, trials, epochs, tmp_path, planned=n).markdown(tmp_path)
    said = ("2 trials were stopped early by the scheduler (ASHA), their kNN top-1 measured at epochs 1, 2 "
            "of 3, not at the end of the schedule the ranked trials ran.")
    effects = md.split("## Parameter effects")[1].split("## Learning curves")[0]
    importance = md.split("## Parameter importance")[1].split("## Parallel")[0]
    assert said + " They are not drawn here" in effects
    assert said + " Optuna was told that value" in importance
    finished = sweep_document(sweep, trials.assign(status="completed"), epochs, tmp_path)
    assert "stopped early by the scheduler" not in finished.markdown(tmp_path)


def test_the_importance_table_lists_the_most_important_parameter_first(tmp_path: Path) -> None:
    """The table under the importance plot was alphabetical (center_momentum first at 0.143) while the
    plot above it put momentum_teacher (0.327) on top."""
    from reports.document import Document
    from reports.importance import Importance
    from reports.render import add_importance

    doc = Document("t")
    add_importance(doc, Importance(values={"fANOVA": {"center_momentum": 0.143, "momentum_teacher": 0.327,
                                                      "teacher_temp": 0.245}}, n_trials=8), tmp_path)
    [table] = [df for kind, df, _ in doc.blocks if kind == "table"]
    assert table["parameter"].tolist() == ["momentum_teacher", "teacher_temp", "center_momentum"]


@pytest.mark.parametrize(("algorithm", "heading"), [("ablation", ABLATION_TABLE), ("grid", AGAINST_BEST),
                                                    ("optuna", AGAINST_BEST)])
def test_the_table_heading_fits_the_search(tmp_path: Path, algorithm: str, heading: str) -> None:
    """An Optuna or grid sweep's table of every configuration against the best was headed 'Ablation
    table', the name of a one-factor ablation's table against its baseline."""
    from reports.analysis import analyse
    from reports.document import Document
    from reports.render import add_ablation

    trials = pd.DataFrame({"trial_id": ["a", "b"], "point": [0, 1], "teacher_temp": [0.02, 0.04],
                           "knn_top1": [50.0, 52.0], "status": "completed", "is_baseline": [True, False],
                           "collapsed": pd.array([False] * 2, dtype="boolean")})
    doc = Document("t")
    add_ablation(doc, analyse(trials, {"params": ["teacher_temp"], "algorithm": algorithm}))
    assert doc.headings()[0] == heading
    assert set(sections(algorithm == "ablation")) - set(SECTIONS) <= {heading}
    # an ablation's table per parameter has its name; the one table against the best had a sub-heading
    # 'All configurations, against the best' under 'Configurations against the best', saying it twice
    assert doc.headings()[1:] == (["teacher_temp"] if algorithm == "ablation" else [])


def test_a_sweep_whose_every_trial_ended_without_a_value_does_not_say_yet(tmp_path: Path) -> None:
    """A grid at lr 1e6 and 1e7, both trials diverged at epoch 1: the Leaderboard, the table against the
    best and Parameter effects each said 'No trial has a final kNN top-1 yet.', as if waiting would
    bring one. Where every trial ended for good they say so; a running one keeps the 'yet'."""
    from reports.render import sweep_document
    from reports.sweepdir import SweepDir

    sweep = SweepDir(tmp_path, {"name": "s", "space": {"lr": {"type": "choice", "values": [1e6, 1e7]}},
                                "search": {"algorithm": "grid"}})
    trials = pd.DataFrame({"trial_id": ["a", "b"], "point": [0, 1], "lr": [1e6, 1e7],
                           "status": ["diverged"] * 2, "knn_top1": [98.75] * 2, "knn_epoch": [0, 0],
                           "epochs_done": [1, 1], "epochs_planned": [2, 2], "best_knn_top1": [None, None],
                           "stop_reason": ["loss is nan at epoch 1"] * 2, "repeat": [0, 0],
                           "collapsed": pd.array([False, False], dtype="boolean")})
    epochs = pd.DataFrame({"trial_id": ["a", "a", "b", "b"], "epoch": [0, 1, 0, 1], "knn_top1": [98.75] * 4})
    text = sweep_document(sweep, trials, epochs, tmp_path).markdown(tmp_path)
    assert " yet." not in text and "*No trained epoch has reported teacher_entropy.*" in text
    assert text.count("*No trial has a final kNN top-1: every one ended without one (each trial's status "
                      "and stop reason under Trials say why).*") == 4  # Parallel coordinates too
    running = sweep_document(sweep, trials.assign(status="running"), epochs, tmp_path).markdown(tmp_path)
    assert running.count("No trial has a final kNN top-1 yet.") == 4
    assert "No trained epoch has reported teacher_entropy yet." in running


def diverged_record(tid: str, temp: float) -> dict:
    """A trial whose loss was NaN in its first epoch, as the trainer records it (no loss, no kNN after)."""
    from tests.helpers import good_record

    reason = ("loss is nan at epoch 1: training diverged (try a lower lr, a lower teacher_temp or "
              "precision=fp32)")
    last = {"epoch": 1, "trial_outcome": "diverged", "stop_reason": reason, "knn_evaluated": False}
    return {**good_record(tid), "point": int(temp == 0.04), "params": {"teacher_temp": temp},
            "status": "diverged", "reason": reason, "epochs": [{"epoch": 0, "knn_top1": 30.0}, last]}


def test_a_re_report_removes_the_plots_it_no_longer_draws(tmp_path: Path) -> None:
    """A sweep reported once with curves, then re-reported after its records changed to trials that all
    diverged: the new report drew no learning curves, and the last report's learning_curves.png stayed in
    plots/, an old figure beside tables of the new records. A file of someone else's there stays."""
    from sweep_format import files
    from tests.helpers import crafted_sweep, good_record

    sweep = crafted_sweep(tmp_path, [{**good_record(f"t{i}"), "point": i, "params": {"teacher_temp": t},
                                      "epochs": [{"epoch": 0, "knn_top1": 30.0},
                                                 {"epoch": 1, "knn_top1": 40.0 + i, "loss": 1.0,
                                                  "teacher_entropy": 1.0, "collapsed": False}]}
                                     for i, t in enumerate((0.02, 0.04))])
    plots = build_report(sweep) / "plots"
    drawn = {p.name for p in plots.iterdir()}
    assert {"learning_curves.png", "collapse.png", "effect_teacher_temp.png"} <= drawn
    (plots / "notes.png").write_bytes(PNG)
    for i, temp in enumerate((0.02, 0.04)):
        files.write_json(sweep / "trials" / f"t{i}.json", diverged_record(f"t{i}", temp))
    md = (build_report(sweep) / "report.md").read_text()
    assert "No trained epoch has a finite loss" in md
    assert sorted(p.name for p in plots.iterdir()) == sorted(
        {"notes.png", *re.findall(r"\(plots/([^)]+)\)", md)})  # what the report shows, and the stranger's
    assert not (plots / "learning_curves.png").exists()


def test_an_all_diverged_sweep_says_so_in_its_headline(tmp_path: Path) -> None:
    """Both trials' loss went NaN in epoch 1: the headline said "no best configuration: no trial has a
    knn_top1 measured after training that counts (none has finished an epoch yet, ... oom, errored or
    storage_full ...)", every possible reason but the one, and no word of what to try."""
    from tests.helpers import crafted_sweep

    sweep = crafted_sweep(tmp_path, [diverged_record("t0", 0.02), diverged_record("t1", 0.04)])
    md = (build_report(sweep) / "report.md").read_text()
    [headline] = [line for line in md.splitlines() if line.startswith("**Every trial diverged")]
    assert headline.startswith("**Every trial diverged (2 of 2):** the loss went NaN or inf in epoch 1 of 1,")
    assert "'loss is nan at epoch 1: training diverged (try a lower lr" in headline  # once: one reason
    assert headline.count("loss is nan") == 1 and "no best configuration" not in md.lower()


def test_a_spec_edited_to_rank_by_another_metric_says_which_one_the_sweep_searched(tmp_path: Path) -> None:
    """A sweep searched by knn_top1 (its records say so) whose spec.yaml was edited to `metric: loss, mode:
    min`: `ablate ls` and the report ranked by loss in silence, as if the sweep had searched it. Re-ranking
    is allowed; both now say it, in one wording (SweepDir.reranked)."""
    from reports.listing import list_sweeps
    from tests.helpers import crafted_sweep, good_record

    low_loss = {**good_record("b"), "point": 1, "params": {"teacher_temp": 0.04}}
    low_loss["epochs"] = [{"epoch": 0, "knn_top1": 30.0}, {"epoch": 1, "knn_top1": 20.0, "loss": 0.5}]
    records = [{**r, "metric": "knn_top1", "mode": "max"} for r in (good_record("a"), low_loss)]
    sweep = crafted_sweep(tmp_path, records)
    said = "spec.yaml ranks by loss, the sweep searched knn_top1"
    assert said not in list_sweeps(sweep.parent).iloc[0]["best"]  # spec and records agree: nothing said
    spec = sweep / "spec.yaml"
    text = spec.read_text()
    assert "\nmetric: knn_top1\n" in text and "\nmode: max\n" in text
    spec.write_text(text.replace("\nmetric: knn_top1\n", "\nmetric: loss\n")
                    .replace("\nmode: max\n", "\nmode: min\n"))
    best = list_sweeps(sweep.parent).iloc[0]["best"]
    assert best == f"loss 0.50 ({said})", best
    md = (build_report(sweep) / "report.md").read_text()
    assert f"**{said}**: the search chose" in md, md[:1500]
    assert md.index(said) < md.index("**Best: teacher_temp=0.04")  # above the headline it qualifies


def test_what_the_records_say_was_searched_is_read_only_where_they_say_it() -> None:
    """searched_by takes a record's metric and mode only where both are a metric and a direction (a record
    of an older ablate, or a damaged stub, says nothing); a mode turned on the same metric is named."""
    from reports.sweepdir import SweepDir
    from sweep_format.records import searched_by

    records = [{"metric": "knn_top1", "mode": "max"}, {}, {"metric": 7, "mode": "max"},
               {"metric": "knn_top1", "mode": "sideways"}, {"metric": "knn_top1", "mode": "max"}]
    assert searched_by(records) == [("knn_top1", "max")]
    assert searched_by([{}, {"status": "damaged"}]) == []

    def sweep(**ranking: str) -> SweepDir:
        return SweepDir(Path("x"), ranking)

    assert sweep(metric="knn_top1").reranked([("knn_top1", "max")]) == ""  # mode: the metric's own
    assert sweep(metric="loss").reranked([]) == ""  # no record says: nothing claimed
    assert sweep(metric="teacher_entropy", mode="min").reranked([("teacher_entropy", "max")]) == (
        "spec.yaml ranks by teacher_entropy min, the sweep searched teacher_entropy max")
    assert sweep(metric="loss").reranked([("knn_top1", "max"), ("dino_loss", "min")]) == (
        "spec.yaml ranks by loss, the sweep searched knn_top1 and dino_loss")
