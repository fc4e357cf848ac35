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
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from trainables.dino.trainer import DINOTrainer
from trainables.tune_trainable import DeviceClock, Report, _use_assigned_cpus, run_trial, trial_config

# The driver only waits on the Train controller; Ray Tune needs a non-empty request for it.
DRIVER_RESOURCES = {"cpu": 0.01}


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
            callbacks=[cast(Any, TuneReportCallback())],  # a Train callback, typed as a Tune one
            checkpoint_config=train.CheckpointConfig(num_to_keep=2),
            failure_config=train.FailureConfig(max_failures=0)))  # Tune retries the trial
    trainer.fit()


def dino_worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: the trial's DINOTrainer on this rank's shard, reported every epoch.

    The epochs are the single-process trial's (``run_trial``): metrics are averaged over ranks
    inside the trainer, so every rank reaches the same verdicts; rank 0 writes the checkpoint.
    """
    from ray import train
    from ray.train.torch import get_device

    _use_assigned_cpus()
    cfg = trial_config(config)
    if cfg.device == "auto":  # the device Ray Train assigned to this worker
        cfg = cfg.model_copy(update={"device": str(get_device())})
    trainer = DINOTrainer(cfg)
    clock = DeviceClock(workers=trainer.world_size)
    run_trial(trainer, config, clock, train.get_checkpoint(), _train_report(trainer),
              extra={"workers": trainer.world_size})


def _train_report(trainer: DINOTrainer) -> Report:
    """Every rank reports (it is a barrier); rank 0 alone writes the checkpoint."""
    from ray import train

    def report(metrics: dict[str, Any], write: Callable[[Path], None] | None) -> None:
        name = f"checkpoint_{metrics['epoch']:06d}" if write else None
        if write is None or not trainer.is_main_process:
            train.report(metrics, checkpoint_dir_name=name)
            return
        with tempfile.TemporaryDirectory() as folder:
            write(Path(folder))
            train.report(metrics, checkpoint=train.Checkpoint.from_directory(folder),
                         checkpoint_dir_name=name)

    return report
