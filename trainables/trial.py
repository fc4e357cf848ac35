"""One sweep trial, whoever runs it: the epochs of a ``DINOTrainer`` with their verdicts.

The Ray Tune function trainable (``trainables.tune_trial``) and every worker of a data-parallel
trial (``trainables.ddp_trial``) run ``run_trial``; it knows no Ray. Each epoch's result carries
the kNN metrics (carried forward between evaluations), the cost so far and the one collapse
verdict of the stop rule (``collapsed``); a trial that collapses, diverges, runs out of memory or
cannot write its checkpoint ends with that outcome and its reason (``trial_outcome``,
``stop_reason``) instead of an exception that a retry would repeat, and so does one whose trainer
cannot be built from its inputs (``input_refused``: ``errored``).

What Ray lets a trial do when it is stopped from outside (Ray 2.x function trainables): ASHA's
stop or Ctrl-C makes the driver mark the trial finished and stop its actor, which releases the
trial's blocked report and does not wait for it. So the trial cannot evaluate "on the way out":
it evaluates at every epoch where ASHA may stop it (``AshaRungs``), and where it is stopped
otherwise (Ctrl-C, a kill) the reports use its last *evaluated* kNN and name that epoch.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from sweep_format import statuses
from sweep_format.files import loads
from sweep_format.metrics import CPU, GPU
from sweep_format.records import knn_carried
from trainables import cuda
from trainables.checkpoint import DamagedFileError, UnsafeFileError, load_pt
from trainables.config import ConfigError, DINOConfig
from trainables.dino.trainer import CHECKPOINT_NAME, DINOTrainer, NonFiniteLossError, resolve_device
from trainables.stop_rules import CollapseMonitor, StopRules
from trainables.storage_errors import STORAGE_ERRNOS, write_failure
from trainables.warning import warn

MONITOR_FILE = "monitor.pt"
CHECKPOINT_PREFIX = "checkpoint_"  # Ray's checkpoint folders: checkpoint_000000, checkpoint_000001, ...
KEPT_CHECKPOINTS = 2  # a trial keeps its two newest: a damaged newest falls back to the one before it
# A trial's config (Tune's param_space merged with its job's, written by ablate.search): trainer keys,
# its seed repeat, and the sweep's keys, which start with _ and are never trainer keys.
REPEAT = "repeat"
TRIAL_ID = "_trial_id"  # the record a trial of an earlier run continues (ablate resume)
RESUME_DIRS = "_resume_dirs"  # the folders that trial ran in, newest first
OPTUNA_TRIAL = "_optuna_trial"  # the Optuna trial it is a repeat of
STOP = "_stop"  # the stop rules (StopRules keywords)
STORAGE_DIR = "_storage_dir"  # the sweep's tune/ folder, where its trial folders go
EVAL_AT = "_eval_at"  # ASHA's rungs: epochs always evaluated
BUNDLES = "_bundles"  # bundle name -> option -> trainer keys

# report(metrics, write): hand one epoch's metrics to Ray; ``write(folder)`` fills the checkpoint
# folder to report with them (None: a result without a checkpoint).
Report = Callable[[dict[str, Any], "Callable[[Path], None] | None"], None]


def trial_repeat(config: dict[str, Any]) -> int:
    """Index of the seed repeat (``repeat``; ``__trial_index__`` in sweeps of ablate <= 0.1)."""
    return int(config.get(REPEAT, config.get("__trial_index__", 0)))


def trial_config(config: dict[str, Any]) -> DINOConfig:
    """Trainer config of a trial: bundles expanded, bookkeeping dropped, seed offset by the repeat."""
    values = {k: v for k, v in config.items() if k != REPEAT and not k.startswith("_")}
    for name, options in (config.get(BUNDLES) or {}).items():
        values.update(options[values.pop(name)])
    values["seed"] = int(values.get("seed", 0)) + trial_repeat(config)
    return DINOConfig(**values)


def use_assigned_cpus() -> None:
    """Ray sets OMP_NUM_THREADS to the trial's (or worker's) CPUs; torch reads it only at import."""
    n = os.environ.get("OMP_NUM_THREADS", "")
    if n.isdigit() and int(n) > 0:
        torch.set_num_threads(int(n))


def run_trial(trainer: DINOTrainer, config: dict[str, Any], clock: DeviceClock, sources: Sequence[Path],
              report: Report, placement: dict[str, Any] | None = None, gpu_share: float = 0.0,
              extra: dict[str, Any] | None = None, stopped: Callable[[int], bool] | None = None) -> None:
    """The epochs of one trial, from the newest usable checkpoint in ``sources`` (folders, newest
    first) if any; every result goes to ``report`` with ``placement`` (node, pid, GPU ids) and
    ``extra``. The last epoch a trial runs is evaluated where it can be known (its schedule's end,
    a collapse, an ASHA decision).

    ``stopped(epoch)``: whether ASHA stopped the trial on that epoch's result, asked after each epoch it
    judges, where ``report`` does not wait for the driver (a data-parallel trial's workers): the trial
    ends there, never training on past the epoch its record ends with."""
    cfg = trainer.cfg
    rules = StopRules(**config.get(STOP, {}))
    monitor, carry = CollapseMonitor(rules), KnnCarry()
    rungs = AshaRungs(config.get(EVAL_AT) or [])
    last_report = LastReport()
    note, restored = restore_trial(trainer, monitor, sources, carry, clock, last_report)
    base = {"stop_reason": "", "trial_outcome": statuses.RUNNING, "seed": cfg.seed,
            "repeat": trial_repeat(config), "started_at": time.time(), **(placement or {}), **(extra or {}),
            **({"restore_note": note} if note else {}),
            **({"restored_from_epoch": trainer.epoch} if restored else {})}
    progress = Progress(trainer.epoch - 1 if restored else -1)  # a restored epoch is reported again first

    def final(outcome: str, reason: str) -> None:
        epoch, where = progress.failed_at(trainer.epoch)
        kept = last_report.row if last_report.row.get("epoch") == epoch else {}  # a replayed epoch's metrics
        report({**kept, **base, **carry.last, **clock.metrics(), "knn_evaluated": False, "epoch": epoch,
                "collapsed": bool(monitor.kind), "trial_outcome": outcome, "stop_reason": reason + where,
                "reported_at": time.time()}, None)

    try:
        if restored and last_report.row and replay(last_report.row, base, trainer, rungs, carry, clock,
                                                   report):
            return  # the trial had ended with the epoch its checkpoint holds
        if restored:
            progress.reported = trainer.epoch
        for metrics in trainer.run():
            metrics = {**base, **metrics, **clock.metrics(), "reported_at": time.time()}
            reason = monitor.update(metrics)
            flag = monitor.flag(metrics["epoch"]) if metrics["epoch"] > 0 else ""
            # the rule's text: on the epoch it stops the trial, its reason (``flag`` words a streak
            # shorter than patience at this epoch, one that did not stop it)
            metrics["collapse_flag"] = reason or flag
            metrics["collapsed"] = bool(metrics["collapse_flag"])  # the one verdict, carried to the record
            judged = rungs.may_stop(metrics["epoch"])
            last = judged or reason  # it may be this trial's last epoch
            if last and "knn_top1" not in metrics:  # a trial's last epoch is always evaluated
                metrics.update(trainer.knn_metrics())
            carry.apply(metrics)
            metrics.update(end_verdict(metrics, reason, cfg.epochs, monitor))
            write = partial(save_trial, trainer=trainer, monitor=monitor, carry=carry, row=metrics)
            progress.saving = True
            unwritable = report_epoch(report, metrics, write if metrics["epoch"] > 0 else None)
            progress.reported, progress.saving = metrics["epoch"], False
            if unwritable:  # the epoch trained, its checkpoint is not saved: a retry fails the same way
                report({**metrics, "trial_outcome": statuses.STORAGE_FULL, "stop_reason": unwritable}, None)
                return
            if reason or (judged and stopped is not None and metrics["epoch"] < cfg.epochs
                          and stopped(metrics["epoch"])):
                return
    except NonFiniteLossError as exc:
        if not rules.nonfinite:
            raise
        final(statuses.DIVERGED, str(exc))
    except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError, or the host's: a retry would
        if not cuda.out_of_memory(exc):  # fail the same way
            raise
        final(statuses.OOM, cuda.oom_reason(exc, trainer.device, gpu_share))


def input_refused(exc: ConfigError, config: dict[str, Any], clock: DeviceClock, report: Report,
                  extra: dict[str, Any] | None = None) -> None:
    """A trial whose trainer cannot be built from its inputs on this node (an unreadable image, an
    image folder smaller than one step, pretrained weights that do not fit, a GPU setting without a
    GPU) or restored (a checkpoint of another configuration): any ``ConfigError``. It ends
    ``errored`` with the reason instead of raising: Ray's retries would fail the same way."""
    ended_at_start(statuses.ERRORED, str(exc), config, clock, report, extra)


def out_of_memory_at_start(exc: BaseException, device: str, share: float, config: dict[str, Any],
                           clock: DeviceClock, report: Report, extra: dict[str, Any] | None = None) -> None:
    """A trial that ran out of memory while its trainer was built or restored (its in-memory dataset
    or models moved to the device, a checkpoint loaded): ``oom`` with the reason, as in its epochs,
    instead of Ray's retries failing the same way and ending it ``errored``."""
    reason = cuda.start_oom_reason(exc, resolve_device(device), share)
    ended_at_start(statuses.OOM, reason, config, clock, report, extra)


def ended_at_start(outcome: str, reason: str, config: dict[str, Any], clock: DeviceClock, report: Report,
                   extra: dict[str, Any] | None = None) -> None:
    """Report one row that ends the trial with ``outcome`` before it trained. The row has no ``epoch``:
    the epochs the trial reported, or a resumed trial holds, stay as they are."""
    assert outcome in statuses.AT_START, outcome
    report({"trial_outcome": outcome, "stop_reason": reason,
            "seed": int(config.get("seed", 0)) + trial_repeat(config), "repeat": trial_repeat(config),
            **(extra or {}), **clock.metrics(), "reported_at": time.time()}, None)


def replay(row: dict[str, Any], base: dict[str, Any], trainer: DINOTrainer, rungs: AshaRungs,
           carry: KnnCarry, clock: DeviceClock, report: Report) -> bool:
    """Report again the epoch a restored checkpoint holds (its record may lack it: the driver that
    stopped may not have seen that result), evaluated if ASHA may judge it; True when the trial had
    ended with it (completed, flagged or collapsed) or cannot write its storage (the Ray adapter hands
    a checkpoint its driver never registered on with it: ``tune_trial.tune_report``)."""
    where = {k: v for k, v in base.items() if k not in ("trial_outcome", "stop_reason")}  # this process
    row = {**row, **where, **clock.metrics(), "reported_at": time.time(), "replayed": True}
    if rungs.may_stop(row["epoch"]) and knn_carried(row):
        row.update(trainer.knn_metrics())
        carry.apply(row)
    row["trial_outcome"] = row.get("trial_outcome") if row.get("trial_outcome") in statuses.OUTCOMES \
        else statuses.RUNNING
    if unwritable := report_epoch(report, row, None):
        report({**row, "trial_outcome": statuses.STORAGE_FULL, "stop_reason": unwritable}, None)
        return True
    return row["trial_outcome"] in (statuses.COMPLETED, statuses.FLAGGED, statuses.COLLAPSED)


def report_epoch(report: Report, metrics: dict[str, Any], write: Callable[[Path], None] | None) -> str:
    """``report``; when the checkpoint cannot be written (``STORAGE_ERRNOS``), the reason, else ""."""
    try:
        report(metrics, write)
    except OSError as exc:
        if exc.errno not in STORAGE_ERRNOS:
            raise
        return write_failure(exc, f"the checkpoint of epoch {metrics['epoch']}")
    return ""


def end_verdict(metrics: dict[str, Any], reason: str, epochs: int, monitor: CollapseMonitor
                ) -> dict[str, str]:
    """``trial_outcome``/``stop_reason`` of this epoch: collapsed (stopped by the rule), flagged (the
    rule's condition holds at the last epoch, fewer than patience epochs: the monitor's
    ``flagged_reason``, not the epoch's ``collapse_flag``), completed, or running."""
    if reason:
        return {"trial_outcome": statuses.COLLAPSED, "stop_reason": reason}
    if metrics["epoch"] == epochs:
        if metrics.get("collapse_flag"):
            return {"trial_outcome": statuses.FLAGGED,
                    "stop_reason": monitor.flagged_reason(metrics["epoch"])}
        return {"trial_outcome": statuses.COMPLETED}
    return {}


class Progress:
    """Where a trial's epoch stood when it failed, so that its last row names the right epoch.

    ``trainer.epoch`` counts the epochs trained; the trainer raises while training epoch
    ``trainer.epoch + 1`` (an OOM in the step, a non-finite loss), or after training epoch
    ``trainer.epoch`` and before this process reported it: in its kNN evaluation (the untrained one
    at epoch 0) or its checkpoint. Counting every failure as one of training made an OOM in the last
    epoch's kNN evaluation an epoch past the trial's schedule (epoch 3 of 2).

        progress = Progress(reported=-1)     # a fresh trial: nothing reported yet
        progress.failed_at(0)                # (0, "; in the kNN evaluation of epoch 0 ...")
    """

    def __init__(self, reported: int) -> None:
        self.reported, self.saving = reported, False

    def failed_at(self, trained: int) -> tuple[int, str]:
        """(the epoch of the failure, where in it, "" when in its training)."""
        if trained <= self.reported:
            return trained + 1, ""
        if self.saving:
            return trained, f"; while saving the checkpoint of epoch {trained}, after it trained"
        return trained, (f"; in the kNN evaluation of epoch {trained}, after it trained (knn_memory_size "
                         "bounds the kNN's memory bank)")


class AshaRungs:
    """The epochs at which ASHA may stop this trial, so that they are evaluated.

    Ray's ASHA (``_Bracket.on_result``) judges a trial at the first result at or past each rung it
    has not recorded for it, one rung per result. Its bookkeeping is not kept across a resume, so
    a trial restored past a rung is judged again on its next results: epoch e may end the trial
    when more rungs lie at or below e than this process has been judged at.

        rungs = AshaRungs([1, 2, 4])   # ablate.search.asha_rungs
        [rungs.may_stop(e) for e in (3, 4, 5, 6)]   # restored at epoch 2: [True, True, True, False]
    """

    def __init__(self, rungs: list[int]) -> None:
        self.rungs, self.judged = sorted(rungs), 0

    def may_stop(self, epoch: int) -> bool:
        if sum(r <= epoch for r in self.rungs) > self.judged:
            self.judged += 1
            return True
        return False


# --- checkpoints -----------------------------------------------------------------------------------
def save_trial(folder: Path, trainer: DINOTrainer, monitor: CollapseMonitor, carry: KnnCarry,
               row: dict[str, Any]) -> None:
    """A trial checkpoint: the trainer's, the collapse monitor, the carried kNN, the cost and the
    epoch's own report (``LastReport``)."""
    trainer.save_checkpoint(folder / CHECKPOINT_NAME)
    torch.save(monitor.state_dict(), folder / MONITOR_FILE)
    carry.save(folder)
    DeviceClock.save(folder, row["device_seconds"])
    LastReport.save(folder, row)


def checkpoint_name(epoch: int) -> str:
    """The checkpoint folder of ``epoch`` as Ray names a trainable's: ``checkpoint_000003``."""
    return f"{CHECKPOINT_PREFIX}{epoch:06d}"


def checkpoints_in(folder: Path) -> list[Path]:
    """The checkpoint folders of a trial folder (``checkpoint_NNNNNN``), newest first."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir()), reverse=True)


def retire_checkpoints(folders: Sequence[Path], keep: int, running: bool) -> list[Path]:
    """Delete a trial's checkpoints beyond its ``keep`` newest, across the folders it ran in
    (``folders``: newest run first); the deleted folders. While it runs, those of its current folder
    (``folders[0]``) are left to Ray, which prunes it itself.

    ``ablate resume`` continues a trial in a new folder: without this each resume would leave its
    last checkpoints behind for good (a sweep resumed N times held N + 2 per trial). What is deleted
    is superseded: the newer checkpoints hold the trial's state, its record every epoch.
    """
    retired = [c for folder in folders for c in checkpoints_in(folder)][keep:]
    if running:
        retired = [c for c in retired if c.parent != folders[0]]
    for checkpoint in retired:
        shutil.rmtree(checkpoint, ignore_errors=True)  # housekeeping: space not freed loses nothing
    return retired


def reported_epochs(folders: Sequence[Path]) -> dict[int, dict[str, Any]]:
    """The epoch reports kept beside the checkpoints of trial folders (``LastReport``), by epoch,
    the newest folder's first; a damaged one is skipped. The sweep's records fill from them the
    epochs whose results never reached the driver (a node lost between a checkpoint and its report)."""
    rows: dict[int, dict[str, Any]] = {}
    for folder in folders:
        for checkpoint in checkpoints_in(folder):
            kept = LastReport()
            try:
                kept.load(checkpoint)
            except DamagedFileError:
                continue
            if kept.row:
                rows.setdefault(kept.row["epoch"], {**kept.row, "recovered_from": checkpoint.name})
    return rows


def earlier_checkpoints(config: dict[str, Any]) -> list[Path]:
    """The checkpoints of a trial's earlier runs (``_resume_dirs``, newest run first; ``ablate
    resume`` names them), newest first."""
    return [c for folder in config.get(RESUME_DIRS) or [] for c in checkpoints_in(Path(folder))]


def checkpoints_to_restore(folder: Path | None, config: dict[str, Any]) -> list[Path]:
    """The checkpoints a trial restores from, newest first: every one in its own ``folder`` (a retry in
    this run), else those of its earlier runs (``earlier_checkpoints``).

    Its own folder's newest, not the newest its driver registered: a checkpoint is copied into the
    folder before its result travels to the driver, so a worker lost between the two (a lost node, an
    OOM kill) leaves a newer checkpoint than the one the driver would hand the retry (none after the
    first epoch). Its epoch is reported again first (``replay``), which the driver never had.
    """
    return (checkpoints_in(folder) if folder is not None else []) or earlier_checkpoints(config)


def restore_trial(trainer: DINOTrainer, monitor: CollapseMonitor, sources: Sequence[Path],
                  *extras: KnnCarry | DeviceClock | LastReport) -> tuple[str, bool]:
    """Load the newest usable checkpoint of ``sources`` (folders, newest first): (a note when it was
    not the newest, whether one was loaded).

    A damaged checkpoint (truncated by a full disk or a crash, a file that does not parse, an
    epoch report of another epoch than its weights) falls back to the one before it; when none is
    usable, the trial starts again from epoch 0 instead of failing every retry. Every file is read
    weights-only or as plain JSON: nothing runs code.
    """
    problems = []
    for folder in sources:
        try:  # the trainer changes only once every file of the checkpoint has loaded
            monitor_state = load_pt(folder / MONITOR_FILE, "monitor state")
            state = trainer.read_checkpoint(folder / CHECKPOINT_NAME)
            for extra in extras:  # small JSON files beside the checkpoint, of the epoch its weights hold
                extra.load(folder, state["epoch"])
            trainer.load_state_dict(state)
            monitor.load_state_dict(monitor_state)
        except (DamagedFileError, UnsafeFileError) as exc:
            problems.append(str(exc))
            continue
        if not problems:
            return "", True
        note = f"{'; '.join(problems)}; continued from {folder.name} (epoch {trainer.epoch}) instead"
        warn(note)
        return note, True
    if not problems:
        return "", False
    note = f"{'; '.join(problems)}; no usable checkpoint is left, so the trial restarts from epoch 0"
    warn(note)
    return note, False


def read_json(file: Path, what: str) -> Any:
    """A small JSON file of a checkpoint; DamagedFileError naming it when it does not parse."""
    try:
        return loads(file.read_bytes())
    except (OSError, ValueError) as exc:
        raise DamagedFileError(f"{file}: not a readable {what} ({exc.__class__.__name__}); the "
                               "checkpoint it belongs to is skipped") from None


class LastReport:
    """The metrics a checkpoint's epoch reported, kept beside it, so a trial restored from it can report
    that epoch again (``replay``)."""

    FILE = "epoch.json"
    MAX_BYTES = 1 << 20  # one epoch's scalars; a larger file is not one this trainer wrote

    def __init__(self) -> None:
        self.row: dict[str, Any] = {}

    @classmethod
    def save(cls, folder: Path, row: dict[str, Any]) -> None:
        plain = {k: v for k, v in row.items() if v is None or isinstance(v, (bool, int, float, str))}
        (folder / cls.FILE).write_text(json.dumps(plain))

    def load(self, folder: Path, epoch: int | None = None) -> None:
        """The report kept in ``folder``; DamagedFileError for one that is not an epoch's report, or
        (``epoch``: the one the checkpoint's weights hold) is of another epoch: replayed, it would end
        the trial with an outcome it never had."""
        file = folder / self.FILE
        self.row = {}  # not the report of a checkpoint skipped before this one
        if not file.is_file():  # checkpoints written before this file existed have none
            return
        if file.stat().st_size > self.MAX_BYTES:
            raise DamagedFileError(f"{file}: larger than an epoch's report ({file.stat().st_size} bytes); "
                                   "the checkpoint it belongs to is skipped")
        data = read_json(file, "epoch report")
        if not isinstance(data, dict) or not isinstance(data.get("epoch"), int):
            raise DamagedFileError(f"{file}: expected the epoch's report ({{\"epoch\": N, ...}}); the "
                                   "checkpoint it belongs to is skipped")
        if epoch is not None and data["epoch"] != epoch:
            raise DamagedFileError(f"{file}: reports epoch {data['epoch']}, but the checkpoint holds epoch "
                                   f"{epoch}; the checkpoint it belongs to is skipped")
        self.row = data


class KnnCarry:
    """Every result a searcher or scheduler sees carries the kNN metrics: an epoch without an
    evaluation (``eval_every`` > 1) repeats the last evaluated values with ``knn_evaluated: false``."""

    KEYS = ("knn_top1", "knn_top5")
    FILE = "knn_carry.json"

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def apply(self, metrics: dict[str, Any]) -> None:
        evaluated = all(k in metrics for k in self.KEYS)
        if evaluated:
            self.last = {k: float(metrics[k]) for k in self.KEYS}
        else:
            metrics.update(self.last)
        metrics["knn_evaluated"] = evaluated

    def save(self, folder: Path) -> None:
        (folder / self.FILE).write_text(json.dumps(self.last))

    def load(self, folder: Path, epoch: int | None = None) -> None:
        """The carried values kept in ``folder`` (any ``epoch``: they are the last evaluated ones)."""
        file = folder / self.FILE
        if not file.is_file():  # checkpoints written before this file existed have none
            return
        data = read_json(file, "kNN carry file")
        try:
            self.last = {str(k): float(v) for k, v in data.items()}
        except (AttributeError, TypeError, ValueError):
            raise DamagedFileError(f"{file}: expected {{\"knn_top1\": number, ...}}; the checkpoint it "
                                   "belongs to is skipped") from None


class DeviceClock:
    """What a trial has cost so far, cumulative over restores: ``device_seconds`` is the trial's GPU
    share x wall seconds on a GPU, the process's CPU seconds (all its threads, and its DataLoader
    workers once they exit) on CPU; x ``workers`` for a data-parallel trial."""

    FILE = "device_seconds.json"

    def __init__(self, gpu_share: float = 0.0, workers: int = 1) -> None:
        self.workers, self.gpu_share = workers, gpu_share
        self.kind = GPU if gpu_share > 0 else CPU
        self.before = 0.0  # spent before the checkpoint this process resumed from
        self.wall0, self.cpu0 = time.perf_counter(), self.cpu_seconds()

    def seconds(self) -> float:
        if self.gpu_share > 0:
            spent = self.gpu_share * (time.perf_counter() - self.wall0)
        else:
            spent = self.cpu_seconds() - self.cpu0
        return self.before + self.workers * spent

    @staticmethod
    def cpu_seconds() -> float:
        """CPU time of this process and of its finished children (DataLoader workers)."""
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def metrics(self) -> dict[str, Any]:
        return {"device_seconds": self.seconds(), "device_kind": self.kind}

    def load(self, folder: Path, epoch: int | None = None) -> None:
        """The cost kept in ``folder`` (any ``epoch``: it is cumulative)."""
        file = folder / self.FILE
        if not file.is_file():  # checkpoints written before cost accounting have none
            return
        data = read_json(file, "cost file")
        try:
            self.before = float(data["device_seconds"])
        except (KeyError, TypeError, ValueError):
            raise DamagedFileError(f"{file}: expected {{\"device_seconds\": number}}; the checkpoint it "
                                   "belongs to is skipped") from None

    @classmethod
    def save(cls, folder: Path, seconds: float) -> None:
        (folder / cls.FILE).write_text(json.dumps({"device_seconds": seconds}))
