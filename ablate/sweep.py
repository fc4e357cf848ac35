"""Ray Tune orchestration of a sweep spec: search algorithm, scheduler, resources, resume.

``run_sweep`` starts (or joins) Ray, writes ``<storage>/<name>/spec.yaml`` and runs the Tune
experiment in ``<storage>/<name>/tune``; ``resume_sweep`` continues an interrupted one with
``Tuner.restore``. The trainable itself is ``trainables.tune_trainable.dino_trainable``, or, for
trials of several data-parallel workers (``resources.workers``), the Ray Train driver
``trainables.train_trainable.dino_train_trial``.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from ablate.errors import STORAGE_ERRNOS, StorageFull, UserError
from ablate.ray_logs import RayLogFile
from ablate.records import ACTIVE, FINAL, mark_interrupted, read_records
from ablate.spec import SAMPLERS, SweepSpec, load_spec
from ablate.trackers import check_trackers, tracker_callbacks
from trainables.storage_errors import write_failure

if TYPE_CHECKING:  # Ray and Optuna are imported when a sweep starts, not with the CLI
    from optuna.samplers import BaseSampler
    from ray.tune import RunConfig, TuneConfig
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import SearchAlgorithm, Searcher

# Results without the metric (epoch 0 has no loss, a diverged trial has no kNN) are expected.
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
# Ray's legacy output engine, which `verbose=0` silences completely; ablate.live draws the progress.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Tune lets a searcher (Optuna) keep only one trial pending by default, which starts trials one
# after another; allow enough pending trials to fill the cluster.
os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "16")
# Token authentication stays on: a driver joining a cluster presents ~/.ray/auth_token. Ray reads
# this when it is imported, so it is set before the first `import ray`.
if (Path.home() / ".ray" / "auth_token").is_file():
    os.environ.setdefault("RAY_AUTH_MODE", "token")

EXPERIMENT = "tune"
SPEC_FILE = "spec.yaml"
OPTUNA_DB = "optuna.db"
MAX_FAILURES = 2  # a crashed trial is retried this many times before it counts as errored


# --- Ray ---------------------------------------------------------------------------------------
DEFAULT_CONNECT_TIMEOUT = 30.0  # seconds `--address` waits for the cluster to answer


def start_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
              connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, logs: RayLogFile | None = None) -> None:
    """Join the cluster at ``address``, or start a local Ray with this machine's resources.

    The local Ray binds to 127.0.0.1 with the dashboard off; token authentication stays on
    (Ray writes ``~/.ray/auth_token``; a driver joining a cluster needs RAY_AUTH_MODE=token).
    """
    if not address:
        bind_local_ray_to_loopback()
    import ray

    if logs is not None:
        logs.capture()
    if ray.is_initialized():
        return
    if address:
        join_cluster(address, connect_timeout)
        return
    # address="local": always a new Ray for this run, never a cluster that `ray start` left behind.
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
             log_to_driver=False)


def bind_local_ray_to_loopback() -> None:
    """Make the local Ray (gcs_server, raylet, workers) listen on 127.0.0.1 only.

    Ray binds its servers to the node address of ``ray._private.services.get_node_ip_address``,
    which is 127.0.0.1 only while Ray's multi-node switch RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is
    off (``ray.init(_node_ip_address="127.0.0.1")`` does not help: Ray swaps a loopback address
    for the external one). Ray reads the switch once, when it is imported, so it is set in the
    environment (read by Ray's processes and by a later import) and, if Ray was imported already
    (``ray.tune`` by the caller), in Ray's constants too.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False  # type: ignore[attr-defined]


def join_cluster(address: str, connect_timeout: float) -> None:
    """``ray.init(address)``, failing within ``connect_timeout`` seconds when nothing answers."""
    import ray

    wait_for_address(address, connect_timeout)
    # Ray retries its GCS connection for minutes by default; give it the same budget.
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(max(1, round(connect_timeout))))
    try:
        ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"--address {address}: cannot join the Ray cluster ({exc}). Start one with "
                        "`ray start --head`, and set RAY_AUTH_MODE=token with its token") from None


def wait_for_address(address: str, timeout: float) -> None:
    """Return once something accepts TCP connections at HOST:PORT; a UserError after ``timeout`` s.

    Only HOST:PORT forms are probed (``auto`` and addresses without a port are left to Ray).
    Each attempt is a plain socket connect of at most a few seconds, so SIGTERM and Ctrl-C act
    at once.
    """
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if timeout <= 0:
        raise UserError(f"--connect-timeout {timeout:g}: must be a positive number of seconds")
    if not host or not port.isdigit():
        return
    deadline = time.monotonic() + timeout
    while True:
        attempt = min(5.0, max(deadline - time.monotonic(), 0.1))
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=attempt).close()
            return
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        if time.monotonic() + 1 > deadline:
            break
        time.sleep(1)
    raise UserError(f"--address {address}: nothing answered within {timeout:g} s ({reason}); start "
                    f"the cluster with `ray start --head --port={port}`, check HOST:PORT, or wait "
                    "longer with --connect-timeout SECONDS")


def check_writable(folder: Path, option: str) -> None:
    """A write probe before Ray starts: a read-only or full disk stops the sweep before any trial."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ablate-write-probe-") as probe:
            probe.write(b"\0" * 65536)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "error")
        raise UserError(f"{option} {folder}: cannot write there ({code}: {exc.strerror}); nothing "
                        f"was started. Free space, or give a writable folder") from None


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    """CPU and GPU share of one trial; ``gpu: auto`` falls back to CPU on a cluster with no GPU."""
    import ray

    has_gpu = ray.cluster_resources().get("GPU", 0) > 0
    if spec.resources.gpu == "auto" and not has_gpu:
        print("ablate: warning: no GPU in the Ray cluster (resources.gpu: auto); trials run on CPU",
              file=sys.stderr)
    return {"cpu": float(spec.resources.cpu), "gpu": spec.resources.gpu_per_trial(has_gpu)}


def max_concurrent_trials(spec: SweepSpec) -> int | None:
    """The spec's limit; for multi-worker trials also the number of trials the cluster holds.

    Tune reserves only the driver of a multi-worker trial; Ray Train reserves the workers when
    the trial starts. Ray's guide for Train inside Tune therefore limits concurrent trials, or
    trials would start and then wait for workers the cluster cannot give.
    """
    import ray

    limit, workers = spec.search.max_concurrent_trials, spec.resources.workers
    if workers == 1:
        return limit
    per_worker = trial_resources(spec)
    cluster = ray.cluster_resources()
    fits = math.floor(cluster.get("CPU", 0) / (workers * per_worker["cpu"]) + 1e-9)
    if per_worker["gpu"]:
        fits = min(fits, math.floor(cluster.get("GPU", 0) / (workers * per_worker["gpu"]) + 1e-9))
    if fits < 1:
        raise UserError(f"resources: a trial needs {workers} workers x ({per_worker['cpu']:g} CPU, "
                        f"{per_worker['gpu']:g} GPU); the Ray cluster has {cluster.get('CPU', 0):g} CPUs "
                        f"and {cluster.get('GPU', 0):g} GPUs (lower resources.workers or join a larger "
                        "cluster with --address)")
    return min(limit, fits) if limit else fits


# --- search -------------------------------------------------------------------------------------
def param_space(spec: SweepSpec) -> dict[str, Any]:
    """Constants shared by every trial: the full baseline trainer config and the stop rules."""
    space: dict[str, Any] = dict(spec.trainer_config().model_dump(mode="json"))
    space["_stop"] = spec.stop.as_dict()
    if spec.scheduler.type == "asha":
        space["_eval_at"] = asha_rungs(spec)
    bundles = spec.bundles()
    if bundles:
        space["_bundles"] = bundles
    if spec.search.algorithm == "optuna":
        for name in spec.space:
            space.pop(name, None)  # chosen by Optuna
    else:  # every trial is one of the explicit points; Tune needs each key to be a domain
        from ray import tune

        points = spec.points()
        for name in spec.space:
            space[name] = tune.choice(_unique([p[name] for p in points]))
        space["repeat"] = tune.choice(list(range(spec.repeats)))
    return space


def asha_rungs(spec: SweepSpec) -> list[int]:
    """The epochs at which ASHA may stop a trial (its rungs, as Ray's ``_Bracket`` computes them):
    the trainable evaluates kNN there, so an early-stopped trial's last epoch is measured."""
    import math

    import numpy as np

    max_t, grace = spec.trainer_config().epochs, spec.scheduler.grace_period
    rf = spec.scheduler.reduction_factor
    if grace > max_t or rf <= 1:
        return []
    count = int(np.log(max_t / grace) / np.log(rf) + 1)  # numpy, as Ray computes it
    return sorted({math.ceil(grace * rf ** k) for k in range(count)})


def _unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def optuna_distributions(spec: SweepSpec) -> dict[str, Any]:
    from optuna import distributions as d

    out: dict[str, Any] = {}
    for name, dist in spec.space.items():
        dist = cast(Any, dist)  # FloatDist or IntDist in the numeric branches
        if dist.type == "float":
            out[name] = d.FloatDistribution(dist.low, dist.high, log=bool(dist.log), step=dist.step)
        elif dist.type == "int":
            out[name] = d.IntDistribution(int(dist.low), int(dist.high), log=bool(dist.log),
                                          step=int(dist.step or 1))
        else:
            out[name] = d.CategoricalDistribution(spec.choice_values(name))
    return out


def optuna_sampler(spec: SweepSpec) -> BaseSampler:
    """The spec's Optuna sampler (tpe, random, cmaes or gp), seeded with ``search.seed``."""
    from optuna import samplers

    cls_name, _ = SAMPLERS[spec.search.sampler or "tpe"]
    return getattr(samplers, cls_name)(seed=spec.search.seed)


def search_algorithm(spec: SweepSpec, sweep_dir: Path) -> Searcher | SearchAlgorithm:
    """Optuna (with an SQLite study in the sweep folder) wrapped in a Repeater, or explicit points."""
    from ray.tune.search import BasicVariantGenerator, Repeater

    if spec.search.algorithm == "optuna":
        import optuna

        from ablate.study import RecordedOptunaSearch

        storage = optuna.storages.RDBStorage(f"sqlite:///{sweep_dir / OPTUNA_DB}")
        searcher = RecordedOptunaSearch(space=optuna_distributions(spec), metric=spec.metric, mode=spec.mode,
                                        sampler=optuna_sampler(spec), storage=storage, study_name=spec.name,
                                        sweep_dir=sweep_dir)
        return Repeater(searcher, repeat=spec.repeats, set_index=True) if spec.repeats > 1 else searcher
    points = [{**point, "repeat": r} for point in spec.points() for r in range(spec.repeats)]
    return BasicVariantGenerator(points_to_evaluate=points,
                                 max_concurrent=spec.search.max_concurrent_trials or 0)


# --- the Tuner ----------------------------------------------------------------------------------
def make_trainable(spec: SweepSpec, sweep_dir: Path) -> Any:
    from ray import tune

    if spec.resources.workers > 1:  # a Ray Train run per trial, in the trial's own folder
        from trainables.train_trainable import DRIVER_RESOURCES, dino_train_trial

        per_worker = trial_resources(spec)
        driver = tune.with_parameters(dino_train_trial, workers=spec.resources.workers, cpu=per_worker["cpu"],
                                      gpu=per_worker["gpu"], storage_path=str(sweep_dir / EXPERIMENT))
        return tune.with_resources(driver, DRIVER_RESOURCES)
    from trainables.tune_trainable import dino_trainable

    return tune.with_resources(dino_trainable, trial_resources(spec))


def run_config(spec: SweepSpec, sweep_dir: Path, callbacks: Sequence[Any] = ()) -> RunConfig:
    from ray import tune

    from ablate.recorder import TrialRecorder

    return tune.RunConfig(
        name=EXPERIMENT, storage_path=str(sweep_dir.resolve()), stop={"epoch": spec.trainer_config().epochs},
        failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        # Ray's own table off (verbose=0): the LiveView draws the progress.
        callbacks=[TrialRecorder(spec, sweep_dir), *callbacks], verbose=0)


def live_view(spec: SweepSpec, stream: IO[str] | None = None) -> Any:
    """The progress view of this spec's sweep (in place on a terminal, event lines elsewhere)."""
    from ablate.live import LiveView  # imports Ray: not before the environment above is set

    return LiveView(num_trials=spec.num_trials, epochs=spec.trainer_config().epochs, params=list(spec.space),
                    metric=spec.metric, mode=spec.mode, stream=stream)


def tune_config(spec: SweepSpec, sweep_dir: Path) -> TuneConfig:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    scheduler: TrialScheduler
    if spec.scheduler.type == "asha":
        scheduler = ASHAScheduler(time_attr="epoch", max_t=spec.trainer_config().epochs,
                                  grace_period=spec.scheduler.grace_period,
                                  reduction_factor=spec.scheduler.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    return tune.TuneConfig(
        metric=spec.metric, mode=spec.mode, search_alg=search_algorithm(spec, sweep_dir),
        scheduler=scheduler, num_samples=spec.num_trials, max_concurrent_trials=max_concurrent_trials(spec))


def run_sweep(spec: SweepSpec, storage: str | Path = "runs", address: str | None = None,
              num_cpus: int | None = None, num_gpus: int | None = None,
              connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, loggers: Sequence[str] = (),
              verbose: bool = False, stream: IO[str] | None = None) -> Path:
    """Run the sweep into ``<storage>/<spec.name>``; refuses a name that already exists.

    ``loggers`` (tensorboard, mlflow, wandb) add to the spec's; Ray's own log lines go to
    ``<sweep>/ray.log`` unless ``verbose``; progress goes to ``stream`` (default stderr).
    """
    sweep_dir = Path(storage).expanduser().resolve() / spec.name
    if sweep_dir.exists():
        raise UserError(f"{sweep_dir}: a sweep named {spec.name!r} already exists; continue it with "
                        f"`ablate resume {sweep_dir}`, or choose another name (--set name=...)")
    check_writable(sweep_dir.parent, "--storage")
    names = check_trackers([*spec.loggers, *loggers], "loggers (spec or --logger)")
    with RayLogFile(verbose) as logs:
        start_ray(address, num_cpus, num_gpus, connect_timeout, logs)
        from ray import tune  # after start_ray: a local Ray must see its loopback switch first

        ACTIVE["sweep_dir"] = sweep_dir
        trainable = make_trainable(spec, sweep_dir)
        max_concurrent_trials(spec)  # a trial too large for the cluster is refused before anything is written
        sweep_dir.mkdir(parents=True)
        logs.attach(sweep_dir)
        (sweep_dir / SPEC_FILE).write_text(spec_text(spec))
        record_reference_knn(spec, sweep_dir)
        view = live_view(spec, stream)
        callbacks = [view, *tracker_callbacks(names, sweep_dir, spec.name)]
        tuner = tune.Tuner(trainable, param_space=param_space(spec), tune_config=tune_config(spec, sweep_dir),
                           run_config=run_config(spec, sweep_dir, callbacks))
        try:
            fit(tuner, sweep_dir, spec.num_trials)
        finally:
            view.close()  # an interrupted fit does not end the experiment: the terminal is given back here
    return sweep_dir


def load_sweep_spec(sweep_dir: Path) -> SweepSpec:
    file = sweep_dir / SPEC_FILE
    if not file.is_file() or not (sweep_dir / EXPERIMENT).is_dir():
        raise UserError(f"{sweep_dir}: not a sweep folder (expected {SPEC_FILE} and {EXPERIMENT}/ made by "
                        "`ablate run`)")
    return load_spec(file, force=True)  # accepted (with --force if it needed it) when the sweep started


def resume_sweep(sweep_dir: str | Path, address: str | None = None, num_cpus: int | None = None,
                 num_gpus: int | None = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 verbose: bool = False) -> Path:
    """Continue an interrupted sweep: finished trials stay, unfinished and errored ones resume.

    Ray restores the run config saved with the experiment, callbacks (live view, trackers) included.
    """
    sweep_dir = Path(sweep_dir).expanduser().resolve()
    spec = load_sweep_spec(sweep_dir)
    check_writable(sweep_dir, "resume")
    with RayLogFile(verbose) as logs:
        start_ray(address, num_cpus, num_gpus, connect_timeout, logs)
        from ray import tune

        logs.attach(sweep_dir)
        experiment = sweep_dir / EXPERIMENT
        if not tune.Tuner.can_restore(str(experiment)):
            raise UserError(f"{experiment}: Ray has no experiment state to resume from (the sweep was "
                            "interrupted before its first trial started); remove the folder and run it again")
        ACTIVE["sweep_dir"] = sweep_dir  # the records and the study are read from here, moved or not
        if spec.search.algorithm == "optuna":
            from ablate.study import before_resume

            before_resume(sweep_dir)
        tuner = tune.Tuner.restore(str(experiment), trainable=make_trainable(spec, sweep_dir),
                                   resume_errored=True)
        fit(tuner, sweep_dir, spec.num_trials)
    return sweep_dir


# --- how a run ends -------------------------------------------------------------------------------
class _Interrupt(logging.Filter):
    """Ray handles SIGINT inside ``tuner.fit()`` and only logs it: this filter notices that log line
    (the sweep was interrupted) and drops Ray's ``Tuner.restore(...)`` hint (ablate says
    ``ablate resume DIR`` instead)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Stop signal received" in message:
            self.seen = True
        return "Tuner.restore" not in message and "Resume experiment with" not in message


def fit(tuner: Any, sweep_dir: Path, total: int) -> None:
    """``tuner.fit()``; after an interrupt, unfinished records become ``interrupted`` and
    ``SweepInterrupted`` is raised (the CLI exits 130). A write that fails for lack of space or
    permission (a trial's checkpoint, a record, Ray's own files) stops the sweep: ``StorageFull``
    with one line saying what is kept (the CLI exits 2)."""
    watcher = _Interrupt()
    logger = logging.getLogger("ray.tune.tune")
    logger.addFilter(watcher)
    try:
        tuner.fit()
    except Exception as exc:
        failure = failed_write(exc)
        if failure is None:
            raise
        raise stopped_for_storage(sweep_dir, total, failure) from None
    finally:
        logger.removeFilter(watcher)
        # This driver's sweep is over: a later sweep (or searcher) in the same process, e.g. in a
        # notebook, must not take this folder for its own.
        ACTIVE.pop("sweep_dir", None)
    # Ray's log line, or (should a Ray version word it differently) trials left unfinished.
    unfinished = [r for r in read_records(sweep_dir).values() if r.get("status") not in FINAL]
    if watcher.seen or unfinished:
        mark_interrupted(sweep_dir)
        raise SweepInterrupted(sweep_dir)


def failed_write(exc: BaseException | None) -> str | None:
    """The write for lack of space or permission behind ``exc``, if any: ablate's ``StorageFull``
    (a record, a trial's ``storage_full`` outcome) or Ray's own ``OSError``. Ray re-raises an
    exception of a callback as a ``TuneError`` holding only its text, so the chain is followed."""
    while exc is not None:
        if isinstance(exc, StorageFull):
            return str(exc)
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            return write_failure(exc)
        exc = exc.__cause__ or exc.__context__
    return None


def stopped_for_storage(sweep_dir: Path, total: int, failure: str) -> StorageFull:
    """The one line of a sweep stopped by a failed write: the path and errno, what is kept, how to go on."""
    try:  # the records may be on the full disk too: then they stay as last written
        mark_interrupted(sweep_dir, cause=f"stopped: {failure}")
    except OSError:
        pass
    done = sum(r.get("status") in FINAL for r in read_records(sweep_dir).values())
    return StorageFull(f"{failure}; the sweep stopped: {done} of {total} trials finished, the trial records "
                       f"and each unfinished trial's last checkpoint are kept; free space (or make the "
                       f"storage writable), then `ablate resume {sweep_dir}`")


class SweepInterrupted(Exception):
    def __init__(self, sweep_dir: Path) -> None:
        super().__init__(f"interrupted; continue with `ablate resume {sweep_dir}`")
        self.sweep_dir = sweep_dir


def spec_text(spec: SweepSpec) -> str:
    """spec.yaml: the resolved spec plus what the reports need and must not re-derive: the
    baseline point (grid and ablation: the trainer's own values of the searched keys)."""
    import yaml

    from ablate.spec.loader import RESOLVED

    data = yaml.safe_load(spec.dump())
    data[RESOLVED] = {"baseline": spec.baseline_point()}  # derived: the loader ignores it
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


REFERENCE_FILE = "reference_knn.json"


def record_reference_knn(spec: SweepSpec, sweep_dir: Path) -> None:
    """The raw-pixel and untrained kNN of the sweep's dataset, once per sweep, before any trial
    (a failure only warns: the sweep runs without the reference lines)."""
    import json

    from trainables.baselines import reference_knn

    cfg = spec.trainer_config()
    try:
        import torch

        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            cfg = cfg.model_copy(update={"device": "cpu"})  # the driver may have no GPU
        values = reference_knn(cfg)
    except Exception as exc:
        print(f"ablate: warning: reference kNN (raw pixels, untrained network) not computed: {exc}",
              file=sys.stderr)
        return
    (sweep_dir / REFERENCE_FILE).write_text(json.dumps(
        {**values, "dataset": cfg.dataset, "arch": cfg.arch, "seed": cfg.seed}, indent=1))
