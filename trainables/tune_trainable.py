"""The Ray Tune function trainable: a thin adapter over ``DINOTrainer``.

It builds the trainer from the trial's config, restores from ``ray.tune.get_checkpoint()``,
reports every epoch's metrics with a ``ray.tune.Checkpoint``, and ends a trial that diverges,
collapses or cannot write its checkpoint with its reason recorded (``trial_outcome``,
``stop_reason``).

What Ray lets a trial do when it is stopped from outside (Ray 2.x function trainables): ASHA's
stop or Ctrl-C makes the driver mark the trial finished and call ``stop()`` on its actor, which
releases the trial's blocked ``tune.report`` with ``SystemExit`` and does not wait for it; nothing
the trial reports afterwards reaches the driver. So the trial cannot evaluate "on the way out":
it evaluates at every epoch where ASHA may stop it (``AshaRungs``), and where it is stopped
otherwise (Ctrl-C, a kill) the reports use its last *evaluated* kNN and name that epoch.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
from ray import tune

from trainables import cuda
from trainables.checkpoint import DamagedFileError, UnsafeFileError, load_pt
from trainables.config import DINOConfig
from trainables.dino.trainer import CHECKPOINT_NAME, DINOTrainer, NonFiniteLossError
from trainables.stop_rules import CollapseMonitor, StopRules
from trainables.storage_errors import STORAGE_ERRNOS, STORAGE_FULL, write_failure

MONITOR_FILE = "monitor.pt"


def trial_repeat(config: dict[str, Any]) -> int:
    """Index of the seed repeat: ``repeat`` (grid/ablation points) or Repeater's ``__trial_index__``."""
    return int(config.get("repeat", config.get("__trial_index__", 0)))


def trial_config(config: dict[str, Any]) -> DINOConfig:
    """Trainer config of a trial: bundles expanded, bookkeeping dropped, seed offset by the repeat."""
    values = {k: v for k, v in config.items()
              if k not in ("repeat", "__trial_index__", "_stop", "_bundles", "_eval_at")}
    for name, options in (config.get("_bundles") or {}).items():
        values.update(options[values.pop(name)])
    values["seed"] = int(values.get("seed", 0)) + trial_repeat(config)
    return DINOConfig(**values)


def _use_assigned_cpus() -> None:
    # Ray sets OMP_NUM_THREADS to the trial's CPUs; torch reads it only at import, so apply it.
    n = os.environ.get("OMP_NUM_THREADS")
    if n and n.isdigit() and int(n) > 0:
        torch.set_num_threads(int(n))


# report(metrics, write): hand one epoch's metrics to Ray; ``write(folder)`` fills the checkpoint
# folder to report with them (None: a result without a checkpoint).
Report = Callable[[dict[str, Any], "Callable[[Path], None] | None"], None]


def dino_trainable(config: dict[str, Any]) -> None:
    """One sweep trial: train, report each epoch, stop on divergence or collapse."""
    clock = DeviceClock()  # first: building the trainer (data, model) is part of the cost
    _use_assigned_cpus()
    cfg, gpu_share = _on_assigned_gpu(trial_config(config))
    run_trial(DINOTrainer(cfg), config, clock, tune.get_checkpoint(), _tune_report, gpu_share)


def run_trial(trainer: DINOTrainer, config: dict[str, Any], clock: DeviceClock,
              checkpoint: tune.Checkpoint | None, report: Report, gpu_share: float = 0.0,
              extra: dict[str, Any] | None = None) -> None:
    """The epochs of one trial, whoever runs it (a Tune trial, or every worker of a Ray Train run).

    Every result carries the kNN metrics (carried forward between evaluations), the cost so far
    and the one collapse verdict; the last epoch a trial runs is evaluated where it can be known
    (its schedule's end, a collapse, an ASHA decision); divergence, OOM and a checkpoint that
    cannot be written (disk full, read-only) end the trial with their reason instead of a retry
    that would fail the same way.
    """
    cfg = trainer.cfg
    rules = StopRules(**config.get("_stop", {}))
    monitor, carry = CollapseMonitor(rules), KnnCarry()
    rungs = AshaRungs(config.get("_eval_at") or [])
    note = restore_trial(trainer, monitor, checkpoint, carry, clock)
    base = {"stop_reason": "", "trial_outcome": "running", "seed": cfg.seed, "repeat": trial_repeat(config),
            **_placement(), **(extra or {}), **({"restore_note": note} if note else {})}

    def final(outcome: str, reason: str) -> None:
        report({**base, **carry.last, **clock.metrics(), "knn_evaluated": False, "epoch": trainer.epoch + 1,
                "trial_outcome": outcome, "stop_reason": reason, "reported_at": time.time()}, None)

    try:
        for metrics in trainer.run():
            metrics = {**base, **metrics, **clock.metrics(), "reported_at": time.time()}
            reason = monitor.update(metrics)
            metrics["collapse_flag"] = monitor.flag(metrics["epoch"]) if metrics["epoch"] > 0 else ""
            last = rungs.may_stop(metrics["epoch"]) or reason  # it may be this trial's last epoch
            if last and "knn_top1" not in metrics:  # a trial's last epoch is always evaluated
                metrics["knn_top1"], metrics["knn_top5"] = trainer.evaluate()
            carry.apply(metrics)
            metrics.update(end_verdict(metrics, reason, cfg.epochs))
            write = partial(save_trial, trainer=trainer, monitor=monitor, carry=carry,
                            device_seconds=metrics["device_seconds"])
            unwritable = report_epoch(report, metrics, write if metrics["epoch"] > 0 else None)
            if unwritable:  # the epoch trained, its checkpoint is not saved: a retry fails the same way
                report({**metrics, "trial_outcome": STORAGE_FULL, "stop_reason": unwritable}, None)
                return
            if reason:
                return
    except NonFiniteLossError as exc:
        if not rules.nonfinite:
            raise
        final("diverged", str(exc))
    except torch.OutOfMemoryError as exc:  # a retry would fail the same way: end with the reason
        final("oom", cuda.oom_reason(exc, trainer.device, gpu_share))


def report_epoch(report: Report, metrics: dict[str, Any], write: Callable[[Path], None] | None) -> str:
    """``report``; when the checkpoint cannot be written (``STORAGE_ERRNOS``), the reason, else ""."""
    try:
        report(metrics, write)
    except OSError as exc:
        if exc.errno not in STORAGE_ERRNOS:
            raise
        return write_failure(exc, f"the checkpoint of epoch {metrics['epoch']}")
    return ""


class AshaRungs:
    """The epochs at which ASHA may stop this trial, so that they are evaluated.

    Ray's ASHA (``_Bracket.on_result``) judges a trial at the first result at or past each rung it
    has not recorded for it, one rung per result. Its bookkeeping is not saved with the experiment,
    so after ``ablate resume`` a trial restored past a rung is judged again on its next results:
    epoch e may end the trial when more rungs lie at or below e than this process has been judged at.

        rungs = AshaRungs([1, 2, 4])   # sweep.asha_rungs
        [rungs.may_stop(e) for e in (3, 4, 5, 6)]   # restored at epoch 2: [True, True, True, False]
    """

    def __init__(self, rungs: list[int]) -> None:
        self.rungs, self.judged = sorted(rungs), 0

    def may_stop(self, epoch: int) -> bool:
        if sum(r <= epoch for r in self.rungs) > self.judged:
            self.judged += 1
            return True
        return False


def save_trial(folder: Path, trainer: DINOTrainer, monitor: CollapseMonitor, carry: KnnCarry,
               device_seconds: float) -> None:
    """A trial checkpoint: the trainer's, the collapse monitor, the carried kNN and the cost."""
    trainer.save_checkpoint(folder / CHECKPOINT_NAME)
    torch.save(monitor.state_dict(), folder / MONITOR_FILE)
    carry.save(folder)
    DeviceClock.save(folder, device_seconds)


def _tune_report(metrics: dict[str, Any], write: Callable[[Path], None] | None) -> None:
    if write is None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        write(Path(folder))
        try:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        except OSError as exc:  # Ray's copy into the storage (pyarrow) names no file: the trial's folder
            where = exc.filename or tune.get_context().get_trial_dir()
            raise OSError(exc.errno, exc.strerror, where) from None


def _on_assigned_gpu(cfg: DINOConfig) -> tuple[DINOConfig, float]:
    """The trial's device (CPU without a GPU share) and its GPU share, memory capped to it."""
    import ray

    share = float(ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0))
    cfg = cfg.model_copy(update={"device": cuda.trial_device(cfg.device, ray.get_gpu_ids())})
    if cfg.device != "cpu" and torch.cuda.is_available():
        cuda.use_expandable_segments()  # before the trainer's first CUDA allocation
        cuda.cap_memory(share, torch.device(cfg.device if ":" in cfg.device else "cuda"))
    return cfg, share


def restore_trial(trainer: DINOTrainer, monitor: CollapseMonitor, checkpoint: tune.Checkpoint | None,
                  *extras: KnnCarry | DeviceClock) -> str:
    """Load the newest usable checkpoint of the trial; returns a note when it was not the latest.

    Ray keeps the trial's last ``num_to_keep`` checkpoints side by side (``checkpoint_NNNNNN``).
    A damaged latest one (truncated by a full disk or a crash) falls back to the one before it;
    when none is usable, the trial starts again from epoch 0 instead of failing every retry.
    """
    if checkpoint is None:
        return ""
    problems = []
    for folder in kept_checkpoints(checkpoint):
        try:
            with checkpoint_folder(checkpoint, folder) as local:  # the trainer changes only once both load
                monitor_state = load_pt(local / MONITOR_FILE, "monitor state")
                trainer.load_checkpoint(local / CHECKPOINT_NAME)
                for extra in extras:  # small JSON files beside the checkpoint
                    extra.load(local)
            monitor.load_state_dict(monitor_state)
        except (DamagedFileError, UnsafeFileError) as exc:
            problems.append(str(exc))
            continue
        if not problems:
            return ""
        note = f"{'; '.join(problems)}; continued from {folder.name} (epoch {trainer.epoch}) instead"
        print(f"ablate: warning: {note}", file=sys.stderr)
        return note
    note = f"{'; '.join(problems)}; no usable checkpoint is left, so the trial restarts from epoch 0"
    print(f"ablate: warning: {note}", file=sys.stderr)
    return note


def kept_checkpoints(checkpoint: tune.Checkpoint) -> list[Path]:
    """The latest checkpoint folder, then the older ones Ray kept beside it, newest first."""
    latest = Path(checkpoint.path)
    # Remote storage: only the latest checkpoint is reachable (through as_directory).
    if checkpoint.filesystem is None or checkpoint.filesystem.type_name != "local":
        return [latest]
    older = sorted((p for p in latest.parent.glob("checkpoint_*") if p.is_dir() and p.name < latest.name),
                   reverse=True)
    return [latest, *older]


@contextlib.contextmanager
def checkpoint_folder(checkpoint: tune.Checkpoint, folder: Path) -> Iterator[Path]:
    if folder == Path(checkpoint.path):
        with checkpoint.as_directory() as local:
            yield Path(local)
    else:
        yield folder


def end_verdict(metrics: dict[str, Any], reason: str, epochs: int) -> dict[str, str]:
    """``trial_outcome``/``stop_reason`` of this epoch: collapsed (stopped by the rule), flagged (the
    rule's condition holds at the last epoch, fewer than patience epochs), completed, or running."""
    if reason:
        return {"trial_outcome": "collapsed", "stop_reason": reason}
    if metrics["epoch"] == epochs:
        if metrics.get("collapse_flag"):
            return {"trial_outcome": "flagged", "stop_reason": metrics["collapse_flag"]}
        return {"trial_outcome": "completed"}
    return {}


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

    def load(self, folder: Path) -> None:
        file = folder / self.FILE
        if file.is_file():  # checkpoints written before this file existed have none
            self.last = {k: float(v) for k, v in json.loads(file.read_text()).items()}


class DeviceClock:
    """What a trial has cost so far, cumulative over restores: ``device_seconds`` is the trial's GPU
    share x wall seconds on a GPU, the process's CPU seconds (all its threads, and its DataLoader
    workers once they exit) on CPU."""

    FILE = "device_seconds.json"

    def __init__(self, workers: int = 1) -> None:
        import ray

        self.workers = workers  # a data-parallel trial costs this process's share on every worker
        self.gpu_share = float(ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0))
        self.kind = "GPU" if self.gpu_share > 0 else "CPU"
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

    def load(self, folder: Path) -> None:
        file = folder / self.FILE
        if file.is_file():  # checkpoints written before cost accounting have none
            self.before = float(json.loads(file.read_text())["device_seconds"])

    @classmethod
    def save(cls, folder: Path, seconds: float) -> None:
        (folder / cls.FILE).write_text(json.dumps({"device_seconds": seconds}))


def _placement() -> dict[str, Any]:
    """Where this trial runs: node, process, the GPU ids Ray assigned, and when it started."""
    import ray

    return {"node_ip": ray.util.get_node_ip_address(), "pid": os.getpid(), "started_at": time.time(),
            "gpu_ids": ",".join(str(i) for i in ray.get_gpu_ids())}
