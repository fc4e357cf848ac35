"""Seed-power advice: exact t-test power, the repeats needed, and what one repeat can (not) say."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reports.analysis import leaderboard
from reports.power import pooled_sd, repeats_needed, seed_power, t_test_power
from reports.stats import point_summary


@pytest.mark.parametrize(("d", "n"), [(0.5, 64), (0.8, 26), (1.0, 17), (2.0, 6)])
def test_repeats_needed_match_the_standard_tables(d: float, n: int) -> None:
    # Cohen (1988) / G*Power, two-sided alpha 0.05, power 0.8, n per group
    assert repeats_needed(diff=d, sd=1.0) == n
    assert t_test_power(d, n) >= 0.8 > t_test_power(d, n - 1)


def test_no_difference_needs_infinitely_many_and_no_noise_needs_two() -> None:
    assert repeats_needed(0.0, 1.0) is None
    assert repeats_needed(0.5, 0.0) == 2
    assert repeats_needed(0.001, 1.0) is None  # beyond MAX_REPEATS


def test_pooled_sd_weights_by_degrees_of_freedom() -> None:
    sd, dof = pooled_sd([[1.0, 3.0], [10.0, 10.0, 13.0], [5.0]])
    assert dof == 1 + 2 and sd == pytest.approx(math.sqrt((2.0 + 6.0) / 3))


def points(values: dict[float, list[float]]) -> pd.DataFrame:
    trials = pd.DataFrame([{"point": i, "teacher_temp": t, "knn_top1": v, "collapsed": False}
                           for i, (t, vs) in enumerate(values.items()) for v in vs])
    summary = point_summary(trials, ["teacher_temp"])
    return summary.sort_values("mean", ascending=False)


def test_advice_from_repeats() -> None:
    advice = seed_power(points({0.04: [70.0, 71.0, 72.0], 0.02: [69.0, 70.0, 71.0], 0.1: [50.0, 50.5, 51.0]}),
                        ["teacher_temp"])
    # best 71 vs runner-up 70, pooled SD 1.0 -> d = 1 -> 17 repeats per configuration
    assert "best configuration (teacher_temp=0.04)" in advice.text
    assert "runner-up (teacher_temp=0.02) by 1.00 points" in advice.text
    assert "Seed SD 1.00 points" in advice.text
    assert "**17 repeats per configuration**; this sweep has 3" in advice.text
    assert list(advice.table["seed SD (points)"]) == ["1.00", "1.00", "0.50"]


def test_the_table_writes_means_and_sds_as_the_leaderboard_and_the_advice_do() -> None:
    """A 2 x 2 grid: the seed-power table wrote 36.2 beside the leaderboard's 36.20, and a seed SD of
    1.375 where the advice above it said 'SD 1.38 points'; one repeat's SD stays '–'."""
    advice = seed_power(points({0.04: [36.9, 35.5], 0.02: [36.2], 0.1: [33.0, 33.00001]}), ["teacher_temp"])
    assert list(advice.table["mean kNN top-1 (%)"]) == ["36.20", "36.20", "33.00"]
    assert list(advice.table["seed SD (points)"]) == ["0.99", "–", "7.1e-06"]


def test_one_repeat_gives_no_estimate_but_others_can_lend_theirs() -> None:
    alone = seed_power(points({0.04: [71.0], 0.02: [70.0]}), ["teacher_temp"])
    assert "no estimate of the seed standard deviation, so no power statement" in alone.text
    assert "repeats per configuration**" not in alone.text
    lent = seed_power(points({0.04: [71.0], 0.02: [70.0], 0.1: [50.0, 52.0]}), ["teacher_temp"])
    assert "pooled over all configurations with 2+ repeats" in lent.text
    assert "Seed SD 1.41 points" in lent.text and "1 degrees of freedom" in lent.text


@pytest.mark.parametrize(("d", "n"), [(0.5, 34), (1.0, 10)])
def test_paired_repeats_needed_match_the_standard_tables(d: float, n: int) -> None:
    # G*Power, paired (matched pairs) t-test, two-sided alpha 0.05, power 0.8
    assert repeats_needed(diff=d, sd=1.0, paired=True) == n


def test_shared_seeds_give_the_paired_advice() -> None:
    trials = pd.DataFrame([{"point": i, "teacher_temp": t, "knn_top1": v, "collapsed": False, "seed": s}
                           for i, (t, vs) in enumerate({0.04: [70.0, 72.0, 71.0],
                                                        0.02: [69.0, 70.8, 70.2]}.items())
                           for s, v in enumerate(vs)])
    summary = point_summary(trials, ["teacher_temp"]).sort_values("mean", ascending=False)
    advice = seed_power(summary, ["teacher_temp"])
    # seed SD ~1 in each configuration (17 repeats unpaired), but the gap is 1.0 +- 0.2 seed by seed
    assert "Over the 3 seeds both ran, their gap varies by SD 0.20 points" in advice.text
    assert "paired t-test over shared seeds" in advice.text
    assert "**3 repeats per configuration**; this sweep has enough" in advice.text


def test_the_table_writes_values_as_every_other_table_does() -> None:
    """A grid over norm_last_layer: the seed-power table said True/False where the leaderboard, the
    ablation table and the cost table say true/false."""
    trials = pd.DataFrame([{"point": i, "norm_last_layer": b, "knn_top1": v, "collapsed": False}
                           for i, (b, vs) in enumerate({True: [70.0, 71.0], False: [69.0, 70.0]}.items())
                           for v in vs])
    summary = point_summary(trials, ["norm_last_layer"]).sort_values("mean", ascending=False)
    assert list(seed_power(summary, ["norm_last_layer"]).table["norm_last_layer"]) == ["true", "false"]


def test_a_difference_too_small_for_two_decimals_is_written_with_its_digits() -> None:
    """Two loss-ranked configurations 4e-06 apart on each of 2 seeds (norm_last_layer true and false,
    frozen last layer): the advice read 'leads the runner-up by 0.00. ... their gap varies by SD 0.00.
    ... needs **4 repeats per configuration**', a difference of nothing that 4 repeats would show."""
    from reports.analysis import analyse

    losses = {False: [5.461587, 5.440184], True: [5.461597, 5.440190]}
    trials = pd.DataFrame([{"trial_id": f"t{i}{s}", "point": i, "norm_last_layer": b, "loss": v, "seed": s,
                            "collapsed": False, "status": "completed"}
                           for i, (b, vs) in enumerate(losses.items())
                           for s, v in enumerate(vs)]).astype({"collapsed": "boolean"})
    result = analyse(trials, {"params": ["norm_last_layer"], "metric": "loss", "mode": "min"})
    text = seed_power(result.points, ["norm_last_layer"], "loss").text
    assert "(norm_last_layer=true) by 8e-06." in text and "their gap varies by SD 2.8e-06." in text
    assert "-8e-06 vs the runner-up norm_last_layer=true" in result.headline()
    assert list(leaderboard(result)["Δ vs best"]) == ["(best)", "+8e-06"]
    assert seed_power(points({0.04: [70.0, 71.0, 72.0], 0.02: [70.0, 71.0, 72.0]}),
                      ["teacher_temp"]).text.count("by 0.00 points") == 1  # no difference stays 0.00


def test_a_sweep_where_every_configuration_collapsed_has_no_effect_to_power() -> None:
    """Every trial collapsed (kNN 10-11 %, chance level): the advice read 'The best configuration
    (teacher_temp=0.04) leads the runner-up (teacher_temp=0.02) by 0.95 points. ... needs **2 repeats per
    configuration**; this sweep has enough', sizing repeats for a gap between two failures."""
    from reports.analysis import analyse

    values = {0.02: [10.0, 10.4], 0.04: [11.0, 11.3]}
    trials = pd.DataFrame([{"trial_id": f"t{i}{s}", "point": i, "teacher_temp": t, "knn_top1": v, "seed": s,
                            "knn_epoch": 1, "collapsed": True, "status": "collapsed"}
                           for i, (t, vs) in enumerate(values.items()) for s, v in enumerate(vs)])
    result = analyse(trials.astype({"collapsed": "boolean"}), {"params": ["teacher_temp"]})
    advice = seed_power(result.points, ["teacher_temp"])
    assert advice.text.startswith("Every configuration has a collapsed trial (see Collapse diagnostics): "
                                  "no configuration trained a working DINO teacher, so there is no effect "
                                  "to power.")
    assert "repeats per configuration" not in advice.text and "leads the runner-up" not in advice.text
    assert list(advice.table["repeats"]) == [2, 2]  # the facts stay
    one_working = trials.assign(collapsed=trials["point"] == 0, status=["collapsed"] * 2 + ["completed"] * 2)
    result = analyse(one_working.astype({"collapsed": "boolean"}), {"params": ["teacher_temp"]})
    assert "leads the runner-up" in seed_power(result.points, ["teacher_temp"]).text


def test_seed_repeats_of_one_configuration_say_what_they_can_detect() -> None:
    """A sweep of one configuration x 3 seeds, run to learn the seed noise: the section said 'Fewer than
    two configurations have a final kNN top-1: nothing to compare' and nothing of the noise it measured.
    It now gives the SD and the smallest difference 3, 5 and 10 repeats detect, which repeats_needed
    turns back into those repeats."""
    from reports.power import detectable_difference

    advice = seed_power(points({0.04: [33.0, 34.0, 32.6]}), ["teacher_temp"])
    sd = float(np.std([33.0, 34.0, 32.6], ddof=1))
    assert f"Its 3 repeats vary by seed SD {sd:.2f} points (2 degrees of freedom)" in advice.text
    for n in (3, 5, 10):
        size = detectable_difference(sd, n)
        assert f"{n} repeats: {size:.2f} points" in advice.text
        assert repeats_needed(size * 1.001, sd) == n and repeats_needed(size * 0.999, sd) == n + 1
    single = seed_power(points({0.04: [33.0]}), ["teacher_temp"])
    assert single.text.startswith("Fewer than two configurations")  # one repeat: no noise to speak of


def test_a_tie_on_every_seed_advises_no_number_of_repeats() -> None:
    """A one-factor ablation on digit_scenes, 2 seeds, whose configurations all ended at 96.88 on each
    seed: the advice read 'the gap is the same on every seed. Detecting a difference of that size ...
    needs **2 repeats per configuration**; this sweep has enough', for a difference of 0.00 points."""
    trials = pd.DataFrame([{"point": i, "teacher_temp": t, "knn_top1": v, "collapsed": False, "seed": s}
                           for i, t in enumerate((0.03, 0.02)) for s, v in enumerate((93.75, 100.0))])
    summary = point_summary(trials, ["teacher_temp"]).sort_values("mean", ascending=False)
    text = seed_power(summary, ["teacher_temp"]).text
    assert "by 0.00 points. Over the 2 seeds both ran, the gap is the same on every seed." in text
    assert "A tie leaves no difference to detect, so no number of repeats follows from it." in text
    assert "repeats per configuration" not in text and "has enough" not in text
