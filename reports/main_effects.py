"""Which parameters matter, for sweeps without Optuna importances: each parameter's main effect.

A parameter's *main effect* is the spread (highest minus lowest) of the metric's marginal means across
its values. A value's marginal mean is the mean, each configuration weighing the same, of its
configurations at the settings of the other parameters that *every* value of the parameter ran:

- a grid: all of them (a setting with a configuration that has no counted trial drops out for every
  value of the parameter, and a note says so);
- a one-factor ablation: the baseline's alone, so the means are the parameter's line of the ablation
  table, each value against the baseline (which is one of the values);
- configurations that share no such setting (Optuna draws every parameter anew) separate nothing: the
  parameter is *not separable*, said so, and never given the spread of whole configurations.

Seed noise: repeat r runs the same seed in every configuration (reports.stats), so a value's marginal
mean is also taken seed by seed, over the seeds all its configurations ran. The spread's ± is the 95%
t-interval (``stats.mean_ci``) of the seed-by-seed gap between the best and the worst value, and its
verdict ``stats.noise_verdict`` between the two (paired over shared seeds, else Welch). The two are
picked after looking, so with three or more values the verdict leans towards "beyond".

Which trials enter is ranking rule 1 (``reports.ranking``, via ``Analysis.points``): collapsed and
diverged trials with their final value, as in the leaderboard (a setting that makes DINO collapse is an
effect of that setting), each such value named; failed, stopped-early and unfinished trials do not.

    effects = main_effects(analyse(trials, info))      # largest spread first
    e = effects[0]
    e.param, e.spread, e.half, e.kind     # 'teacher_temp', 31.45, 3.27, 'beyond'
    verdict(e)      # 'matters: beyond seed noise (paired p=0.00058, 3 seeds); teacher_temp=0.08 collapsed...'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from reports import metric_words, plots
from reports.analysis import NO_VERDICT, Analysis, fmt_value, unvaried_note, value_key, varied
from reports.document import Document
from reports.importance import Importance
from reports.ranking import FAILED_COUNTS, all_collapsed, counted_statuses, counted_trials, failure_words
from reports.stats import (
    ALPHA,
    BEYOND,
    CI_WORDS,
    PAIRED_MIN_SEEDS,
    WITHIN,
    fmt_mean_ci,
    mean_ci,
    noise_verdict,
    paired_differences,
    verdict_kind,
)
from sweep_format.layout import PLOTS_DIR
from sweep_format.statuses import describe_counts

HEADING = "Which parameters matter"

# What a parameter's spread says (``MainEffect.kind``)
# BEYOND, WITHIN (reports.stats): the best and the worst value apart beyond / within seed noise
NO_REPEATS = "no repeats"  # one seed per configuration: no seed noise to hold the spread against
FEW_SEEDS = "few seeds"  # repeats, but fewer than 2 on a side once matched by seed
FAILURES_ONLY = "failures only"  # every configuration collapsed or diverged (ranking.all_collapsed)
NOT_SEPARABLE = "not separable"  # no setting of the other parameters ran two of its values
VERDICT_KINDS = (BEYOND, WITHIN, NO_REPEATS, FEW_SEEDS, FAILURES_ONLY)  # the kinds with a spread


@dataclass
class Level:
    """One value of a parameter: its marginal mean and, seed by seed, the means it averages."""

    value: Any
    mean: float
    points: list[int]  # the configurations averaged (one in an ablation), each weighing the same
    replicates: list[float]  # the marginal mean seed by seed
    seeds: list[int | None]
    trials: int  # counted trials of those configurations
    repeats: int  # the most counted trials one of them has
    failed: dict[str, int] = field(default_factory=dict)  # its collapsed / diverged trials, by status

    def text(self, baseline: int | None = None) -> str:
        """'0.08 (10.89; collapsed 3/3)': the value, its mean, its failed trials; '0.04 (baseline, 42.34)'
        for the ``baseline`` point of an ablation."""
        failed = "".join(f"; {k} {n}/{self.trials}" for k, n in self.failed.items())
        base = "baseline, " if baseline is not None and self.points == [baseline] else ""
        return f"{fmt_value(self.value)} ({base}{fmt_mean_ci(self.mean, math.nan)}{failed})"


@dataclass
class MainEffect:
    param: str
    kind: str
    levels: list[Level] = field(default_factory=list)  # best first (the spec's mode)
    spread: float = math.nan  # best minus worst marginal mean, in absolute value
    half: float = math.nan  # half-width of the spread's 95% t-interval over seeds
    test: str = ""  # noise_verdict's words for the best value against the worst
    settings: int = 0  # settings of the other parameters the means average over
    of_settings: int = 0  # settings of the other parameters its counted configurations ran
    missing: list[str] = field(default_factory=list)  # configurations a dropped setting lacks ('x=1, y=2')

    @property
    def estimated(self) -> bool:
        return self.kind in VERDICT_KINDS

    @property
    def best(self) -> Level:
        return self.levels[0]

    @property
    def worst(self) -> Level:
        return self.levels[-1]

    def working_spread(self) -> float:
        """The spread over the values with no collapsed or diverged trial (nan with fewer than two)."""
        means = [lv.mean for lv in self.levels if not lv.failed]
        return max(means) - min(means) if len(means) >= 2 else math.nan


def main_effects(result: Analysis) -> list[MainEffect]:
    """Every parameter that took two or more values in the ranked points: largest spread first, then
    the ones not separable."""
    points = result.points[result.points["n"] > 0]
    params = [p for p in result.params if varied(points, p)]
    effects = [param_effect(points, p, [q for q in params if q != p], result.mode) for p in params]
    if all_collapsed(result.points):  # spreads between failures: no verdict, as in the ablation table
        for e in filter(lambda e: e.estimated, effects):
            e.kind = FAILURES_ONLY
    return sorted(effects, key=lambda e: -e.spread if e.estimated else math.inf)


def param_effect(points: pd.DataFrame, param: str, others: list[str], mode: str = "max") -> MainEffect:
    """``param``'s main effect over ``points`` (``stats.point_summary`` rows), at the settings of
    ``others`` (the other parameters that varied) that every value of ``param`` ran."""
    points = points[points[param].map(fmt_value) != "–"]  # a trial that recorded no value of it
    setting = pd.Series([tuple(value_key(r[q]) for q in others) for _, r in points.iterrows()],
                        index=points.index, dtype=object)
    value = points[param].map(value_key)
    ran = {v: set(setting[value == v]) for v in value.unique()}
    shared = set.intersection(*ran.values())
    if not shared:
        return MainEffect(param, NOT_SEPARABLE, of_settings=setting.nunique())
    held = setting.map(lambda s: s in shared).astype(bool)
    levels = [level(points[held & (value == v)], param) for v in ran]
    levels.sort(key=lambda lv: lv.mean, reverse=mode != "min")
    effect = MainEffect(param, "", levels, abs(levels[0].mean - levels[-1].mean), settings=len(shared),
                        of_settings=setting.nunique(),
                        missing=missing(points, param, others, value, setting, ran))
    best, worst = effect.best, effect.worst
    effect.test = noise_verdict(best.replicates, worst.replicates, best.seeds, worst.seeds)
    gaps = paired_differences(best.replicates, best.seeds, worst.replicates, worst.seeds)
    if len(gaps) >= PAIRED_MIN_SEEDS:  # the pairs the verdict's paired test uses
        effect.half = mean_ci(gaps)[1]
    untested = NO_REPEATS if max(lv.repeats for lv in levels) < 2 else FEW_SEEDS
    effect.kind = verdict_kind(effect.test) or untested
    return effect


def missing(points: pd.DataFrame, param: str, others: list[str], value: pd.Series, setting: pd.Series,
            ran: dict[str, set]) -> list[str]:
    """The configurations whose absence drops a setting of the ``others`` from ``param``'s means: each
    value of ``param`` at each setting another value ran and it did not ('a=2, b=y')."""
    row_of = {v: points.loc[value.index[value == v][0]] for v in ran}
    row_at = {s: points.loc[i] for i, s in setting.items()}
    return [", ".join([f"{param}={fmt_value(row_of[v][param])}",
                       *(f"{q}={fmt_value(row_at[s][q])}" for q in others)])
            for v in ran for s in row_at if s not in ran[v]]


def level(cells: pd.DataFrame, param: str) -> Level:
    """One value's configurations (``cells``): the mean of their means, and the same seed by seed over
    the seeds each of them ran once (one configuration: its repeats as they are, seeds known or not)."""
    seed_lists = [list(s) for s in cells["seeds"]]
    if len(cells) == 1:
        replicates, seeds = [float(v) for v in cells["values"].iloc[0]], seed_lists[0]
    elif all(None not in s and len(set(s)) == len(s) for s in seed_lists):
        by_seed = [dict(zip(s, v, strict=True)) for s, v in zip(seed_lists, cells["values"], strict=True)]
        seeds = sorted(set.intersection(*(set(s) for s in seed_lists)))
        replicates = [sum(d[s] for d in by_seed) / len(by_seed) for s in seeds]
    else:
        replicates, seeds = [], []
    failed = {k: int(cells[k].sum()) for k in FAILED_COUNTS if k in cells and cells[k].sum() > 0}
    return Level(cells[param].iloc[0], float(cells["mean"].mean()), [int(p) for p in cells["point"]],
                 replicates, list(seeds), int(cells["n"].sum()), int(cells["n"].max()), failed)


# --- words ------------------------------------------------------------------------------------------
def verdict(effect: MainEffect, metric: str = "knn_top1", failures: str = "collapsed") -> str:
    """A parameter's spread in plain words: beyond or within seed noise (with the test), or why there is
    no verdict; and the values whose trials collapsed or diverged, with the spread of the others.
    ``failures``: ``ranking.failure_words`` of the ranked points."""
    test = effect.test[effect.test.find("(") + 1:-1] if "(" in effect.test else effect.test
    text = {BEYOND: f"matters: beyond seed noise ({test})",
            WITHIN: f"within seed noise ({test}): no sign it matters at these repeats",
            NO_REPEATS: "can't tell: no seed repeats",
            FEW_SEEDS: f"can't tell: fewer than {PAIRED_MIN_SEEDS} seeds a value once matched by seed",
            FAILURES_ONLY: NO_VERDICT.replace("collapsed", failures)}[effect.kind]
    failed = [lv for lv in effect.levels if lv.failed]
    if failed and effect.kind != FAILURES_ONLY:
        which = ", ".join(f"{effect.param}={fmt_value(lv.value)}" for lv in failed)
        how = " or ".join(dict.fromkeys(k for lv in failed for k in lv.failed))
        text += f"; {which} {how}"
        if math.isfinite(rest := effect.working_spread()):
            text += f", the other values span {metric_words.fmt_gap(rest)}{metric_words.gap(metric)}"
    return text


def effects_table(effects: list[MainEffect], metric: str, failures: str = "collapsed",
                  baseline: int | None = None) -> pd.DataFrame:
    """The parameters with a spread, largest first: the spread ± its 95% CI, the best and the worst
    value with their means (``baseline``: an ablation's baseline point, marked), verdict."""
    unit = metric_words.gap(metric).strip()
    rows = [{"parameter": e.param,
             f"main effect{f' ({unit})' if unit else ''}": fmt_mean_ci(e.spread, e.half),
             "best value (mean)": e.best.text(baseline), "worst value (mean)": e.worst.text(baseline),
             "verdict": verdict(e, metric, failures)} for e in effects if e.estimated]
    return pd.DataFrame(rows)


def answer(effects: list[MainEffect], metric: str, failures: str = "collapsed") -> str:
    """The section's first sentence: which parameters are beyond seed noise, which within, which untold."""
    def named(*kinds: str) -> str:
        gap = metric_words.gap(metric)
        return ", ".join(f"{e.param} ({metric_words.fmt_gap(e.spread)}{gap}{failures_of(e)})"
                         for e in effects if e.kind in kinds)

    def failures_of(e: MainEffect) -> str:  # a spread made by a collapse is said to be one where it is given
        values = [lv for lv in e.levels if lv.failed]
        return "".join(f", {fmt_value(lv.value)} {' or '.join(lv.failed)}" for lv in values) \
            if e.kind != FAILURES_ONLY else ""

    parts = []
    if beyond := named(BEYOND):
        parts.append(f"**Beyond seed noise: {beyond}.**")
    if within := named(WITHIN):
        parts.append(f"Within seed noise: {within}.")
    if untold := named(NO_REPEATS, FEW_SEEDS):
        why = ("one seed per configuration, so no seed noise to hold a spread against; `--set repeats=3` "
               "would give one" if any(e.kind == NO_REPEATS for e in effects) else
               f"fewer than {PAIRED_MIN_SEEDS} seeds a value once matched by seed")
        parts.append(f"No seed-noise verdict ({why}), ranked by spread alone: {untold}.")
    if failed := named(FAILURES_ONLY):
        parts.append(f"Every configuration has a {failures} trial, so these are spreads between failures, "
                     f"with no verdict: {failed}.")
    return " ".join(parts)


def method_note(metric: str) -> str:
    """How the spread, its ± and its verdict are computed, and which trials enter (ranking rule 1)."""
    return (f"Main effect: the spread (best minus worst) of the mean {metric_words.name(metric)} across a "
            "parameter's values. Each value's mean averages its configurations, each weighing the same, at "
            "the settings of the other parameters that every value ran; in a one-factor ablation that is the "
            f"parameter's line, the others at the baseline. ± is the {CI_WORDS} of the spread over seeds "
            "(repeat r runs the same seed everywhere, so the spread is taken seed by seed). The verdict "
            f"tests the best value against the worst (paired t-test over shared seeds, else Welch's; p < "
            f"{ALPHA:g}); as the two are picked after looking, with 3 or more values it leans towards "
            f"'beyond'. Trials that enter: {counted_statuses()} (reports/ranking.py); collapsed and diverged "
            "ones with their final value, as in the leaderboard, and named in the verdict.")


def notes(effects: list[MainEffect], result: Analysis, trials: pd.DataFrame,
          importance: Importance) -> list[str]:
    """What the section leaves out or averages over less, one sentence each."""
    out = []
    counted, _ = counted_trials(trials, result.metric)
    left = trials.drop(index=counted.index)
    if len(left):
        out.append(f"Not entered: {describe_counts(left['status'].value_counts().to_dict())} "
                   f"{'trial' if len(left) == 1 else 'trials'}, without a counted "
                   f"{metric_words.name(result.metric)} (listed under Trials).")
    for e in effects:
        if e.estimated and e.missing and not result.is_ablation:
            more = f" and {len(e.missing) - 3} more" if len(e.missing) > 3 else ""
            out.append(f"{e.param}: its means average {e.settings} of the {e.of_settings} settings of the "
                       f"other parameters, those every value of it ran; no counted trial at "
                       f"{'; '.join(e.missing[:3])}{more}.")
    if apart := [e.param for e in effects if e.kind == NOT_SEPARABLE]:
        why = f" Optuna's importances: not computed, {importance.reason}." if importance.reason else ""
        how = ("the ablation's baseline has no counted trial" if result.is_ablation else
               "a sampler draws every parameter anew")
        out.append(f"Not separable: {', '.join(apart)}. No setting of the other parameters was run with two "
                   f"of {'its' if len(apart) == 1 else 'their'} values ({how}), so a spread would be that of "
                   f"whole configurations.{why}")
    if note := unvaried_note(result.points, result.params, "this section"):
        out.append(note)
    return out


def add_main_effects(doc: Document, result: Analysis, trials: pd.DataFrame, importance: Importance,
                     out: Path) -> None:
    """The report's "Which parameters matter" section; none where Optuna's importances answer it."""
    if importance.values:
        return
    doc.heading(HEADING)
    if len(result.points[result.points["n"] > 0]) < 2:
        doc.paragraph(f"Fewer than two configurations have a final {metric_words.name(result.metric)}: "
                      "nothing to compare.")
        return
    effects, failures = main_effects(result), failure_words(result.points)
    baseline = result.reference if result.reference_kind == "baseline" else None
    table = effects_table(effects, result.metric, failures, baseline)
    if not len(table):
        doc.paragraph("No parameter's main effect can be told from these configurations:")
    else:
        doc.paragraph(answer(effects, result.metric, failures))
        doc.table(table)
        drawn = [e for e in effects if e.estimated]
        plot = out / PLOTS_DIR / plots.MAIN_EFFECTS_FILE
        if len(drawn) >= 2 and (path := plots.main_effects_plot(plot_rows(drawn), plot, result.metric)):
            doc.image(path, "main effect of each parameter")
        doc.note(method_note(result.metric))
    for note in notes(effects, result, trials, importance):
        doc.note(note)


def plot_rows(effects: list[MainEffect]) -> pd.DataFrame:
    """``plots.main_effects_plot``'s table: parameter, spread, half-width, verdict kind, whether a value
    has a collapsed or diverged trial, and then the spread of the values that have none."""
    return pd.DataFrame({"param": [e.param for e in effects], "spread": [e.spread for e in effects],
                         "half": [e.half for e in effects], "kind": [e.kind for e in effects],
                         "failed": [any(lv.failed for lv in e.levels) for e in effects],
                         "working": [e.working_spread() if any(lv.failed for lv in e.levels) else math.nan
                                     for e in effects]})
