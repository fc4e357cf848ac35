"""Cost accounting: per-trial device-seconds from epochs, per-configuration table, Pareto front."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports.cost import cost_table, fmt_cost, pareto_front, sweep_total, trial_costs


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


def test_the_report_shows_cost_and_power(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    cost = md.split("## Cost", 1)[1].split("\n## ", 1)[0]
    trials = pd.read_parquet(report_dir / "trials.parquet")
    assert trials["device_seconds"].gt(0).all()
    assert "Sweep total: **" in cost and "CPU-s" in cost and "plots/pareto_cost.png" in cost
    assert (report_dir / "plots/pareto_cost.png").is_file()
    power = md.split("## Seed power", 1)[1].split("\n## ", 1)[0]
    assert "repeats per configuration**" in power and "seed SD (points)" in power


def test_a_collapsed_configuration_is_never_on_the_front() -> None:
    trials, epochs = tables()
    trials.loc[trials["trial_id"] == "d", "collapsed"] = True  # the best kNN, but a collapsed teacher
    table = cost_table(trials, epochs, ["teacher_temp"])
    assert sorted(table.loc[pareto_front(table), "teacher_temp"]) == [0.02, 0.04]


def test_the_cost_table_ranks_by_the_specs_metric_and_mode() -> None:
    """reports/cost.py ranks with the one rule: teacher_entropy, lower first, is not kNN's order."""
    trials, epochs = tables()
    trials["teacher_entropy"] = [5.0, 5.2, 3.0, 6.0]
    table = cost_table(trials, epochs, ["teacher_temp"], metric="teacher_entropy", mode="min")
    assert list(table["teacher_temp"]) == [0.02, 0.04, 0.1] and list(table["value"]) == [3.0, 5.1, 6.0]
    # cheapest is also lowest: it alone is on the front when lower is better
    assert table.loc[pareto_front(table, "min"), "teacher_temp"].tolist() == [0.02]
