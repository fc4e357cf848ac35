"""Sweep folder -> two pandas tables, built from ablate's trial records (``trials/*.json``).

``trials``: one row per trial (status, searched hyperparameters, final/best kNN top-1, ...).
``epochs``: one row per trial and epoch with every metric the trial reported.
Columns, types and meanings: reports/SCHEMA.md. Works on running or interrupted sweeps (records are
replaced atomically); a damaged record is a trial with status ``damaged``, never an error.

    trials, epochs = load_trials(Path("runs/temps"))
    trials.groupby("teacher_temp")["knn_top1"].mean()
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from reports.columns import EPOCH_HEAD, HEAD_COLUMNS, TAIL_COLUMNS
from reports.sweepdir import SweepDir, open_sweep
from sweep_format.layout import PIXEL_KNN, READ, UNTRAINED_KNN
from sweep_format.records import EPOCH_FLAGS, EPOCH_INTEGERS, EPOCH_NUMBERS, knn_measured, read_records
from sweep_format.statuses import RUNNING, describe_counts
from sweep_format.text import shell_word

# Per-host bookkeeping that is not a measurement.
DROPPED_KEYS = {"hostname", "node_ip", "pid", "checkpoint_path"}


def load_trials(sweep_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, epochs) of the sweep folder ``sweep_dir``, which is only read; ReportError if it is not a
    sweep folder."""
    return sweep_tables(open_sweep(sweep_dir, READ))


def sweep_tables(sweep: SweepDir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables from ablate's trial records (``trials/*.json``) only: status, seed, point and
    baseline are what the sweep recorded, never re-derived from Ray's files."""
    return records_tables(sweep, read_records(sweep.path))


def status_counts(trials: pd.DataFrame, planned: int | None = None, orphaned: str | None = None) -> str:
    """'2 interrupted, 1 not started': the trials by status, and how many of the ``planned`` ones
    (the spec's, which the ablate layer knows) have no record yet; "" when there is neither.
    ``orphaned``: the words for trials recorded ``running`` whose driver is gone (ablate's lock file
    tells), said after the others instead of ``running``."""
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    stopped = counts.pop(RUNNING, 0) if orphaned else 0
    parts = [describe_counts(counts), f"{stopped} {orphaned}" if stopped else ""]
    if planned is not None and planned > len(trials):
        parts.append(f"{planned - len(trials)} not started")
    return ", ".join(filter(None, parts))


def left_running(folder: Path, driven: bool | None) -> str | None:
    """What ``status_counts`` says of trials recorded ``running`` when no driver holds the sweep's lock
    (``driven`` False, which ablate's lock file decides: a driver killed with SIGKILL, a lost machine),
    for ``ablate ls`` and the report alike; None while a driver may run them, or when that is unknown."""
    if driven is not False:
        return None
    return f"left running by a driver that is gone (`ablate resume {shell_word(folder)}` continues them)"


def trials_table(sweep: SweepDir, records: list[dict[str, Any]]) -> pd.DataFrame:
    """trials.parquet's table of ``records`` (the live view ranks with it)."""
    reference = sweep.reference
    return typed_trials(sweep, [trial_row(sweep, rec, rec.get("epochs") or [], reference) for rec in records])


def records_tables(sweep: SweepDir, records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    reference = sweep.reference
    rows, epoch_rows = [], []
    for rec in records:
        epochs = [{k: v for k, v in r.items() if k not in DROPPED_KEYS} for r in rec.get("epochs") or []]
        rows.append(trial_row(sweep, rec, epochs, reference))
        epoch_rows += [{**r, "sweep": sweep.name, "trial_id": rec["trial_id"]} for r in epochs]  # an epoch's
        # own keys never rename it
    trials = typed_trials(sweep, rows)
    epochs = typed_epochs(as_reported(epoch_rows))
    order = {tid: i for i, tid in enumerate(trials["trial_id"])}
    epochs = epochs.sort_values(["trial_id", "epoch"], key=lambda s: s.map(order) if s.name == "trial_id"
                                else s, kind="stable").reset_index(drop=True)
    return trials, epochs


def as_reported(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Epoch rows as one frame of the values as reported (None where a row lacks a key), columns in the
    order they first appear, for ``typed_epochs`` to type each column from all its values. One frame
    for all trials, not one per trial: 5,000 trials took 20 s in pandas' per-frame inference, which
    also typed an integer that some epochs lack (``restored_from_epoch``) as a double."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return pd.DataFrame({c: pd.Series([row.get(c) for row in rows], dtype=object) for c in columns})


# --- one trial --------------------------------------------------------------------------------
def last_value(rows: list[dict[str, Any]], key: str) -> Any:
    for row in reversed(rows):
        if row.get(key) is not None:
            return row[key]
    return None


def finite(values: list[Any]) -> list[float]:
    return [float(v) for v in values
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def trial_row(sweep: SweepDir, rec: dict[str, Any], rows: list[dict[str, Any]],
              reference: dict[str, Any]) -> dict[str, Any]:
    """One trials.parquet row: the record's own fields, and final values read off its epochs."""
    measured = [r for r in rows if knn_measured(r)]
    evaluated = [r for r in measured if r.get("epoch", 0) > 0]
    epoch0 = [r.get("knn_top1") for r in rows if r.get("epoch") == 0]
    speed = finite([r.get("images_per_s") for r in rows])
    params = rec.get("params") or {}
    row = {
        "sweep": sweep.name, "trial_id": rec.get("trial_id"), "status": rec.get("status"),
        "stop_reason": rec.get("reason") or "",
        **{p: params.get(p) for p in sweep.params},
        "seed": rec.get("seed"), "repeat": rec.get("repeat"),
        # the last *evaluated* kNN and its epoch: a carried value is never a final measurement
        "knn_top1": last_value(measured, "knn_top1"), "knn_top5": last_value(measured, "knn_top5"),
        "knn_epoch": measured[-1].get("epoch") if measured else None,
        "best_knn_top1": max(finite([r.get("knn_top1") for r in evaluated]), default=None),
        "knn_top1_epoch0": epoch0[0] if epoch0 else None,
        "loss": last_value(rows, "loss"), "epochs_done": max((r["epoch"] for r in rows), default=None),
        "wall_time_s": last_value(rows, "time_total_s"),
        "images_per_s": sum(speed) / len(speed) if speed else None,
        "collapsed": bool(rec.get("collapsed")), "point": rec.get("point"),
        "is_baseline": rec.get("is_baseline"), "epochs_planned": rec.get("epochs_planned"),
        "trial_dir": rec.get("trial_dir"), "label": rec.get("label"),
        PIXEL_KNN: reference.get(PIXEL_KNN),
        UNTRAINED_KNN: reference.get(UNTRAINED_KNN),
        "device_seconds": last_value(rows, "device_seconds"),
        "restarts": len(rec.get("restarts") or []),
        "_order": (rec.get("created_at") or math.inf, str(rec.get("trial_id"))),
    }
    if sweep.metric not in row:  # the spec's metric (e.g. teacher_entropy): its final value
        row[sweep.metric] = last_value(rows, sweep.metric)
    return row


# --- typing -----------------------------------------------------------------------------------
def typed_trials(sweep: SweepDir, records: list[dict[str, Any]]) -> pd.DataFrame:
    """Records in creation order, typed columns (the spec's metric too, where it is another)."""
    records = sorted(records, key=lambda r: r.pop("_order"))
    extra = [sweep.metric] if sweep.metric not in {**HEAD_COLUMNS, **TAIL_COLUMNS} else []
    columns = [*HEAD_COLUMNS, *sweep.params, *TAIL_COLUMNS, *extra]
    df = pd.DataFrame(records, columns=columns)
    for col, dtype in {**HEAD_COLUMNS, **TAIL_COLUMNS, **dict.fromkeys(extra, "float64")}.items():
        df[col] = as_dtype(df[col], dtype)
    for p in sweep.params:
        df[p] = as_dtype(df[p], param_dtype(sweep.space[p], sweep.values_of(p), df[p].tolist()))
    df["point"] = filled_points(df, sweep.params)
    return df


def filled_points(df: pd.DataFrame, params: list[str]) -> pd.Series:
    """The ``point`` column, where a record holds none (the format allows a null) the point of the
    trials with the same searched values, else a new one after the others. Every ranking groups by
    point, so such a trial was left out of the leaderboard, ``ablate ls`` and ``ablate compare`` in
    silence, its best configuration with it. A row without any searched value (a damaged record's
    stub) keeps none: it is no configuration."""
    points = df["point"].copy()
    if not points.isna().any() or not params:
        return points
    keys = [tuple(repr(v) for v in values) for values in df[params].itertuples(index=False)]
    known = {k: p for k, p in zip(keys, points, strict=True) if not pd.isna(p)}
    after = int(points.max()) + 1 if points.notna().any() else 0
    for i, key in enumerate(keys):
        if pd.isna(points.iloc[i]) and df[params].iloc[i].notna().any():
            if key not in known:
                known[key], after = after, after + 1
            points.iloc[i] = known[key]
    return points


def param_dtype(entry: Any, values: list[Any] | None, observed: list[Any]) -> str:
    """The column type of a searched hyperparameter: its range's type, the type of the ``values`` it
    is searched over, else that of the values its trials recorded."""
    kind = entry.get("type") if isinstance(entry, dict) else None
    if kind in ("float", "int"):
        return "float64" if kind == "float" else "Int64"
    return infer_dtype(values if values is not None else observed)


def present_values(values: list[Any]) -> list[Any]:
    """The values that are there: not None, not NaN."""
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def infer_dtype(values: list[Any]) -> str:
    present = present_values(values)
    if present and all(isinstance(v, bool) for v in present):
        return "boolean"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "Int64"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float64"
    return "string"


def as_dtype(series: pd.Series, dtype: str) -> pd.Series:
    values = series.tolist()
    if dtype == "string":
        # lists (e.g. global_crops_scale) become their JSON text: "[0.4, 1.0]"
        values = [None if v is None or (isinstance(v, float) and math.isnan(v))
                  else (json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)) for v in values]
        return pd.Series(values, index=series.index, dtype="string")
    if dtype == "float64":
        values = [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
                  for v in values]
        return pd.Series(values, index=series.index, dtype="float64")
    if dtype == "Int64":
        values = [int(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                  and math.isfinite(v) else None for v in values]
        return pd.Series(values, index=series.index, dtype="Int64")
    if dtype == "boolean":
        values = [bool(v) if isinstance(v, (bool, int)) else None for v in values]
        return pd.Series(values, index=series.index, dtype="boolean")
    raise ValueError(f"unknown dtype {dtype}")


KINDS = {"string": "texts", "float64": "numbers", "Int64": "integers", "boolean": "true or false"}


def misfit_column(df: pd.DataFrame, columns: dict[str, str]) -> str:
    """The first of ``columns`` (name: dtype, e.g. HEAD_COLUMNS) in ``df`` that holds a value its
    dtype cannot (a text in ``point``, in a table from elsewhere), named with that value; "" when none."""
    for col, dtype in columns.items():
        if col in df:
            lost = df[col].notna() & as_dtype(df[col], dtype).isna()
            if lost.any():
                return f"column {col!r} holds {repr(df[col][lost].iloc[0])[:40]}, not {KINDS[dtype]}"
    return ""


def typed_epochs(df: pd.DataFrame) -> pd.DataFrame:
    """sweep, trial_id, epoch first, then the metrics in the order trials reported them, typed."""
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in EPOCH_HEAD.items()})
    columns = [*EPOCH_HEAD, *(c for c in df.columns if c not in EPOCH_HEAD)]
    df = df[columns].copy()
    for col in columns:
        df[col] = as_dtype(df[col], EPOCH_HEAD.get(col) or epoch_dtype(col, df[col].tolist()))
    return df


# The kind of an epoch field the record format knows, for a column no row has a value of: inferred from
# nothing, it was a text column (every trial's kl_teacher_student null), which epochs.parquet promised as
# a number and the collapse plot could not draw ('ablate report' ended in a TypeError).
KNOWN_EPOCH_DTYPES = {**dict.fromkeys(EPOCH_NUMBERS, "float64"), **dict.fromkeys(EPOCH_FLAGS, "boolean"),
                      **dict.fromkeys(EPOCH_INTEGERS, "Int64")}


def epoch_dtype(col: str, values: list[Any]) -> str:
    """The type of an epoch column: that of its values, or where none has one, the record format's."""
    if col in KNOWN_EPOCH_DTYPES and not present_values(values):
        return KNOWN_EPOCH_DTYPES[col]
    return infer_dtype(values)


def native(value: Any) -> Any:
    """pandas/numpy scalars to plain Python (JSON text of list-valued params back to a list)."""
    if value is pd.NA:
        return None
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, str) and value[:1] == "[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
