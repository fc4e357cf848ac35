"""Ray Tune orchestration of a sweep spec: search algorithm, scheduler, resources, resume.

``run_sweep`` starts (or joins) Ray, writes ``<storage>/<name>/spec.yaml`` and runs the Tune
experiment in ``<storage>/<name>/tune``; ``resume_sweep`` continues an interrupted one with
``Tuner.restore``. The trainable itself is ``trainables.tune_trainable.dino_trainable``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from ablate.errors import UserError
from ablate.ray_logs import RayLogFile
from ablate.spec import SAMPLERS, SweepSpec, load_spec
from ablate.trackers import check_trackers, tracker_callbacks

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
def start_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
              logs: RayLogFile | None = None) -> None:
    """Join the cluster at ``address``, or start a local Ray with this machine's resources.

    The local Ray binds to 127.0.0.1 with the dashboard off; token authentication stays on
    (Ray writes ``~/.ray/auth_token``; a driver joining a cluster needs RAY_AUTH_MODE=token).
    """
    if not address:  # before Ray is imported: its "no multi-node" switch binds it to 127.0.0.1
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if logs is not None:
        logs.capture()
    if ray.is_initialized():
        return
    if address:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"--address {address}: cannot join the Ray cluster ({exc}). Start one with "
                            "`ray start --head`, and set RAY_AUTH_MODE=token with its token") from None
        return
    # address="local": always a new Ray for this run, never a cluster that `ray start` left behind.
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
             log_to_driver=False)


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    """CPU and GPU share of one trial; ``gpu: auto`` falls back to CPU on a cluster with no GPU."""
    import ray

    has_gpu = ray.cluster_resources().get("GPU", 0) > 0
    if spec.resources.gpu == "auto" and not has_gpu:
        print("ablate: warning: no GPU in the Ray cluster (resources.gpu: auto); trials run on CPU",
              file=sys.stderr)
    return {"cpu": float(spec.resources.cpu), "gpu": spec.resources.gpu_per_trial(has_gpu)}


# --- search -------------------------------------------------------------------------------------
def param_space(spec: SweepSpec) -> dict[str, Any]:
    """Constants shared by every trial: the full baseline trainer config and the stop rules."""
    space: dict[str, Any] = dict(spec.trainer_config().model_dump(mode="json"))
    space["_stop"] = spec.stop.as_dict()
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
        if dist.type == "float":
            out[name] = d.FloatDistribution(dist.low, dist.high, log=bool(dist.log), step=dist.step)
        elif dist.type == "int":
            out[name] = d.IntDistribution(int(dist.low), int(dist.high), log=bool(dist.log),
                                          step=int(dist.step or 1))
        else:
            out[name] = d.CategoricalDistribution(spec.choice_values(name))
    return out


def optuna_sampler(spec: SweepSpec):  # noqa: ANN201
    """The spec's Optuna sampler (tpe, random, cmaes or gp), seeded with ``search.seed``."""
    from optuna import samplers

    cls_name, _ = SAMPLERS[spec.search.sampler or "tpe"]
    return getattr(samplers, cls_name)(seed=spec.search.seed)


def search_algorithm(spec: SweepSpec, sweep_dir: Path):  # noqa: ANN201
    """Optuna (with an SQLite study in the sweep folder) wrapped in a Repeater, or explicit points."""
    from ray.tune.search import BasicVariantGenerator, Repeater

    if spec.search.algorithm == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        storage = optuna.storages.RDBStorage(f"sqlite:///{sweep_dir / OPTUNA_DB}")
        searcher = OptunaSearch(space=optuna_distributions(spec), metric=spec.metric, mode=spec.mode,
                                sampler=optuna_sampler(spec), storage=storage, study_name=spec.name)
        return Repeater(searcher, repeat=spec.repeats, set_index=True) if spec.repeats > 1 else searcher
    points = [{**point, "repeat": r} for point in spec.points() for r in range(spec.repeats)]
    return BasicVariantGenerator(points_to_evaluate=points,
                                 max_concurrent=spec.search.max_concurrent_trials or 0)


# --- the Tuner ----------------------------------------------------------------------------------
def make_trainable(spec: SweepSpec):  # noqa: ANN201
    from ray import tune

    from trainables.tune_trainable import dino_trainable

    return tune.with_resources(dino_trainable, trial_resources(spec))


def run_config(spec: SweepSpec, sweep_dir: Path, callbacks: Sequence[Any] = ()):  # noqa: ANN201
    from ray import tune

    return tune.RunConfig(
        name=EXPERIMENT, storage_path=str(sweep_dir.resolve()), stop={"epoch": spec.trainer_config().epochs},
        failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=list(callbacks), verbose=0)  # Ray's own table off: the LiveView draws progress


def live_view(spec: SweepSpec, stream: IO[str] | None = None):  # noqa: ANN201
    """The progress view of this spec's sweep (in place on a terminal, event lines elsewhere)."""
    from ablate.live import LiveView  # imports Ray: not before the environment above is set

    return LiveView(num_trials=spec.num_trials, epochs=spec.trainer_config().epochs, params=list(spec.space),
                    metric=spec.metric, mode=spec.mode, stream=stream)


def tune_config(spec: SweepSpec, sweep_dir: Path):  # noqa: ANN201
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if spec.scheduler.type == "asha":
        scheduler = ASHAScheduler(time_attr="epoch", max_t=spec.trainer_config().epochs,
                                  grace_period=spec.scheduler.grace_period,
                                  reduction_factor=spec.scheduler.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    return tune.TuneConfig(
        metric=spec.metric, mode=spec.mode, search_alg=search_algorithm(spec, sweep_dir),
        scheduler=scheduler, num_samples=spec.num_trials,
        max_concurrent_trials=spec.search.max_concurrent_trials)


def run_sweep(spec: SweepSpec, storage: str | Path = "runs", address: str | None = None,
              num_cpus: int | None = None, num_gpus: int | None = None, loggers: Sequence[str] = (),
              verbose: bool = False, stream: IO[str] | None = None) -> Path:
    """Run the sweep into ``<storage>/<spec.name>``; refuses a name that already exists.

    ``loggers`` (tensorboard, mlflow, wandb) add to the spec's; Ray's own log lines go to
    ``<sweep>/ray.log`` unless ``verbose``; progress goes to ``stream`` (default stderr).
    """
    from ray import tune

    sweep_dir = Path(storage).expanduser().resolve() / spec.name
    if sweep_dir.exists():
        raise UserError(f"{sweep_dir}: a sweep named {spec.name!r} already exists; continue it with "
                        f"`ablate resume {sweep_dir}`, or choose another name (--set name=...)")
    names = check_trackers([*getattr(spec, "loggers", []), *loggers], "loggers (spec or --logger)")
    with RayLogFile(verbose) as logs:
        start_ray(address, num_cpus, num_gpus, logs)
        trainable = make_trainable(spec)
        sweep_dir.mkdir(parents=True)
        logs.attach(sweep_dir)
        (sweep_dir / SPEC_FILE).write_text(spec.dump())
        view = live_view(spec, stream)
        callbacks = [view, *tracker_callbacks(names, sweep_dir, spec.name)]
        tuner = tune.Tuner(trainable, param_space=param_space(spec), tune_config=tune_config(spec, sweep_dir),
                           run_config=run_config(spec, sweep_dir, callbacks))
        try:
            tuner.fit()
        finally:
            view.close()  # an interrupted fit does not end the experiment: the terminal is given back here
    return sweep_dir


def load_sweep_spec(sweep_dir: Path) -> SweepSpec:
    file = sweep_dir / SPEC_FILE
    if not file.is_file() or not (sweep_dir / EXPERIMENT).is_dir():
        raise UserError(f"{sweep_dir}: not a sweep folder (expected {SPEC_FILE} and {EXPERIMENT}/ made by "
                        "`ablate run`)")
    return load_spec(file)


def resume_sweep(sweep_dir: str | Path, address: str | None = None, num_cpus: int | None = None,
                 num_gpus: int | None = None, verbose: bool = False) -> Path:
    """Continue an interrupted sweep: finished trials stay, unfinished and errored ones resume.

    Ray restores the run config saved with the experiment, callbacks (live view, trackers) included.
    """
    from ray import tune

    sweep_dir = Path(sweep_dir).expanduser().resolve()
    spec = load_sweep_spec(sweep_dir)
    with RayLogFile(verbose) as logs:
        start_ray(address, num_cpus, num_gpus, logs)
        logs.attach(sweep_dir)
        experiment = sweep_dir / EXPERIMENT
        if not tune.Tuner.can_restore(str(experiment)):
            raise UserError(f"{experiment}: Ray has no experiment state to resume from (the sweep was "
                            "interrupted before its first trial started); remove the folder and run it again")
        tuner = tune.Tuner.restore(str(experiment), trainable=make_trainable(spec), resume_errored=True)
        tuner.fit()
    return sweep_dir
