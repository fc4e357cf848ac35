"""The Ray Tune function trainable of a one-process trial: a thin adapter over ``trainables.trial``.

It builds the trainer from the trial's config on the trial's device (its GPU share, memory capped
to it), restores from the newest usable checkpoint (its own folder's after a retry, else the folder
of the trial's earlier runs that ``ablate resume`` names in ``_resume_dirs``), and reports every
epoch's metrics with a ``ray.tune.Checkpoint``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from ray import tune

from trainables import cuda
from trainables.checkpoint import DamagedFileError
from trainables.config import ConfigError, DINOConfig
from trainables.dino.trainer import DINOTrainer
from trainables.trial import (
    STORAGE_DIR,
    DeviceClock,
    LastReport,
    checkpoints_to_restore,
    input_refused,
    out_of_memory_at_start,
    run_trial,
    trial_config,
    use_assigned_cpus,
)


def dino_trainable(config: dict[str, Any]) -> None:
    """One sweep trial: train, report each epoch, stop on divergence or collapse; a trial whose
    trainer cannot be built from its inputs, or restored, ends errored at once (``input_refused``),
    one that runs out of memory doing so ends oom (``out_of_memory_at_start``)."""
    import ray

    share = float(ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0))
    clock = DeviceClock(share)  # first: building the trainer (data, model) is part of the cost
    use_assigned_cpus()
    sources = restore_sources(config)
    report = tune_report(config, unregistered(sources, config))
    device = str(config.get("device", "auto"))
    try:
        cfg = on_assigned_gpu(trial_config(config), share)
        device = cfg.device
        run_trial(DINOTrainer(cfg), config, clock, sources, report, placement(), share)
    except ConfigError as exc:  # its inputs, or a checkpoint of another configuration: so would a retry
        input_refused(exc, config, clock, report, placement())
    except (RuntimeError, MemoryError) as exc:  # building or restoring it (run_trial ends its epochs' own)
        if not cuda.out_of_memory(exc):
            raise
        out_of_memory_at_start(exc, device, share, config, clock, report, placement())


def restore_sources(config: dict[str, Any]) -> list[Path]:
    """Checkpoint folders to restore from, newest first: all of the trial's own folder (a retry in this
    run; Tune's latest is among them, and may not be the newest), else those of the trial's earlier
    runs (``ablate resume``): ``checkpoints_to_restore``."""
    checkpoint = tune.get_checkpoint()
    folder = Path(checkpoint.path).parent if checkpoint is not None else trial_folder(config)
    return checkpoints_to_restore(folder, config)


def unregistered(sources: list[Path], config: dict[str, Any]) -> Path | None:
    """The newest checkpoint of the trial's own folder when Tune never registered it (the process died
    as its result was on the way to the driver), else None. Ray copies the next checkpoint it is
    handed into that very folder (the one after Tune's latest)."""
    latest = tune.get_checkpoint()
    if not sources or sources[0].parent != (Path(latest.path).parent if latest else trial_folder(config)):
        return None
    return sources[0] if latest is None or sources[0].name > Path(latest.path).name else None


def tune_report(config: dict[str, Any], unregistered: Path | None = None
                ) -> Callable[[dict[str, Any], Callable[[Path], None] | None], None]:
    """Report to Tune; a checkpoint is written to a temporary folder that Ray copies into storage.

    The replayed epoch of a checkpoint Tune never registered (``unregistered``, the one restored) is
    reported with a copy of it: Tune registers it, and the next epoch's checkpoint gets a folder of its
    own instead of overwriting this one (a kill during that copy would leave two epochs' files mixed).
    """

    pending = [unregistered] if unregistered is not None else []  # handed on once, by the replay

    def report(metrics: dict[str, Any], write: Callable[[Path], None] | None) -> None:
        if write is None and pending and metrics.get("replayed"):
            checkpoint = pending.pop()
            if held_epoch(checkpoint) == metrics.get("epoch"):  # the one restored (not one before it)
                write = partial(shutil.copytree, checkpoint, dirs_exist_ok=True)
        if write is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            write(Path(folder))
            try:
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            except OSError as exc:  # Ray's copy into the storage names no file, or its staging folder
                raise OSError(exc.errno, exc.strerror, storage_folder(config)) from None

    return report


def held_epoch(checkpoint: Path) -> int | None:
    """The epoch a checkpoint folder holds, as its epoch report says (None: none readable)."""
    kept = LastReport()
    with contextlib.suppress(DamagedFileError):
        kept.load(checkpoint)
    return kept.row.get("epoch")


def storage_folder(config: dict[str, Any]) -> str:
    """The trial's folder in the sweep (``<sweep>/tune/<trial>``), where its checkpoints go."""
    folder = trial_folder(config)
    return str(folder) if folder is not None else Path(tune.get_context().get_trial_dir()).name


def trial_folder(config: dict[str, Any]) -> Path | None:
    """``<sweep>/tune/<trial>``; None outside a sweep (no ``_storage_dir``)."""
    if not config.get(STORAGE_DIR):
        return None
    return Path(config[STORAGE_DIR]) / Path(tune.get_context().get_trial_dir()).name


def on_assigned_gpu(cfg: DINOConfig, share: float) -> DINOConfig:
    """The trial's device (CPU without a GPU share), its CUDA memory capped to its share."""
    import ray

    cfg = cfg.model_copy(update={"device": cuda.trial_device(cfg.device, ray.get_gpu_ids())})
    if cfg.device != "cpu" and torch.cuda.is_available():
        cuda.use_expandable_segments()  # before the trainer's first CUDA allocation
        cuda.cap_memory(share, torch.device(cfg.device if ":" in cfg.device else "cuda"))
    return cfg


def placement() -> dict[str, Any]:
    """Where this process runs: node, process and the GPU ids Ray assigned."""
    import ray

    return {"node_ip": ray.util.get_node_ip_address(), "pid": os.getpid(),
            "gpu_ids": ",".join(str(i) for i in ray.get_gpu_ids())}
