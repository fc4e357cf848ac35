"""What the sweep's driver spends on one trial event, on synthetic Optuna sweeps of N trials.

    python bench/driver_events.py --trials 1000 5000 --repeats 9

Builds ``<out>/sweepN`` once (kept for the next run): ``search_spaces/temps.yaml`` with 1 repeat and
``num_samples`` N + 1000, N finished trial records (2 epochs each) and an Optuna study of N
completed trials with the records' values, as a long sweep leaves them. Then times, in Python and
without Ray, the calls the driver makes per event with the objects it would pass them, each the
median of ``--repeats``:

- ``next_jobs``: the Optuna source asks for a new point (the searcher's queue ran dry), with TPE
  and with the random sampler; "ablate's part" leaves out Optuna's own ``study.ask``;
- ``finished``: a point's repeat ended and the study is told;
- the recorder's start, result and end of a new trial (a record written each time);
- the live view's trial end, off a terminal and on one, and a redraw of the terminal view.

The study is copied for each sampler, so the folder stays as built.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweep_format.layout import OPTUNA_DB, SPEC_FILE, TRIALS_DIR, TUNE_DIR
from sweep_format.statuses import COMPLETED, RUNNING

TINY = {"epochs": 2, "dataset": "synthetic", "arch": "test_vit", "patch_size": 4, "global_crops_size": 16,
        "local_crops_size": 8, "local_crops_number": 2, "out_dim": 32, "head_hidden_dim": 32,
        "head_bottleneck_dim": 16, "num_workers": 0, "device": "cpu"}


def build(folder: Path, n: int) -> Path:
    """The synthetic sweep of ``n`` trials (see the module docstring); kept when it exists."""
    import optuna

    from ablate.folder import create
    from ablate.records import Points, new_record
    from ablate.study import new_study, optuna_distributions
    from ablate.sweep_spec import load_spec
    from sweep_format.records import write_record

    sweep = folder / f"sweep{n}"
    if (sweep / OPTUNA_DB).is_file():
        return sweep
    shutil.rmtree(sweep, ignore_errors=True)
    text = Path("search_spaces/temps.yaml").read_text().replace("num_samples: 5", f"num_samples: {n + 1000}")
    text = text.replace("repeats: 3", "repeats: 1").replace("resources: {cpu: 1, gpu: auto}",
                                                            "resources: {cpu: 1, gpu: 0}")
    (folder / "temps.yaml").write_text(text.replace("trainer:\n  epochs: 8", f"trainer: {TINY}"))
    spec = load_spec(folder / "temps.yaml")
    create(spec, sweep)
    points, rng = Points(spec, []), random.Random(0)
    study = new_study(optuna.storages.RDBStorage(f"sqlite:///{sweep / OPTUNA_DB}"), spec)
    frozen = []
    for i in range(n):
        params = {"teacher_temp": 10 ** rng.uniform(-2, -1),
                  "warmup_teacher_temp_epochs": rng.choice([0, 1, 2]), "student_temp": rng.uniform(0.05, 0.2)}
        config = {**spec.trainer_config().model_dump(mode="json"), **params, "repeat": 0, "_optuna_trial": i}
        rec = new_record(spec, points, f"{rng.getrandbits(32):08x}", config)
        knn = rng.uniform(20, 60)
        rec.update(status=COMPLETED, trial_dir=f"{TUNE_DIR}/trial_{rec['trial_id']}", created_at=1.79e9 + i,
                   updated_at=1.79e9 + i + 0.5, epochs=[
                       {"epoch": 0, "knn_top1": 30.0, "trial_outcome": RUNNING, "knn_evaluated": True},
                       {"epoch": 1, "loss": rng.uniform(1, 2), "knn_top1": knn, "epoch_time_s": 1.3,
                        "trial_outcome": RUNNING, "knn_evaluated": True},
                       {"epoch": 2, "loss": rng.uniform(1, 2), "knn_top1": knn, "epoch_time_s": 1.3,
                        "trial_outcome": COMPLETED, "knn_evaluated": True}])
        rec["trial_dirs"] = [rec["trial_dir"]]
        write_record(sweep, rec)
        frozen.append(optuna.trial.create_trial(params=params, distributions=optuna_distributions(spec),
                                                value=knn))
    study.add_trials(frozen)
    return sweep


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def time_next_jobs(sweep: Path, sampler: str, repeats: int) -> dict[str, float]:
    """next_jobs (all of it, and ablate's part) and finished, on a copy of the sweep's study."""
    from ablate.folder import load_sweep_spec
    from ablate.study import OptunaSource

    work = sweep.parent / f"{sweep.name}-{sampler}"
    shutil.rmtree(work, ignore_errors=True)
    (work / TRIALS_DIR).mkdir(parents=True)
    shutil.copy(sweep / OPTUNA_DB, work)
    (work / SPEC_FILE).write_text((sweep / SPEC_FILE).read_text().replace("sampler: tpe",
                                                                             f"sampler: {sampler}"))
    source = OptunaSource(load_sweep_spec(work), work)
    source.open([])
    asking: list[float] = []
    ask = source.study.ask

    def timed_ask(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return ask(*args, **kwargs)
        finally:
            asking.append(time.perf_counter() - start)

    source.study.ask = timed_ask
    total, own, told = [], [], []
    for _ in range(repeats):
        asking.clear()
        start = time.perf_counter()
        jobs = source.next_jobs()
        total.append(time.perf_counter() - start)
        own.append(total[-1] - sum(asking))
        start = time.perf_counter()
        for job in jobs:
            source.finished(job, "none", error=True)
        told.append(time.perf_counter() - start)
    shutil.rmtree(work)
    return {f"next_jobs ({sampler})": median_ms(total), f"  ablate's part ({sampler})": median_ms(own),
            f"finished ({sampler})": median_ms(told)}


def time_callbacks(sweep: Path, repeats: int) -> dict[str, float]:
    """The recorder's and the live view's work at a new trial's start, results and end."""
    from ablate.folder import load_sweep_spec
    from ablate.live import LiveView
    from ablate.recorder import TrialRecorder

    work = sweep.parent / f"{sweep.name}-callbacks"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(sweep, work, ignore=shutil.ignore_patterns(OPTUNA_DB))
    spec = load_sweep_spec(work)
    recorder = TrialRecorder(spec, work)
    views = {"off a terminal": LiveView(recorder, stream=io.StringIO(), interactive=False),
             "terminal": LiveView(recorder, stream=io.StringIO(), interactive=True)}  # drawn by hand
    for view in views.values():
        view.drawn_best()  # ranked once here, then at most every BEST_EVERY seconds
    cost: dict[str, list[float]] = {}

    def timed(what: str, call: Callable[..., Any], *args: Any) -> None:
        start = time.perf_counter()
        call(*args)
        cost.setdefault(what, []).append(time.perf_counter() - start)

    for i in range(repeats):
        config = {**spec.trainer_config().model_dump(mode="json"), "teacher_temp": 0.05 + i * 1e-6,
                  "warmup_teacher_temp_epochs": 1, "student_temp": 0.1, "repeat": 0,
                  "_optuna_trial": 10**6 + i}
        trial = SimpleNamespace(trial_id=f"new{i:05d}", path=f"{work}/{TUNE_DIR}/trial_new{i:05d}",
                                error_file=None, error_msg="", config=config)
        trials = [trial]
        timed("recorder: trial start", recorder.on_trial_start, 0, trials, trial)
        for view in views.values():
            view.on_trial_start(0, trials, trial)
        for epoch in (0, 1, 2):
            result = {"epoch": epoch, "loss": 1.5, "knn_top1": 40.0, "time_this_iter_s": 1.3,
                      "stop_reason": "", "trial_outcome": COMPLETED if epoch == 2 else RUNNING}
            timed("recorder: result", recorder.on_trial_result, 0, trials, trial, result)
            for view in views.values():
                view.on_trial_result(0, trials, trial, result)
        timed("recorder: trial end", recorder.on_trial_complete, 0, trials, trial)
        for where, view in views.items():
            timed(f"live view: trial end ({where})", view.on_trial_complete, 0, trials, trial)
        views["terminal"].best_stale = False
        timed("live view: redraw (terminal)", views["terminal"]._render)
    shutil.rmtree(work)
    return {what: median_ms(times) for what, times in cost.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ablate-driver-events"))
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for n in args.trials:
        sweep = build(args.out, n)
        results[n] = {**time_next_jobs(sweep, "tpe", args.repeats),
                      **time_next_jobs(sweep, "random", args.repeats), **time_callbacks(sweep, args.repeats)}
    print("| per event (median, ms) | " + " | ".join(f"{n} trials" for n in args.trials) + " |")
    print("|---|" + "---|" * len(args.trials))
    for what in results[args.trials[0]]:
        print(f"| {what} | " + " | ".join(f"{results[n][what]:.2f}" for n in args.trials) + " |")


if __name__ == "__main__":
    main()
