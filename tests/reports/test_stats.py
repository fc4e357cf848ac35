"""Mean ± 95% CI, the paired and Welch tests, and the leaderboard/ablation logic on hand-made trial tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats as sps

from reports.analysis import ablation_tables, analyse, leaderboard
from reports.stats import BEYOND, WITHIN, mean_ci, noise_verdict, paired_p, verdict_kind, welch_p


def test_mean_ci_is_a_t_interval() -> None:
    mean, half, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(sps.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))  # sd = 1
    assert math.isnan(mean_ci([5.0])[1]) and mean_ci([])[2] == 0
    assert mean_ci([1.0, float("nan"), 3.0])[:1] == (2.0,)


def test_welch_needs_two_repeats_per_side() -> None:
    a, b = [69.1, 69.7, 69.4], [66.5, 66.9, 66.2]
    assert welch_p(a, b) == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)
    assert welch_p(a, [70.0]) is None
    assert noise_verdict(a, b).startswith("yes (p=")
    assert noise_verdict(a, [69.2, 69.6]).startswith("no (p=")
    assert noise_verdict([1.0], [2.0]) == "n/a"


@pytest.mark.parametrize(("a", "b", "seeds", "kind"), [
    ([69.1, 69.7, 69.4], [66.5, 66.9, 66.2], None, "beyond"),                  # Welch, p < 0.05
    ([69.1, 69.7, 69.4], [69.2, 69.6], None, "within"),                         # Welch, p >= 0.05
    ([69.1, 69.7, 69.4], [66.5, 66.9, 66.2], [0, 1, 2], "beyond"),              # paired
    ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0, 1, 2], "within"),                    # the same gap, 0, each seed
    ([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], [0, 1, 2], "beyond"),                    # the same gap, 1, each seed
    ([5.0, 5.0], [5.0, 5.0], None, "within"),                                   # no variance, same means
    ([5.0, 5.0], [6.0, 6.0], None, "beyond"),                                   # no variance, other means
    ([1.0], [2.0], None, ""),                                                   # untested
])
def test_every_noise_verdict_reads_back_as_its_kind(a: list, b: list, seeds: list | None, kind: str) -> None:
    """The verdict is written once (noise_verdict) and read back once (verdict_kind): the main-effects
    kinds, the collapse gap's count and the plot's fills all take it from there. They read 'yes'/'no'
    prefixes each on its own, and a reworded verdict would have read as untested in silence."""
    verdict = noise_verdict(a, b, seeds, seeds)
    assert verdict_kind(verdict) == kind, verdict
    assert verdict.split(" ")[0] == {"beyond": "yes", "within": "no", "": "n/a"}[kind]  # the words stay


def test_the_main_effects_plot_fills_every_verdict_kind() -> None:
    from reports.plots import VERDICT_STYLES

    assert set(VERDICT_STYLES) == {BEYOND, WITHIN, ""}


def test_shared_seeds_are_compared_pair_by_pair() -> None:
    # The seed moves both points by ~2 points, the gap between them is 1.0 +- 0.05 on every seed:
    # Welch's test sees only the spread, the paired test sees the gap.
    a, b, seeds = [46.0, 42.0, 44.0], [45.0, 41.1, 42.95], [0, 1, 2]
    assert welch_p(a, b) > 0.5
    assert paired_p(a, seeds, b, seeds) == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert noise_verdict(a, b, seeds, seeds).startswith("yes (paired p=")
    assert noise_verdict(a, b, seeds, seeds).endswith(", 3 seeds)")
    # only the shared seeds pair (seed 2 of b is missing, seed 7 of a has no partner)
    expected = sps.ttest_rel(a[:2], b[:2]).pvalue
    assert paired_p(a + [50.0], seeds + [7], b[:2], seeds[:2]) == pytest.approx(expected)
    # fewer than 2 shared or unknown seeds: Welch's test over the repeats
    assert noise_verdict(a, b, [0, 1, 2], [3, 4, 5]).startswith("no (p=")
    assert noise_verdict(a, b, [None] * 3, [None] * 3).startswith("no (p=")


def trials_table(points: list[dict], values: list[list[float]],
                 statuses: list[str] | None = None, seeds: bool = False) -> pd.DataFrame:
    rows = []
    for i, (params, knn) in enumerate(zip(points, values, strict=True)):
        for r, v in enumerate(knn):
            rows.append({"trial_id": f"t{i}{r}", "point": i, "repeat": r, "knn_top1": v,
                         "status": "completed", "collapsed": v < 1, "is_baseline": i == 0, **params,
                         **({"seed": r} if seeds else {})})
    df = pd.DataFrame(rows)
    if statuses:
        df["status"] = statuses
    df["collapsed"] = df["collapsed"].astype("boolean")
    return df


ABLATION = {"params": ["teacher_temp", "out_dim"], "algorithm": "ablation"}
POINTS = [{"teacher_temp": 0.04, "out_dim": 1024}, {"teacher_temp": 0.02, "out_dim": 1024},
          {"teacher_temp": 0.08, "out_dim": 1024}, {"teacher_temp": 0.04, "out_dim": 4096}]
VALUES = [[69.5, 69.7, 69.6], [66.6, 66.8, 66.7], [0.1, 0.1, 0.1], [69.8]]


def test_ablation_deltas_are_to_the_baseline_point() -> None:
    result = analyse(trials_table(POINTS, VALUES), ABLATION)
    assert result.reference_kind == "baseline" and result.reference == 0
    tables = dict(ablation_tables(result))
    temp = tables["teacher_temp"]
    assert temp["teacher_temp"].tolist() == ["0.02", "0.04 (baseline)", "0.08"]  # sorted by value
    assert temp["Δ vs baseline"].tolist() == ["-2.90", "–", "-69.50"]
    assert temp["beyond seed noise"].iloc[0].startswith("yes (p=")  # no seeds recorded: Welch
    assert temp["teacher collapsed"].tolist() == ["no", "no", "collapsed (3/3)"]  # as the paper's 0.1
    out_dim = tables["out_dim"]
    assert out_dim["out_dim"].tolist() == ["1024 (baseline)", "4096"]
    assert out_dim["beyond seed noise"].tolist() == ["–", "n/a"]  # one repeat of 4096
    # the winner is out_dim 4096 (69.8 > 69.6): said with the margin to the baseline
    headline = result.headline()
    assert "Best: teacher_temp=0.04, out_dim=4096" in headline
    assert "+0.20 points vs the baseline" in headline and "vs the runner-up" in headline


def test_the_ablation_table_says_which_point_diverged() -> None:
    """Its 'teacher collapsed' column said 'no' of a point whose loss went non-finite, which ranking rule 3
    puts last like a collapse (the leaderboard and cost table have a 'diverged' column): a table of a
    line where a point diverged has one too, from the same failure counts."""
    statuses = ["completed"] * 3 + ["completed", "diverged", "completed"] + ["completed"] * 4
    tables = dict(ablation_tables(analyse(trials_table(POINTS, VALUES, statuses=statuses), ABLATION)))
    temp = tables["teacher_temp"]
    assert temp["teacher_temp"].tolist() == ["0.02", "0.04 (baseline)", "0.08"]
    assert temp["teacher collapsed"].tolist() == ["no", "no", "collapsed (3/3)"]
    assert temp["diverged"].tolist() == ["diverged (1/3)", "no", "no"]
    assert "diverged" not in tables["out_dim"].columns  # no point of its line diverged


def test_a_loss_ranked_sweep_is_written_in_its_own_units() -> None:
    """The headline and the seed-power advice wrote ' %' and 'points' after loss values, and the
    power table headed the means 'mean kNN top-1 (%)'."""
    from reports.power import seed_power

    trials = trials_table(POINTS, [[5.0, 5.1, 5.2], [4.0, 4.2, 4.1], [6.0, 6.1, 6.2], [4.5]])
    trials["loss"] = trials["knn_top1"]
    result = analyse(trials, {**ABLATION, "metric": "loss", "mode": "min"})
    headline = result.headline()
    assert "Best: teacher_temp=0.02, out_dim=1024** with loss 4.10" in headline
    assert "-1.00 vs the baseline (5.10 ± " in headline and "%" not in headline and "points" not in headline
    advice = seed_power(result.points, result.params, "loss")
    assert "by 0.40." in advice.text and "points" not in advice.text
    assert list(advice.table.columns[-2:]) == ["mean loss", "seed SD"]


def test_ablation_pairs_the_repeats_by_seed() -> None:
    # teacher_temp 0.02 is 0.4-0.6 below the baseline on every seed, within a seed spread of ~1
    values = [[69.5, 67.7, 68.6], [69.0, 67.1, 68.2], [0.1, 0.1, 0.1], [69.8]]
    tables = dict(ablation_tables(analyse(trials_table(POINTS, values, seeds=True), ABLATION)))
    verdicts = tables["teacher_temp"]["beyond seed noise"].tolist()
    assert verdicts[0].startswith("yes (paired p=") and verdicts[0].endswith(", 3 seeds)")
    assert tables["out_dim"]["beyond seed noise"].tolist() == ["–", "n/a"]  # one repeat: no pair, no Welch


def test_other_searches_compare_to_the_best_and_skip_unfinished_trials() -> None:
    trials = trials_table(POINTS, VALUES, statuses=["completed"] * 9 + ["errored"])
    result = analyse(trials, {"params": ["teacher_temp", "out_dim"], "algorithm": "optuna"})
    assert result.reference_kind == "best" and result.reference == 0  # the errored 69.8 does not count
    board = leaderboard(result)
    assert board["kNN top-1 (%)"].iloc[0].startswith("69.60 ± ")
    assert board["Δ vs best"].tolist() == ["(best)", "-2.90", "-69.50"]
    assert board["collapsed"].tolist() == [0, 0, 3]
    [(title, table)] = ablation_tables(result)
    assert title == "" and len(table) == 3  # the section's heading names it: no sub-heading repeating it


def test_headline_says_how_far_collapsed_configurations_fall_and_whether_beyond_noise() -> None:
    # the main job's sweep (temps.yaml, 5 configurations x seeds 0-2): two working, three collapsed
    points = [{"teacher_temp": t} for t in (0.0443, 0.0354, 0.0619, 0.0122, 0.0952)]
    values = [[50.65, 44.26, 43.43], [51.94, 39.35, 42.13], [35.28, 32.87, 35.74],
              [34.91, 33.15, 32.41], [35.93, 31.57, 32.69]]
    trials = trials_table(points, values, seeds=True)
    trials["collapsed"] = (trials["point"] >= 2).astype("boolean")
    info = {"params": ["teacher_temp"], "algorithm": "optuna"}
    headline = analyse(trials, info).headline()
    assert "3 configurations with a collapsed trial: -12.72 to -11.48 points vs it " \
           "(beyond seed noise: 3 of 3)" in headline
    # seeds 0 and 1 only: each paired test has 1 degree of freedom, and not every gap clears it
    two = analyse(trials[trials["seed"] < 2], info).headline()
    assert "3 configurations with a collapsed trial" in two and "(beyond seed noise: 3 of 3)" not in two
    # no collapse, no clause
    assert "collapsed trial" not in analyse(trials[trials["point"] < 2], info).headline()


def test_a_sweep_where_every_configuration_collapsed_names_no_best() -> None:
    """Collapsed points rank last, so the first one collapsed means every one did: the headline said
    '**Best: teacher_temp=0.01**' of a sweep with no working DINO teacher at all."""
    trials = trials_table([{"teacher_temp": t} for t in (0.01, 0.02)], [[30.2, 30.4], [30.1, 30.3]],
                          seeds=True)
    trials["collapsed"] = pd.array([True] * 4, dtype="boolean")
    headline = analyse(trials, {"params": ["teacher_temp"], "algorithm": "grid"}).headline()
    assert "**Best:" not in headline
    assert headline.startswith(
        "**No working configuration: every ranked configuration has a collapsed trial**")
    assert "Ranked first: teacher_temp=0.01 with kNN top-1 30.30 ± 1.27 % (repeats: 2, 2 collapsed)" \
        in headline
    trials.loc[trials["point"] == 1, "collapsed"] = False  # one working point: it is the best
    assert analyse(trials, {"params": ["teacher_temp"], "algorithm": "grid"}).headline().startswith(
        "**Best: teacher_temp=0.02**")


def test_the_t_quantile_is_scipys_without_importing_scipy_stats() -> None:
    """`ablate ls` ranks (a t interval per point) but tests nothing: importing scipy.stats for the
    quantile took seconds. stdtrit gives t.ppf's value, bit for bit."""
    import subprocess
    import sys

    from reports.stats import t_quantile

    t_quantile.cache_clear()
    for dof in (1, 2, 4, 9, 30, 199):
        for q in (0.95, 0.975, 0.995):
            assert t_quantile(q, dof) == float(sps.t.ppf(q, dof))
    code = ("import sys; from reports.listing import list_sweeps; from reports.stats import t_quantile; "
            "t_quantile(0.975, 2); "
            "print(sorted(m for m in ('scipy.stats', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_reports_state_the_noise_threshold_and_the_interval_as_stats_computes_them() -> None:
    """ALPHA and CI_LEVEL decide the verdicts and intervals; the report's words about them come from
    stats too, so a report never says 'p < 0.05' or '95%' of a test or interval that uses another."""
    import ast
    from pathlib import Path

    from reports.stats import ALPHA, CI_LEVEL, CI_WORDS, NOISE_TEST

    assert f"p < {ALPHA:g}" in NOISE_TEST and CI_WORDS.startswith(f"{CI_LEVEL:.0%}")

    def texts(file: Path) -> list[str]:  # the string literals a module prints, less its docstrings
        tree = ast.parse(file.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.ClassDef,
                ast.FunctionDef)) and n.body and isinstance(n.body[0], ast.Expr)}
        return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                and id(n) not in docs]

    owner = Path(__file__).resolve().parents[2] / "reports"
    words = (f"p < {ALPHA:g}", f"{CI_LEVEL:.0%} CI", f"{CI_LEVEL:.0%} t-interval")
    copies = [f.name for f in sorted(owner.glob("*.py")) if f.name != "stats.py"
              and any(w in text for text in texts(f) for w in words)]
    assert not copies, f"state the threshold and the interval with reports.stats' constants in {copies}"
