"""The one ranking rule (reports.ranking): counted statuses, collapse last, the spec's metric and mode."""

from __future__ import annotations

import pandas as pd

from reports.analysis import analyse, leaderboard
from reports.ranking import best_point, only_failures_trained, rank_points


def table(rows: list[tuple[int, float, str, bool, float]]) -> pd.DataFrame:
    """(point, knn_top1, status, collapsed, teacher_entropy) per trial."""
    return pd.DataFrame([{"trial_id": f"t{i}", "point": p, "teacher_temp": 0.01 * (p + 1), "knn_top1": k,
                          "status": s, "collapsed": c, "teacher_entropy": h, "is_baseline": p == 0}
                         for i, (p, k, s, c, h) in enumerate(rows)]).astype({"collapsed": "boolean"})


def test_a_trial_asha_stopped_early_is_never_best_over_a_completed_one() -> None:
    trials = table([(0, 94.44, "stopped early", False, 5.0), (1, 90.0, "completed", False, 4.0),
                    (2, 99.0, "running", False, 3.0), (3, 99.5, "errored", False, 3.0)])
    best, partial = best_point(trials, ["teacher_temp"])
    assert best["point"] == 1 and not partial


def test_collapsed_and_flagged_rank_last_and_mode_min_ranks_lowest_first() -> None:
    trials = table([(0, 97.0, "flagged", True, 6.9), (1, 95.0, "completed", False, 4.0),
                    (2, 96.0, "completed", False, 2.0), (3, 98.0, "collapsed", True, 0.1)])
    points, _ = rank_points(trials, ["teacher_temp"], "knn_top1", "max")
    assert points["point"].tolist() == [2, 1, 3, 0]
    points, _ = rank_points(trials, ["teacher_temp"], "teacher_entropy", "min")
    assert points["point"].tolist() == [2, 1, 3, 0]  # 2.0 < 4.0 among working; collapsed last
    points, _ = rank_points(trials, ["teacher_temp"], "teacher_entropy", "max")
    assert points["point"].tolist()[:2] == [1, 2]


def test_a_diverged_configuration_ranks_after_every_working_one() -> None:
    """Its loss went non-finite after its last kNN: the report's headline read '**Best: teacher_temp=0.02**
    with kNN top-1 50.00 %' over a configuration that completed at 45 %; where every ranked configuration
    failed, the headline says so, naming the divergence."""
    trials = table([(0, 45.0, "completed", False, 4.0), (1, 50.0, "diverged", False, 4.0)])
    best, _ = best_point(trials, ["teacher_temp"])
    assert best["point"] == 0
    result = analyse(trials, {"params": ["teacher_temp"], "algorithm": "grid"})
    assert result.headline().startswith("**Best: teacher_temp=0.01**")
    assert "Configurations with a diverged trial are ranked last" in " ".join(result.notes)
    trials = table([(0, 45.0, "collapsed", True, 4.0), (1, 50.0, "diverged", False, 4.0)])
    headline = analyse(trials, {"params": ["teacher_temp"], "algorithm": "grid"}).headline()
    assert headline.startswith("**No working configuration: every ranked configuration has a collapsed or "
                               "diverged trial**") and "(repeats: 1, 1 diverged)" in headline


def test_where_every_ranked_configuration_diverged_the_headline_names_that_alone() -> None:
    """Both configurations diverged after their last kNN: the headline gave as the cause "a collapsed
    teacher, see Collapse diagnostics, or a loss that went non-finite", a collapse no trial had."""
    trials = table([(0, 45.0, "diverged", False, 4.0), (1, 50.0, "diverged", False, 4.0)])
    headline = analyse(trials, {"params": ["teacher_temp"], "algorithm": "grid"}).headline()
    assert headline.startswith("**No working configuration: every ranked configuration has a diverged "
                               "trial** (its loss went NaN or inf, its stop reason under Trials says when "
                               "and what to try;") and "collapse" not in headline.lower()


def test_partial_only_when_nothing_finished() -> None:
    trials = table([(0, 50.0, "running", False, 1.0), (1, 60.0, "stopped early", False, 1.0)])
    best, partial = best_point(trials, ["teacher_temp"])
    assert partial and best["point"] == 1


def test_a_trial_that_failed_is_never_best_not_even_partially() -> None:
    """Every trial ended oom, errored or storage_full after training an epoch: the summary, the live view,
    `ablate ls` and the report named the best of them, "partial: no trial ran its schedule", and the
    report added that "no trial has finished yet"."""
    failed = table([(0, 36.25, "errored", False, 1.0), (1, 35.0, "oom", False, 1.0),
                    (2, 40.0, "storage_full", False, 1.0)])
    assert best_point(failed, ["teacher_temp"]) == (None, False)
    assert only_failures_trained(failed)
    result = analyse(failed, {"params": ["teacher_temp"], "algorithm": "grid"})
    assert result.headline().startswith("No best configuration") and not result.partial
    still = table([(0, 36.25, "errored", False, 1.0), (1, 30.0, "interrupted", False, 1.0)])
    best, partial = best_point(still, ["teacher_temp"])  # one on its way is best so far, marked partial
    assert best["point"] == 1 and partial and not only_failures_trained(still)


def test_report_honours_mode_and_marks_configurations_below_raw_pixels() -> None:
    trials = table([(0, 97.0, "completed", False, 4.0), (1, 99.0, "completed", False, 2.0)])
    trials["pixel_knn_top1"] = 98.0
    result = analyse(trials, {"params": ["teacher_temp"], "algorithm": "grid"})
    board = leaderboard(result)
    assert board["beats raw pixels"].tolist() == ["yes", "no (-1.00)"]
    result = analyse(trials, {"params": ["teacher_temp"], "algorithm": "grid", "metric": "teacher_entropy",
                              "mode": "min"})
    assert result.points["point"].tolist() == [1, 0] and "teacher_entropy" in result.headline()
    assert "beats raw pixels" not in leaderboard(result)  # the pixel reference is a kNN figure


def test_a_spec_without_mode_ranks_in_its_metrics_direction(tmp_path) -> None:
    """The reports defaulted to max where a sweep's spec.yaml (hand-written, or an older ablate's)
    has a loss metric and no mode; the spec's own rule says min (sweep_format.metrics)."""
    from reports.sweepdir import SweepDir

    spec = {"name": "s", "space": {"teacher_temp": {"type": "choice", "values": [0.01, 0.02]}}}
    assert SweepDir(tmp_path, {**spec, "metric": "loss"}).mode == "min"
    assert SweepDir(tmp_path, {**spec, "metric": "loss", "mode": "max"}).mode == "max"
    assert SweepDir(tmp_path, spec).mode == "max" and SweepDir(tmp_path, spec).metric == "knn_top1"
    trials = table([(0, 50.0, "completed", False, 1.0), (1, 60.0, "completed", False, 1.0)])
    trials["loss"] = trials["knn_top1"] / 10
    assert analyse(trials, {"params": ["teacher_temp"], "metric": "loss"}).points["point"].tolist() == [0, 1]


def test_a_folders_space_is_read_by_the_rules_the_sweep_ran_with(tmp_path) -> None:
    """The reports had their own reading of a space entry: a grid over a stepped range (run value by
    value) was shown as continuous, and a bundle's values were its {label, set} mappings."""
    from ablate.sweep_spec import load_spec
    from reports.sweepdir import SweepDir
    from tests.helpers import write_spec

    text = """
name: s
space:
  teacher_temp: {type: float, low: 0.02, high: 0.06, step: 0.02}
  out_dim: {type: int, low: 256, high: 1024, log: true}
  split:
    type: choice
    values:
      - {label: s=0.24, set: {global_crops_scale: [0.24, 1.0], local_crops_scale: [0.05, 0.24]}}
      - {label: s=0.48, set: {global_crops_scale: [0.48, 1.0], local_crops_scale: [0.05, 0.48]}}
search: {algorithm: SEARCH}
"""
    ran = load_spec(write_spec(tmp_path, text.replace("SEARCH", "grid").replace(
        "{type: int, low: 256, high: 1024, log: true}", "{type: choice, values: [256, 1024]}")))
    spec = {"search": {"algorithm": "grid"}, "space": {n: d.as_dict() for n, d in ran.space.items()}}
    folder = SweepDir(tmp_path, spec)
    assert folder.values_of("teacher_temp") == ran.space["teacher_temp"].grid_values() == [0.02, 0.04, 0.06]
    assert folder.values_of("split") == ["s=0.24", "s=0.48"] and folder.values_of("out_dim") == [256, 1024]
    assert folder.categorical_params == ["teacher_temp", "out_dim", "split"]
    sampled = SweepDir(tmp_path, {**spec, "search": {"algorithm": "optuna"}})
    assert sampled.categorical_params == ["out_dim", "split"]  # Optuna samples the stepped range
    optuna = load_spec(write_spec(tmp_path, text.replace("SEARCH", "optuna")))
    logged = SweepDir(tmp_path, {"space": {n: d.as_dict() for n, d in optuna.space.items()}})
    assert logged.log_params == ["out_dim"] and "out_dim" not in logged.categorical_params


def test_the_leaderboard_says_which_configuration_diverged() -> None:
    """A diverged configuration ranks last (rule 3), and its row said 'collapsed 0' and nothing else:
    the reader saw the best value ranked last with no reason. Its diverged repeats have a column
    wherever a shown configuration has one, and no column where none diverged."""
    trials = table([(0, 45.0, "completed", False, 4.0), (1, 50.0, "diverged", False, 4.0),
                    (2, 40.0, "collapsed", True, 6.9)])
    board = leaderboard(analyse(trials, {"params": ["teacher_temp"], "algorithm": "grid"}))
    assert board[["teacher_temp", "collapsed", "diverged"]].values.tolist() == [
        ["0.01", 0, 0], ["0.02", 0, 1], ["0.03", 1, 0]]
    calm = leaderboard(analyse(trials[trials["status"] != "diverged"],
                               {"params": ["teacher_temp"], "algorithm": "grid"}))
    assert "diverged" not in calm.columns and calm["collapsed"].tolist() == [0, 1]
