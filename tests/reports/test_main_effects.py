"""Which parameters matter (reports.main_effects): main effects of grids and one-factor ablations on
hand-computed trial tables, their verdicts, and where the report shows the section."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as sps

from reports import main_effects as me
from reports.analysis import analyse
from reports.main_effects import answer, effects_table, main_effects, verdict


def trials_table(rows: list[tuple[dict, int, float, str]], baseline: dict | None = None) -> pd.DataFrame:
    """One trial per ``(params, seed, value, status)``; a point per distinct ``params``, the one equal to
    ``baseline`` recorded as the sweep's baseline."""
    keys: list[dict] = []
    out = []
    for i, (params, seed, value, status) in enumerate(rows):
        if params not in keys:
            keys.append(params)
        out.append({"trial_id": f"t{i}", "point": keys.index(params), "seed": seed, "repeat": seed,
                    "knn_top1": value, "knn_epoch": 1, "epochs_done": 1, "epochs_planned": 1,
                    "status": status, "collapsed": status == "collapsed", "is_baseline": params == baseline,
                    **params})
    df = pd.DataFrame(out)
    df["collapsed"] = df["collapsed"].astype("boolean")
    return df


def grid(values: dict[tuple[int, str], list[float]]) -> list[tuple[dict, int, float, str]]:
    return [({"a": a, "b": b}, seed, v, "completed")
            for (a, b), vs in values.items() for seed, v in enumerate(vs)]


GRID = {"params": ["a", "b"], "algorithm": "grid"}
# a 2 x 2 grid, seeds 0 and 1: configuration means 11, 15, 20.5, 24.5
TWO_BY_TWO = {(1, "x"): [10.0, 12.0], (1, "y"): [14.0, 16.0], (2, "x"): [20.0, 21.0], (2, "y"): [22.0, 27.0]}
T1 = sps.t.ppf(0.975, 1)  # the 95% t quantile of 2 seeds


def test_a_grids_main_effect_is_the_spread_of_its_marginal_means() -> None:
    """a=1: (11 + 15) / 2 = 13, a=2: (20.5 + 24.5) / 2 = 22.5, spread 9.5; seed by seed a=2 minus a=1 is
    (21 - 12, 24 - 14) = (9, 10): SD 0.707, so ± t(0.975, 1) x 0.707 / sqrt 2. b: y 19.75, x 15.75,
    spread 4.0; seed by seed (18 - 15, 21.5 - 16.5) = (3, 5): ± t x 1.414 / sqrt 2."""
    effects = main_effects(analyse(trials_table(grid(TWO_BY_TWO)), GRID))
    assert [e.param for e in effects] == ["a", "b"]  # ranked by spread
    a, b = effects
    assert [(lv.value, lv.mean) for lv in a.levels] == [(2, 22.5), (1, 13.0)]  # best first
    assert a.spread == pytest.approx(9.5) and a.half == pytest.approx(T1 * math.sqrt(0.5) / math.sqrt(2))
    assert a.best.replicates == [21.0, 24.0] and a.worst.replicates == [12.0, 14.0]
    assert [(lv.value, lv.mean) for lv in b.levels] == [("y", 19.75), ("x", 15.75)]
    assert b.spread == pytest.approx(4.0) and b.half == pytest.approx(T1 * math.sqrt(2) / math.sqrt(2))
    assert a.settings == a.of_settings == 2 and not a.missing


def test_lower_is_better_ranks_the_lowest_mean_best() -> None:
    result = analyse(trials_table(grid(TWO_BY_TWO)).rename(columns={"knn_top1": "loss"}),
                     {**GRID, "metric": "loss", "mode": "min"})
    a = main_effects(result)[0]
    assert (a.best.value, a.worst.value, a.spread) == (1, 2, pytest.approx(9.5))


def test_a_configuration_without_a_counted_trial_drops_its_setting_for_every_value() -> None:
    """a=2, b=y errored: a's means compare a=1 and a=2 at b=x only (11 against 20.5), not a=1 over x and y
    against a=2 over x alone, which would mix b's effect into a's."""
    rows = grid(TWO_BY_TWO)
    rows = [(p, s, v, "errored" if p == {"a": 2, "b": "y"} else st) for p, s, v, st in rows]
    trials = trials_table(rows)
    result = analyse(trials, GRID)
    a, b = main_effects(result)
    assert [(lv.value, lv.mean) for lv in a.levels] == [(2, 20.5), (1, 11.0)] and a.spread == 9.5
    assert (a.settings, a.of_settings, a.missing) == (1, 2, ["a=2, b=y"])
    assert [(lv.value, lv.mean) for lv in b.levels] == [("y", 15.0), ("x", 11.0)]  # at a=1 alone
    said = " ".join(me.notes(main_effects(result), result, trials, me.Importance()))
    assert "Not entered: 2 errored trials, without a counted kNN top-1 (listed under Trials)." in said
    assert "a: its means average 1 of the 2 settings of the other parameters, those every value of it ran; " \
           "no counted trial at a=2, b=y." in said


ABLATION = {"params": ["teacher_temp", "out_dim"], "algorithm": "ablation"}
BASE = {"teacher_temp": 0.04, "out_dim": 1024}


def ablation_rows() -> list[tuple[dict, int, float, str]]:
    """Baseline 69.5/69.7/69.6; teacher_temp 0.02 2.9 lower on every seed (+-0.1), 0.08 collapsed to 0.1;
    out_dim 4096 0.2 higher on seeds 0 and 1, 0.2 lower on seed 2."""
    points = [(BASE, [69.5, 69.7, 69.6], "completed"),
              ({**BASE, "teacher_temp": 0.02}, [66.6, 66.8, 66.7], "completed"),
              ({**BASE, "teacher_temp": 0.08}, [0.1, 0.1, 0.1], "collapsed"),
              ({**BASE, "out_dim": 4096}, [69.7, 69.9, 69.4], "completed")]
    return [(p, seed, v, status) for p, vs, status in points for seed, v in enumerate(vs)]


def test_a_one_factor_ablation_reads_each_line_against_its_baseline() -> None:
    """out_dim=1024 is the baseline alone, not also the teacher_temp variants (their 0.1 of a collapse
    would make out_dim's spread 23 points); teacher_temp's spread runs to its collapsed value."""
    result = analyse(trials_table(ablation_rows(), BASE), ABLATION)
    temp, out_dim = main_effects(result)
    assert [lv.value for lv in temp.levels] == [0.04, 0.02, 0.08]
    assert temp.spread == pytest.approx(69.5) and temp.worst.failed == {"collapsed": 3}
    assert temp.working_spread() == pytest.approx(2.9)
    assert [(lv.value, lv.points) for lv in out_dim.levels] == [(4096, [3]), (1024, [0])]
    assert out_dim.spread == pytest.approx(0.0667, abs=1e-4)
    table = effects_table(main_effects(result), "knn_top1", baseline=result.reference)
    assert table["best value (mean)"].tolist() == ["0.04 (baseline, 69.60)", "4096 (69.67)"]
    assert table["worst value (mean)"].tolist() == ["0.08 (0.10; collapsed 3/3)", "1024 (baseline, 69.60)"]
    assert table.columns.tolist() == ["parameter", "main effect (points)", "best value (mean)",
                                      "worst value (mean)", "verdict"]


def test_the_verdict_says_beyond_or_within_seed_noise_with_its_test() -> None:
    a, b = main_effects(analyse(trials_table(grid(TWO_BY_TWO)), GRID))
    p_a = sps.ttest_1samp([9.0, 10.0], 0).pvalue  # the seed-by-seed gaps of a, of b
    p_b = sps.ttest_1samp([3.0, 5.0], 0).pvalue
    assert p_a < 0.05 < p_b
    assert (a.kind, b.kind) == (me.BEYOND, me.WITHIN)
    assert verdict(a) == f"matters: beyond seed noise (paired p={p_a:.2g}, 2 seeds)"
    assert verdict(b) == (f"within seed noise (paired p={p_b:.2g}, 2 seeds): no sign it matters at these "
                          "repeats")
    assert answer([a, b], "knn_top1") == ("**Beyond seed noise: a (9.50 points).** Within seed noise: b "
                                          "(4.00 points).")


def test_the_verdict_names_a_collapsed_value_and_the_spread_of_the_others() -> None:
    temp, _ = main_effects(analyse(trials_table(ablation_rows(), BASE), ABLATION))
    assert verdict(temp).startswith("matters: beyond seed noise (paired p=")
    assert verdict(temp).endswith("3 seeds); teacher_temp=0.08 collapsed, the other values span 2.90 points")
    assert answer([temp], "knn_top1") == "**Beyond seed noise: teacher_temp (69.50 points, 0.08 collapsed).**"


def test_without_repeats_the_verdict_says_it_cannot_tell() -> None:
    """One seed per configuration: a spread of 9 points is no more 'beyond' than one of 3"""
    one_seed = {k: v[:1] for k, v in TWO_BY_TWO.items()}
    a, b = main_effects(analyse(trials_table(grid(one_seed)), GRID))
    assert (a.kind, b.kind) == (me.NO_REPEATS, me.NO_REPEATS) and math.isnan(a.half)
    assert verdict(a) == "can't tell: no seed repeats"
    assert answer([a, b], "knn_top1") == (
        "No seed-noise verdict (one seed per configuration, so no seed noise to hold a spread against; "
        "`--set repeats=3` would give one), ranked by spread alone: a (9.00 points), b (3.00 points).")


def test_where_every_configuration_collapsed_there_is_no_verdict() -> None:
    rows = [(p, s, v / 10, "collapsed") for p, s, v, _ in grid(TWO_BY_TWO)]
    a, b = main_effects(analyse(trials_table(rows), GRID))
    assert (a.kind, b.kind) == (me.FAILURES_ONLY, me.FAILURES_ONLY)
    assert verdict(a) == "no verdict (all collapsed)"
    assert "beyond" not in answer([a, b], "knn_top1").replace("Beyond", "")


def test_parameters_drawn_together_are_not_separable() -> None:
    """An Optuna sweep: every configuration its own a and b. Their spread would be the configurations'."""
    drawn = [(1, "x", 10.0), (2, "y", 20.0), (3, "z", 15.0)]
    rows = [({"a": a, "b": b}, 0, v, "completed") for a, b, v in drawn]
    effects = main_effects(analyse(trials_table(rows), {**GRID, "algorithm": "optuna"}))
    assert [(e.param, e.kind) for e in effects] == [("a", me.NOT_SEPARABLE), ("b", me.NOT_SEPARABLE)]
    assert all(math.isnan(e.spread) and not e.estimated for e in effects)
    assert effects_table(effects, "knn_top1").empty


def document(tmp_path: Path, algorithm: str, rows: list, space: dict, baseline: dict | None = None) -> str:
    from reports.render import sweep_document
    from reports.sweepdir import SweepDir

    sweep = SweepDir(tmp_path, {"name": "s", "space": space, "search": {"algorithm": algorithm}})
    trials = trials_table(rows, baseline).assign(best_knn_top1=lambda t: t["knn_top1"], stop_reason="")
    epochs = pd.DataFrame({"trial_id": trials["trial_id"], "epoch": 1, "knn_top1": trials["knn_top1"],
                           "loss": 6.8})
    return sweep_document(sweep, trials, epochs, tmp_path, planned=len(trials)).markdown(tmp_path)


CHOICES = {"a": {"type": "choice", "values": [1, 2]}, "b": {"type": "choice", "values": ["x", "y"]}}


@pytest.mark.parametrize("algorithm", ["grid", "ablation"])
def test_grids_and_ablations_get_the_section(tmp_path: Path, algorithm: str) -> None:
    if algorithm == "grid":
        md = document(tmp_path, "grid", grid(TWO_BY_TWO), CHOICES)
        first = "**Beyond seed noise: a (9.50 points).** Within seed noise: b (4.00 points)."
    else:
        space = {"teacher_temp": {"type": "choice", "values": [0.02, 0.04, 0.08]},
                 "out_dim": {"type": "choice", "values": [1024, 4096]}}
        md = document(tmp_path, "ablation", ablation_rows(), space, BASE)
        first = ("**Beyond seed noise: teacher_temp (69.50 points, 0.08 collapsed).** Within seed noise: "
                 "out_dim")
    section = md.split(f"\n## {me.HEADING}\n\n")[1].split("\n## ")[0]
    assert section.startswith(first)
    header = "| parameter | main effect (points) | best value (mean) | worst value (mean) | verdict |"
    assert header in section
    assert "![main effect of each parameter](plots/main_effects.png)" in section
    assert (tmp_path / "plots" / "main_effects.png").is_file()
    assert f"For this sweep, see {me.HEADING} above." in md  # no Optuna study: the importance points here


def test_where_optuna_importances_answer_the_section_is_left_out(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from reports import render
    from reports.importance import Importance
    from reports.render import sections

    monkeypatch.setattr(render, "param_importance", lambda *_: Importance(
        values={"fANOVA": {"a": 0.8, "b": 0.2}}, n_trials=8))
    md = document(tmp_path, "optuna", grid(TWO_BY_TWO), CHOICES)
    assert f"## {me.HEADING}" not in md and "## Parameter importance" in md
    assert me.HEADING not in sections(is_ablation=False, importances=True)
    assert me.HEADING in sections(is_ablation=False)


def test_an_optuna_sweep_without_importances_says_why_nothing_separates(tmp_path: Path) -> None:
    rows = [({"a": a, "b": b}, 0, v, "completed") for a, b, v in [(1, "x", 10.0), (2, "y", 20.0)]]
    md = document(tmp_path, "optuna", rows, CHOICES)
    section = md.split(f"\n## {me.HEADING}\n\n")[1].split("\n## ")[0]
    assert section.startswith("No parameter's main effect can be told from these configurations:")
    assert "*Not separable: a, b. No setting of the other parameters was run with two of their values" \
        in section
    assert "Optuna's importances: not computed, no optuna.db in the sweep folder" in section
    assert "| parameter |" not in section
