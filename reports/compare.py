"""One report across sweeps: the same parameter side by side, one combined trials.parquet.

Inputs are sweep folders or trials.parquet files (``ablate report`` output; the searched parameters
are read from the file's metadata, epochs from the epochs.parquet next to it).

    out = build_comparison([Path("runs/temps"), Path("runs/temps_vit/report/trials.parquet")],
                           Path("runs/compare"))
    # runs/compare/{trials.parquet, epochs.parquet, report.md, report.html, plots/}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from reports import metric_words, plots
from reports.analysis import analyse, fmt_value, leaderboard, point_label
from reports.document import Document
from reports.errors import ReportError
from reports.parquet import read_metadata, read_parquet, write_parquet
from reports.ranking import counted_statuses, counted_trials, order_points
from reports.stats import CI_WORDS, fmt_mean_ci, mean_ci
from reports.sweepdir import RERANKED_WHY, open_sweep, reranking
from reports.tables import (
    EPOCH_HEAD,
    HEAD_COLUMNS,
    TAIL_COLUMNS,
    as_dtype,
    infer_dtype,
    misfit_column,
    records_tables,
)
from sweep_format.files import (
    NOT_REGULAR,
    all_or_none,
    file_on_path,
    linked,
    remove_made,
    to_make,
    user_path,
    write_texts,
)
from sweep_format.layout import (
    EPOCHS_TABLE,
    PIXEL_KNN,
    PLOTS_DIR,
    READ,
    REFERENCE_KNN,
    REPORT_HTML,
    REPORT_MD,
    SPEC_FILE,
    TRIALS_DIR,
    TRIALS_TABLE,
    UNTRAINED_KNN,
    inside_sweep,
    sweep_around,
)
from sweep_format.metrics import DEFAULT_METRIC, KNN_TOP1, mode_of
from sweep_format.records import read_records, searched_by
from sweep_format.space import MEASURED_ON
from sweep_format.statuses import describe_counts
from sweep_format.text import printable
from sweep_format.values import values_equal

SECTIONS = ("Sweeps", "Shared parameters", "Leaderboard", "Trials")
MAX_ROWS = 12  # more distinct values than this are grouped into quantile ranges


@dataclass
class Source:
    """One input of a comparison: a sweep's tables and what was searched."""

    name: str
    path: Path
    trials: pd.DataFrame
    epochs: pd.DataFrame
    info: dict

    @property
    def params(self) -> list[str]:
        return list(self.info.get("params") or [])

    @property
    def ranks_by(self) -> tuple[str, str]:
        """The metric and mode its spec ranks by (kept in the file's metadata)."""
        metric = str(self.info.get("metric") or DEFAULT_METRIC)
        return metric, mode_of(metric, self.info.get("mode"))

    @property
    def reranked(self) -> str:
        """What ``ablate ls`` and its report say where its spec.yaml ranks by another metric than the sweep
        searched (reports.sweepdir.reranking); "" where it ranks by that one, or its file does not say."""
        return reranking(*self.ranks_by, self.info.get("searched") or [])


def load_source(path: str | Path) -> Source:
    """A sweep folder or a trials.parquet file; ReportError naming the path if it is neither."""
    p = Path(path)
    expected = f"a sweep folder ({SPEC_FILE} + {TRIALS_DIR}/) or a {TRIALS_TABLE} written by `ablate report`"
    if not p.exists():
        raise ReportError(f"{p}: no such file or folder (expected {expected})")
    if p.is_dir():
        sweep = open_sweep(p, READ)  # a source is only read: a link in its report/ or driver.lock is harmless
        records = read_records(sweep.path)
        trials, epochs = records_tables(sweep, records)
        return Source(sweep.name, p, trials, epochs, sweep.param_info(searched_by(records)))
    if not p.is_file():  # reading a FIFO waits for a writer, for ever
        raise ReportError(f"{p}: {NOT_REGULAR} (expected {expected})")
    trials, info = read_parquet(p), read_metadata(p)  # ReportError for a file that is not a table
    missing = [c for c in ("sweep", "trial_id", "status", KNN_TOP1, "point") if c not in trials]
    if missing:
        raise ReportError(f"{p}: no column {', '.join(missing)}; expected {expected}")
    epochs_file = p.with_name(EPOCHS_TABLE)
    epochs = read_parquet(epochs_file) if epochs_file.is_file() else pd.DataFrame()
    schema = {**HEAD_COLUMNS, **TAIL_COLUMNS}
    for file, table, columns in ((p, trials, schema), (epochs_file, epochs, EPOCH_HEAD)):
        if why := misfit_column(table, columns):
            raise ReportError(f"{file}: {why}; expected {expected}")
    if not info.get("params"):  # a file written by other means: params are the non-schema columns
        info = {**info, "params": [c for c in trials if c not in HEAD_COLUMNS and c not in TAIL_COLUMNS]}
    name = info.get("sweep") or (str(trials["sweep"].iloc[0]) if len(trials) else printable(p.stem))
    return Source(name, p, trials, epochs, info)


def unique_names(sources: list[Source]) -> None:
    """Two inputs of the same name (e.g. a sweep and its copy) become name, name#2."""
    seen: dict[str, int] = {}
    for s in sources:
        seen[s.name] = seen.get(s.name, 0) + 1
        if seen[s.name] > 1:
            s.name = f"{s.name}#{seen[s.name]}"
        s.trials = s.trials.assign(sweep=s.name)
        if len(s.epochs):
            s.epochs = s.epochs.assign(sweep=s.name)


def check_shared(sources: list[Source]) -> list[str]:
    """The parameters every sweep searched; ReportError if none, or if a sweep has no kNN top-1."""
    shared = [p for p in sources[0].params if all(p in s.params for s in sources[1:])]
    if not shared:
        searched = "; ".join(f"{s.name} ({s.path}): {', '.join(s.params) or 'none'}" for s in sources)
        raise ReportError(f"the sweeps share no searched parameter ({searched}); compare needs at "
                          "least one parameter that every sweep searched")
    no_metric = [f"{s.name} ({s.path})" for s in sources if not s.trials[KNN_TOP1].notna().any()]
    if no_metric:
        raise ReportError(f"no shared metric: {', '.join(no_metric)} has no trial with a kNN top-1 yet "
                          "(expected at least one evaluated trial per sweep)")
    return shared


def combined(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    for col in df.columns:  # Int64 in one sweep and float64 in another must not end as object
        if df[col].dtype == object:
            df[col] = as_dtype(df[col], infer_dtype(df[col].tolist()))
    return df


# What a comparison writes into its folder (``check_out``: none of them may be a link)
WRITTEN = (TRIALS_TABLE, EPOCHS_TABLE, REPORT_MD, REPORT_HTML, PLOTS_DIR)


def build_comparison(paths: list[str | Path], out: str | Path) -> Path:
    """Write the comparison of ``paths`` (two or more) into ``out``; return ``out``."""
    if len(paths) < 2:
        raise ReportError(f"compare needs two or more sweeps (folders or {TRIALS_TABLE} files)")
    out = Path(out)
    check_out(out, paths)
    sources = [load_source(p) for p in paths]
    unique_names(sources)
    shared = check_shared(sources)
    trials = combined([s.trials for s in sources])
    epochs = combined([s.epochs for s in sources])
    meta = {"sweeps": [s.name for s in sources], "params": shared,
            "log_params": sorted({p for s in sources for p in s.info.get("log_params", []) if p in shared}),
            "categorical_params": sorted({p for s in sources for p in s.info.get("categorical_params", [])
                                          if p in shared})}
    made = make_out(out)
    try:
        with all_or_none():  # as a sweep's report (reports.render): tables, plots and pages together
            write_parquet(trials, out / TRIALS_TABLE, meta)
            if len(epochs):
                write_parquet(epochs, out / EPOCHS_TABLE, meta)
            doc = comparison_document(sources, shared, trials, meta, out)
            write_texts({out / REPORT_MD: doc.markdown(relative_to=out), out / REPORT_HTML: doc.html()})
        plots.remove_undrawn(out / PLOTS_DIR, doc.images())  # a parameter no longer shared: its old plot
    except BaseException:  # Ctrl-C while plotting, a full disk: none of its files, nor the folder it made
        for folder in (out / PLOTS_DIR, out):
            remove_made(made, user_path(folder))
        raise
    return out


def check_out(out: Path, inputs: Sequence[str | Path] = ()) -> None:
    """A comparison is never written into a sweep folder (its report/ and tables are the sweep's: the
    comparison's trials.parquet would stand for the sweep's own), over or below a file, nor into the
    folder of an input trials.parquet, whose tables it would replace with the comparison's. A folder
    is a sweep by the layout's rule (``sweep_around``): a project folder whose own spec file is
    named spec.yaml is none. Nor is it written through a link in the folder to a file or folder
    elsewhere (its plots/, ...)."""
    folder = user_path(out).resolve()
    if file := file_on_path(folder):
        raise ReportError(f"--out {out}: {file} is a file, not a folder; give a folder for the comparison")
    if problem := linked(folder, WRITTEN, (PLOTS_DIR,)):
        raise ReportError(f"--out {out}: {problem}")
    if (inside := sweep_around(folder)) is not None:
        raise ReportError(f"--out {out}: {inside_sweep(inside)}; write the comparison beside it, e.g. "
                          f"--out {inside.parent / 'compare'}")
    for source in inputs:
        file = user_path(source).resolve()
        if file.is_file() and file.parent == folder:
            raise ReportError(f"--out {out}: holds the input {source}, which the comparison's "
                              f"{TRIALS_TABLE} would replace; write the comparison to another folder")
    if found := foreign_output(folder):
        raise ReportError(f"--out {out}: holds a {found} that no `ablate compare` wrote (no comparison's "
                          f"{TRIALS_TABLE} beside it), which the comparison would replace; choose another "
                          "folder, or move it")


def foreign_output(folder: Path) -> str:
    """The first of the comparison's names (``WRITTEN``) that ``folder`` holds and an earlier comparison
    did not write ("" when none, or when its trials.parquet is a comparison's, which this one replaces):
    a notes folder's own report.md was replaced without a word."""
    found = [name for name in WRITTEN if (folder / name).exists() or (folder / name).is_symlink()]
    if not found:
        return ""
    table = folder / TRIALS_TABLE
    try:  # the comparison's metadata names its sweeps; a FIFO is not opened (its read waits for ever)
        wrote = table.is_file() and "sweeps" in read_metadata(table)
    except ReportError:  # not a table
        wrote = False
    return "" if wrote else (f"{found[0]}/" if found[0] == PLOTS_DIR else found[0])


def make_out(out: Path) -> Path | None:
    """The comparison's folder, made once its sources are read (a refused comparison leaves none); one
    that cannot be made is a ReportError naming it and why. The outermost folder it made (``to_make``)."""
    import errno

    made = to_make(user_path(out))
    try:
        user_path(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "error")
        raise ReportError(f"--out {out}: cannot make this folder ({code}: {exc.strerror}); give a folder "
                          "that can be written") from None
    return made


def value_groups(values: pd.Series) -> pd.Series:
    """Each value as itself, or as its quantile range when there are more than MAX_ROWS values."""
    if values.nunique() <= MAX_ROWS or not plots.is_numeric(values):
        return values.map(fmt_value)
    bins = pd.qcut(values.astype(float), q=5, duplicates="drop")
    return bins.map(lambda b: f"{b.left:.3g} – {b.right:.3g}").astype("string")


def as_tabled(counted: pd.DataFrame, param: str) -> pd.DataFrame:
    """``counted`` with each value of ``param`` replaced by the first one written as it is (0.0600007,
    a sampled float, by another sweep's 0.06): a categorical axis then has one '0.06' tick, as the
    side-by-side table has one '0.06' row, not two ticks of the same label."""
    values = counted[param]
    if values.nunique() > MAX_ROWS or not plots.is_numeric(values):
        return counted
    shown = values.map(fmt_value)
    first = values.groupby(shown, sort=False).first()  # each label's first value
    return counted.assign(**{param: shown.map(first).where(values.notna())})


def side_by_side(counted: pd.DataFrame, param: str, names: list[str]) -> pd.DataFrame:
    """Rows: values of ``param``; a column per sweep: kNN top-1 mean (trials), ± its CI where the
    trials are one configuration's repeats. A cell pooling configurations (other parameters vary, or a
    range of values) has no interval, as in the effect plots (reports.plots.mean_words): a t-interval
    over configurations a sweep chose is no one's uncertainty."""
    data = counted[counted[param].notna()].copy()
    data["_group"] = value_groups(data[param])
    order = data.sort_values(param, kind="stable")["_group"].drop_duplicates().tolist()
    rows = []
    for group in order:
        row = {param: group}
        for name in names:
            sel = data[(data["_group"] == group) & (data["sweep"] == name)]
            mean, ci, n = mean_ci(sel[KNN_TOP1].tolist())
            pooled = "point" in sel and sel["point"].nunique() > 1
            row[name] = f"{fmt_mean_ci(mean, math.nan if pooled else ci)} ({n})" if n else "–"
        rows.append(row)
    return pd.DataFrame(rows)


def differing_settings(sources: list[Source]) -> pd.DataFrame:
    """The fixed trainer settings (none searched by any sweep) in which the sweeps differ: one row per
    setting, one column per sweep. Sweeps whose files do not keep their settings are left out."""
    known = [s for s in sources if isinstance(s.info.get("fixed"), dict)]
    if len(known) < 2:
        return pd.DataFrame()
    keys = [k for k in known[0].info["fixed"] if all(k in s.info["fixed"] for s in known[1:])]
    rows = [{"setting": k, **{s.name: fmt_value(s.info["fixed"][k]) for s in known}} for k in keys
            if not all(values_equal(known[0].info["fixed"][k], s.info["fixed"][k]) for s in known[1:])]
    return pd.DataFrame(rows)


def data_keys(differ: pd.DataFrame) -> list[str]:
    """The keys of where the kNN is measured (dataset, data_path) in which the sweeps differ."""
    return [k for k in MEASURED_ON if len(differ) and k in set(differ["setting"])]


def settings_note(differ: pd.DataFrame, sources: list[Source]) -> str:
    """What the comparison can be read for, given the settings in which the sweeps differ."""
    unknown = [s.name for s in sources if not isinstance(s.info.get("fixed"), dict)]
    text = (f"{', '.join(unknown)}: no trainer settings in the file (a {TRIALS_TABLE} written before ablate "
            "kept them), so the sweeps may differ in more than is shown. " if unknown else "")
    if not len(differ):
        return text + ("" if unknown else "The sweeps share every trainer setting they do not search.")
    data = data_keys(differ)
    return text + ("The sweeps differ in the trainer settings below, besides what they search" + (
        f"; they ran on different data ({', '.join(data)}): each kNN figure is measured on its own "
        "dataset, so compare each sweep's trend in a parameter, not its values across sweeps."
        if data else "."))


def fmt_reference(source: Source, key: str) -> str:
    """A sweep's reference kNN top-1 (metadata of its parquet, or its trials' column)."""
    value = source.info.get(key)
    if value is None and key in source.trials and source.trials[key].notna().any():
        value = float(source.trials[key].dropna().iloc[0])
    return f"{value:.2f}" if isinstance(value, (int, float)) else "–"


def shared_reference(sources: list[Source]) -> dict | None:
    """The reference kNN lines to draw: only when every sweep has the same (one dataset)."""
    refs = {tuple(s.info.get(k) for k in REFERENCE_KNN) for s in sources}
    return dict(zip(REFERENCE_KNN, refs.pop(), strict=True)) if len(refs) == 1 else None


def comparison_metric(sources: list[Source]) -> tuple[str, str, str]:
    """The metric and mode every sweep ranks by, and a note: the sweeps' own when they agree, else
    kNN top-1 (max), which every compared sweep records (check_shared)."""
    ranks_by = {s.name: s.ranks_by for s in sources}
    pairs = set(ranks_by.values())
    if len(pairs) == 1:
        metric, mode = pairs.pop()
        return metric, mode, ""
    own = "; ".join(f"{name}: {metric} ({mode})" for name, (metric, mode) in ranks_by.items())
    knn = mode_of(KNN_TOP1)
    return KNN_TOP1, knn, (f"The sweeps rank by different metrics ({own}); they are compared on "
                           f"{KNN_TOP1} ({knn}), which every one of them records.")


def best_line(bests: pd.DataFrame, metric: str, mode: str, differ: Sequence[str] = ()) -> str:
    """The best sweep by the ranking rule (reports.ranking: mode, collapsed last) and its lead;
    ``differ``: the fixed trainer settings the sweeps differ in (``differing_settings``), said beside
    the lead, which may come from them (3 epochs against 2) rather than from what was searched."""
    ranked = order_points(bests, mode)
    first = ranked.iloc[0]
    unit = metric_words.unit(metric)
    text = (f"**Best: {first['sweep']}** ({first['label']}) with {metric_words.name(metric)} "
            f"{first['mean']:.2f}{unit}"
            + (" (a collapsed configuration: every sweep's best collapsed)" if first["collapsed"] else ""))
    if len(ranked) > 1:
        second = ranked.iloc[1]
        lead = metric_words.fmt_gap(first["mean"] - second["mean"], signed=True)
        text += f", {lead}{metric_words.gap(metric)} vs the best of {second['sweep']}"
        if differ:
            text += (f" (the sweeps also differ in {', '.join(f'`{k}`' for k in differ)}, below: the lead "
                     "may come from those settings, not from what they searched)")
    return text + "."


DELTA = "Δ vs best or baseline"  # the compared leaderboards' one delta column (each sweep's reference)


def board_columns(board: pd.DataFrame, sources: list[Source]) -> pd.DataFrame:
    """The sweeps' leaderboards side by side: every searched parameter before the results. The
    parameters only a later sweep searched came after 'beats raw pixels', at the table's far end."""
    params = list(dict.fromkeys(p for s in sources for p in s.params if p in board.columns))
    return board[["sweep", "#", *params, *(c for c in board.columns if c not in {"sweep", "#", *params})]]


def comparison_document(sources: list[Source], shared: list[str], trials: pd.DataFrame, meta: dict,
                        out: Path) -> Document:
    names = [s.name for s in sources]
    metric, mode, metric_note = comparison_metric(sources)
    results = {s.name: analyse(s.trials, {**s.info, "metric": metric, "mode": mode}) for s in sources}
    doc = Document(f"DINO sweep comparison: {' vs '.join(names)}")
    doc.heading("Sweeps")
    rows: list[dict] = []
    bests: list[dict] = []
    for s in sources:
        result = results[s.name]
        best = result.points.iloc[0] if len(result.points) else None
        if best is not None and math.isfinite(best["mean"]):
            bests.append({"sweep": s.name, "label": point_label(best, s.params), "point": len(bests),
                          **{k: best[k] for k in ("mean", "n", "collapsed")}})
        rows.append({"sweep": s.name, "source": printable(str(s.path)), "trials": len(s.trials),
                     "statuses": describe_counts(s.trials["status"].value_counts().to_dict()),
                     "best configuration": point_label(best, s.params) if best is not None else "–",
                     result.metric_label: fmt_mean_ci(best["mean"], best["ci"]) if best is not None else "–",
                     "raw pixels kNN (%)": fmt_reference(s, PIXEL_KNN),
                     "untrained kNN (%)": fmt_reference(s, UNTRAINED_KNN)})
    if metric_note:
        doc.note(metric_note)
    for s in sources:  # as its report says it, above the lines it qualifies
        if s.reranked:
            doc.paragraph(f"**{s.name}: {s.reranked}**: {RERANKED_WHY}; the comparison ranks by `{metric}`.")
    differ = differing_settings(sources)
    if data_keys(differ):  # values measured on different images: no sweep is best over another
        doc.paragraph(f"No best sweep: they ran on different data ({', '.join(data_keys(differ))}); "
                      "each sweep's best is in the table.")
    elif bests:
        settings = list(differ["setting"]) if len(differ) else []
        doc.paragraph(best_line(pd.DataFrame(bests), metric, mode, settings))
    doc.table(pd.DataFrame(rows))
    doc.note(settings_note(differ, sources))
    if len(differ):
        doc.table(differ)
    doc.heading("Shared parameters")
    doc.note(f"Final {plots.KNN_LABEL} per value: mean (trials), ± {CI_WORDS} over repeats where the trials "
             "are one configuration's (none where other parameters vary); "
             f"{counted_statuses()} trials. "
             "Parameters searched by every sweep: " + ", ".join(f"`{p}`" for p in shared) + ".")
    counted = pd.concat([counted_trials(s.trials, KNN_TOP1)[0] for s in sources], ignore_index=True)
    for p in shared:
        doc.heading(p, level=3)
        doc.table(side_by_side(counted, p, names))
        path = plots.effect_plot(as_tabled(counted, p) if p in meta["categorical_params"] else counted, p,
                                 plots.effect_file(out / PLOTS_DIR, p), hue="sweep",
                                 log=p in meta["log_params"], categorical=p in meta["categorical_params"],
                                 reference=shared_reference(sources))
        if path:
            doc.image(path, f"kNN top-1 vs {p}, by sweep")
    doc.heading("Leaderboard")
    doc.note(f"Best configurations of each sweep (mean ± {CI_WORDS} over repeats), Δ to the sweep's best "
             "(a one-factor ablation's: to its baseline, as its own report has it).")
    boards = []
    for s in sources:
        board = leaderboard(results[s.name], top=5)
        if len(board):
            board = board.rename(columns={f"Δ vs {results[s.name].reference_kind}": DELTA})
            boards.append(board.assign(sweep=s.name)[["sweep", *board.columns]])
    if boards:
        doc.table(board_columns(combined(boards).fillna("–"), sources))
    doc.heading("Trials")
    doc.paragraph(f"{len(trials)} trials in {TRIALS_TABLE} (column `sweep` names the sweep).")
    return doc
