"""``TrialRecorder``: the ``tune.Callback`` that writes ablate's trial records at Ray's events.

Kept apart from ablate.records so that reading records never imports Ray. A trial of this run that
continues one of an earlier run (``ablate resume``: ``_trial_id`` in its config) writes into that
trial's record: its earlier epochs stay, the epochs it runs again replace theirs, and the record
notes the restart (from which epoch, where, why), as it does when Ray retries a trial after an
error (a lost node, a crash).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune

from ablate.ending import RESERVE_BYTES
from ablate.errors import StorageFull
from ablate.oom_kills import KillLedger
from ablate.records import (
    Failure,
    Points,
    ended,
    epoch_row,
    failure_of,
    failure_text,
    new_record,
    row_collapsed,
    unrecorded_checkpoint,
    unrecorded_note,
)
from ablate.sweep_spec import SweepSpec
from sweep_format import statuses
from sweep_format.files import write_text
from sweep_format.layout import TUNE_DIR, trial_folders
from sweep_format.records import error_path, is_damaged, read_records, record_path, write_record
from sweep_format.text import whole_error_at
from trainables.storage_errors import write_failure
from trainables.trial import KEPT_CHECKPOINTS, TRIAL_ID, reported_epochs, retire_checkpoints


def record_id(trial: Any) -> str:
    """The record a Ray trial writes: the one it continues, else its own Ray id."""
    return str((getattr(trial, "config", None) or {}).get(TRIAL_ID) or trial.trial_id)


def errored_unheard(trials: list, records: dict[str, dict[str, Any]]) -> list[Any]:
    """Trials Tune ended in its ERROR state whose record is not closed: Tune errors a trial without a
    word to its callbacks when the actor it reuses for it cannot be reset (its function still running
    ``TUNE_FUNCTION_THREAD_TIMEOUT_S`` after its last result: a data-parallel trial's Ray Train run
    shutting down). Such a trial never started, has no record, and the sweep said "done" without it."""
    from ray.tune.experiment import Trial

    return [t for t in trials if t.status == Trial.ERROR
            and not statuses.is_final((records.get(record_id(t)) or {}).get("status"))]


class TrialRecorder(tune.Callback):
    """Writes ``<sweep>/trials/<trial_id>.json`` for every trial, at every Ray event."""

    def __init__(self, spec: SweepSpec, sweep_dir: Path, search: Any = None) -> None:
        self.spec, self.sweep_dir = spec, Path(sweep_dir)
        self.search = search  # the sweep's searcher (ablate.search.SweepSearch): told of trials closed late
        self.records = {r["trial_id"]: r for r in read_records(self.sweep_dir) if not is_damaged(r)}
        self.points = Points(spec, list(self.records.values()))
        self.restart_why: dict[str, str] = {}  # record id -> why its next result comes from a restart
        # the driver's node, whose kernel counts of OOM kills explain a worker's unexpected death there
        self.kills = KillLedger({ray.util.get_node_ip_address()} if ray.is_initialized() else set())
        self.failures: dict[str, Failure] = {}  # Ray's trial id -> its last failure (failure_of)
        self.closed_late: list[Any] = []  # trials on_experiment_end closed (errored_unheard), for the view

    def __getstate__(self) -> dict[str, Any]:  # Ray saves its callbacks with the experiment (never read back)
        return {"spec": self.spec, "sweep_dir": self.sweep_dir}

    def __setstate__(self, state: dict[str, Any]) -> None:
        TrialRecorder.__init__(self, state["spec"], state["sweep_dir"])

    # --- Ray's events ----------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        rec = self._record(trial)
        if rec["epochs"] and record_id(trial) not in self.restart_why:  # an earlier run's trial
            self.restart_why[record_id(trial)] = "ablate resume"
        folder = f"{TUNE_DIR}/{Path(trial.path or '').name}"
        if folder != rec.get("trial_dir"):
            earlier = rec.get("trial_dirs") or ([rec["trial_dir"]] if rec.get("trial_dir") else [])
            rec["trial_dirs"] = [*earlier, folder]
            rec["trial_dir"] = folder
        rec.update(status=statuses.RUNNING, reason="")
        self.kills.start(str(trial.trial_id))
        self.failures.pop(str(trial.trial_id), None)
        with contextlib.suppress(OSError):  # an earlier run's error, which the record no longer names
            error_path(self.sweep_dir, rec["trial_id"]).unlink(missing_ok=True)
        self._save(rec)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Ray retries a trial that failed (an exception, a lost node): it restarts from its checkpoint."""
        failure = self.failures[str(trial.trial_id)] = failure_of(trial, self.kills)
        self.restart_why[record_id(trial)] = f"retried by Ray after: {failure.reason}"

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        rec = self._record(trial)
        row = epoch_row(result)
        if "epoch" not in row and row.get("trial_outcome") in statuses.AT_START:  # its trainer could not be
            # built (errored: its inputs; oom: its data or models): no epoch, the earlier ones stay
            rec.update(status=row["trial_outcome"], reason=str(row.get("stop_reason") or ""))
            self._save(rec)
            return
        epoch = row.get("epoch")
        if not isinstance(epoch, int):
            return
        self._note_restart(rec, row)
        rec["epochs"] = sorted([r for r in rec["epochs"] if r.get("epoch") != epoch] + [row],
                               key=lambda r: r["epoch"])
        rec.update(status=statuses.RUNNING, reason="", collapsed=row_collapsed(row))
        if row.get("trial_outcome") == statuses.STORAGE_FULL:  # the trial could not write: nor will others
            rec.update(status=statuses.STORAGE_FULL, reason=str(row.get("stop_reason") or ""))
            with contextlib.suppress(StorageFull):
                self._save(rec)
            raise StorageFull(str(row.get("stop_reason") or "a trial could not write its checkpoint"))
        self._save(rec)
        self._retire_earlier_checkpoints(rec)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, errored=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Trials Tune errored without calling ``on_trial_error`` (``errored_unheard``) are closed
        with Ray's reason, which its error file holds, and the searcher is told they errored."""
        self.closed_late = errored_unheard(trials, self.records)
        for trial in self.closed_late:
            self._finish(trial, errored=True)
            if self.search is not None:  # nor did Tune tell the searcher: an Optuna study kept it RUNNING
                self.search.on_trial_complete(str(trial.trial_id), error=True)

    def failure(self, trial: Any) -> Failure:
        """The failure Ray last reported of ``trial`` as this recorder weighed it, for the callbacks after
        it (the live view): ``failure_of`` with the kernel's counts, read once (a kill explains one death)."""
        return self.failures.get(str(trial.trial_id)) or failure_of(trial)

    # --- the record ------------------------------------------------------------------------
    def _record(self, trial: Any) -> dict[str, Any]:
        tid = record_id(trial)
        if tid not in self.records:
            self.records[tid] = new_record(self.spec, self.points, tid, dict(trial.config))
        return self.records[tid]

    def _note_restart(self, rec: dict[str, Any], row: dict[str, Any]) -> None:
        """The first result of a restarted trial: from which epoch, where, and why. Epochs the record
        holds past that point belong to the run it no longer continues (its newer checkpoints were
        damaged or deleted): they are dropped, and named in the restart, so that the trial ends with
        what this run measures (a collapse or an ASHA stop before them, say), not with their rows."""
        why = self.restart_why.pop(str(rec["trial_id"]), None)
        if why is None:
            return
        start = int(row.get("restored_from_epoch", 0))
        rec.setdefault("restarts", []).append({  # a data-parallel trial's rank 0, not its driver
            "from_epoch": start, "why": why, "at": time.time(),
            "node_ip": row.get("rank0_node_ip", row.get("node_ip")),
            "pid": row.get("rank0_pid", row.get("pid"))})
        if superseded := [r["epoch"] for r in rec["epochs"] if r["epoch"] > start]:
            rec["epochs"] = [r for r in rec["epochs"] if r["epoch"] <= start]
            rec["restarts"][-1]["superseded_epochs"] = superseded
        self._fill_from_checkpoints(rec, rec["restarts"][-1])

    def _fill_from_checkpoints(self, rec: dict[str, Any], restart: dict[str, Any]) -> None:
        """Epochs before the restart point that the record lacks: their results did not reach this
        driver (the node or the driver died between an epoch's checkpoint and its report). Each is
        taken from the report kept beside its checkpoint; any still missing is named in the restart."""
        have = {r.get("epoch") for r in rec["epochs"]}
        missing = [e for e in range(restart["from_epoch"]) if e not in have]
        if not missing:
            return
        kept = reported_epochs(trial_folders(self.sweep_dir, rec))
        found = [epoch_row(kept[e]) for e in missing if e in kept]
        rec["epochs"] = sorted(rec["epochs"] + found, key=lambda r: r["epoch"])
        if lost := [e for e in missing if e not in kept]:
            restart["lost_epochs"] = lost

    def _retire_earlier_checkpoints(self, rec: dict[str, Any]) -> None:
        """A continued trial's earlier folders give up their checkpoints as its own folder fills (after
        the record has taken what it needed from them): the sweep keeps two per trial however often it
        is resumed. A result reaches the driver after its checkpoint is in storage."""
        folders = trial_folders(self.sweep_dir, rec)
        if len(folders) > 1:
            retire_checkpoints(folders, KEPT_CHECKPOINTS, running=True)

    def _finish(self, trial: Any, errored: bool) -> None:
        rec = self._record(trial)
        rec.update(ended(rec, self.spec.scheduler.type, self._failure(trial, rec) if errored else None))
        self._save(rec)
        if not statuses.resumed(rec["status"], statuses.RETRYABLE):  # it never runs again: its last
            retire_checkpoints(trial_folders(self.sweep_dir, rec), 1, running=False)  # checkpoint is enough

    def _failure(self, trial: Any, rec: dict[str, Any]) -> Failure:
        """How Ray's error ended the trial; an ``errored`` one keeps its whole error (every failure's
        traceback, a data-parallel trial's workers' own) beside its record, ``trials/<id>.error.txt``,
        which its one-line reason names (Ray writes its error file in its session's temporary folder)."""
        failure, text = failure_of(trial, self.kills), failure_text(trial)
        if kept := unrecorded_checkpoint(self.sweep_dir, rec):  # it died as its result was on its way
            failure = failure._replace(reason=f"{failure.reason}{unrecorded_note(kept)}: a resume that runs "
                                              f"it again continues from epoch {kept}")
        self.failures[str(trial.trial_id)] = failure
        if failure.status != statuses.ERRORED or not text.strip():
            return failure
        path = error_path(self.sweep_dir, rec["trial_id"])
        try:  # never the records' last space: on a full disk the record alone says what it can
            if shutil.disk_usage(path.parent).free < len(text.encode()) + RESERVE_BYTES:
                return failure
            write_text(path, text)
        except OSError:
            return failure
        where = path.relative_to(self.sweep_dir).as_posix()
        return failure._replace(reason=failure.reason + whole_error_at(where))

    def _save(self, rec: dict[str, Any]) -> None:
        rec["updated_at"] = time.time()
        try:
            write_record(self.sweep_dir, rec)
        except OSError as exc:  # read-only or full storage: the sweep stops with one clear line
            failed = OSError(exc.errno, exc.strerror, str(record_path(self.sweep_dir, rec["trial_id"])))
            raise StorageFull(write_failure(failed, "the trial record")) from None
