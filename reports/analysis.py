"""Leaderboard, DINO-paper-style ablation table and the one-line verdict of a sweep.

The reference of every delta: for ``search.algorithm: ablation`` the *baseline* (the point the sweep
recorded as ``is_baseline``), otherwise the *best* point by the ranking rule (reports.ranking).
"Beyond seed noise" is the paired t-test over shared seeds, else Welch's t-test (reports.stats).

    result = analyse(trials, sweep.param_info())
    result.headline()                  # "Best: teacher_temp=0.04 ... +0.52 points vs the baseline ...;
                                       #  3 configurations with a collapsed trial: -12.72 to ..."
    leaderboard(result)                # DataFrame ready to render
    for title, table in ablation_tables(result): ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from reports import metric_words
from reports.ranking import (
    FAILED_COUNTS,
    PARTIAL,
    all_collapsed,
    all_diverged_text,
    failed_points,
    failure_words,
    no_best_text,
    rank_points,
)
from reports.stats import BEYOND, NOT_TESTED, fmt_mean_ci, noise_verdict, verdict_kind
from reports.tables import native
from sweep_format import values as sweep_values
from sweep_format.layout import PIXEL_KNN, TRIALS_TABLE
from sweep_format.metrics import DEFAULT_METRIC, mode_of
from sweep_format.statuses import COLLAPSED, FINAL
from sweep_format.values import values_equal

LEADERBOARD_ROWS = 10  # configurations the leaderboard shows
TABLE_ROWS = 50  # configurations a table of every one shows: an Optuna sweep may have hundreds
TRIALS_ROWS = 200  # trials the report's Trials table lists (a 5,000-trial sweep's listed them all)


@dataclass
class Analysis:
    params: list[str]
    points: pd.DataFrame  # stats.point_summary of the counted trials, best first
    reference: int | None  # point id every delta is taken against
    reference_kind: str  # "baseline" or "best"
    is_ablation: bool
    partial: bool  # no trial has finished: means over running/stopped trials
    notes: list[str] = field(default_factory=list)
    metric: str = "knn_top1"
    pixel: float | None = None  # raw-pixel kNN top-1 of the dataset (reference_knn.json)
    mode: str = "max"  # the spec's: "min" ranks the lower mean first
    ended: bool = False  # every trial ended for good (statuses.FINAL): nothing more will come

    @property
    def no_value(self) -> str:
        """What a section says where no trial has a final value: 'yet' only while one may still get one
        (a sweep whose every trial diverged or errored read 'No trial has a final kNN top-1 yet.')."""
        if self.ended:
            return ("No trial has a final kNN top-1: every one ended without one (each trial's status and "
                    "stop reason under Trials say why).")
        return "No trial has a final kNN top-1 yet."

    @property
    def metric_label(self) -> str:
        return metric_words.label(self.metric)

    @property
    def reference_point(self) -> int:
        """The reference's point id; only analyses with a scored trial have one."""
        if self.reference is None:
            raise ValueError("no reference point: no trial has a final kNN top-1")
        return self.reference

    def row(self, point: int) -> pd.Series:
        return self.points.set_index("point").loc[point]

    def label(self, point: int, only: list[str] | None = None) -> str:
        return point_label(self.row(point), only or self.params)

    def headline(self, trials: pd.DataFrame | None = None) -> str:
        return headline(self, trials)


def fmt_value(value: Any) -> str:
    """A searched value in a report's table (sweep_format.values.fmt_value; '–' where missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    return sweep_values.fmt_value(value)


def point_label(row: pd.Series, params: list[str]) -> str:
    return ", ".join(f"{p}={fmt_value(row[p])}" for p in params)


def analyse(trials: pd.DataFrame, info: dict[str, Any]) -> Analysis:
    """Points ranked by reports.ranking (the spec's metric and mode in ``info``), the reference
    point, notes. The baseline is the point whose trials the sweep recorded as ``is_baseline``."""
    params = list(info.get("params") or [])
    metric = str(info.get("metric") or DEFAULT_METRIC)
    mode = mode_of(metric, info.get("mode"))
    points, partial = rank_points(trials, params, metric, mode)
    is_ablation = info.get("algorithm") == "ablation"
    notes = []
    if failed_points(points).any():
        notes.append(f"Configurations with a {failure_words(points)} trial are ranked last: their metric "
                     "does not come from a working DINO teacher.")
    if partial and len(points):
        notes.append(f"No trial has finished yet: the numbers below are the last {metric} of "
                     "running or stopped trials.")
    reference, kind = (int(points["point"].iloc[0]), "best") if len(points) else (None, "best")
    if is_ablation:
        baseline = recorded_baseline(trials)
        if baseline is not None and baseline in set(points["point"]):
            reference, kind = baseline, "baseline"
        else:
            notes.append("The baseline point has no finished trial yet: deltas are to the best point.")
    pixel = reference_value(trials, PIXEL_KNN) if metric == "knn_top1" else None
    ended = "status" in trials and len(trials) > 0 and bool(trials["status"].isin(FINAL).all())
    return Analysis(params, points, reference, kind, is_ablation, partial, notes, metric, pixel, mode, ended)


def recorded_baseline(trials: pd.DataFrame) -> int | None:
    if "is_baseline" not in trials.columns:
        return None
    base = trials[trials["is_baseline"].fillna(False).astype(bool)]
    return int(base["point"].iloc[0]) if len(base) else None


def reference_value(trials: pd.DataFrame, column: str) -> float | None:
    if column not in trials.columns or trials[column].isna().all():
        return None
    return float(trials[column].dropna().iloc[0])


def beats_pixels(result: Analysis, mean: float) -> str:
    """'yes' / 'no' against the dataset's raw-pixel kNN top-1 ('–' without a reference)."""
    if result.pixel is None or not math.isfinite(mean):
        return "–"
    return "yes" if mean > result.pixel else f"no ({mean - result.pixel:+.2f})"


def delta_text(a: pd.Series, ref: pd.Series) -> str:
    d = a["mean"] - ref["mean"]
    return metric_words.fmt_gap(d, signed=True) if math.isfinite(d) else "–"


def leaderboard(result: Analysis, top: int = LEADERBOARD_ROWS) -> pd.DataFrame:
    """The ``top`` points by the ranking rule, mean ± 95% CI over repeats, the delta and, for kNN
    top-1, whether the point beats the raw-pixel kNN."""
    ref = result.row(result.reference) if result.reference is not None else None
    rows, shown = [], result.points.head(top)
    failures = failure_columns(shown)
    for rank, (_, r) in enumerate(shown.iterrows(), start=1):
        row = {"#": rank, **{p: fmt_value(r[p]) for p in result.params},
               result.metric_label: fmt_mean_ci(r["mean"], r["ci"]), "repeats": int(r["n"]),
               f"Δ vs {result.reference_kind}": delta_text(r, ref) if ref is not None else "–",
               **{kind: int(r[kind]) for kind in failures}}
        if result.pixel is not None:
            row["beats raw pixels"] = beats_pixels(result, r["mean"])
        if r["point"] == result.reference:
            row[f"Δ vs {result.reference_kind}"] = f"({result.reference_kind})"
        rows.append(row)
    return pd.DataFrame(rows)


# The ablation table's headers of failure_columns, as the DINO paper's tables mark a collapse
FAILURE_HEADERS = {COLLAPSED: "teacher collapsed"}


def failure_columns(points: pd.DataFrame) -> list[str]:
    """The counts of failed repeats a ranked table shows (ranking rule 3's ``FAILED_COUNTS``):
    collapsed always, diverged where a point has one. A diverged configuration ranked last with
    "collapsed 0" and nothing in its row to say why."""
    return [kind for kind in FAILED_COUNTS
            if kind == FAILED_COUNTS[0] or (kind in points.columns and bool((points[kind] > 0).any()))]


def cut_note(shown: int, total: int, rest: str) -> str:
    """The one sentence under a ranked table cut to its top ``shown`` of ``total`` configurations
    (the leaderboard, the table of all of them, the seed-power table); ``rest``: where the others
    are. "" when nothing is cut."""
    return f"The top {shown} of {total} configurations; {rest}." if shown < total else ""


def left_out(shown: int, total: int) -> str:
    """``cut_note`` of a table meant to list every configuration: how many it leaves out, and where
    they all are."""
    return cut_note(shown, total, f"the other {total - shown} are left out here: {TRIALS_TABLE} holds all "
                                  "of them (a row per trial)")


def lists_every_point(result: Analysis) -> bool:
    """Whether the ablation table lists every configuration: one line per parameter in an ablation,
    the top ``TABLE_ROWS`` of all of them otherwise."""
    return result.reference_kind == "baseline" or len(result.points) <= TABLE_ROWS


def ablation_tables(result: Analysis, top: int = TABLE_ROWS) -> list[tuple[str, pd.DataFrame]]:
    """Ablation sweeps: one table per parameter that varied (its values, the others at the baseline),
    as in the DINO paper's ablation tables, titled by it. Other searches: one table of the ``top`` points
    against the best, untitled (the section's heading names it)."""
    if result.reference is None:
        return []
    ref = result.row(result.reference)
    pts = result.points
    if not (result.is_ablation and result.reference_kind == "baseline"):
        return [("", _table(result, pts.head(top), result.params, ref))]
    tables = []
    for p in filter(lambda p: varied(pts, p), result.params):  # one value only: no line to tabulate
        group = pts[ablation_line(pts, result, p)] if len(pts) else pts
        group = group.sort_values(p, key=sort_key, kind="stable")
        tables.append((p, _table(result, group, [p], ref)))
    return tables


def ablation_line(rows: pd.DataFrame, result: Analysis, param: str) -> pd.Series:
    """Which ``rows`` (points or trials) lie on ``param``'s line of a one-factor ablation: every other
    parameter at the baseline's value. All rows where deltas are to the best (not an ablation)."""
    if not (result.is_ablation and result.reference_kind == "baseline") or rows.empty:
        return pd.Series(True, index=rows.index)
    ref = result.row(result.reference_point)
    others = [q for q in result.params if q != param]
    return rows.apply(lambda r: all(values_equal(native(r[q]), native(ref[q])) for q in others), axis=1)


def varied(rows: pd.DataFrame, param: str) -> bool:
    """Whether ``rows`` (points or trials) hold two or more values of ``param``: one that took a single
    value (a list shortened to the baseline's, a one-value grid of seed repeats) has no effect to show,
    and its table or plot of one value read as a finding."""
    return len({value_key(v) for v in rows[param] if fmt_value(v) != "–"}) > 1


def value_key(value: Any) -> str:
    """One text per distinct searched value of a table's cell (numpy scalars, lists read back from JSON):
    what ``varied`` counts, and what reports.main_effects groups configurations by."""
    return repr(native(value))


def unvaried_note(rows: pd.DataFrame, params: list[str], where: str) -> str:
    """The sentence for the ``params`` that took one value in ``rows``: which value, and that
    ``where`` (the ablation table, the plots) leaves them out; "" when every one varied."""
    fixed = [p for p in params if p in rows and rows[p].notna().any() and not varied(rows, p)]
    if not fixed:
        return ""
    values = ", ".join(f"{p}={fmt_value(rows[p].dropna().iloc[0])}" for p in fixed)
    return (f"Not in {where}: {values}, the only value {'it' if len(fixed) == 1 else 'each'} took in the "
            "trials ranked here, so there is no effect to show.")


def sort_key(series: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(series, errors="coerce")
    return numeric if numeric.notna().all() else series.astype("string")


def _table(result: Analysis, group: pd.DataFrame, params: list[str], ref: pd.Series) -> pd.DataFrame:
    kind = result.reference_kind
    # every configuration collapsed: their gaps get no verdict, as in the headline (FAILURES_ONLY)
    none = NO_VERDICT.replace("collapsed", failure_words(result.points))
    noise = (lambda r: none) if all_collapsed(result.points) else (lambda r: seed_verdict(r, ref))
    rows, failures = [], failure_columns(group)
    for _, r in group.iterrows():
        is_ref = r["point"] == result.reference
        row: dict[str, Any] = {p: fmt_value(r[p]) + (f" ({kind})" if is_ref and len(params) == 1 else "")
               for p in params}
        row.update({result.metric_label: fmt_mean_ci(r["mean"], r["ci"]), "repeats": int(r["n"]),
                    f"Δ vs {kind}": "–" if is_ref else delta_text(r, ref),
                    "beyond seed noise": "–" if is_ref else noise(r),
                    **{FAILURE_HEADERS.get(k, k): f"{k} ({int(r[k])}/{int(r['n'])})" if r[k] else "no"
                       for k in failures}})
        rows.append(row)
    return pd.DataFrame(rows)


def seed_verdict(a: pd.Series, b: pd.Series) -> str:
    """Is point ``a`` apart from point ``b`` beyond seed noise (reports.stats.noise_verdict)?"""
    return noise_verdict(a["values"], b["values"], a.get("seeds"), b.get("seeds"))


# Where every configuration collapsed (ranking.all_collapsed), the headline gives their gaps without a
# seed-noise verdict: a significant gap between two failures is no finding about a working DINO.
NO_VERDICT = "no verdict (all collapsed)"  # the tables' cell for such a gap
FAILURES_ONLY = ("no seed-noise verdict: a gap between collapsed configurations is not an effect of the "
                 "hyperparameters on a working DINO teacher")


def headline(result: Analysis, trials: pd.DataFrame | None = None) -> str:
    """Which configuration wins, and by how much vs the baseline and the runner-up (beyond seed noise
    or not); where every configuration collapsed, that the ranking orders failures, and their gaps
    without a verdict (``FAILURES_ONLY``); where none has a result, why (``trials``: the sweep's, to say
    plainly that every trial diverged, ``all_diverged_text``)."""
    pts = result.points
    if pts.empty or not math.isfinite(pts["mean"].iloc[0]):
        if trials is not None and (diverged := all_diverged_text(trials)):
            return "**" + diverged.replace(": ", ":** ", 1)
        text = no_best_text(result.metric)
        return text[0].upper() + text[1:] + "."
    best, failures = pts.iloc[0], all_collapsed(pts)
    unit = metric_words.unit(result.metric)
    lead = "Best" if len(pts) > 1 else "One configuration ranked"  # no other to be best of
    lead += f" ({PARTIAL})" if result.partial else ""  # the summary and `ablate ls` say so too
    text = (f"**{lead}: {point_label(best, result.params)}** with {metric_words.name(result.metric)} "
            f"{fmt_mean_ci(best['mean'], best['ci'])}{unit} (repeats: {int(best['n'])})")
    if failures:
        words = failure_words(pts)
        why = {"collapsed": "its teacher collapsed, see Collapse diagnostics",
               "diverged": "its loss went NaN or inf, its stop reason under Trials says when and what to try"
               }.get(words, "a collapsed teacher, see Collapse diagnostics, or a loss that went non-finite")
        counts = [f"{int(best[k])} {k}" for k in FAILED_COUNTS if best.get(k, 0)]
        text = (f"**No working configuration: every ranked configuration has a {words} trial** ({why}; "
                "trials stopped early or unfinished are not ranked), so the ranking below orders failures. "
                f"Ranked first: {point_label(best, result.params)} with {metric_words.name(result.metric)} "
                f"{fmt_mean_ci(best['mean'], best['ci'])}{unit} (repeats: {int(best['n'])}, "
                f"{', '.join(counts)})")
    parts, gaps = [], []
    if result.reference_kind == "baseline":
        base = result.row(result.reference_point)
        if best["point"] == result.reference:
            parts.append("the baseline itself wins")
        else:
            gaps.append(gap_to(result, best, base, "the baseline", failures))
    if len(pts) > 1:
        second = pts.iloc[1]
        gaps.append(gap_to(result, best, second, f"the runner-up {point_label(second, result.params)}",
                           failures))
    parts += gaps + ([FAILURES_ONLY.replace("collapsed", failure_words(pts))] if failures and gaps else [])
    if result.pixel is not None and best["mean"] <= result.pixel:
        parts.append(f"it does **not** beat the raw-pixel kNN ({result.pixel:.2f} %)")
    if not failures and (failed := collapse_gap(result, best)):
        parts.append(failed)
    return text + (": " + "; ".join(parts) + "." if parts else ".")


def gap_to(result: Analysis, best: pd.Series, other: pd.Series, name: str, failures: bool) -> str:
    """'+2.10 points vs NAME (44.30 ± 1.20 %; beyond seed noise: yes (paired p=0.033))'; with
    ``failures`` (every configuration collapsed) the gap and the value, no verdict."""
    unit = metric_words.unit(result.metric)
    lead = metric_words.fmt_gap(best["mean"] - other["mean"], signed=True)
    noise = "" if failures else f"; beyond seed noise: {seed_verdict(best, other)}"
    return (f"{lead}{metric_words.gap(result.metric)} vs {name} "
            f"({fmt_mean_ci(other['mean'], other['ci'])}{unit}{noise})")


def collapse_gap(result: Analysis, best: pd.Series) -> str:
    """'3 configurations with a collapsed trial: -12.72 to -11.48 points vs it (beyond seed noise:
    3 of 3)', or '' when none collapsed."""
    failed = result.points[(result.points["collapsed"] > 0) & (result.points["n"] > 0)]
    if failed.empty:
        return ""
    deltas = sorted(float(r["mean"] - best["mean"]) for _, r in failed.iterrows())
    tested = [v for v in (seed_verdict(r, best) for _, r in failed.iterrows()) if v != NOT_TESTED]
    noise = (f"beyond seed noise: {sum(verdict_kind(v) == BEYOND for v in tested)} of {len(tested)}" if tested
             else f"beyond seed noise: {NOT_TESTED}, fewer than 2 repeats")
    fmt = lambda d: metric_words.fmt_gap(d, signed=True)
    span = fmt(deltas[0]) if len(deltas) == 1 else f"{fmt(deltas[0])} to {fmt(deltas[-1])}"
    what = "1 configuration" if len(failed) == 1 else f"{len(failed)} configurations"
    return f"{what} with a collapsed trial: {span}{metric_words.gap(result.metric)} vs it ({noise})"
