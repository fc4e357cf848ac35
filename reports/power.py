"""Seed-power advice: how many seed repeats would tell the best configuration from the runner-up.

From the repeats a sweep has, the seed standard deviation of each configuration is estimated; the
observed best-vs-runner-up difference divided by their pooled seed SD is the effect size d, and the
repeats needed per configuration are the smallest n at which a two-sided two-sample t-test at
p < 0.05 has 80 % power, computed exactly with the noncentral t distribution (df = 2n - 2,
noncentrality d * sqrt(n / 2)). When the two share 2+ seeds (repeat r runs the same seed in every
configuration), the test is the paired one the report uses: d is the difference over the SD of
the seed-by-seed gaps, df = n - 1, noncentrality d * sqrt(n). Where every configuration has a
collapsed trial there is no working one, so no effect to power: the advice says so instead.

    repeats_needed(diff=0.8, sd=0.5)                # 8 (per configuration)
    repeats_needed(diff=0.8, sd=0.5, paired=True)   # 6 (seeds shared by both)
    advice = seed_power(analyse(trials, info).points, params)
    advice.text                          # the sentence the report prints
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from scipy import stats as sps
from scipy.optimize import brentq

from reports import metric_words
from reports.analysis import LEADERBOARD_ROWS, fmt_value, left_out, point_label
from reports.document import Document
from reports.ranking import all_collapsed, failure_words
from reports.stats import ALPHA, PAIRED_MIN_SEEDS, fmt_mean_ci, paired_differences

POWER = 0.8
MAX_REPEATS = 1000
COLLAPSED_ONLY = ("Every configuration has a collapsed trial (see Collapse diagnostics): no configuration "
                  "trained a working DINO teacher, so there is no effect to power. The differences between "
                  "collapsed configurations are not signal, and more seed repeats would not make them one.")


def t_test_power(d: float, n: int, alpha: float = ALPHA, paired: bool = False) -> float:
    """Power of the two-sided two-sample t-test (n per group, equal SD) at effect size ``d``, or with
    ``paired`` of the paired t-test over n seeds (``d``: mean gap / SD of the gaps)."""
    df, ncp = (n - 1, abs(d) * math.sqrt(n)) if paired else (2 * n - 2, abs(d) * math.sqrt(n / 2))
    crit = float(sps.t.ppf(1 - alpha / 2, df))
    upper, lower = float(sps.nct.sf(crit, df, ncp)), float(sps.nct.cdf(-crit, df, ncp))
    return upper + (lower if math.isfinite(lower) else 0.0)  # scipy's far tail can be nan: it is ~0


def repeats_needed(diff: float, sd: float, alpha: float = ALPHA, power: float = POWER,
                   paired: bool = False) -> int | None:
    """Smallest repeats per configuration detecting ``diff`` with seed SD ``sd``; None beyond
    MAX_REPEATS (or for no difference)."""
    if sd <= 0:
        return 2  # no seed noise observed: two repeats each already show the difference
    d = abs(diff) / sd
    if d == 0:
        return None
    for n in range(2, MAX_REPEATS + 1):
        if t_test_power(d, n, alpha, paired) >= power:
            return n
    return None


def detectable_difference(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest difference that ``n`` repeats per configuration detect with ``power`` (two-sided
    two-sample t-test at ``alpha``, seed SD ``sd``): ``repeats_needed`` turned round."""
    d = brentq(lambda d: t_test_power(d, n, alpha) - power, 1e-6, 1e3)
    return float(d) * sd


DETECT_REPEATS = (3, 5, 10)  # repeats per configuration the one-configuration advice is given for


def one_point_advice(points: pd.DataFrame, metric: str) -> str:
    """For a sweep of one configuration with 2+ repeats (seed repeats alone): its seed SD and the
    smallest difference a later sweep would detect with 3, 5 or 10 repeats per configuration, which
    is what such a sweep is run to learn; "" otherwise."""
    if len(points) != 1 or int(points["n"].iloc[0]) < 2:
        return ""
    sd, dof = pooled_sd([list(points["values"].iloc[0])])
    gap, n = metric_words.gap(metric), dof + 1
    head = f"One configuration, nothing to compare it with. Its {n} repeats"
    if not sd > 0:
        return f"{head} show no seed variance at all."
    sizes = "; ".join(f"{k} repeats: {metric_words.fmt_gap(detectable_difference(sd, k))}{gap}"
                      for k in DETECT_REPEATS)
    return (f"{head} vary by seed SD {metric_words.fmt_gap(sd)}{gap} ({dof} degrees of freedom). With that "
            f"seed noise, the smallest difference between two configurations detected at p < {ALPHA:g} with "
            f"{POWER * 100:.0f} % power (two-sided two-sample t-test, exact noncentral t), per number of "
            f"repeats per configuration: {sizes} (a paired test over shared seeds may need fewer). The SD "
            f"is itself an estimate from {n} repeats.")


def pooled_sd(groups: list[list[float]]) -> tuple[float, int]:
    """Pooled within-group SD over groups with 2+ values, and its degrees of freedom (0: no estimate)."""
    usable = [g for g in groups if len(g) >= 2]
    dof = sum(len(g) - 1 for g in usable)
    if dof == 0:
        return math.nan, 0
    ss = sum(sum((x - sum(g) / len(g)) ** 2 for x in g) for g in usable)
    return math.sqrt(ss / dof), dof


def sample_sd(values: list[float]) -> float:
    return pooled_sd([values])[0]


def fmt_sd(sd: float) -> str:
    """A seed SD in the table as the advice's sentence writes it (``metric_words.fmt_gap``: 1.38, not
    1.375); '–' with fewer than 2 repeats."""
    return metric_words.fmt_gap(sd) if math.isfinite(sd) else "–"


@dataclass
class PowerAdvice:
    text: str
    table: pd.DataFrame  # per configuration: parameters, repeats, mean, seed SD


TIE = 1e-9  # a lead below this (in the metric's units) is a tie: equal means, up to rounding


def seed_power(points: pd.DataFrame, params: list[str], metric: str = metric_words.KNN_TOP1) -> PowerAdvice:
    """Advice from ``reports.stats.point_summary`` rows ranked best first (as the report's
    ``Analysis.points``: collapsed configurations last); ``values`` are the repeats' ``metric``."""
    gap = metric_words.gap(metric)
    points = points[points["n"] > 0].reset_index(drop=True)
    # means and SDs written as the leaderboard and the advice write them (36.20, not 36.2 beside its 36.20)
    means = [fmt_mean_ci(m, math.nan) for m in points["mean"]]
    sds = [fmt_sd(sample_sd(v)) for v in points["values"]]
    table = pd.DataFrame({**{p: points[p].map(fmt_value) for p in params}, "repeats": points["n"],
                          f"mean {metric_words.label(metric)}": means,
                          f"seed SD{f' ({gap.strip()})' if gap else ''}": sds})
    if all_collapsed(points):  # nothing but failures to tell apart
        return PowerAdvice(COLLAPSED_ONLY.replace("collapsed", failure_words(points)), table)
    if len(points) < 2:
        return PowerAdvice(one_point_advice(points, metric) or f"Fewer than two configurations have a final "
                           f"{metric_words.name(metric)}: nothing to compare.", table)
    best, second = points.iloc[0], points.iloc[1]
    diff = abs(float(best["mean"] - second["mean"]))  # the lead, in either mode
    gaps = paired_differences(best["values"], best.get("seeds", [None] * len(best["values"])),
                              second["values"], second.get("seeds", [None] * len(second["values"])))
    paired = len(gaps) >= PAIRED_MIN_SEEDS  # the test the ablation table's verdict uses (stats.noise_verdict)
    sd, dof = pooled_sd([gaps]) if paired else pooled_sd([list(best["values"]), list(second["values"])])
    source = "the best and the runner-up"
    if dof == 0:
        sd, dof = pooled_sd([list(v) for v in points["values"]])
        source = "all configurations with 2+ repeats (assuming seed noise alike across them)"
    head = (f"The best configuration ({point_label(best, params)}) leads the runner-up "
            f"({point_label(second, params)}) "
            f"by {metric_words.fmt_gap(diff)}{gap}.")
    if dof == 0:
        return PowerAdvice(f"{head} With one repeat per configuration there is no estimate of the seed "
                           "standard deviation, so no power statement: run 2 or more repeats "
                           "(`--set repeats=3`).", table)
    have = int(min(best["n"], second["n"]))
    spread = metric_words.fmt_gap(sd)
    if paired:
        noise = (f"Over the {len(gaps)} seeds both ran, their gap varies by SD {spread}{gap}." if sd > 0
                 else f"Over the {len(gaps)} seeds both ran, the gap is the same on every seed.")
        test = "paired t-test over shared seeds"
    else:
        noise = (f"Seed SD {spread}{gap} (pooled over {source}, {dof} degrees of freedom)." if sd > 0
                 else f"The repeats show no seed variance at all ({source}).")
        test = "two-sample t-test"
    if diff < TIE:  # repeats_needed's 2 for no seed noise would be advice to detect nothing
        return PowerAdvice(f"{head} {noise} A tie leaves no difference to detect, so no number of repeats "
                           "follows from it.", table)
    n = repeats_needed(diff, sd, paired=paired)
    need = f"more than {MAX_REPEATS}" if n is None else str(n)
    verdict = "this sweep has enough" if n is not None and have >= n else f"this sweep has {have}"
    return PowerAdvice(
        f"{head} {noise} Detecting a difference of that size at p < {ALPHA:g} with {POWER * 100:.0f} % power "
        f"(two-sided {test}, exact noncentral t) needs **{need} repeats per configuration**; {verdict}. "
        "The observed difference is itself an estimate (the best of several looks better than it is): "
        "treat this as a lower bound.", table)


def add_power(doc: Document, points: pd.DataFrame, params: list[str],
              metric: str = metric_words.KNN_TOP1) -> None:
    """The report's "Seed power" section from ``point_summary`` rows ranked best first."""
    doc.heading("Seed power")
    advice = seed_power(points, params, metric)
    doc.paragraph(advice.text)
    if len(advice.table):
        shown = advice.table.head(LEADERBOARD_ROWS)
        doc.table(shown)
        if note := left_out(len(shown), len(advice.table)):
            doc.note(note)
