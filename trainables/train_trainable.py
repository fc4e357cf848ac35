"""A trial as a data-parallel run: Ray Train (V2) inside Ray Tune, as Ray documents it.

The Tune trial runs ``dino_train_trial``, a light driver (``DRIVER_RESOURCES``) that launches a
``ray.train.torch.TorchTrainer``. Ray Train reserves its own placement group of ``workers``
bundles (``cpu`` and ``gpu`` each), starts one process per bundle, joins them in a
``torch.distributed`` group (NCCL on GPUs, gloo on CPU) and runs ``dino_worker_loop`` on each.
Every epoch all workers call ``ray.train.report`` (rank 0 with the checkpoint); Ray Tune's
``TuneReportCallback`` relays rank 0's metrics to the trial, so searchers, ASHA, repeats, stop
rules and reports see a multi-worker trial like any other.

The Train run lives in the Tune trial's own folder (same storage, same name), with checkpoints
``checkpoint_NNNNNN/checkpoint.pt`` as single-process trials have. When Tune restarts a trial
(``ablate resume`` after a killed driver, or a retry after a failure) the Train run of that
folder continues from its latest checkpoint, which every worker loads.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from trainables.dino.trainer import CHECKPOINT_NAME, DINOTrainer, NonFiniteLossError
from trainables.stop_rules import CollapseMonitor, StopRules
from trainables.tune_trainable import _placement, _use_assigned_cpus, trial_config, trial_repeat

# The driver only waits on the Train controller; Ray Tune needs a non-empty request for it.
DRIVER_RESOURCES = {"cpu": 0.01}
MONITOR_FILE = "monitor.pt"


def dino_train_trial(config: dict[str, Any], workers: int, cpu: float, gpu: float, storage_path: str) -> None:
    """Tune function trainable: one trial as a TorchTrainer run of ``workers`` DDP workers."""
    from ray import train, tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    per_worker = {"CPU": cpu, **({"GPU": gpu} if gpu else {})}
    trainer = TorchTrainer(
        dino_worker_loop, train_loop_config=config,
        scaling_config=train.ScalingConfig(num_workers=workers, use_gpu=gpu > 0,
                                           resources_per_worker=per_worker),
        run_config=train.RunConfig(
            # The trial's folder: a restarted trial finds (and resumes) its own Train run.
            name=Path(tune.get_context().get_trial_dir()).name, storage_path=storage_path,
            callbacks=[TuneReportCallback()],
            checkpoint_config=train.CheckpointConfig(num_to_keep=2),
            failure_config=train.FailureConfig(max_failures=0)))  # Tune retries the trial
    trainer.fit()


def dino_worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: the trial's DINOTrainer on this rank's shard, reported every epoch."""
    from ray import train
    from ray.train.torch import get_device

    _use_assigned_cpus()
    cfg = trial_config(config)
    if cfg.device == "auto":  # the device Ray Train assigned to this worker
        cfg.device = str(get_device())
    rules = StopRules(**config.get("_stop", {}))
    trainer, monitor = DINOTrainer(cfg), CollapseMonitor(rules)
    checkpoint = train.get_checkpoint()
    if checkpoint:  # rank 0 wrote it; every rank restores it
        with checkpoint.as_directory() as folder:
            trainer.load_checkpoint(Path(folder) / CHECKPOINT_NAME)
            monitor.load_state_dict(torch.load(Path(folder) / MONITOR_FILE, weights_only=False))
    base = {"stop_reason": "", "trial_outcome": "running", "seed": cfg.seed, "repeat": trial_repeat(config),
            "workers": trainer.world_size, **_placement()}
    try:
        for metrics in trainer.run():
            # Metrics are averaged over ranks inside the trainer: every rank decides the same.
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
        train.report({**base, "epoch": trainer.epoch + 1, "trial_outcome": "diverged",
                      "stop_reason": str(exc), "reported_at": time.time()})


def _report(trainer: DINOTrainer, monitor: CollapseMonitor, metrics: dict[str, Any]) -> None:
    """Every rank reports (it is a barrier); rank 0 alone writes the checkpoint."""
    from ray import train

    epoch = metrics["epoch"]
    if epoch == 0 or not trainer.is_main_process:
        train.report(metrics, checkpoint_dir_name=f"checkpoint_{epoch:06d}" if epoch else None)
        return
    with tempfile.TemporaryDirectory() as folder:
        trainer.save_checkpoint(Path(folder) / CHECKPOINT_NAME)
        torch.save(monitor.state_dict(), Path(folder) / MONITOR_FILE)
        train.report(metrics, checkpoint=train.Checkpoint.from_directory(folder),
                     checkpoint_dir_name=f"checkpoint_{epoch:06d}")
