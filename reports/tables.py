"""Sweep folder -> two pandas tables, built from Ray's own files so the numbers are what trials reported.

``trials``: one row per trial (status, searched hyperparameters, final/best kNN top-1, ...).
``epochs``: one row per trial and epoch with every metric the trial reported.
Columns, types and meanings: reports/SCHEMA.md. Works on running or interrupted sweeps: a half-written
last line of result.json is skipped, missing files give missing values, never an error.

    trials, epochs = load_trials(Path("runs/temps"))
    trials.groupby("teacher_temp")["knn_top1"].mean()
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from reports.sweepdir import (
    RayTrial,
    Sweep,
    open_sweep,
    ray_trials,
    space_values,
    trial_dirs,
    values_equal,
)

STATUSES = ("completed", "stopped early", "collapsed", "diverged", "oom", "errored", "running")
FINAL_STATUSES = ("completed", "collapsed", "diverged")  # ran their schedule or were stopped for cause
# trials.parquet: these columns, in this order, around the searched hyperparameters (SCHEMA.md).
HEAD_COLUMNS = {"sweep": "string", "trial_id": "string", "status": "string", "stop_reason": "string"}
TAIL_COLUMNS = {
    "seed": "Int64", "repeat": "Int64", "knn_top1": "float64", "knn_top5": "float64",
    "best_knn_top1": "float64", "knn_top1_epoch0": "float64", "loss": "float64",
    "epochs_done": "Int64", "wall_time_s": "float64", "images_per_s": "float64",
    "collapsed": "boolean", "point": "Int64", "is_baseline": "boolean", "epochs": "Int64",
    "trial_dir": "string",
}
EPOCH_HEAD = {"sweep": "string", "trial_id": "string", "epoch": "Int64"}
# Ray bookkeeping that is not a measurement (the config is in trials.parquet).
DROPPED_KEYS = {"config", "hostname", "node_ip", "pid", "date", "checkpoint_dir_name", "trial_id"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load_trials(sweep_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, epochs) of the sweep folder ``sweep_dir``; ReportError if it is not a sweep folder."""
    return sweep_tables(open_sweep(sweep_dir))


def sweep_tables(sweep: Sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    ray = ray_trials(sweep.tune_dir)
    by_dir = {t.dir_name: t for t in ray.values()}
    records, epoch_frames = [], []
    for folder in trial_dirs(sweep.tune_dir):
        params = read_json(folder / "params.json")
        rows = epoch_rows(read_results(folder / "result.json"))
        trial_id = trial_id_of(folder, rows, by_dir)
        info = ray.get(trial_id) or by_dir.get(folder.name)
        record = trial_record(sweep, folder, trial_id, params, rows, info)
        records.append(record)
        if rows:
            epoch_frames.append(pd.DataFrame(
                [{"sweep": sweep.name, "trial_id": trial_id, **row} for row in rows]))
    trials = typed_trials(sweep, records)
    epochs = typed_epochs(pd.concat(epoch_frames, ignore_index=True) if epoch_frames else pd.DataFrame())
    order = {tid: i for i, tid in enumerate(trials["trial_id"])}
    epochs = epochs.sort_values(["trial_id", "epoch"], key=lambda s: s.map(order) if s.name == "trial_id"
                                else s, kind="stable").reset_index(drop=True)
    return trials, epochs


# --- reading Ray's files ----------------------------------------------------------------------
def read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}  # not written yet, or being written
    return data if isinstance(data, dict) else {}


def read_results(file: Path) -> list[dict[str, Any]]:
    """Ray's result.json: one JSON object per line; a partial (still being written) line is skipped."""
    try:
        lines = file.read_text().splitlines()
    except OSError:
        return []
    results = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            results.append(row)
    return results


def epoch_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scalar metrics per epoch, sorted; an epoch reported twice (a trial restored from a checkpoint
    repeats the epochs after it) keeps its last report."""
    by_epoch: dict[int, dict[str, Any]] = {}
    for result in results:
        epoch = result.get("epoch", result.get("training_iteration", 0) - 1)
        if not isinstance(epoch, (int, float)) or isinstance(epoch, bool):
            continue
        row = {k: v for k, v in result.items()
               if k not in DROPPED_KEYS and (v is None or isinstance(v, (bool, int, float, str)))}
        row["epoch"] = int(epoch)
        by_epoch[int(epoch)] = row
    return [by_epoch[e] for e in sorted(by_epoch)]


def trial_id_of(folder: Path, rows: list[dict[str, Any]], by_dir: dict[str, RayTrial]) -> str:
    if folder.name in by_dir:
        return by_dir[folder.name].trial_id
    if rows and rows[-1].get("trial_id"):
        return str(rows[-1]["trial_id"])
    return folder.name


def error_line(folder: Path) -> str:
    """The last line of Ray's error.txt (the exception), without terminal colours."""
    try:
        lines = [ANSI.sub("", line).strip() for line in (folder / "error.txt").read_text().splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1][:300] if lines else ""


# --- one trial --------------------------------------------------------------------------------
def trial_status(outcome: str, ray_status: str | None, has_error: bool, epochs_done: int | None,
                 epochs: int | None) -> str:
    """One of STATUSES. The trial's own verdict (``trial_outcome``) wins; then Ray's state."""
    if outcome in ("completed", "collapsed", "diverged", "oom"):
        return outcome
    if ray_status == "ERROR" or (not ray_status and has_error):
        return "errored"
    if ray_status == "TERMINATED":
        if epochs is not None and (epochs_done or 0) < epochs:
            return "stopped early"
        return "completed"
    return "running"  # RUNNING, PENDING, PAUSED, or no state yet (an interrupted sweep stays here)


def last_value(rows: list[dict[str, Any]], key: str) -> Any:
    for row in reversed(rows):
        if row.get(key) is not None:
            return row[key]
    return None


def finite(values: list[Any]) -> list[float]:
    return [float(v) for v in values
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def trial_record(sweep: Sweep, folder: Path, trial_id: str, params: dict[str, Any],
                 rows: list[dict[str, Any]], info: RayTrial | None) -> dict[str, Any]:
    epochs_done = max((r["epoch"] for r in rows), default=None)
    epochs = params.get("epochs", sweep.epochs)
    epochs = int(epochs) if isinstance(epochs, (int, float)) else None
    has_error = (folder / "error.txt").exists()
    outcome = str(last_value(rows, "trial_outcome") or "")
    status = trial_status(outcome, info.status if info else None, has_error, epochs_done, epochs)
    stop_reason = str(last_value(rows, "stop_reason") or "")
    if status == "errored" and not stop_reason:
        stop_reason = error_line(folder) or f"Ray marked the trial as errored (see tune/{folder.name})"
    elif status == "stopped early" and not stop_reason:
        stop_reason = f"stopped early by the scheduler after {epochs_done}/{epochs} epochs"
    knn = [r.get("knn_top1") for r in rows if r["epoch"] > 0]  # best after training, not epoch 0
    epoch0 = [r.get("knn_top1") for r in rows if r["epoch"] == 0]
    speed = finite([r.get("images_per_s") for r in rows])
    at_ln_k = last_value([r for r in rows if r["epoch"] > 0], "loss_at_ln_out_dim")
    # The trainable reports its seed and repeat; before its first report, derive them from the
    # config: `repeat` (grid/ablation points) or Ray's Repeater index, seed = spec seed + repeat.
    repeat = last_value(rows, "repeat")
    repeat = repeat if repeat is not None else params.get("repeat", params.get("__trial_index__", 0))
    seed = last_value(rows, "seed")
    if seed is None and isinstance(params.get("seed"), int) and isinstance(repeat, int):
        seed = params["seed"] + repeat
    number = info.number if info and info.number is not None else number_from_dir(folder.name, trial_id)
    return {
        "sweep": sweep.name, "trial_id": trial_id, "status": status, "stop_reason": stop_reason,
        **{p: params.get(p) for p in sweep.params},
        "seed": seed, "repeat": repeat,
        "knn_top1": last_value(rows, "knn_top1"), "knn_top5": last_value(rows, "knn_top5"),
        "best_knn_top1": max(finite(knn), default=None),
        "knn_top1_epoch0": epoch0[0] if epoch0 else None,
        "loss": last_value(rows, "loss"), "epochs_done": epochs_done,
        "wall_time_s": last_value(rows, "time_total_s"),
        "images_per_s": sum(speed) / len(speed) if speed else None,
        "collapsed": status == "collapsed" or at_ln_k is True,
        "epochs": epochs, "trial_dir": f"{sweep.tune_dir.name}/{folder.name}",
        "_order": (number if number is not None else math.inf,
                   rows[0].get("timestamp", math.inf) if rows else math.inf, trial_id),
    }


def number_from_dir(dir_name: str, trial_id: str) -> int | None:
    """Ray names trial folders ``<trainable>_<trial_id>_<number>_<params>_<date>``."""
    _, _, rest = dir_name.partition(f"{trial_id}_")
    digits = rest.split("_", 1)[0]
    return int(digits) if digits.isdigit() else None


# --- typing -----------------------------------------------------------------------------------
def point_key(values: list[Any]) -> str:
    return json.dumps([round(v, 12) if isinstance(v, float) else v for v in values])


def typed_trials(sweep: Sweep, records: list[dict[str, Any]]) -> pd.DataFrame:
    """Records in creation order, a ``point`` per distinct hyperparameter setting, typed columns."""
    records = sorted(records, key=lambda r: r["_order"])
    points: dict[str, int] = {}
    for r in records:
        r.pop("_order")
        r["point"] = points.setdefault(point_key([r[p] for p in sweep.params]), len(points))
    columns = [*HEAD_COLUMNS, *sweep.params, *TAIL_COLUMNS]
    df = pd.DataFrame(records, columns=columns)
    for col, dtype in {**HEAD_COLUMNS, **TAIL_COLUMNS}.items():
        df[col] = as_dtype(df[col], dtype)
    for p in sweep.params:
        df[p] = as_dtype(df[p], param_dtype(sweep.space[p], df[p].tolist()))
    baseline = find_baseline(df, sweep.params, sweep.trainer) if sweep.algorithm == "ablation" else None
    df["is_baseline"] = as_dtype(df["point"] == baseline, "boolean")
    return df


def param_dtype(entry: Any, observed: list[Any]) -> str:
    """The column type of a searched hyperparameter: from its space entry, else from its values."""
    kind = str(entry.get("type", "")).lower() if isinstance(entry, dict) else ""
    values = space_values(entry)
    if values is None and kind in ("float", "uniform", "loguniform", "quniform", "qloguniform"):
        return "float64"
    if values is None and kind in ("int", "randint", "lograndint", "qrandint", "qlograndint"):
        return "Int64"
    return infer_dtype(values if values is not None else observed)


def infer_dtype(values: list[Any]) -> str:
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
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


def typed_epochs(df: pd.DataFrame) -> pd.DataFrame:
    """sweep, trial_id, epoch first, then the metrics in the order trials reported them, typed."""
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in EPOCH_HEAD.items()})
    columns = [*EPOCH_HEAD, *(c for c in df.columns if c not in EPOCH_HEAD)]
    df = df[columns].copy()
    for col in columns:
        df[col] = as_dtype(df[col], EPOCH_HEAD.get(col) or infer_dtype(df[col].tolist()))
    return df


def find_baseline(trials: pd.DataFrame, params: list[str], trainer: dict[str, Any]) -> int | None:
    """The point whose params equal the spec's trainer values (those it pins), else the first point."""
    if trials.empty:
        return None
    pinned = [p for p in params if p in trainer]
    firsts = trials.sort_values("point", kind="stable").drop_duplicates("point")
    for _, row in firsts.iterrows():
        if pinned and all(values_equal(native(row[p]), trainer[p]) for p in pinned):
            return int(row["point"])
    return int(firsts["point"].iloc[0])


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


def working_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials whose teacher did not collapse (the ``collapsed`` column); all of them if none is left."""
    working = trials[~trials["collapsed"].fillna(False).astype(bool)]
    return working if len(working) else trials


def final_trials(trials: pd.DataFrame, metric: str = "knn_top1") -> tuple[pd.DataFrame, bool]:
    """Trials whose last ``metric`` counts (FINAL_STATUSES). If none has finished yet, every trial with
    a value (second item True: the numbers are partial)."""
    has_value = trials[metric].notna()
    done = trials[has_value & trials["status"].isin(FINAL_STATUSES)]
    if len(done):
        return done, False
    return trials[has_value], True
