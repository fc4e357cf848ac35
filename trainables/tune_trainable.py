"""The Ray Tune function trainable: a thin adapter over ``DINOTrainer``.

It builds the trainer from the trial's config, restores from ``ray.tune.get_checkpoint()``,
reports every epoch's metrics with a ``ray.tune.Checkpoint``, and ends a trial that diverges or
collapses with its reason recorded (``trial_outcome``, ``stop_reason``).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from ray import tune

from trainables import cuda
from trainables.config import DINOConfig
from trainables.dino.trainer import CHECKPOINT_NAME, DINOTrainer, NonFiniteLossError
from trainables.stop_rules import CollapseMonitor, StopRules


def trial_repeat(config: dict[str, Any]) -> int:
    """Index of the seed repeat: ``repeat`` (grid/ablation points) or Repeater's ``__trial_index__``."""
    return int(config.get("repeat", config.get("__trial_index__", 0)))


def trial_config(config: dict[str, Any]) -> DINOConfig:
    """Trainer config of a trial: bundles expanded, bookkeeping dropped, seed offset by the repeat."""
    values = {k: v for k, v in config.items() if k not in ("repeat", "__trial_index__", "_stop", "_bundles")}
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
    cfg, gpu_share = _on_assigned_gpu(trial_config(config))
    rules = StopRules(**config.get("_stop", {}))
    trainer = DINOTrainer(cfg)
    monitor = CollapseMonitor(rules)
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            trainer.load_checkpoint(Path(folder) / CHECKPOINT_NAME)
            monitor.load_state_dict(torch.load(Path(folder) / "monitor.pt", weights_only=False))
    base = {"stop_reason": "", "trial_outcome": "running", "seed": cfg.seed, "repeat": trial_repeat(config),
            **_placement()}
    try:
        for metrics in trainer.run():
            metrics = {**base, **metrics, "reported_at": time.time()}
            if metrics["epoch"] == cfg.epochs:
                metrics["trial_outcome"] = "completed"
            reason = monitor.update(metrics)
            if reason:
                metrics.update(trial_outcome="collapsed", stop_reason=reason)
            _report(trainer, monitor, metrics)
            if reason:
                return
    except NonFiniteLossError as exc:
        if not rules.nonfinite:
            raise
        tune.report({**base, "epoch": trainer.epoch + 1, "trial_outcome": "diverged",
                     "stop_reason": str(exc), "reported_at": time.time()})
    except torch.OutOfMemoryError as exc:  # a retry would fail the same way: end with the reason
        tune.report({**base, "epoch": trainer.epoch + 1, "trial_outcome": "oom",
                     "stop_reason": cuda.oom_reason(exc, trainer.device, gpu_share),
                     "reported_at": time.time()})


def _on_assigned_gpu(cfg: DINOConfig) -> tuple[DINOConfig, float]:
    """The trial's device (CPU without a GPU share) and its GPU share, memory capped to it."""
    import ray

    share = float(ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0))
    cfg = cfg.model_copy(update={"device": cuda.trial_device(cfg.device, ray.get_gpu_ids())})
    if cfg.device != "cpu" and torch.cuda.is_available():
        cuda.use_expandable_segments()  # before the trainer's first CUDA allocation
        cuda.cap_memory(share, torch.device(cfg.device if ":" in cfg.device else "cuda"))
    return cfg, share


def _report(trainer: DINOTrainer, monitor: CollapseMonitor, metrics: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if metrics["epoch"] > 0:
            trainer.save_checkpoint(Path(folder) / CHECKPOINT_NAME)
            torch.save(monitor.state_dict(), Path(folder) / "monitor.pt")
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        else:
            tune.report(metrics)


def _placement() -> dict[str, Any]:
    """Where this trial runs: node, process, the GPU ids Ray assigned, and when it started."""
    import ray

    return {"node_ip": ray.util.get_node_ip_address(), "pid": os.getpid(), "started_at": time.time(),
            "gpu_ids": ",".join(str(i) for i in ray.get_gpu_ids())}
