"""``ablate ls``: the sweeps of a storage folder as a plain aligned table.

One unreadable sweep (a damaged spec.yaml, a damaged record) is a row saying why; it never hides the
sweeps beside it. A folder this user may not look into is a row saying so, without calling it a sweep.

    print(format_listing(list_sweeps(Path("runs"))))
    # sweep  description   trials                     best             cost        last update
    # temps  temperatures  5 completed, 2 collapsed   knn_top1 71.40   0.42 GPU-h  2026-05-02 14:03
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from reports.cost import sweep_total
from reports.errors import ReportError
from reports.ranking import best_point, measured_before_end, only_failures_trained
from reports.sweepdir import open_sweep
from reports.tables import left_running, records_tables, status_counts
from sweep_format.layout import (
    LISTED,
    SPEC_FILE,
    STORAGE_EXPECTED,
    TRIALS_DIR,
    not_a_folder,
    shut,
    sweeps_in,
    unlisted,
)
from sweep_format.records import RECORD_SUFFIX, is_record_file, read_records, searched_by
from sweep_format.text import printable

COLUMNS = ["sweep", "description", "trials", "best", "cost", "last update"]
# a folder this user may not look into (layout.shut): listed, so a colleague's sweep is not left out in
# silence, but not as a broken sweep: most such folders are none (lost+found on a mounted disk)
SHUT = "cannot be read by this user: whether it holds a sweep is unknown"


def last_update(folder: Path, records: list[dict[str, Any]] | None = None) -> str:
    """When a trial record last changed, by the times the records hold (a copied folder keeps them;
    its files' times are the copy's); the files' times only where no record holds one. ``records``:
    the folder's, where the caller has read them already."""
    try:
        records = read_records(folder) if records is None else records
        stamps = [float(t) for rec in records for key in ("updated_at", "created_at")
                  if isinstance(t := rec.get(key), (int, float)) and not isinstance(t, bool)
                  and math.isfinite(t) and t > 0]
        if not stamps:
            files = [folder / SPEC_FILE, *(f for f in (folder / TRIALS_DIR).glob(f"*{RECORD_SUFFIX}")
                                           if is_record_file(f))]
            stamps = [f.stat().st_mtime for f in files if f.exists()]
    except OSError:
        stamps = []
    try:
        return dt.datetime.fromtimestamp(max(stamps)).strftime("%Y-%m-%d %H:%M") if stamps else "–"
    except (OverflowError, OSError, ValueError):  # a time no calendar holds
        return "–"


def sweep_row(folder: Path, planned: int | None = None, driven: bool | None = None) -> dict[str, str]:
    """``folder``'s line; ``planned``: the trials its spec plans (trials that never started have no
    record, so an interrupted sweep would look finished without it); ``driven``: whether a driver
    may run it now (None: unknown): trials recorded ``running`` with none were left so by a driver
    that is gone (killed with SIGKILL, a lost machine), and say so."""
    if shut(folder):  # another user's sweep, or no sweep at all (lost+found on a mounted disk)
        return blank_row(folder, f"({SHUT})")
    try:
        sweep = open_sweep(folder, LISTED)  # ls writes nothing: a link in its report/ is harmless
        records = read_records(sweep.path)
        trials, epochs = records_tables(sweep, records)
    except (ReportError, OSError) as exc:  # one broken sweep must not hide the others
        return blank_row(folder, f"(unreadable: {printable(str(exc))})")
    by_status = status_counts(trials, planned, left_running(folder, driven)) or "no trials yet"
    best, partial = best_point(trials, sweep.params, sweep.metric, sweep.mode)  # as the report ranks
    if best is None:
        text = ("none: every trial that trained failed" if only_failures_trained(trials, sweep.metric)
                else "no value after training yet" if len(trials) else "–")
    else:
        text = (f"{sweep.metric} {best['mean']:.2f}" + (" (partial)" if partial else "")
                + (" (collapsed)" if best["collapsed"] else "")
                + measured_note(trials, best["point"], sweep.metric))
    if reranked := sweep.reranked(searched_by(records)):
        text += f" ({reranked})"
    # the folder is what `ablate resume` and `ablate report` take; a copy keeps its spec's name
    name = printable(folder.name)  # a folder's name may hold control characters, or bytes not UTF-8
    shown = name if folder.name == sweep.name else f"{name} (name: {sweep.name})"
    return {"sweep": shown, "description": sweep.description, "trials": by_status,
            "best": text, "cost": sweep_total(epochs), "last update": last_update(folder, records)}


def blank_row(folder: Path, why: str) -> dict[str, str]:
    """The line of a folder whose sweep cannot be read: its name and ``why``, nothing else."""
    return {"sweep": printable(folder.name), "description": why, "trials": "–", "best": "–", "cost": "–",
            "last update": last_update(folder)}


def measured_note(trials: pd.DataFrame, point: int, metric: str) -> str:
    note = measured_before_end(trials, point, metric)
    return f" ({note})" if note else ""


def list_sweeps(storage: str | Path, planned: Callable[[Path], int | None] = lambda _: None,
                driven: Callable[[Path], bool | None] = lambda _: None) -> pd.DataFrame:
    """One row per sweep in ``storage``; ReportError if it is missing or holds no sweep. ``planned``
    gives a sweep folder's planned number of trials (None: unknown), which its spec's search decides;
    ``driven`` whether a driver may run it now (None: unknown; ablate's lock file decides)."""
    folder = Path(storage)
    if problem := not_a_folder(folder, STORAGE_EXPECTED):
        raise ReportError(problem)
    try:
        sweeps = sweeps_in(folder)
    except OSError as exc:
        raise ReportError(unlisted(folder, exc, STORAGE_EXPECTED)) from None
    if not sweeps:
        raise ReportError(f"{folder}: no sweeps here (expected {STORAGE_EXPECTED}; start one with "
                          "`ablate run SPEC.yaml`)")
    return pd.DataFrame([sweep_row(s, planned(s), driven(s)) for s in sweeps], columns=COLUMNS)


def format_listing(df: pd.DataFrame) -> str:
    """Columns padded to their widest cell, two spaces apart; the kNN column right-aligned."""
    cells = [list(df.columns)] + [[str(v) for v in row] for row in df.itertuples(index=False)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(df.columns))]
    right = {list(df.columns).index("best")}
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip() for r in cells]
    return "\n".join(lines)
