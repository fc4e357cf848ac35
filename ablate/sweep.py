"""Running a sweep on Ray Tune, and resuming one, from the sweep folder's own files.

``run_sweep`` checks the storage, starts (or joins) Ray, admits the spec's trials to the cluster,
creates ``<storage>/<name>/`` and drives the sweep; ``resume_sweep`` drives an interrupted one on.
Both hold the folder's lock (ablate.lock), build what is left to run from the records and the
Optuna study (ablate.search, ablate.study) and run it as one Tune experiment in
``<sweep>/tune``. Nothing of Ray's experiment state is read back: no pickle from the folder is
ever loaded, and a sweep written under one Ray release resumes under the next.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import ablate.admission as admission
import ablate.history as history
from ablate.ending import Signals, SweepInterrupted, fit, interrupt_in, keep_reserve, signal_of
from ablate.errors import StorageFull, UserError, warn
from ablate.folder import (
    check_writable,
    create,
    load_sweep_spec,
    record_reference_knn,
    refuse_existing,
    remove_made,
)
from ablate.lock import SweepLock
from ablate.ray_logs import RayLogFile
from ablate.records import unstarted_trials
from ablate.session import (
    DEFAULT_CONNECT_TIMEOUT,
    check_connect_timeout,
    check_for_ray,
    start_ray,
    stop_ray,
    what_start_ray_does,
)
from ablate.sweep_spec import SweepSpec
from ablate.trackers import check_trackers, tracker_callbacks
from sweep_format import statuses
from sweep_format.files import user_path
from sweep_format.layout import SPEC_FILE, TUNE_DIR, inside_sweep, sweep_around
from sweep_format.records import is_damaged, read_records
from sweep_format.text import plural

MAX_FAILURES = 2  # a crashed trial is retried this many times (from its checkpoint) before it is errored


def run_sweep(spec: SweepSpec, storage: str | Path = "runs", address: str | None = None,
              num_cpus: int | None = None, num_gpus: int | None = None,
              connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, loggers: Sequence[str] = (),
              verbose: bool = False, stream: IO[str] | None = None) -> Path:
    """Run the sweep into ``<storage>/<spec.name>``; refuses a name that already exists.

    ``loggers`` (tensorboard, mlflow, wandb) add to the spec's; Ray's own log lines go to
    ``<sweep>/ray.log`` unless ``verbose``; progress goes to ``stream`` (default stderr).
    """
    started = time.time()
    if not str(storage).strip():  # Path("") is the folder ablate runs in: the sweep would land there unasked
        raise UserError(f"--storage {str(storage)!r}: give a folder for the sweeps, e.g. --storage runs "
                        "(--storage . for the folder ablate runs in)")
    sweep_dir = user_path(storage).resolve() / spec.name
    if (inside := sweep_around(sweep_dir.parent)) is not None:  # --storage runs/temps for runs
        raise UserError(f"--storage {storage}: {inside_sweep(inside)}; give the folder that holds the "
                        f"sweeps, e.g. --storage {inside.parent}")
    refuse_existing(sweep_dir, spec.name)
    check_connect_timeout(connect_timeout)
    check_for_ray()
    precheck(spec, address, num_cpus, num_gpus)  # before the data: a download or a decode took minutes first
    made = check_writable(sweep_dir.parent, "--storage")  # so too for a --storage that cannot be written
    try:
        check_inputs(spec, address)
        names = check_trackers([*spec.loggers, *loggers], "loggers (spec or --logger)")
    except BaseException:
        remove_made(made, sweep_dir.parent)  # refused: no empty --storage left
        raise
    # the folder is named once it exists: a cluster that does not answer, or cannot hold a trial, leaves none
    print(f"ablate: sweep {spec.name!r}: {spec.num_trials} {plural(spec.num_trials, 'trial')} "
          f"({spec.search.algorithm}); {what_start_ray_does(address)}", file=sys.stderr)
    try:
        with Signals() as signals, RayLogFile(verbose) as logs, ray_session(address, num_cpus, num_gpus,
                                                                            connect_timeout, logs):
            signals.install()
            resources, limit, where = admit(spec)  # a trial too large for the cluster: refused
            create(spec, sweep_dir)
            print(f"ablate: sweep {spec.name!r}: results in {sweep_dir}", file=sys.stderr)
            with SweepLock(sweep_dir, "run"), ran(sweep_dir, "run", where, started):
                logs.attach(sweep_dir)
                record_reference_knn(spec, sweep_dir)
                drive(spec, sweep_dir, resources, limit, signals, names, stream)
    except BaseException as exc:
        interrupt = interrupt_in(exc)  # before the trials started (Ray's start, the reference kNN)
        if not sweep_dir.exists():  # stopped before the sweep folder: not even an empty --storage left
            remove_made(made, sweep_dir.parent)
            if interrupt is not None and interrupt is not exc:
                raise interrupt from None
            raise
        if interrupt is None:
            raise
        raise SweepInterrupted(sweep_dir, signal_of(interrupt)) from None  # the summary, the resume hint
    return sweep_dir


def resume_sweep(sweep_dir: str | Path, address: str | None = None, num_cpus: int | None = None,
                 num_gpus: int | None = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 verbose: bool = False, retry: Sequence[str] = (), stream: IO[str] | None = None) -> Path:
    """Continue an interrupted sweep: finished trials stay, unfinished ones continue from their newest
    checkpoint, errored ones (and ``retry`` statuses: oom, diverged) run again, missing ones start."""
    started = time.time()
    sweep_dir = user_path(sweep_dir).resolve()
    spec = load_sweep_spec(sweep_dir)
    check_connect_timeout(connect_timeout)
    if nothing_to_resume(spec, sweep_dir, tuple(retry), stream):
        return sweep_dir
    check_for_ray()
    precheck(spec, address, num_cpus, num_gpus)
    check_writable(sweep_dir, "resume")  # before the data, as for ablate run
    check_inputs(spec, address, resuming=True)
    names = check_trackers(spec.loggers, f"{sweep_dir / SPEC_FILE}: loggers")
    try:
        with SweepLock(sweep_dir, "resume"):  # the plan of the records no other driver now writes
            say_resumed(spec, sweep_dir, tuple(retry), address)
            with Signals() as signals, RayLogFile(verbose) as logs, \
                    ray_session(address, num_cpus, num_gpus, connect_timeout, logs):
                signals.install()
                resources, limit, where = admit(spec)
                logs.attach(sweep_dir)
                with ran(sweep_dir, "resume", where, started):
                    record_reference_knn(spec, sweep_dir)  # a sweep stopped before it was written
                    drive(spec, sweep_dir, resources, limit, signals, names, stream, tuple(retry))
    except BaseException as exc:  # before the trials started: the summary and the resume hint
        if (interrupt := interrupt_in(exc)) is None:
            raise
        raise SweepInterrupted(sweep_dir, signal_of(interrupt)) from None
    return sweep_dir


def say_resumed(spec: SweepSpec, sweep_dir: Path, retry: tuple[str, ...], address: str | None) -> None:
    """``ablate resume``'s opening line, as ``ablate run``'s: what it runs, what stays, where Ray is."""
    ended, left = resume_plan(spec, sweep_dir, retry)
    print(f"ablate: sweep {spec.name!r}: resuming {left} {plural(left, 'trial')} ({ended} ended, kept as "
          f"{'it is' if ended == 1 else 'they are'}); {what_start_ray_does(address)}", file=sys.stderr)


def nothing_to_resume(spec: SweepSpec, sweep_dir: Path, retry: tuple[str, ...],
                      stream: IO[str] | None) -> bool:
    """Whether every trial the spec plans has a record that ``ablate resume`` would not run again
    (``statuses.resumed``); then says so in one line. Such a resume started Ray, waited for it, ran
    nothing and stopped it (about 10 s) with no word of why before the summary."""
    ended, left = resume_plan(spec, sweep_dir, retry)
    if left:
        return False
    said = "its one trial has ended" if ended == 1 else f"all {ended} trials have ended"
    print(f"ablate: nothing to resume in {sweep_dir}: {said}; its summary and report follow",
          file=stream or sys.stderr)
    return True


def resume_plan(spec: SweepSpec, sweep_dir: Path, retry: tuple[str, ...]) -> tuple[int, int]:
    """(trials whose records stay as they are, trials ``ablate resume`` continues, runs again or starts)."""
    records = read_records(sweep_dir)
    # a grid's or an ablation's plan is its points: an edited space.*.values may leave as many records
    # as trials planned, of other points (Optuna draws its points: their number is the plan; a damaged
    # record's repeat runs again, as one whose record is gone)
    kept = [r for r in records if not is_damaged(r)]
    again = sum(statuses.resumed(r.get("status"), retry) for r in kept)
    return len(kept) - again, again + unstarted_trials(spec, records)


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None, num_gpus: int | None, connect_timeout: float,
                logs: RayLogFile | None = None) -> Iterator[None]:
    """Ray for one driver run: started (or joined) on entry, stopped (or left) once the trials are over."""
    started = start_ray(address, num_cpus, num_gpus, connect_timeout, logs)
    try:
        yield
    finally:
        stop_ray(started)


def check_inputs(spec: SweepSpec, address: str | None, resuming: bool = False) -> None:
    """The weights and data the spec names, before Ray starts. On a cluster (``--address``) the trials
    run on other machines, which may see files this one does not: a warning instead. A batch larger
    than a bundled dataset, or a ViT's crop that is not a whole number of patches, is refused
    everywhere (no file decides them). ``resuming``: a sweep keeps its trainer settings, so an
    unreadable image can only be removed, not skipped by ``skip_bad_images`` (ablate.folder)."""
    from trainables.data import SKIP_BAD

    spec.check_batches()
    spec.check_models()
    for note in spec.unfinished_warmups() + spec.unread_keys() + spec.unused_trainer_values() + \
            spec.idle_scheduler() + spec.random_under_cmaes() + spec.oversampled() + spec.unvaried():
        warn(note)
    try:
        spec.check_inputs()
    except UserError as exc:
        if resuming and SKIP_BAD in str(exc):
            exc = UserError(str(exc).replace(SKIP_BAD, " (a resumed sweep keeps the trainer settings it ran "
                                             "with, skip_bad_images among them)"))
        if not address:
            raise exc from None
        warn(f"{exc} (on this machine; the cluster's nodes must see it)")


def precheck(spec: SweepSpec, address: str | None, num_cpus: int | None, num_gpus: int | None) -> None:
    """A local Ray is this machine: a trial it can never hold (too many CPUs or GPUs, a GPU setting
    without a GPU) is refused before Ray starts, in one line, and before the data is read: with the data
    checked first, imagenet_vits16.yaml on a 2-CPU machine decoded ImageNet (about 8 minutes) or a GPU
    example downloaded CIFAR-10 before the refusal. A cluster is asked once joined (admit)."""
    ray = sys.modules.get("ray")  # not imported here: a local Ray binds to loopback (start_ray)
    if address or (ray is not None and ray.is_initialized()):
        return
    where = admission.local_cluster(num_cpus, num_gpus)
    admission.admit(spec, admission.trial_resources(spec, where, quiet=True), where)


def admit(spec: SweepSpec) -> tuple[admission.TrialResources, int | None, admission.Cluster]:
    where = admission.cluster()
    resources = admission.trial_resources(spec, where)
    return resources, admission.admit(spec, resources, where), where


@contextlib.contextmanager
def ran(sweep_dir: Path, command: str, where: admission.Cluster, started: float) -> Iterator[None]:
    """The driver's start and end in the sweep's history (ablate.history)."""
    history.note(sweep_dir, history.START, command=command, started_at=started, cpus=where.cpus,
                 gpus=where.gpus, nodes=len(where.nodes))
    outcome = "interrupted"
    try:
        yield
        outcome = "finished"
    except StorageFull:
        outcome = "storage full"
        raise
    finally:
        history.note(sweep_dir, history.END, outcome=outcome)


def drive(spec: SweepSpec, sweep_dir: Path, resources: admission.TrialResources, limit: int | None,
          signals: Signals, loggers: Sequence[str], stream: IO[str] | None,
          retry: tuple[str, ...] = ()) -> None:
    """Run what is left of the sweep as one Tune experiment in ``<sweep>/tune``."""
    from ray import tune

    from ablate.live import LiveView
    from ablate.recorder import TrialRecorder
    from ablate.report_ahead import ReportAhead
    from ablate.search import SweepSearch, param_space, point_jobs, without_checkpoints
    from trainables.trial import KEPT_CHECKPOINTS

    records = read_records(sweep_dir)
    source: Any = None
    if spec.search.algorithm == "optuna":
        from ablate.study import OptunaSource

        source = OptunaSource(spec, sweep_dir)
        jobs = source.open(records, retry)
        left = len(jobs) + spec.repeats * max(0, int(spec.search.num_samples or 0) - source.samples())
    else:
        jobs = point_jobs(spec, records, sweep_dir, retry)
        left = len(jobs)
    if not left:
        return
    if lost := without_checkpoints(jobs, records, sweep_dir):
        warn(lost)
    tune_dir = sweep_dir / TUNE_DIR
    search = SweepSearch(jobs, source, spec.metric, spec.mode)
    recorder = TrialRecorder(spec, sweep_dir, search)
    view = LiveView(recorder, stream=stream)  # after the recorder: it reads the records just written
    callbacks = [recorder, view, *tracker_callbacks(loggers, sweep_dir, spec.name), ReportAhead(left)]
    if resources.workers > 1 and spec.scheduler.type == "asha":  # its workers wait for ASHA's decisions
        from ablate.asha import WorkersTold

        callbacks.append(WorkersTold(tune_dir))
    tuner = tune.Tuner(
        admission.trainable(spec, resources, str(tune_dir)), param_space=param_space(spec, tune_dir),
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=spec.mode, search_alg=search,
            scheduler=scheduler(spec), num_samples=left, max_concurrent_trials=limit,
            trial_dirname_creator=trial_folder,
            reuse_actors=True),  # one process per slot: imports and the dataset are paid once, not per trial
        run_config=tune.RunConfig(
            name=TUNE_DIR, storage_path=str(sweep_dir), stop={"epoch": spec.longest_epochs()},
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=KEPT_CHECKPOINTS),
            callbacks=callbacks, verbose=0))  # Ray's own table off: the LiveView draws the progress
    keep_reserve(sweep_dir)
    fit(tuner, sweep_dir, spec, signals, view)  # the view's last line says how it ended


def trial_folder(trial: Any) -> str:
    """``tune/trial_<id>``; a trial continued by ``ablate resume``: ``tune/trial_<its id>_<this run's>``."""
    from ablate.recorder import record_id

    mine = record_id(trial)
    return f"trial_{trial.trial_id}" if mine == trial.trial_id else f"trial_{mine}_{trial.trial_id}"


def scheduler(spec: SweepSpec) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if spec.scheduler.type == "asha":
        return ASHAScheduler(time_attr="epoch", max_t=spec.longest_epochs(),
                             grace_period=spec.scheduler.grace_period,
                             reduction_factor=spec.scheduler.reduction_factor)
    return FIFOScheduler()
