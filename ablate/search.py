"""What a sweep runs: its trials as jobs, handed to Ray Tune one by one by ``SweepSearch``.

A job is one trial: a point of the search space (the searched values), a seed repeat, and, when it
continues a trial of an earlier run (``ablate resume``), that trial's id and the folder of its
checkpoints. Grid and ablation sweeps list their jobs up front (every point x every repeat);
Optuna sweeps ask the study for a point when the queue runs dry (ablate.study), each point
``repeats`` times. Where a sweep stands is read from its own records and study only (never from
Ray's experiment files), so a run and a resume build their jobs the same way:

    jobs = point_jobs(spec, records(sweep_dir), sweep_dir)     # grid / ablation: what is left
    searcher = SweepSearch(jobs, source=None)                 # Tune's search_alg

Tune's ``param_space`` holds what every trial shares (``param_space``): the baseline trainer
config, the stop rules, ASHA's rungs, bundles and where checkpoints go.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from ray.tune.search import Searcher

from ablate.records import grid_plan
from ablate.sweep_spec import SweepSpec
from sweep_format import statuses
from sweep_format.layout import TUNE_DIR, trial_folders
from sweep_format.records import is_damaged
from sweep_format.text import plural
from trainables.trial import (
    BUNDLES,
    EVAL_AT,
    OPTUNA_TRIAL,
    REPEAT,
    RESUME_DIRS,
    STOP,
    STORAGE_DIR,
    TRIAL_ID,
    checkpoints_in,
)


@dataclass
class Job:
    """One trial to run."""

    params: dict[str, Any]  # the searched values (bundle labels for bundle parameters)
    repeat: int
    trial_id: str | None = None  # the record it continues (a trial of an earlier run), else a new one
    resume_dirs: tuple[Path, ...] = ()  # the folders it ran in, newest first: it starts from the newest
    # usable checkpoint found in them
    optuna: int | None = None  # the number of the Optuna trial it is a repeat of

    def config(self) -> dict[str, Any]:
        """The trial's config as the searcher hands it to Tune (merged into ``param_space``)."""
        return {**self.params, REPEAT: self.repeat,
                **({TRIAL_ID: self.trial_id} if self.trial_id else {}),
                **({RESUME_DIRS: [str(d) for d in self.resume_dirs]} if self.resume_dirs else {}),
                **({OPTUNA_TRIAL: self.optuna} if self.optuna is not None else {})}


class JobSource(Protocol):
    """More jobs when the queue runs dry (an Optuna study), told how each ends."""

    def next_jobs(self) -> list[Job]: ...

    def finished(self, job: Job, record_id: str, error: bool) -> None: ...


class SweepSearch(Searcher):
    """Tune's searcher of an ablate sweep: the queued jobs first, then what ``source`` asks for."""

    def __init__(self, jobs: list[Job], source: JobSource | None = None, metric: str | None = None,
                 mode: str | None = None) -> None:
        super().__init__(metric=metric, mode=mode)
        self.queue, self.source = deque(jobs), source
        self.running: dict[str, Job] = {}

    def suggest(self, trial_id: str) -> dict | None:
        if not self.queue and self.source is not None:
            self.queue.extend(self.source.next_jobs())
        if not self.queue:
            return cast(dict, Searcher.FINISHED)  # Tune's sentinel: no more trials
        job = self.queue.popleft()
        self.running[trial_id] = job
        return job.config()

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """The source learns how the trial ended from its record (``trials/<id>.json``: the trial it
        continues, else its Ray id), which holds every epoch Tune reported before this call."""
        job = self.running.pop(trial_id, None)
        if job is not None and self.source is not None:
            self.source.finished(job, job.trial_id or trial_id, error)


# --- where a sweep stands, from its records ---------------------------------------------------------
def continued(record: dict[str, Any], sweep_dir: Path) -> Job:
    """The job that continues a record's trial from the folders it ran in, newest first (a run
    interrupted before its first checkpoint leaves the earlier run's checkpoints the newest)."""
    return Job(dict(record.get("params") or {}), int(record.get("repeat") or 0), str(record["trial_id"]),
               tuple(trial_folders(sweep_dir, record)), record.get("optuna_trial"))


def point_jobs(spec: SweepSpec, records: list[dict[str, Any]], sweep_dir: Path,
               retry: tuple[str, ...] = ()) -> list[Job]:
    """Grid and ablation: every (point, repeat) that has no final record, the unfinished trials of an
    earlier run first (they continue from their checkpoints), then the points never started."""
    plan = grid_plan(spec, records)
    jobs = [continued(rec, sweep_dir) for rec in plan.firsts if statuses.resumed(rec.get("status"), retry)]
    return jobs + [Job(params, repeat) for params, repeat in plan.unstarted]


def without_checkpoints(jobs: list[Job], records: list[dict[str, Any]], sweep_dir: Path) -> str:
    """"" unless a job continues a trial that trained (an epoch >= 1 in its record) but none of the
    folders it ran in holds a checkpoint (a copy of the sweep folder made without ``tune/``, where the
    checkpoints take the space; checkpoints deleted): then one line naming them, since each starts
    again from epoch 0, which ``ablate resume`` did in silence."""
    trained = {r["trial_id"]: max((row["epoch"] for row in r["epochs"]), default=0)
               for r in records if not is_damaged(r)}
    lost = [f"{job.trial_id} (epoch {trained[job.trial_id]})" for job in jobs
            if trained.get(job.trial_id, 0) >= 1 and not any(checkpoints_in(d) for d in job.resume_dirs)]
    if not lost:
        return ""
    shown = ", ".join(lost[:5]) + (f" and {len(lost) - 5} more" if len(lost) > 5 else "")
    return (f"{sweep_dir / TUNE_DIR}: no checkpoint left of {len(lost)} {plural(len(lost), 'trial')} that "
            f"trained ({shown}; a copy of the sweep folder made without {TUNE_DIR}/?): "
            f"{'it starts' if len(lost) == 1 else 'they start'} again from epoch 0")


# --- what every trial shares -----------------------------------------------------------------------
def param_space(spec: SweepSpec, tune_dir: Path) -> dict[str, Any]:
    """Constants shared by every trial: the full baseline trainer config (less the searched keys,
    which each job sets), the stop rules, ASHA's rungs, bundles and the sweep's trial folders."""
    space: dict[str, Any] = dict(spec.trainer_config().model_dump(mode="json"))
    for name in spec.space:
        space.pop(name, None)
    space[STOP] = spec.stop.as_dict()
    space[STORAGE_DIR] = str(tune_dir)
    if spec.scheduler.type == "asha":
        space[EVAL_AT] = asha_rungs(spec)
    bundles = spec.bundles()
    if bundles:
        space[BUNDLES] = bundles
    return space


def asha_rungs(spec: SweepSpec) -> list[int]:
    """The epochs at which ASHA may stop a trial (its rungs, as Ray's ``_Bracket`` computes them):
    the trainable evaluates kNN there, so an early-stopped trial's last epoch is measured."""
    import numpy as np

    max_t, grace = spec.longest_epochs(), spec.scheduler.grace_period
    rf = spec.scheduler.reduction_factor
    if grace > max_t or rf <= 1:
        return []
    count = int(np.log(max_t / grace) / np.log(rf) + 1)  # numpy, as Ray computes it
    return sorted({math.ceil(grace * rf ** k) for k in range(count)})
