"""A trial as a data-parallel run: Ray Train (V2) inside Ray Tune, as Ray documents it.

The Tune trial runs ``dino_train_trial``, a driver that holds no CPU (ablate.admission) and
launches a ``ray.train.torch.TorchTrainer`` (``torch_trainer``, the one launcher, also used by
``ablate train --workers``). Ray Train reserves a placement group of ``workers`` bundles (``cpu``
and ``gpu`` each), starts one process per bundle, joins them in a ``torch.distributed`` group
(NCCL on GPUs, gloo on CPU) and runs ``dino_worker_loop`` on each: the one-process trial's epochs
(``trainables.trial.run_trial``), every rank reporting, rank 0 with the checkpoint. Ray Tune's
``TuneReportCallback`` relays rank 0's metrics to the trial, so searchers, ASHA, repeats, stop
rules and reports see a multi-worker trial like any other.

The Train run lives in the Tune trial's own folder, with checkpoints ``checkpoint_NNNNNN/
checkpoint.pt`` as one-process trials have. A worker group that cannot start within
``RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S`` (60 s; resources taken, a node lost) fails the run at
once instead of waiting; Tune retries the trial, which continues from its newest checkpoint.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from sweep_format import statuses
from sweep_format.layout import told_verdict
from sweep_format.text import LINE_MAX, cut_at_word, whole_error_at
from trainables import cuda
from trainables.config import ConfigError, DINOConfig
from trainables.dino.trainer import DINOTrainer
from trainables.distributed import from_rank0, world_size
from trainables.distributed import rank as world_rank
from trainables.trial import (
    KEPT_CHECKPOINTS,
    DeviceClock,
    Report,
    checkpoint_name,
    checkpoints_to_restore,
    input_refused,
    out_of_memory_at_start,
    run_trial,
    trial_config,
    use_assigned_cpus,
)
from trainables.tune_trial import placement

TRAIN_DIR = "_train_dir"  # the loop config's key: the Train run's folder (its checkpoints)


def torch_trainer(loop: Callable[[dict[str, Any]], None], loop_config: dict[str, Any], *, workers: int,
                  cpu: float, gpu: float, name: str, storage_path: str, callbacks: Sequence[Any] = ()) -> Any:
    """A ``TorchTrainer`` of ``workers`` processes (``cpu`` CPUs and ``gpu`` GPUs each) running ``loop``
    in ``storage_path/name``; it fails on the first error (the caller decides about retries)."""
    from ray import train
    from ray.train.torch import TorchTrainer

    per_worker = {"CPU": cpu, **({"GPU": gpu} if gpu else {})}
    return TorchTrainer(
        loop, train_loop_config=loop_config,
        scaling_config=train.ScalingConfig(num_workers=workers, use_gpu=gpu > 0,
                                           resources_per_worker=per_worker),
        run_config=train.RunConfig(
            name=name, storage_path=storage_path, callbacks=list(callbacks),
            checkpoint_config=train.CheckpointConfig(num_to_keep=KEPT_CHECKPOINTS),
            failure_config=cast(Any, train.FailureConfig)(max_failures=0, controller_failure_limit=0)))


def dino_train_trial(config: dict[str, Any], workers: int, cpu: float, gpu: float, storage_path: str) -> None:
    """Tune function trainable: one trial as a TorchTrainer run of ``workers`` DDP workers."""
    from ray import train, tune
    from ray.tune.integration.ray_train import TuneReportCallback

    clock = DeviceClock(gpu, workers=workers)
    name = Path(tune.get_context().get_trial_dir()).name  # the trial's folder: a retry continues there
    trainer = torch_trainer(dino_worker_loop, {**config, TRAIN_DIR: str(Path(storage_path) / name)},
                            workers=workers, cpu=cpu, gpu=gpu, name=name, storage_path=storage_path,
                            callbacks=[cast(Any, TuneReportCallback())])  # a Train callback, typed as Tune's
    try:
        trainer.fit()
    except train.TrainingFailedError as exc:
        refused, ended = input_error(exc), rank_ended(exc)
        if refused is not None:
            input_refused(refused, config, clock, lambda row, _: tune.report(row), {"workers": workers})
        elif ended is not None:  # out of memory on one rank: its row, as a one-process trial reports it
            tune.report(ended.row)
        else:  # the workers' whole texts, then one line: the record's reason (ablate.records)
            raise RuntimeError(f"{whole_error(exc)}\nthe data-parallel run of {workers} workers failed: "
                               f"{last_line(exc)}") from None


class RankEnded(Exception):
    """One rank's row that ends the whole trial (``oom``: that rank's memory alone ran out), raised to
    the driver instead of reported. Its peers may be waiting in a collective (DDP's all-reduce, the
    epoch's metrics, the kNN gather) that it will never join, and every rank's report is a barrier: a
    rank that reports and stops leaves them blocked until gloo's or NCCL's timeout. On a raise Ray
    Train ends the whole group at once, and ``dino_train_trial`` reports the row."""

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__(row.get("stop_reason", ""))
        self.row = row

    def __reduce__(self) -> tuple[Any, ...]:  # Ray hands it from the worker to the driver pickled
        return type(self), (self.row,)


def worker_exception(exc: BaseException, kind: type[BaseException]) -> Any:
    """The first (by rank) exception of type ``kind`` that a worker raised to fail the run, or None."""
    failures = getattr(exc, "worker_failures", None) or {}
    found = [getattr(f, "_base_exc", f) for _, f in sorted(failures.items())]  # Ray Train's wrapper
    return next((f for f in found if isinstance(f, kind)), None)


def input_error(exc: BaseException) -> ConfigError | None:
    """The ConfigError a worker raised (an input it cannot use, a checkpoint it cannot restore), when
    that is what failed the run. A rank raises rather than reports it: its peers may be waiting in a
    collective, and Ray Train ends the whole group at once on a raise."""
    return cast("ConfigError | None", worker_exception(exc, ConfigError))


def rank_ended(exc: BaseException) -> RankEnded | None:
    """The row a rank raised to end the trial (``RankEnded``), when that is what failed the run; its
    peers' errors of being ended with it (a collective whose peer left) are not the trial's."""
    return cast("RankEnded | None", worker_exception(exc, RankEnded))



def failed_workers(exc: BaseException) -> list[tuple[int | None, str]]:
    """Each failed rank (by rank) and its exception's whole text ("ValueError: ..."); ``exc``'s text
    when it names no rank. Ray Train hands back the exceptions without their tracebacks."""
    failures = getattr(exc, "worker_failures", None) or {}
    ranks = [(rank, exception_text(failure)) for rank, failure in sorted(failures.items())]
    return ranks or [(None, str(exc))]


def exception_text(exc: BaseException) -> str:
    """``exc`` as the last line of its traceback reads: its type's name, then its message."""
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def whole_error(exc: BaseException) -> str:
    """Ray Train's message (each distinct worker traceback, cut to its first and last 500 characters),
    then every failed worker's exception whole, headed by its rank."""
    ranks = [f"[rank {rank}] {text}" for rank, text in failed_workers(exc) if rank is not None]
    return "\n\n".join([str(exc), *(["Each failed worker's error, whole:", *ranks] if ranks else [])])


def last_line(exc: BaseException) -> str:
    """The last line of the first failed rank's exception (its own line), uncut."""
    rank, text = failed_workers(exc)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else type(exc).__name__
    return line if rank is None else f"rank {rank}: {line}"


def one_line(exc: BaseException, whole: str = "") -> str:
    """``last_line(exc)`` cut at a word to ``LINE_MAX`` characters and ending in "…" when cut; where it is
    not the whole text (cut, or lines before it), ``whole`` (where the whole text is), if given, is
    named after it. Ray's text was cut mid-word ("Set max_restarts and max_task_")."""
    line = last_line(exc)
    cut = cut_at_word(line, LINE_MAX)
    return cut + whole_error_at(whole) if whole and cut != whole_error(exc).strip() else cut


def worker_config(cfg: DINOConfig) -> DINOConfig:
    """A worker's config on the device Ray Train assigned to it (``device: auto``)."""
    from ray.train.torch import get_device

    return cfg.model_copy(update={"device": str(get_device())}) if cfg.device == "auto" else cfg


def dino_worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: the trial's DINOTrainer on this rank's shard, reported every epoch.

    Metrics are averaged over ranks inside the trainer, so every rank reaches the same verdicts;
    rank 0 writes the checkpoint. A restarted run continues from the newest usable checkpoint of
    its own folder, else of the trial's earlier runs (``_resume_dirs``, set by ``ablate resume``).
    """
    import ray

    use_assigned_cpus()
    share = float(ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0))
    workers = world_size()  # Ray Train joined the process group before this loop
    clock = DeviceClock(share, workers=workers)  # first: building the trainer is part of the cost
    where = placement()  # Tune fills node_ip and pid with its own trial's (the driver's): rank 0's kept too
    extra = {"workers": workers, **rank_keys(world_rank(), where)}
    device = str(config.get("device", "auto"))
    try:
        cfg = worker_config(trial_config(config))
        device = cfg.device
        trainer = DINOTrainer(cfg)
        sources = checkpoints_to_restore(Path(config[TRAIN_DIR]), config)
        run_trial(trainer, config, clock, sources, train_report(trainer), where, share, extra,
                  stopped=asha_verdict(Path(config[TRAIN_DIR])))
    except (RuntimeError, MemoryError) as exc:  # building or restoring it (run_trial ends its epochs' own)
        if not cuda.out_of_memory(exc):
            raise
        out_of_memory_at_start(exc, device, share, config, clock, raise_row, {**where, **extra})


# How long a trial's workers wait for ASHA's decision on an epoch it judges before they go on without it
# (the driver writes it within a second or two of the epoch's result; a driver that died takes its
# trials with it). The other ranks wait in a broadcast meanwhile: below NCCL's own 10-minute timeout.
VERDICT_WAIT_S = 300.0


def asha_verdict(folder: Path, wait: float = VERDICT_WAIT_S, poll: float = 0.2) -> Callable[[int], bool]:
    """``stopped(epoch)`` for ``run_trial``: whether ASHA stopped the trial on that epoch's result, as the
    driver wrote it into ``folder`` (``ablate.asha``); rank 0 waits for it, every rank follows.

    A data-parallel trial's workers never wait for the driver: Tune stopping the trial ended its Tune
    process's part only, and the Ray Train run trained on to its last epoch, holding its workers (a
    4-point grid with ASHA on 2 CPUs: every stopped trial wrote checkpoints to its last epoch, and the
    next trial waited for them)."""
    def stopped(epoch: int) -> bool:
        said = None
        if world_rank() == 0:
            deadline = time.monotonic() + wait
            while (said := told_verdict(folder, epoch)) is None and time.monotonic() < deadline:
                time.sleep(poll)
        return from_rank0(bool(said))

    return stopped


def rank_keys(this_rank: int, where: dict[str, Any]) -> dict[str, Any]:
    """What a rank's rows say of where they come from: rank 0's node and pid (its rows are the ones Tune
    gets; Tune overwrites ``node_ip`` and ``pid`` with its own trial's); another rank's number (its only
    row is one it raises to end the trial, ``RankEnded``), not its pid under rank 0's name."""
    if this_rank == 0:
        return {"rank0_node_ip": where["node_ip"], "rank0_pid": where["pid"]}
    return {"rank": this_rank}


def raise_row(row: dict[str, Any], write: Callable[[Path], None] | None = None) -> None:
    """A ``Report`` that ends the trial on every rank: it raises the row (``RankEnded``)."""
    raise RankEnded(row)


def train_report(trainer: DINOTrainer) -> Report:
    """Every rank reports (it is a barrier); rank 0 alone writes the checkpoint. A row that ends the
    trial out of memory is raised (``RankEnded``): the ranks run out of memory one by one, not together."""
    from ray import train

    def report(metrics: dict[str, Any], write: Callable[[Path], None] | None) -> None:
        if metrics.get("trial_outcome") == statuses.OOM:
            raise_row(metrics)
        name = checkpoint_name(metrics["epoch"]) if write else None
        if write is None or not trainer.is_main_process:
            train.report(metrics, checkpoint_dir_name=name)
            return
        with tempfile.TemporaryDirectory() as folder:
            write(Path(folder))
            train.report(metrics, checkpoint=train.Checkpoint.from_directory(folder),
                         checkpoint_dir_name=name)

    return report
