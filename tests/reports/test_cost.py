"""Cost accounting: per-trial device-seconds from epochs, per-configuration table, Pareto front."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from reports.cost import cost_table, fmt_cost, pareto_front, sweep_total, time_split, trial_costs, trial_split


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    trials = pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "point": [0, 0, 1, 2],
                           "teacher_temp": [0.04, 0.04, 0.02, 0.1], "status": ["completed"] * 4,
                           "knn_top1": [70.0, 72.0, 69.0, 75.0], "collapsed": [False] * 4})
    epochs = pd.DataFrame({"trial_id": ["a", "a", "b", "b", "c", "d"], "epoch": [1, 2, 1, 2, 1, 1],
                           "device_seconds": [50.0, 100.0, 60.0, 120.0, 30.0, 400.0],
                           "device_kind": ["GPU"] * 6})
    return trials, epochs


def test_a_trial_costs_its_last_cumulative_value() -> None:
    costs = trial_costs(tables()[1]).set_index("trial_id")["device_seconds"].to_dict()
    assert costs == {"a": 100.0, "b": 120.0, "c": 30.0, "d": 400.0}
    assert sweep_total(tables()[1]) == "10.8 GPU-min"
    assert sweep_total(pd.DataFrame({"trial_id": ["x"], "epoch": [1]})) == "–"  # before cost accounting


def test_cost_per_configuration_and_pareto_front() -> None:
    table = cost_table(*tables(), ["teacher_temp"])
    assert list(table["teacher_temp"]) == [0.1, 0.04, 0.02]  # best kNN first
    assert list(table["total_s"]) == [400.0, 220.0, 30.0]
    assert list(table["per_trial_s"]) == [400.0, 110.0, 30.0]
    assert list(table["value"]) == [75.0, 71.0, 69.0]
    # each is the best for its cost: cheapest 69, then 71 for 110 s, then 75 for 400 s
    assert sorted(table.loc[pareto_front(table), "teacher_temp"]) == [0.02, 0.04, 0.1]
    dominated = table.assign(per_trial_s=[400.0, 500.0, 30.0])  # 0.04 now costs more and scores less
    assert sorted(dominated.loc[pareto_front(dominated), "teacher_temp"]) == [0.02, 0.1]


def test_units() -> None:
    assert fmt_cost(45, "CPU") == "45 CPU-s" and fmt_cost(600, "GPU") == "10.0 GPU-min"
    assert fmt_cost(3 * 3600, "GPU") == "3.00 GPU-h"


def test_a_cost_under_a_second_is_not_zero(tmp_path: Path) -> None:
    """An 8-trial Optuna sweep of 2-epoch test_resnet trials (digit_scenes size) cost 0.3 to 0.7 CPU-s a
    trial: the cost table read '0 CPU-s' for six of them (and 'Pareto: yes' beside one), and the wall-time
    split '0' seconds beside a 44.1 % share in a 1-trial sweep."""
    from reports.cost import add_time_split
    from reports.document import Document

    assert fmt_cost(0.42, "CPU") == "0.4 CPU-s" and fmt_cost(9.6, "GPU") == "9.6 GPU-s"
    assert fmt_cost(10.4, "CPU") == "10 CPU-s"
    doc = Document("t")
    add_time_split(doc, pd.DataFrame([{"trial_id": "a", "epoch": 1, "epoch_time_s": 0.7, "data_wait_s": 0.1,
                                       "knn_eval_s": 0.1, "time_total_s": 1.4}]))
    text = doc.markdown(tmp_path)
    assert "| training steps (forward, backward, update) | 0.6 | 42.9 % |" in text
    assert "| waiting for augmented batches inside epochs | 0.1 | 7.1 % |" in text


def test_the_report_shows_cost_and_power(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    cost = md.split("## Cost", 1)[1].split("\n## ", 1)[0]
    trials = pd.read_parquet(report_dir / "trials.parquet")
    assert trials["device_seconds"].gt(0).all()
    assert "Sweep total: **" in cost and "CPU-s" in cost and "plots/pareto_cost.png" in cost
    assert (report_dir / "plots/pareto_cost.png").is_file()
    # where the trials' wall time went, from the real trials' reports (knn_eval_s included)
    split = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in cost.splitlines()
             if line.startswith("| ") and line.endswith(" % |")}
    assert list(split) == ["training steps (forward, backward, update)",
                           "waiting for augmented batches inside epochs",
                           "kNN evaluation (epoch 0 and each evaluated epoch)",
                           "set-up, checkpoints and reporting"]
    shares = [float(v[1].split(" %")[0]) for v in split.values()]
    assert abs(sum(shares) - 100) < 0.5 and shares[0] > 0 and shares[2] > 0
    power = md.split("## Seed power", 1)[1].split("\n## ", 1)[0]
    # the tiny sweep's two configurations may tie on its 80 test images (99.38 % each): no repeats then
    advice = ("repeats per configuration**", "A tie leaves no difference to detect")
    assert any(a in power for a in advice) and "seed SD (points)" in power


def test_a_collapsed_configuration_is_never_on_the_front() -> None:
    trials, epochs = tables()
    trials.loc[trials["trial_id"] == "d", "collapsed"] = True  # the best kNN, but a collapsed teacher
    table = cost_table(trials, epochs, ["teacher_temp"])
    assert sorted(table.loc[pareto_front(table), "teacher_temp"]) == [0.02, 0.04]


def test_a_diverged_configuration_is_never_on_the_front() -> None:
    """Ranking rule 3 puts a point with a diverged trial last, as a collapsed one; the front kept it
    (it tested collapses alone), and a run that diverged early is cheap, so it sat on the front."""
    trials, epochs = tables()
    trials.loc[trials["trial_id"] == "c", "status"] = "diverged"  # the cheapest, stopped for cause
    table = cost_table(trials, epochs, ["teacher_temp"])
    assert list(table["teacher_temp"]) == [0.1, 0.04, 0.02]  # ranked last
    assert sorted(table.loc[pareto_front(table), "teacher_temp"]) == [0.04, 0.1]
    assert table["failed"].tolist() == [False, False, True] and not table["collapsed"].any()


def test_a_diverged_configuration_is_said_in_the_cost_table_and_plot(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Off the front and ranked last, its row said 'collapsed' blank and nothing else, and the plot drew
    it as a working configuration: a 'diverged' column (where one diverged) and its own marker."""
    from reports import plots
    from reports.cost import add_cost
    from reports.document import Document

    drawn: list[Figure] = []
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.append(fig) or path)

    trials, epochs = tables()
    trials.loc[trials["trial_id"] == "c", "status"] = "diverged"
    assert cost_table(trials, epochs, ["teacher_temp"])["diverged"].tolist() == [False, False, True]
    doc = Document("t")
    add_cost(doc, trials, epochs, ["teacher_temp"], tmp_path)
    shown = next(df for kind, df, _ in doc.blocks if kind == "table" and "Pareto" in df.columns)
    assert shown[["teacher_temp", "collapsed", "diverged", "Pareto"]].values.tolist() == [
        ["0.1", "", "", "yes"], ["0.04", "", "", "yes"], ["0.02", "", "yes", ""]]
    points = {c.get_label(): len(c.get_offsets()) for c in drawn[0].axes[0].collections}
    assert points == {"configuration": 2, "diverged": 1}  # nothing collapsed: no 'collapsed' in the legend
    calm = Document("t")
    add_cost(calm, *tables(), ["teacher_temp"], tmp_path)
    assert all("diverged" not in df.columns for kind, df, _ in calm.blocks if kind == "table")


def test_the_cost_table_ranks_by_the_specs_metric_and_mode() -> None:
    """reports/cost.py ranks with the one rule: teacher_entropy, lower first, is not kNN's order."""
    trials, epochs = tables()
    trials["teacher_entropy"] = [5.0, 5.2, 3.0, 6.0]
    table = cost_table(trials, epochs, ["teacher_temp"], metric="teacher_entropy", mode="min")
    assert list(table["teacher_temp"]) == [0.02, 0.04, 0.1] and list(table["value"]) == [3.0, 5.1, 6.0]
    # cheapest is also lowest: it alone is on the front when lower is better
    assert table.loc[pareto_front(table, "min"), "teacher_temp"].tolist() == [0.02]


def test_a_trials_wall_time_splits_into_training_data_knn_and_the_rest() -> None:
    """Two epochs of 10 s (2 s of it waiting for batches), 1 s of kNN each and at epoch 0, Ray's
    time_total_s 25 s at the end: 16 training, 4 data, 3 kNN, 2 the rest."""
    rows = [{"epoch": 0, "knn_eval_s": 1.0, "time_total_s": 1.5},
            {"epoch": 1, "epoch_time_s": 10.0, "data_wait_s": 2.0, "knn_eval_s": 1.0, "time_total_s": 13.0},
            {"epoch": 2, "epoch_time_s": 10.0, "data_wait_s": 2.0, "knn_eval_s": 1.0, "time_total_s": 25.0}]
    assert trial_split(rows) == {"training": 16.0, "data": 4.0, "knn": 3.0, "other": 2.0}
    # resumed after epoch 1 (`ablate resume`): the second run's time_total_s counts from 0 again
    resumed = [*rows[:2], {**rows[2], "time_total_s": 12.5}]
    assert trial_split(resumed)["other"] == 13.0 + 12.5 - 20.0 - 3.0
    # a trial of ablate before knn_eval_s: its evaluations are in the rest
    old = [{k: v for k, v in r.items() if k != "knn_eval_s"} for r in rows]
    assert trial_split(old) == {"training": 16.0, "data": 4.0, "knn": 0.0, "other": 5.0}
    assert set(trial_split(rows[:1]).values()) == {0.0}  # nothing trained: nothing to split
    epochs = pd.DataFrame([{**r, "trial_id": t} for t in ("a", "b") for r in rows])
    assert time_split(epochs) == {"training": 32.0, "data": 8.0, "knn": 6.0, "other": 4.0}


def test_a_large_knn_or_data_share_names_the_setting_that_moves_it(tmp_path: Path) -> None:
    from reports.cost import add_time_split
    from reports.document import Document

    def section(knn: float, wait: float) -> str:
        doc = Document("t")
        row = {"trial_id": "a", "epoch": 1, "epoch_time_s": 10.0, "data_wait_s": wait, "knn_eval_s": knn,
               "time_total_s": 10.0 + knn}
        add_time_split(doc, pd.DataFrame([row]))
        return doc.markdown(tmp_path)

    assert "| kNN evaluation (epoch 0 and each evaluated epoch) | 5 | 33.3 % |" in section(5.0, 0.0)
    assert "`eval_every: N`" in section(5.0, 0.0) and "num_workers" not in section(5.0, 0.0)
    assert "`num_workers`" in section(0.1, 3.0) and "eval_every" not in section(0.1, 3.0)
    assert "Over 10 %" not in section(0.5, 0.5)
    before = Document("t")  # a sweep of ablate before knn_eval_s: its evaluations are in the rest
    old_row = {"trial_id": "a", "epoch": 1, "epoch_time_s": 10.0, "data_wait_s": 0.0, "time_total_s": 15.0}
    add_time_split(before, pd.DataFrame([old_row]))
    assert "kNN evaluation (epoch 0" not in before.markdown(tmp_path)
    assert "| set-up, kNN evaluation, checkpoints and reporting | 5 | 33.3 % |" in before.markdown(tmp_path)
    untimed = Document("t")  # trials that reported no epoch time (ablate before the split): no section
    add_time_split(untimed, pd.DataFrame([{"trial_id": "a", "epoch": 1, "loss": 1.0}]))
    assert untimed.blocks == []


def test_a_point_is_collapsed_as_the_ranking_counts_it() -> None:
    """A point ranked first (its counted trial completed) is not marked collapsed, nor left off the
    Pareto front, because an interrupted repeat's last row had the collapse flag."""
    trials, epochs = tables()
    trials = pd.concat([trials, pd.DataFrame({"trial_id": ["e"], "point": [2], "teacher_temp": [0.1],
                                              "status": ["interrupted"], "knn_top1": [20.0],
                                              "collapsed": [True]})], ignore_index=True)
    epochs = pd.concat([epochs, pd.DataFrame({"trial_id": ["e"], "epoch": [1], "device_seconds": [400.0],
                                              "device_kind": ["GPU"]})], ignore_index=True)
    table = cost_table(trials, epochs, ["teacher_temp"])
    assert list(table["teacher_temp"]) == [0.1, 0.04, 0.02] and not table["collapsed"].any()
    assert 0.1 in set(table.loc[pareto_front(table), "teacher_temp"])
    trials.loc[trials["trial_id"] == "d", ["status", "collapsed"]] = ["collapsed", True]  # now counted
    table = cost_table(trials, epochs, ["teacher_temp"])
    assert list(table["teacher_temp"]) == [0.04, 0.02, 0.1]
    assert table["collapsed"].tolist() == [False, False, True]


def test_the_cost_axis_of_trials_that_cost_the_same_is_readable(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Two CPU trials of 12.08 and 12.10 s: the axis was zoomed to 0.02 s and ticked 12.0800, 12.0825,
    ... 12.1000, nine labels run together into one unreadable line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from reports import plots

    drawn: list[Figure] = []

    def keep(fig: Figure, path: Path) -> Path:
        drawn.append(fig)
        return path

    monkeypatch.setattr(plots, "save", keep)
    table = pd.DataFrame({"per_trial_s": [12.08, 12.10], "value": [33.70, 34.07], "collapsed": [False, False],
                          "failed": [False, False],                          "device_kind": ["CPU", "CPU"]})
    assert plots.pareto_plot(table, tmp_path / "p.png") is not None
    FigureCanvasAgg(drawn[0]).draw()
    ax = drawn[0].axes[0]
    assert ax.get_xlim()[0] == 0.0
    boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text() and t.get_visible()
             and ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]]
    assert len(boxes) >= 2
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))  # no two labels overlap


def test_the_sweep_total_counts_one_trial_in_the_singular(tmp_path: Path) -> None:
    """A 1-trial sweep (`--set search.num_samples=1 --set repeats=1`) read 'Sweep total: **12 CPU-s**
    over 1 trials.'"""
    from reports.cost import add_cost
    from reports.document import Document

    trials, epochs = tables()
    one, many = Document("t"), Document("t")
    c_trials, c_epochs = trials[trials["trial_id"] == "c"], epochs[epochs["trial_id"] == "c"]
    add_cost(one, c_trials, c_epochs, ["teacher_temp"], tmp_path)
    add_cost(many, trials, epochs, ["teacher_temp"], tmp_path)
    assert "** over 1 trial. " in one.markdown(tmp_path)
    assert "** over 4 trials. " in many.markdown(tmp_path)


def test_a_configuration_without_a_ranked_trial_says_why_its_value_is_blank(tmp_path: Path) -> None:
    """temps.yaml with ASHA: the two configurations it stopped after 1 and 2 epochs had '–' for their
    kNN top-1, beside their cost, and nothing said why (their kNN at that epoch is under Trials)."""
    from reports.cost import add_cost
    from reports.document import Document

    def notes(trials: pd.DataFrame) -> str:
        doc = Document("t")
        add_cost(doc, trials, epochs, ["teacher_temp"], tmp_path)
        return " ".join(text for kind, text, _ in doc.blocks if kind == "note")

    trials, epochs = tables()
    assert "–: no trial of the configuration counts" not in notes(trials)
    trials.loc[trials["trial_id"] == "d", "status"] = "stopped early"
    said = notes(trials)
    assert "–: no trial of the configuration counts for the ranking (one that ASHA stopped early" in said


def test_a_pareto_front_of_one_configuration_is_drawn_as_the_legend_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cheapest configuration was also the best: the front, one point, was drawn as a line (nothing
    on the plot) and the legend still named a "Pareto front". Now it is a ring around that point, said so."""
    from reports import plots

    drawn: list[Figure] = []
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.append(fig) or path)
    table = pd.DataFrame({"per_trial_s": [5.0, 9.0, 12.0], "value": [40.0, 38.0, 39.0],
                          "collapsed": [False] * 3, "failed": [False] * 3, "device_kind": ["CPU"] * 3})
    plots.pareto_plot(table, tmp_path / "p.png")
    two = table.assign(value=[38.0, 39.0, 40.0])  # each dearer one better: a front of three
    plots.pareto_plot(two, tmp_path / "p.png")
    one, three = ([t.get_text() for t in fig.axes[0].get_legend().get_texts()] for fig in drawn)
    assert one == ["configuration", "Pareto front: one configuration (none cheaper or better)"]
    assert three == ["configuration", "Pareto front"]
    ring = [c for c in drawn[0].axes[0].collections if c.get_label().startswith("Pareto front")]
    assert [tuple(xy) for xy in ring[0].get_offsets()] == [(5.0, 40.0)]


def test_a_huge_cost_is_written_in_powers_of_ten(tmp_path: Path) -> None:
    """A record's device_seconds of 1e308 (edited, or a clock gone wrong; finite, so not damaged) printed
    as a 300-digit number of CPU-h in `ablate ls` and the report's Cost table: one compact form for both."""
    from reports.listing import list_sweeps
    from reports.tables import load_trials
    from tests.helpers import crafted_sweep, good_record

    assert fmt_cost(9_999 * 3600, "GPU") == "9999.00 GPU-h"
    assert fmt_cost(12_345 * 3600, "GPU") == "1.23e+04 GPU-h"
    assert fmt_cost(1e308, "CPU") == "2.78e+304 CPU-h"
    record = good_record("a")
    record["epochs"][-1].update(device_seconds=1e308, device_kind="CPU")
    row = list_sweeps(crafted_sweep(tmp_path, [record]).parent).iloc[0]
    assert row["cost"] == "2.78e+304 CPU-h", row["cost"]
    trials, epochs = load_trials(tmp_path / "runs" / "crafted")
    table = cost_table(trials, epochs, ["teacher_temp"])
    assert [fmt_cost(s, k) for s, k in zip(table["total_s"], table["device_kind"])] == ["2.78e+304 CPU-h"]


def test_an_absurd_time_in_a_record_splits_without_digits_or_inf(tmp_path: Path) -> None:
    """A record someone else wrote with epoch_time_s 1e308 (finite, >= 0: the records accept it): the
    time split printed a 309-digit number of seconds, 'inf %' beside it, -1 s of the rest; two such
    trials summed past the floats ('inf' seconds, 'nan %'); a data_wait_s past the epoch's time made
    training -2,990 s at -14950.0 %. Now powers of ten from fmt_cost's bound, '–' past the floats."""
    from reports.cost import add_time_split
    from reports.document import Document

    def table(*rows: dict) -> str:
        doc = Document("t")
        add_time_split(doc, pd.DataFrame([{"epoch": 1, "knn_eval_s": 1.0, "data_wait_s": 0.5,
                                           "time_total_s": 5.0, **r} for r in rows]))
        return doc.markdown(tmp_path)

    one = table({"trial_id": "a", "epoch_time_s": 1e308})
    assert "| training steps (forward, backward, update) | 1e+308 | 100.0 % |" in one, one
    assert "| set-up, checkpoints and reporting | 0 | 0.0 % |" in one
    two = table({"trial_id": "a", "epoch_time_s": 1e308}, {"trial_id": "b", "epoch_time_s": 1e308})
    assert "| training steps (forward, backward, update) | – | – |" in two, two
    for text in (one, two):
        assert "inf" not in text and "nan" not in text and ",000," not in text and "| -" not in text
    waited = table({"trial_id": "a", "epoch_time_s": 10.0, "data_wait_s": 3000.0, "time_total_s": 20.0})
    assert "| training steps (forward, backward, update) | 0 | 0.0 % |" in waited, waited
    assert "| waiting for augmented batches inside epochs | 10 | 50.0 % |" in waited
