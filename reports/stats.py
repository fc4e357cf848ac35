"""Seed-noise statistics over repeats: mean with a 95% t-interval, seed tests, one row per point.

A *point* is one hyperparameter setting; its repeats differ only in the seed, and repeat r of every
point runs seed ``search.seed + r``: the same initialization and data order. Whether a difference
between two points exceeds seed noise is therefore a paired t-test over the seeds both points ran
(the seed's common part cancels: on the embedded default a seed moves kNN by ~3 points, the same
seed's gap between two configurations by ~1, bench/README.md), and Welch's t-test (unequal
variances) where fewer than 2 seeds are shared.

    mean, half, n = mean_ci([69.1, 69.7, 69.4])   # 69.4, 0.75, 3  -> "69.40 ± 0.75"
    welch_p([69.1, 69.7], [66.5, 66.9])            # p-value, None with fewer than 2 repeats a side
    paired_p([69.1, 69.7, 69.4], [0, 1, 2], [66.5, 66.9, 67.0], [0, 1, 2])  # over the shared seeds
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import pandas as pd

from sweep_format.statuses import DIVERGED

ALPHA = 0.05  # "beyond seed noise" when the test's p < ALPHA
# ``noise_verdict``'s first word, and the kind of verdict it is (``verdict_kind``): the one place that
# reads a verdict back (main_effects' kinds, analysis's count of failures beyond noise, the plot's fills)
YES, NO, NOT_TESTED = "yes", "no", "n/a"
BEYOND, WITHIN = "beyond", "within"  # apart beyond / within seed noise; "" untested
PAIRED_MIN_SEEDS = 2  # two points are compared seed by seed (paired) when they share this many seeds
CI_LEVEL = 0.95  # of every mean ± CI the reports print, and in their words:
CI_WORDS = f"{CI_LEVEL:.0%} CI"  # '95% CI'
# ``noise_verdict`` in the words the report's ablation table states it with
NOISE_TEST = ("'Beyond seed noise': paired t-test over the seeds both ran (repeat r runs the same seed "
              f"everywhere), else Welch's t-test over repeats; p < {ALPHA:g}; n/a with fewer than 2 repeats "
              "on a side.")


def mean_ci(values: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float, int]:
    """Mean, half-width of the ``level`` t-interval (nan for fewer than 2 values), count."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(xs) / n
    if n < 2:
        return mean, math.nan, 1
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return mean, t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n), n


@functools.cache
def t_quantile(q: float, dof: int) -> float:
    """Student's t quantile: one scipy call per (level, repeats), not one per point of a large sweep.
    ``stdtrit`` is what ``scipy.stats.t.ppf`` computes, the same value, without importing scipy.stats
    (seconds of `ablate ls`, which ranks but tests nothing)."""
    from scipy.special import stdtrit

    return float(stdtrit(dof, q))


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p of Welch's t-test; None with fewer than 2 values on a side or no variance at all."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # identical repeats (e.g. all collapsed to 10.0%) warn, still valid
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(list(a), list(b), equal_var=False).pvalue)
    return p if math.isfinite(p) else None


def paired_differences(a: Sequence[float], seeds_a: Sequence[int | None], b: Sequence[float],
                       seeds_b: Sequence[int | None]) -> list[float]:
    """``a - b`` seed by seed, over the known seeds both ran (each seed once on each side, else [])."""
    known_a, known_b = [s for s in seeds_a if s is not None], [s for s in seeds_b if s is not None]
    if len(set(known_a)) != len(known_a) or len(set(known_b)) != len(known_b):
        return []
    by_seed = {s: v for s, v in zip(seeds_b, b, strict=True) if s is not None}
    return [float(x) - float(by_seed[s]) for x, s in zip(a, seeds_a, strict=True) if s in by_seed]


def paired_p(a: Sequence[float], seeds_a: Sequence[int | None], b: Sequence[float],
             seeds_b: Sequence[int | None]) -> float | None:
    """Two-sided p of the paired t-test over shared seeds; None with fewer than 2 shared seeds or
    no variance in the differences."""
    return _zero_mean_p(paired_differences(a, seeds_a, b, seeds_b))


def _zero_mean_p(diffs: list[float]) -> float | None:
    """Two-sided p of the one-sample t-test of ``diffs`` against 0 (None: < 2 values, no variance)."""
    if len(diffs) < 2:
        return None
    from scipy.stats import ttest_1samp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_1samp(diffs, 0.0).pvalue)
    return p if math.isfinite(p) else None


def noise_verdict(a: Sequence[float], b: Sequence[float], seeds_a: Sequence[int | None] | None = None,
                  seeds_b: Sequence[int | None] | None = None) -> str:
    """'yes (paired p=0.004, 3 seeds)' when the points share at least 2 seeds, else Welch's
    'yes (p=0.012)' / 'no (p=0.41)', or 'n/a' (fewer than 2 repeats on a side)."""
    if seeds_a is not None and seeds_b is not None:
        diffs = paired_differences(a, seeds_a, b, seeds_b)
        if len(diffs) >= PAIRED_MIN_SEEDS:
            p = _zero_mean_p(diffs)
            if p is None:  # the same gap on every seed
                return f"{NO} (identical repeats)" if diffs[0] == 0 else f"{YES} (no seed variance)"
            return f"{YES if p < ALPHA else NO} (paired p={p:.2g}, {len(diffs)} seeds)"
    if len(a) < 2 or len(b) < 2:
        return NOT_TESTED
    p = welch_p(a, b)
    if p is None:  # no seed variance on either side: the t statistic is undefined
        same = sum(a) / len(a) == sum(b) / len(b)
        return f"{NO} (identical repeats)" if same else f"{YES} (no seed variance)"
    return f"{YES if p < ALPHA else NO} (p={p:.2g})"


def verdict_kind(verdict: str) -> str:
    """``BEYOND`` for a ``noise_verdict`` of 'yes ...', ``WITHIN`` for 'no ...', "" for 'n/a' (untested)."""
    word = verdict.split(" ", 1)[0]
    return BEYOND if word == YES else WITHIN if word == NO else ""


def point_summary(trials: pd.DataFrame, params: list[str], metric: str = "knn_top1") -> pd.DataFrame:
    """One row per point (hyperparameter setting): its params, ``values`` (the metric of each repeat),
    ``seeds`` (each value's seed, for the paired test), ``mean``, ``ci`` (95% half-width), ``n``,
    ``collapsed`` (repeats that collapsed), ``diverged`` (repeats whose loss went non-finite).

    Reads each column once and each point's rows by position: a sweep of thousands of points took
    seconds in pandas' per-group frames (the live view ranks with it whenever a trial ends)."""
    value = trials[metric].to_numpy(dtype="float64", na_value=math.nan)
    seed = trials["seed"] if "seed" in trials else None
    collapsed = trials["collapsed"].fillna(False).astype(bool).to_numpy()
    diverged = (trials["status"] == DIVERGED).to_numpy() if "status" in trials else None
    rows = []
    for point, at in sorted(trials.groupby("point", sort=True).indices.items()):
        measured = [i for i in at if not math.isnan(value[i])]
        values = [float(value[i]) for i in measured]
        seeds = ([int(s) if pd.notna(s := seed.iloc[i]) else None for i in measured]
                 if seed is not None else [None] * len(values))
        mean, ci, n = mean_ci(values)
        rows.append({"point": int(point), **{p: trials[p].iloc[at[0]] for p in params}, "values": values,
                     "seeds": seeds, "mean": mean, "ci": ci, "n": n, "collapsed": int(collapsed[at].sum()),
                     "diverged": int(diverged[at].sum()) if diverged is not None else 0})
    columns = ["point", *params, "values", "seeds", "mean", "ci", "n", "collapsed", "diverged"]
    return pd.DataFrame(rows, columns=columns)


def fmt_mean_ci(mean: float, ci: float, digits: int = 2) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f}" if not math.isfinite(ci) else f"{mean:.{digits}f} ± {ci:.{digits}f}"
