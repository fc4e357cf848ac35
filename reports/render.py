"""``build_report(sweep_dir)``: the whole report of one sweep, written into ``<sweep>/report/`` all or
nothing (``sweep_format.files.all_or_none``).

    report_dir = build_report(Path("runs/temps"))
    # runs/temps/report/{trials.parquet, epochs.parquet, report.md, report.html, plots/*.png}

``report.md`` links the PNGs in ``plots/``; ``report.html`` embeds them (one file to send around).
An ``attention.png`` another command put in ``report/`` is shown under "Attention maps".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd

from reports import metric_words, plots
from reports.analysis import (
    TABLE_ROWS,
    TRIALS_ROWS,
    Analysis,
    ablation_line,
    ablation_tables,
    analyse,
    cut_note,
    fmt_value,
    leaderboard,
    left_out,
    lists_every_point,
    unvaried_note,
    varied,
)
from reports.cost import add_cost
from reports.document import Document
from reports.errors import ReportError
from reports.importance import Importance, by_importance, param_importance
from reports.main_effects import HEADING as MAIN_EFFECTS
from reports.main_effects import add_main_effects
from reports.parquet import write_parquet
from reports.power import add_power
from reports.ranking import counted_statuses, counted_trials, uncounted_statuses
from reports.stats import CI_LEVEL, NOISE_TEST
from reports.sweepdir import RERANKED_WHY, SweepDir, open_sweep
from reports.tables import left_running, records_tables, status_counts
from sweep_format.files import all_or_none, write_texts
from sweep_format.layout import (
    ATTENTION_FILE,
    EPOCHS_TABLE,
    PIXEL_KNN,
    PLOTS_DIR,
    REPORT_HTML,
    REPORT_MD,
    TRIALS_DIR,
    TRIALS_TABLE,
    UNTRAINED_KNN,
)
from sweep_format.records import read_records, searched_by
from sweep_format.statuses import INTERRUPTED, LISTED_ALWAYS, RUNNING, STOPPED_EARLY
from sweep_format.text import plural, shell_word

# the table of every configuration against its reference: a one-factor ablation's is the paper's ablation
# table; an Optuna, grid or random search's compares every configuration with the best (``table_heading``)
ABLATION_TABLE, AGAINST_BEST = "Ablation table", "Configurations against the best"
SECTIONS = ("Leaderboard", ABLATION_TABLE, MAIN_EFFECTS, "Seed power", "Cost", "Parameter effects",
            "Learning curves", "Collapse diagnostics", "Parameter importance", "Parallel coordinates",
            "Trials")
ATTENTION = "Attention maps"


def build_report(sweep_dir: str | Path, planned: int | None = None, driven: bool | None = None) -> Path:
    """Write the report of the sweep folder ``sweep_dir`` (finished, running or interrupted) and
    return the report folder. ReportError if ``sweep_dir`` is not a sweep or has no trial yet.
    ``planned``: the trials its spec plans (the header counts those never started); ``driven``:
    whether a driver may run it now (None: unknown; ablate's lock file decides, as for ``ablate ls``):
    without one, trials recorded ``running`` are said to be left so by a driver that is gone."""
    sweep = open_sweep(sweep_dir)
    out = sweep.report_dir
    records = read_records(sweep.path)
    with all_or_none():  # tables, plots and pages replace the last report's together, or none do
        trials, epochs = write_tables(sweep, records)
        if trials.empty:
            raise ReportError(f"{sweep.path / TRIALS_DIR}: no trial records yet (expected "
                              f"{TRIALS_DIR}/<id>.json, written from the first trial's start; is the sweep "
                              "still starting, or was it made by an ablate older than the records?)")
        doc = sweep_document(sweep, trials, epochs, out, planned, driven, searched_by(records))
        write_texts({out / REPORT_MD: doc.markdown(relative_to=out), out / REPORT_HTML: doc.html()})
    plots.remove_undrawn(out / PLOTS_DIR, doc.images())  # once the new pages stand: none shows them
    return out


def write_tables(sweep: SweepDir, records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sweep's trials and epochs tables of its ``records`` (reports.tables), written to its report
    folder (with the spec's parameters as parquet metadata, for `ablate compare`); nothing is written
    without a trial."""
    trials, epochs = records_tables(sweep, records)
    if len(trials):
        info = sweep.param_info(searched_by(records))  # what `ablate compare` reads of the file alone
        write_parquet(trials, sweep.report_dir / TRIALS_TABLE, info)
        write_parquet(epochs, sweep.report_dir / EPOCHS_TABLE, info)
    return trials, epochs


def sweep_document(sweep: SweepDir, trials: pd.DataFrame, epochs: pd.DataFrame, out: Path,
                   planned: int | None = None, driven: bool | None = None,
                   searched: list[tuple[str, str]] | None = None) -> Document:
    """The report's pages; ``searched``: the (metric, mode) pairs the records say the sweep searched
    (``sweep_format.records.searched_by``; None: unknown), said where spec.yaml ranks by another."""
    result = analyse(trials, sweep.param_info())
    gone = left_running(sweep.path, driven)
    counted = counted_trials(trials, sweep.metric)[0]
    doc = Document(f"DINO ablation report: {sweep.name}")
    if sweep.description:
        doc.paragraph(sweep.description)
    planned = max(planned or 0, len(trials))
    total = f"{len(trials)} of {planned}" if planned > len(trials) else str(planned)
    points = trials["point"].nunique()
    doc.paragraph(f"{total} {plural(planned, 'trial')} "
                  f"({status_counts(trials, planned, gone)}), search `{sweep.algorithm or '?'}`, "
                  f"{points} {plural(points, 'configuration')}, ranked by the final `{sweep.metric}` "
                  f"({'lower' if sweep.mode == 'min' else 'higher'} is better; rule: reports/ranking.py). "
                  f"Written {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}.")
    if reranked := sweep.reranked(searched or []):
        doc.paragraph(f"**{reranked}**: {RERANKED_WHY}; the rankings below are by `{sweep.metric}`.")
    doc.paragraph(reference_line(sweep.reference, marked=result.pixel is not None,
                                 damage=sweep.reference_damage))
    doc.paragraph(result.headline(trials))
    if stopped := stopped_sweep_text(sweep, trials, planned, result.partial):
        doc.paragraph(stopped)
    for note in result.notes:
        doc.note(note)
    importance = param_importance(sweep.path, sweep.name)
    add_leaderboard(doc, result)
    add_ablation(doc, result)
    add_main_effects(doc, result, trials, importance, out)  # none where the importances answer it
    add_power(doc, result.points, result.params, result.metric)
    add_cost(doc, trials, epochs, sweep.params, out, sweep.metric, sweep.mode)
    add_effects(doc, sweep, result, counted, out)
    if not result.partial and (note := stopped_note(trials, "They are not drawn here: their curves are under "
                                                            "Learning curves, their values under Trials.")):
        doc.note(note)
    add_curves(doc, trials, epochs, out, sweep.reference, result.ended)
    add_importance(doc, importance, out, stopped_note(trials, "Optuna was told that value, which is lower "
                                                             "partly because they trained less: these shares "
                                                             "mix the two."))
    add_parallel(doc, sweep, counted, out, result.no_value)
    if (out / ATTENTION_FILE).is_file():
        doc.heading(ATTENTION)
        doc.image(out / ATTENTION_FILE, "teacher [CLS] attention maps")
    add_trials(doc, sweep, trials, gone)
    return doc


def add_parallel(doc: Document, sweep: SweepDir, counted: pd.DataFrame, out: Path,
                 no_value: str = "No trial has a final kNN top-1 yet.") -> None:
    """Parallel coordinates over the parameters that varied (an axis of one value shows nothing);
    ``no_value``: what it says where no trial has a value to draw (``Analysis.no_value``)."""
    doc.heading("Parallel coordinates")
    params = [p for p in sweep.params if varied(counted, p)]
    path = plots.parallel_plot(counted, params, out / PLOTS_DIR / plots.PARALLEL_FILE,
                               log_params=sweep.log_params, categorical_params=sweep.categorical_params)
    if path:
        doc.image(path, "parallel coordinates")
    if note := unvaried_note(counted, sweep.params, "this plot"):
        doc.note(note)
    elif not path:
        doc.note(no_value)


def reference_line(reference: dict, marked: bool = True, damage: str = "") -> str:
    """The report header's baselines: what a trial must beat to show that DINO learned anything.
    ``marked``: the leaderboard marks configurations against raw pixels (``Analysis.pixel``: only
    when the sweep ranks by kNN top-1). ``damage``: why a value is not shown (``SweepDir.reference_damage``:
    the file named, and what is wrong with it), said in place of "not recorded"."""
    pixel, untrained = reference.get(PIXEL_KNN), reference.get(UNTRAINED_KNN)
    if pixel is None and untrained is None:
        why = f"not shown, {damage}" if damage else "not recorded for this sweep"
        return f"Reference kNN top-1 of the dataset: {why}."
    fmt = lambda v: f"{v:.2f} %" if isinstance(v, (int, float)) else "–"
    how = ("" if pixel is None else  # no raw-pixel value to mark against, whatever the metric
           "; a configuration that does not beat raw pixels is marked" if marked else
           "; this sweep ranks by another metric, so the tables do not mark configurations against them: "
           "compare each trial's kNN top-1 under Trials and in the learning curves")
    return (f"Reference kNN top-1 of the dataset: **raw pixels {fmt(pixel)}**, **untrained network "
            f"{fmt(untrained)}**{how}." + (f" Not shown: {damage}." if damage else ""))


def add_leaderboard(doc: Document, result: Analysis) -> None:
    doc.heading("Leaderboard")
    units = metric_words.gap(result.metric) or " its units"
    doc.note(f"Final {metric_words.name(result.metric)}, mean ± {CI_LEVEL:.0%} t-interval over seed repeats; "
             f"Δ in{units}. Counts {counted_statuses()} trials ({uncounted_statuses()} ones are "
             "listed under Trials); collapsed and diverged configurations rank last.")
    board = leaderboard(result)
    doc.table(board) if len(board) else doc.note(result.no_value)
    table = "the ablation table" if result.is_ablation else "the table of configurations against the best"
    rest = (f"{table} below lists every one" if lists_every_point(result) else
            f"{table} below lists the top {TABLE_ROWS}, {TRIALS_TABLE} all of them")
    if note := cut_note(len(board), len(result.points), rest):
        doc.note(note)


def sections(is_ablation: bool, importances: bool = False) -> tuple[str, ...]:
    """The headings of a sweep's report (``SECTIONS``, an ablation's), with its table's for the search;
    ``importances``: the Optuna study has them, which answer "which parameters matter" in its stead."""
    return tuple(table_heading(is_ablation) if h == ABLATION_TABLE else h for h in SECTIONS
                 if not (importances and h == MAIN_EFFECTS))


def table_heading(is_ablation: bool) -> str:
    """The heading of the table of configurations (``Analysis.is_ablation``: the spec's algorithm)."""
    return ABLATION_TABLE if is_ablation else AGAINST_BEST


def add_ablation(doc: Document, result: Analysis) -> None:
    doc.heading(table_heading(result.is_ablation))
    if result.reference_kind == "baseline":
        doc.note(f"Each parameter varied alone, the others at the baseline "
                 f"({result.label(result.reference_point)}). {NOISE_TEST}")
    else:
        doc.note(f"Every configuration against the best one. {NOISE_TEST}")
    tables = ablation_tables(result)
    if result.reference is None:
        doc.note(result.no_value)
    for title, table in tables:
        if title:  # an ablation's line; the one table against the best is the section's own
            doc.heading(title, level=3)
        doc.table(table)
    if result.reference_kind == "baseline" and (note := unvaried_note(result.points, result.params,
                                                                       "the ablation table")):
        doc.note(note)
    if tables and not lists_every_point(result):
        doc.note(left_out(len(tables[0][1]), len(result.points)))


def add_effects(doc: Document, sweep: SweepDir, result: Analysis, counted: pd.DataFrame, out: Path) -> None:
    doc.heading("Parameter effects")
    baseline = None
    if result.reference_kind == "baseline":
        baseline = float(result.row(result.reference_point)["mean"])
    if result.reference_kind == "baseline":
        doc.note("Each plot is one line of the ablation: that parameter's values, the others at the "
                 "baseline; the dashed line is the baseline's mean.")
    drawn = False
    for p in filter(lambda p: varied(counted, p), sweep.params):  # a plot of one value shows no effect
        # an ablation's baseline value is also every other line's centre: only this line's trials
        line = counted[ablation_line(counted, result, p)]
        path = plots.effect_plot(line, p, plots.effect_file(out / PLOTS_DIR, p), log=p in sweep.log_params,
                                 categorical=p in sweep.categorical_params, baseline=baseline,
                                 reference=sweep.reference)
        if path:
            doc.image(path, f"kNN top-1 vs {p}")
            drawn = True
    if note := unvaried_note(counted, sweep.params, "these plots"):
        doc.note(note)
    elif not drawn:
        doc.note(result.no_value)


def add_curves(doc: Document, trials: pd.DataFrame, epochs: pd.DataFrame, out: Path,
               reference: dict | None = None, ended: bool = False) -> None:
    """Learning curves and collapse diagnostics; ``ended``: every trial ended for good
    (``Analysis.ended``), so a missing value is not one still to come."""
    doc.heading("Learning curves")
    path = plots.learning_curves(epochs, trials, out / PLOTS_DIR / plots.LEARNING_CURVES_FILE,
                                 reference=reference)
    doc.image(path, "loss and kNN top-1 vs epoch") if path else doc.note(
        "No trained epoch has a finite loss or a kNN top-1: the loss was NaN or inf (each trial's stop "
        "reason under Trials says why)." if len(epochs) and (epochs["epoch"] >= 1).any()
        else "No trial has finished a training epoch yet.")
    doc.heading("Collapse diagnostics")
    doc.note("DINO paper, Fig. 7: without centering the teacher entropy goes to 0, without sharpening "
             "to ln(out_dim); in both cases KL(teacher ‖ student) goes to 0.")
    path = plots.collapse_plot(epochs, trials, out / PLOTS_DIR / plots.COLLAPSE_FILE)
    doc.image(path, "teacher entropy and KL vs epoch") if path else doc.note(
        "No trained epoch has reported teacher_entropy" + ("." if ended else " yet."))
    collapsed = trials[trials["collapsed"].fillna(False)]
    if len(collapsed):
        doc.table(pd.DataFrame({
            "trial": collapsed["trial_id"], "status": collapsed["status"],
            "epochs run": collapsed["epochs_done"], "stop reason": collapsed["stop_reason"]}))
    else:
        doc.paragraph("No trial collapsed.")


def stopped_note(trials: pd.DataFrame, then: str) -> str:
    """The sentence on the trials a scheduler stopped early that measured their metric after training:
    how many, at which epochs of how many, and ``then`` what that means where it is said; "" for none."""
    stopped = trials[(trials["status"] == STOPPED_EARLY) & (trials["knn_epoch"] >= 1).fillna(False)]
    if stopped.empty:
        return ""
    epochs = sorted({int(e) for e in stopped["knn_epoch"].dropna()})
    at = f"epoch {epochs[0]}" if len(epochs) == 1 else f"epochs {', '.join(map(str, epochs))}"
    planned = ", ".join(str(int(e)) for e in sorted(set(stopped["epochs_planned"].dropna())))
    n = len(stopped)
    return (f"{n} {plural(n, 'trial')} {'was' if n == 1 else 'were'} stopped early by the scheduler (ASHA), "
            f"{'its' if n == 1 else 'their'} kNN top-1 measured at {at} of {planned}, not at the end "
            f"of the schedule the ranked trials ran. {then}")


def add_importance(doc: Document, imp: Importance, out: Path, stopped: str = "") -> None:
    """The Optuna study's importances (``param_importance``); ``stopped``: the note on its trials stopped
    early (``stopped_note``)."""
    doc.heading("Parameter importance")
    if not imp.values:
        doc.paragraph(f"Not computed: {imp.reason}. For this sweep, see {MAIN_EFFECTS} above.")
        return
    doc.note(f"From the Optuna study ({imp.n_trials} finished Optuna trials; a trial's value is the "
             "mean over its repeats). fANOVA: share of the variance of kNN top-1 explained by each "
             "parameter; PED-ANOVA: how much the parameter's distribution differs in the top trials.")
    path = plots.importance_plot(imp.values, out / PLOTS_DIR / plots.IMPORTANCE_FILE)
    if path:
        doc.image(path, "parameter importance")
    params = by_importance(imp.values)
    doc.table(pd.DataFrame({"parameter": params, **{name: [f"{v.get(p, 0.0):.3f}" for p in params]
                                                   for name, v in imp.values.items()}}))
    for note in imp.notes + ([stopped] if stopped else []):
        doc.note(note)


def knn_cell(value: float, measured: int, done: int) -> str:
    """The last evaluated kNN; with its epoch when the trial ran on after it without evaluation, and
    said to be the untrained network's when measured at epoch 0 (a trial that never trained)."""
    if pd.isna(value):
        return "–"
    before_end = pd.notna(measured) and pd.notna(done) and measured < done
    if not before_end and pd.notna(measured) and measured == 0:
        return f"{value:.2f} (untrained)"
    return f"{value:.2f}" + (f" (epoch {measured})" if before_end else "")


def failed_after(count: int) -> str:
    """What the cut Trials table lists after its first rows: the failed (or damaged) trials after them, each
    with its reason, a failure among thousands of trials being what a reader looks for; at most
    ``TRIALS_ROWS`` of them."""
    if not count:
        return ""
    which = f"the {count}" if count <= TRIALS_ROWS else f"the first {TRIALS_ROWS} of the {count:,}"
    return f", then {which} failed or damaged ({', '.join(LISTED_ALWAYS)}) after them"


def stopped_sweep_text(sweep: SweepDir, trials: pd.DataFrame, planned: int, partial: bool = False) -> str:
    """Under the headline of a sweep that stopped before its end (Ctrl-C, SIGTERM, a full disk): that its
    result is partial and how to continue it. Its only other trace was the stop reason of each interrupted
    trial, in the last section. ``partial``: no trial has finished, so the ranking is of unfinished ones
    (reports.ranking, rule 1); it said it "covers the trials that finished" there too."""
    interrupted = int((trials["status"] == INTERRUPTED).sum())
    if not interrupted:
        return ""
    unstarted = planned - len(trials)
    counts = f"{interrupted} {plural(interrupted, 'trial')} interrupted" + (
        f", {unstarted} not started" if unstarted > 0 else "")
    covers = ("no trial has finished, so the ranking is of the unfinished trials' last values" if partial
              else "the ranking covers the trials that finished")
    return (f"**The sweep stopped before its end** ({counts}): {covers}. "
            f"`ablate resume {shell_word(sweep.path)}` continues it; each interrupted trial's stop reason "
            "under Trials says from which epoch.")


def add_trials(doc: Document, sweep: SweepDir, trials: pd.DataFrame, gone: str | None = None) -> None:
    """The table of every trial; ``gone``: the words for its ``running`` ones when no driver runs them
    (``left_running``)."""
    doc.heading("Trials")
    if len(trials) > TRIALS_ROWS:
        later = trials.iloc[TRIALS_ROWS:]
        failed = later[later["status"].isin(LISTED_ALWAYS)]
        doc.note(f"The first {TRIALS_ROWS} of the {len(trials):,} trials, in the order Ray created them"
                 f"{failed_after(len(failed))}; every trial is in {TRIALS_TABLE} (schema: "
                 f"reports/SCHEMA.md), per-epoch metrics in {EPOCHS_TABLE}.")
        trials = pd.concat([trials.head(TRIALS_ROWS), failed.head(TRIALS_ROWS)])
    else:
        doc.note(f"All trials in the order Ray created them; the full table is {TRIALS_TABLE} "
                 f"(schema: reports/SCHEMA.md), per-epoch metrics in {EPOCHS_TABLE}.")
    if gone and (trials["status"] == RUNNING).any():
        doc.note(f"The `{RUNNING}` ones were {gone}; {TRIALS_TABLE} keeps the status they recorded.")
    table = pd.DataFrame({"trial": trials["trial_id"], "status": trials["status"]})
    for p in sweep.params:
        table[p] = trials[p].map(fmt_value)
    table["repeat"] = trials["repeat"]
    columns = (trials["knn_top1"], trials["knn_epoch"], trials["epochs_done"])
    table[plots.KNN_LABEL] = [knn_cell(*cells) for cells in zip(*columns, strict=True)]
    table["best (%)"] = trials["best_knn_top1"].map(lambda v: f"{v:.2f}" if pd.notna(v) else "–")
    table["epochs run"] = [f"{d if pd.notna(d) else 0}/{e if pd.notna(e) else '?'}"  # a param may be "epochs"
                           for d, e in zip(trials["epochs_done"], trials["epochs_planned"], strict=True)]
    table["stop reason"] = trials["stop_reason"].fillna("")
    doc.table(table)
