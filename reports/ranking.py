"""The one ranking rule of ablate: which trials count, and which configuration is best.

Used by the end-of-sweep summary (``ablate run``/``resume``), ``ablate ls``, the report's leaderboard
and ablation table, and ``ablate compare``. The rule:

1. **Counted trials**: those that ran their schedule or were stopped for cause, i.e. status
   ``completed``, ``flagged``, ``collapsed`` or ``diverged`` (``sweep_format.statuses.RANKED``),
   with a value of the metric measured after training (a kNN measured at epoch 0 is the untrained
   network's, never a configuration's result). A trial a scheduler stopped early (ASHA), an
   interrupted, running or errored one does not count, so it is never best over a completed one.
   If no trial counts yet, every trained trial with a value that is on its way or was stopped
   early (``statuses.PROVISIONAL``) counts and the ranking is marked *partial*; a trial that failed
   (oom, errored, storage_full) never counts. If none is left, there is no best.
2. **Points**: a point (one hyperparameter setting) is ranked by the mean of its counted repeats.
3. **Failures last**: a point with a collapsed trial (status ``collapsed``, or ``flagged`` by the
   same rule at its last epoch, see trainables.stop_rules) or a diverged one (its loss went
   non-finite) ranks after every point without one: its metric does not come from a working DINO
   teacher, or from weights that training can still use.
4. **Metric and mode** are the spec's (``metric``, ``mode``): ``max`` ranks the higher mean first,
   ``min`` the lower. Ties: more repeats first, then the earlier point.

A trial's kNN is its last *evaluated* value (``knn_epoch`` says when, reports.tables): a value
carried forward over epochs without evaluation is never ranked as a later measurement, and
``measured_before_end`` names the epoch wherever a ranked value was measured before a trial's end.

    points, partial = rank_points(trials, ["teacher_temp"], metric="knn_top1", mode="max")
    best = points.iloc[0]          # the best configuration (mean, ci, n, values, collapsed)
    best_text(*best_point(trials, ["teacher_temp"]), ["teacher_temp"], "knn_top1", "max")
    # 'best knn_top1 (max): 46.11 (teacher_temp=0.04425; mean of 3)'
"""

from __future__ import annotations

import pandas as pd

from reports.stats import point_summary
from sweep_format.metrics import is_knn
from sweep_format.statuses import COLLAPSED, DIVERGED, ORDER, PROVISIONAL, RANKED
from sweep_format.text import plural
from sweep_format.values import fmt_value

# Rule 3: the point_summary columns that count a point's failed repeats, named after the statuses
# (collapsed, diverged); a point with one above 0 ranks last, stays off the cost table's Pareto front,
# and is named by them.
FAILED_COUNTS = (COLLAPSED, DIVERGED)
# Rule 1: how a partial ranking (no trial counted yet) is said wherever it names a best
PARTIAL = "partial: no trial ran its schedule"


def trained(trials: pd.DataFrame, metric: str) -> pd.Series:
    """Trials whose ``metric`` was measured after at least one epoch of training (for kNN metrics,
    ``knn_epoch`` >= 1; the others exist only for trained epochs)."""
    has_value = trials[metric].notna()
    if is_knn(metric) and "knn_epoch" in trials.columns:
        has_value &= (trials["knn_epoch"] >= 1).fillna(False).astype(bool)
    return has_value


def counted_trials(trials: pd.DataFrame, metric: str = "knn_top1") -> tuple[pd.DataFrame, bool]:
    """Rule 1: the trials whose final ``metric`` counts; second item True when the ranking is partial."""
    if metric not in trials.columns:
        return trials.iloc[0:0], False
    has_value = trained(trials, metric)
    done = trials[has_value & trials["status"].isin(RANKED)]
    if len(done):
        return done, False
    provisional = trials[has_value & trials["status"].isin(PROVISIONAL)]
    return provisional, bool(len(provisional))


def rank_points(trials: pd.DataFrame, params: list[str], metric: str = "knn_top1",
                mode: str = "max") -> tuple[pd.DataFrame, bool]:
    """Rules 1-4: one row per point (stats.point_summary columns), best first."""
    counted, partial = counted_trials(trials, metric)
    return order_points(point_summary(counted, params, metric), mode), partial


def order_points(points: pd.DataFrame, mode: str = "max") -> pd.DataFrame:
    """Rules 3-4 on rows with ``collapsed``, ``mean``, ``n`` and ``point`` (one sweep's points, or the
    best point of each of several sweeps): best first."""
    order = ["_failed", "mean", "n", "point"]
    points = points.assign(_failed=failed_points(points))
    points = points.sort_values(order, ascending=[True, mode == "min", False, True], na_position="last",
                                kind="stable")
    return points.drop(columns="_failed").reset_index(drop=True)


def failed_points(points: pd.DataFrame) -> pd.Series:
    """Rule 3: which points have a collapsed or a diverged trial (``FAILED_COUNTS``; rows without
    ``diverged``, the best point of an older sweep's table, by their collapses alone)."""
    return (points.reindex(columns=list(FAILED_COUNTS), fill_value=0) > 0).any(axis=1)


def all_collapsed(points: pd.DataFrame) -> bool:
    """Rule 3's failure case: every ranked point with a value has a collapsed (or diverged) trial, so
    no configuration trained a working DINO teacher and the ranking orders failures (the gaps between
    them are not an effect of the hyperparameters on DINO)."""
    ranked = points[points["n"] > 0]
    return bool(len(ranked)) and bool(failed_points(ranked).all())


def failure_words(points: pd.DataFrame) -> str:
    """What the ranked points' failures were, as the report says it: 'collapsed', 'diverged' or
    'collapsed or diverged'."""
    ranked = points[points["n"] > 0]
    kinds = [k for k in FAILED_COUNTS if k in ranked.columns and (ranked[k] > 0).any()]
    return " or ".join(kinds) or FAILED_COUNTS[0]


def counted_statuses() -> str:
    """The statuses rule 1 counts, as a report's notes name them: 'completed, ... and diverged'."""
    return ", ".join(RANKED[:-1]) + f" and {RANKED[-1]}"


def uncounted_statuses() -> str:
    """Every other status, in ``statuses.ORDER``: 'stopped early, oom, ... and damaged'."""
    others = [s for s in ORDER if s not in RANKED]
    return ", ".join(others[:-1]) + f" and {others[-1]}"


def best_point(trials: pd.DataFrame, params: list[str], metric: str = "knn_top1",
               mode: str = "max") -> tuple[pd.Series | None, bool]:
    """The best point by the rule (None when no trial has a value), and whether it is partial."""
    points, partial = rank_points(trials, params, metric, mode)
    points = points[points["n"] > 0]
    return (points.iloc[0] if len(points) else None), partial


def measured_before_end(trials: pd.DataFrame, point: int, metric: str = "knn_top1") -> str:
    """``kNN at epoch E`` when a counted trial of ``point`` ended on an epoch without evaluation
    (Ctrl-C, a kill, divergence): its value is the last evaluated one, measured at ``knn_epoch``."""
    if not is_knn(metric) or "knn_epoch" not in trials.columns:
        return ""
    counted, _ = counted_trials(trials, metric)
    mine = counted[counted["point"] == point]
    if not (mine["knn_epoch"] < mine["epochs_done"]).fillna(False).any():
        return ""
    return "kNN at epoch " + ", ".join(str(e) for e in sorted({int(e) for e in mine["knn_epoch"].dropna()}))


def best_trial(trials: pd.DataFrame, params: list[str], metric: str = "knn_top1", mode: str = "max",
               point: int | None = None) -> pd.Series | None:
    """The best counted trial of ``point`` (default: the best point); None when it has none."""
    if point is None:
        best, _ = best_point(trials, params, metric, mode)
        if best is None:
            return None
        point = int(best["point"])
    counted, _ = counted_trials(trials, metric)
    repeats = counted[(counted["point"] == point) & counted[metric].notna()]
    if repeats.empty:
        return None
    return repeats.sort_values(metric, ascending=(mode == "min"), kind="stable").iloc[0]


def only_failures_trained(trials: pd.DataFrame, metric: str = "knn_top1") -> bool:
    """Whether the trials that have a ``metric`` measured after training all failed (oom, errored,
    storage_full; none counts, not even partially): where there is no best, it is for that reason,
    not because nothing trained."""
    counted, _ = counted_trials(trials, metric)
    return metric in trials.columns and counted.empty and bool(trained(trials, metric).any())


def no_best_text(metric: str) -> str:
    """Why a sweep names no best configuration, in the one sentence the summary and the report print."""
    return (f"no best configuration: no trial has a {metric} measured after training that counts (none "
            "has finished an epoch yet, every one ended at epoch 0 or before its first evaluation, or "
            "every one that trained failed: oom, errored or storage_full; each trial's status and reason "
            "say why)")


REASONS_SHOWN = 3  # the distinct stop reasons ``all_diverged_text`` quotes; the rest are under Trials


def all_diverged_text(trials: pd.DataFrame) -> str:
    """Where every trial diverged: that, in which epochs, and their stop reasons, which say what to try
    (the trainer's advice: a lower lr, ...); "" otherwise. Such a sweep's report said only that no trial
    had a value that counts, with the reasons there might be (oom, errored, none trained yet), and its
    one cause among them nowhere."""
    if trials.empty or not (trials["status"] == DIVERGED).all():
        return ""
    n = len(trials)
    done = sorted({int(e) for e in trials["epochs_done"].dropna()})
    planned = sorted({int(e) for e in trials["epochs_planned"].dropna()})
    when = (f" in epoch {', '.join(map(str, done))}" if done else "") + (
        f" of {', '.join(map(str, planned))}" if done and planned else "")
    reasons = trials["stop_reason"].fillna("").replace("", "(none recorded)").value_counts()
    quoted = "; ".join(f"'{reason}'" + (f" ({count} {plural(count, 'trial')})" if len(reasons) > 1 else "")
                       for reason, count in reasons.head(REASONS_SHOWN).items())
    more = f"; {len(reasons) - REASONS_SHOWN} more under Trials" if len(reasons) > REASONS_SHOWN else ""
    return (f"Every trial diverged ({n} of {n}): the loss went NaN or inf{when}, so no configuration has a "
            f"result to rank. {'Their stop reason' if len(reasons) == 1 else 'Their stop reasons'} (the "
            f"trainer's says what to try): {quoted}{more}.")


def best_text(best: pd.Series | None, partial: bool, params: list[str], metric: str, mode: str,
              note: str = "") -> str:
    """The best configuration in one line, as the summary and the live view print it."""
    if best is None:
        return no_best_text(metric)
    setting = ", ".join(f"{p}={fmt_value(best[p])}" for p in params)
    flags = [f"mean of {int(best['n'])}"] + ([PARTIAL] if partial else []) + (
        ["collapsed"] if best["collapsed"] else []) + ([note] if note else [])
    return f"best {metric} ({mode}): {best['mean']:.4g} ({setting}; {', '.join(flags)})"
