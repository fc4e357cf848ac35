"""The Ray Tune function trainable: a thin adapter over ``DINOTrainer``.

It builds the trainer from the trial's config, restores from ``ray.tune.get_checkpoint()``,
reports every epoch's metrics with a ``ray.tune.Checkpoint``, and ends a trial that diverges or
collapses with its reason recorded (``trial_outcome``, ``stop_reason``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from ray import tune

from trainables.config import DINOConfig
from trainables.dino.trainer import CHECKPOINT_NAME, DINOTrainer, NonFiniteLossError
from trainables.stop_rules import CollapseMonitor, StopRules


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


def dino_trainable(config: dict[str, Any]) -> None:
    """One sweep trial: train, report each epoch, stop on divergence or collapse."""
    _use_assigned_cpus()
    cfg = trial_config(config)
    rules = StopRules(**config.get("_stop", {}))
    trainer = DINOTrainer(cfg)
    monitor = CollapseMonitor(rules)
    carry = KnnCarry()
    eval_at = set(config.get("_eval_at") or [])  # epochs where a scheduler may stop the trial
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            trainer.load_checkpoint(Path(folder) / CHECKPOINT_NAME)
            monitor.load_state_dict(torch.load(Path(folder) / "monitor.pt", weights_only=False))
            carry.load(Path(folder))
    base = {"stop_reason": "", "trial_outcome": "running", "seed": cfg.seed, "repeat": trial_repeat(config),
            **_placement()}
    try:
        for metrics in trainer.run():
            metrics = {**base, **metrics, "reported_at": time.time()}
            reason = monitor.update(metrics)
            metrics["collapse_flag"] = monitor.flag(metrics["epoch"]) if metrics["epoch"] > 0 else ""
            last = reason or metrics["epoch"] in eval_at  # it may be this trial's last epoch
            if last and "knn_top1" not in metrics:  # a trial's last epoch is always evaluated
                metrics["knn_top1"], metrics["knn_top5"] = trainer.evaluate()
            carry.apply(metrics)
            metrics.update(end_verdict(metrics, reason, cfg.epochs))
            _report(trainer, monitor, carry, metrics)
            if reason:
                return
    except NonFiniteLossError as exc:
        if not rules.nonfinite:
            raise
        tune.report({**base, **carry.last, "knn_evaluated": False, "epoch": trainer.epoch + 1,
                     "trial_outcome": "diverged", "stop_reason": str(exc), "reported_at": time.time()})


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


def _report(trainer: DINOTrainer, monitor: CollapseMonitor, carry: KnnCarry, metrics: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if metrics["epoch"] > 0:
            trainer.save_checkpoint(Path(folder) / CHECKPOINT_NAME)
            torch.save(monitor.state_dict(), Path(folder) / "monitor.pt")
            carry.save(Path(folder))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        else:
            tune.report(metrics)


def _placement() -> dict[str, Any]:
    """Where this trial runs: node, process, the GPU ids Ray assigned, and when it started."""
    import ray

    return {"node_ip": ray.util.get_node_ip_address(), "pid": os.getpid(), "started_at": time.time(),
            "gpu_ids": ",".join(str(i) for i in ray.get_gpu_ids())}
