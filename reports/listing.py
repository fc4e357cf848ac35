"""``ablate ls``: the sweeps of a storage folder as a plain aligned table.

    print(format_listing(list_sweeps(Path("runs"))))
    # sweep  description   trials                     best             cost        last update
    # temps  temperatures  5 completed, 2 collapsed   knn_top1 71.40   0.42 GPU-h  2026-05-02 14:03
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from reports.cost import sweep_total
from reports.errors import ReportError
from reports.ranking import best_point, measured_before_end
from reports.sweepdir import open_sweep
from reports.tables import STATUSES, sweep_tables

COLUMNS = ["sweep", "description", "trials", "best", "cost", "last update"]


def find_sweeps(storage: Path) -> list[Path]:
    """``storage`` itself if it is a sweep folder, else its sub-folders that are."""
    if (storage / "spec.yaml").is_file() and (storage / "tune").is_dir():
        return [storage]
    return sorted(d for d in storage.iterdir()
                  if d.is_dir() and (d / "spec.yaml").is_file() and (d / "tune").is_dir())


def last_update(folder: Path) -> str:
    files = [folder / "spec.yaml", *folder.glob("trials/*.json")]
    stamps = [f.stat().st_mtime for f in files if f.exists()]
    return dt.datetime.fromtimestamp(max(stamps)).strftime("%Y-%m-%d %H:%M") if stamps else "–"


def sweep_row(folder: Path) -> dict[str, str]:
    try:
        sweep = open_sweep(folder)
        trials, epochs = sweep_tables(sweep)
    except ReportError as exc:  # one broken sweep must not hide the others
        return {"sweep": folder.name, "description": f"(unreadable: {exc})", "trials": "–",
                "best": "–", "cost": "–", "last update": last_update(folder)}
    counts = trials["status"].value_counts()
    order = [*STATUSES, *(s for s in counts.index if s not in STATUSES)]
    by_status = ", ".join(f"{int(counts[s])} {s}" for s in order if s in counts) or "no trials yet"
    best, partial = best_point(trials, sweep.params, sweep.metric, sweep.mode)  # as the report ranks
    text = "–" if best is None else (f"{sweep.metric} {best['mean']:.2f}" + (" (partial)" if partial else "")
                                     + (" (collapsed)" if best["collapsed"] else "")
                                     + measured_note(trials, best["point"], sweep.metric))
    return {"sweep": sweep.name, "description": sweep.description, "trials": by_status,
            "best": text, "cost": sweep_total(epochs), "last update": last_update(folder)}


def measured_note(trials: pd.DataFrame, point: int, metric: str) -> str:
    note = measured_before_end(trials, point, metric)
    return f" ({note})" if note else ""


def list_sweeps(storage: str | Path) -> pd.DataFrame:
    """One row per sweep in ``storage``; ReportError if it is missing or holds no sweep."""
    folder = Path(storage)
    expected = "a storage folder holding sweep folders (spec.yaml + tune/), e.g. ./runs"
    if not folder.exists():
        raise ReportError(f"{folder}: no such folder (expected {expected})")
    if not folder.is_dir():
        raise ReportError(f"{folder}: is a file (expected {expected})")
    sweeps = find_sweeps(folder)
    if not sweeps:
        raise ReportError(f"{folder}: no sweeps here (expected {expected}; start one with "
                          "`ablate run SPEC.yaml`)")
    return pd.DataFrame([sweep_row(s) for s in sweeps], columns=COLUMNS)


def format_listing(df: pd.DataFrame) -> str:
    """Columns padded to their widest cell, two spaces apart; the kNN column right-aligned."""
    cells = [list(df.columns)] + [[str(v) for v in row] for row in df.itertuples(index=False)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(df.columns))]
    right = {list(df.columns).index("best")}
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip() for r in cells]
    return "\n".join(lines)
