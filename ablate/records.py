"""ablate's own per-trial records, the source of truth of a sweep (``<sweep>/trials/<trial_id>.json``).

Written on the driver by ``ablate.recorder.TrialRecorder`` (a ``tune.Callback``) at every event
Ray gives it: a trial starts, reports an epoch, completes, errors. Each write replaces the whole
small JSON file atomically (temporary file, then rename), so a SIGKILL at any moment leaves every
record complete and at most one event behind. Why the driver and not the trainable: the driver always sees the
sweep folder (a trial may run on a node without it), it alone knows how a trial ended (ASHA's stop,
Ray's error after its retries), and on ``ablate resume`` Ray replays the restored trials through the
same callback, so a record is rewritten by the epochs that run again (last report wins).

The format (``FORMAT``, ``VERSION``) is documented in docs/CONTRACTS.md; ``reports.records`` reads it.

    recorder = TrialRecorder(spec, sweep_dir)      # ablate.recorder; RunConfig(callbacks=[recorder])
    mark_interrupted(sweep_dir, epochs=6)          # after Ctrl-C: unfinished records say so
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from ablate.spec import SweepSpec
from reports.sweepdir import values_equal  # one notion of "the same parameter value"

RECORDS_DIR = "trials"
FORMAT, VERSION = "ablate.trial", 1
FINAL = ("completed", "flagged", "collapsed", "diverged", "stopped early", "errored")
# Ray bookkeeping kept out of the epoch rows (the config is the record's own field).
RAY_KEYS = {"config", "date", "hostname", "checkpoint_dir_name", "trial_id", "done", "should_checkpoint",
            "experiment_tag", "time_this_iter_s", "time_since_restore", "iterations_since_restore"}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically: a reader or a killed writer never sees half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, allow_nan=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_records(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """Trial id -> record, for the records that parse (the writer's own view on resume)."""
    out = {}
    for file in sorted((sweep_dir / RECORDS_DIR).glob("*.json")):
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("format") == FORMAT:
            out[str(data.get("trial_id"))] = data
    return out


def epoch_row(result: dict[str, Any]) -> dict[str, Any]:
    """Every scalar metric of one report (extra keys of other trainables included), no Ray bookkeeping."""
    return {k: v for k, v in result.items()
            if k not in RAY_KEYS and (v is None or isinstance(v, (bool, int, float, str)))}


class Points:
    """The point (index, label, is_baseline) of a trial's searched values.

    Grid and ablation: the index in ``spec.points()``. Optuna: in the order the settings were first
    seen, kept across resumes by reading the existing records.
    """

    def __init__(self, spec: SweepSpec, records: dict[str, dict[str, Any]]) -> None:
        self.spec = spec
        self.baseline = spec.baseline_point()
        self.known: list[dict[str, Any]] = [] if spec.search.algorithm == "optuna" else spec.points()
        if spec.search.algorithm == "optuna":
            for rec in sorted(records.values(), key=lambda r: r.get("point", 0)):
                if rec.get("params") is not None and self.index(rec["params"]) is None:
                    self.known.append(rec["params"])

    def index(self, params: dict[str, Any]) -> int | None:
        for i, point in enumerate(self.known):
            if all(values_equal(point.get(k), params.get(k)) for k in params):
                return i
        return None

    def of(self, params: dict[str, Any]) -> tuple[int, str, bool]:
        i = self.index(params)
        if i is None:
            self.known.append(params)
            i = len(self.known) - 1
        is_base = all(values_equal(params.get(k), v) for k, v in self.baseline.items())
        return i, self.spec.point_label(params), is_base


ACTIVE: dict[str, Path] = {}  # set by run/resume: where this driver's sweep folder is now


def final_verdict(rec: dict[str, Any], scheduler: str, error: str | None) -> dict[str, Any]:
    """status, reason and collapsed of a trial that ended: the trainable's own verdict
    (``trial_outcome``, ``stop_reason``, ``collapse_flag`` from trainables.stop_rules) where it gave
    one, else how Ray ended it (an error, or a scheduler's stop before the last epoch)."""
    last = rec["epochs"][-1] if rec["epochs"] else {}
    outcome, reason = str(last.get("trial_outcome") or ""), str(last.get("stop_reason") or "")
    flag = str(last.get("collapse_flag") or "")
    done, planned = last.get("epoch", 0), rec.get("epochs_planned")
    if error is not None:
        status, reason = "errored", error
    elif outcome and outcome != "running":
        status = outcome
    elif planned and done < planned:
        status = "stopped early"
        reason = f"stopped early by the {scheduler} scheduler after {done}/{planned} epochs"
        reason += f"; {flag}" if flag else ""
        reason += knn_note(rec["epochs"])
    else:
        status = "completed"
    return {"status": status, "reason": reason,
            "collapsed": status in ("collapsed", "flagged") or (status == "stopped early" and bool(flag))}


def error_text(trial: Any) -> str:
    """The last line of the trial's error file (the exception), else a pointer to the trial folder."""
    try:
        lines = [ln.strip() for ln in Path(trial.error_file).read_text().splitlines() if ln.strip()]
    except (OSError, TypeError):
        lines = []
    folder = Path(trial.path or "").name
    text = lines[-1][:300] if lines else f"Ray marked the trial as errored (see tune/{folder})"
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def knn_note(rows: list[dict[str, Any]]) -> str:
    """``; kNN last evaluated at epoch E`` when the last row carries an earlier kNN, else ""."""
    if not rows or rows[-1].get("knn_evaluated", True):
        return ""
    measured = [r["epoch"] for r in rows if r.get("knn_evaluated", True) and "knn_top1" in r]
    return f"; kNN last evaluated at epoch {measured[-1]}" if measured else "; kNN never evaluated"


def mark_interrupted(sweep_dir: Path, cause: str = "") -> list[dict[str, Any]]:
    """After an interrupt (``cause``: why, when it was not Ctrl-C): every unfinished record says so
    (status ``interrupted``, the epochs done and the epoch of its last kNN); returns them."""
    out = []
    for rec in read_records(sweep_dir).values():
        if rec.get("status") in FINAL:
            continue
        done = rec["epochs"][-1]["epoch"] if rec.get("epochs") else 0
        rec.update(status="interrupted", updated_at=time.time(),
                   reason=f"interrupted after {done}/{rec.get('epochs_planned')} epochs"
                          f"{knn_note(rec.get('epochs') or [])}{'; ' + cause if cause else ''}; "
                          f"`ablate resume {sweep_dir}` continues it")
        write_json(sweep_dir / RECORDS_DIR / f"{rec['trial_id']}.json", rec)
        out.append(rec)
    return out
