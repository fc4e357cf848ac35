"""``ablate train --workers N``: one DINO run as a Ray Train ``TorchTrainer`` on a local Ray.

The same data-parallel path as a multi-worker sweep trial (``trainables.train_trainable``), without
Tune: N worker processes in one ``torch.distributed`` group, rank 0 writing ``metrics.jsonl``,
``checkpoint.pt`` and the epoch lines, every rank restoring ``checkpoint.pt`` on ``--resume``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from ablate.errors import UserError
from trainables.config import DINOConfig
from trainables.dino.trainer import CHECKPOINT_NAME

RAY_TRAIN_FOLDER = "ray_train"  # Ray Train's own run records inside --out


def worker_devices(cfg: DINOConfig, workers: int) -> bool:
    """Whether each worker gets a GPU: auto uses GPUs when there is one per worker."""
    gpus = torch.cuda.device_count()
    if cfg.device == "cpu":
        return False
    if cfg.device.startswith("cuda") and gpus < workers:
        raise UserError(f"--workers {workers} with device={cfg.device!r}: needs one GPU per worker, "
                        f"this machine has {gpus} (use device=cpu for gloo workers)")
    if cfg.device == "auto" and 0 < gpus < workers:
        print(f"ablate train: {gpus} GPUs for {workers} workers: training on CPU (gloo)", file=sys.stderr)
    return gpus >= workers


def train_with_workers(cfg: DINOConfig, out: Path, workers: int, resume: bool) -> int:
    """Run the DINO training of ``cfg`` on ``workers`` local Ray Train workers; the exit code."""
    from ablate.sweep import bind_local_ray_to_loopback

    bind_local_ray_to_loopback()  # before Ray is imported: the local Ray listens on 127.0.0.1 only
    import ray
    from ray import train
    from ray.train.torch import TorchTrainer

    use_gpu = worker_devices(cfg, workers)
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    started = not ray.is_initialized()
    if started:  # workers' stderr (rank 0's epoch lines) is shown here
        ray.init(address="local", num_cpus=max(workers, os.cpu_count() or 1), include_dashboard=False,
                 log_to_driver=True)
    loop_config = {"trainer": cfg.model_dump(mode="json"), "out": str(out), "resume": resume}
    trainer = TorchTrainer(
        worker_loop, train_loop_config=loop_config,
        scaling_config=train.ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=train.RunConfig(name=RAY_TRAIN_FOLDER, storage_path=str(out)))
    try:
        result = trainer.fit()
    except train.TrainingFailedError as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UserError(f"ablate train --workers {workers}: a worker failed: {last}") from None
    finally:
        if started:
            ray.shutdown()
    return int((result.metrics or {}).get("exit_code", 0))


def worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker of ``ablate train``: rank 0 writes, every rank trains and restores."""
    from ray import train
    from ray.train.torch import get_device

    from ablate.commands.train import run_epochs
    from trainables.dino.trainer import DINOTrainer

    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:  # Ray's CPU share; torch reads it only at import
        torch.set_num_threads(int(threads))
    cfg = DINOConfig(**config["trainer"])
    if cfg.device == "auto":
        cfg = cfg.model_copy(update={"device": str(get_device())})
    trainer = DINOTrainer(cfg)
    out = Path(config["out"])
    if config["resume"]:
        trainer.load_checkpoint(out / CHECKPOINT_NAME)
        if trainer.is_main_process:
            print(f"resuming {out} after epoch {trainer.epoch}/{cfg.epochs} "
                  f"({trainer.world_size} workers)", file=sys.stderr)
    code = run_epochs(trainer, out, writes=trainer.is_main_process)
    train.report({"exit_code": code, "epoch": trainer.epoch})
