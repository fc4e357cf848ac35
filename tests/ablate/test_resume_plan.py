"""What `ablate resume` runs, read from the records alone (ablate/search.py): unfinished and errored
trials continue under their own id from the folders they ran in; oom and diverged ones only when
asked (`--retry`); finished ones stay; points never started start."""

from __future__ import annotations

from pathlib import Path

from ablate.search import point_jobs
from ablate.sweep_spec import load_spec
from tests.helpers import TINY_TRAINER, write_spec

STATUSES = ["completed", "errored", "oom", "diverged", "interrupted", "running", "storage_full", "collapsed",
            "flagged", "stopped early", "pending"]


def test_resume_runs_the_unfinished_and_errored_trials_and_oom_only_when_asked(tmp_path: Path) -> None:
    temps = [0.01 * (i + 1) for i in range(len(STATUSES) + 1)]
    spec = load_spec(write_spec(tmp_path, f"""
name: plan
trainer: {TINY_TRAINER}
space:
  teacher_temp: {{type: choice, values: {temps}}}
search: {{algorithm: grid}}
"""))
    records = [{"trial_id": f"t{i}", "params": {"teacher_temp": temps[i]}, "repeat": 0, "status": status,
                "trial_dir": f"tune/trial_t{i}_b", "trial_dirs": [f"tune/trial_t{i}", f"tune/trial_t{i}_b"],
                "epochs": []} for i, status in enumerate(STATUSES)]
    sweep = tmp_path / "sweep"
    plan = {job.trial_id: job for job in point_jobs(spec, records, sweep)}
    # errored, interrupted, running, storage_full, pending, new
    assert set(plan) == {"t1", "t4", "t5", "t6", "t10", None}
    assert plan["t4"].resume_dirs == (sweep / "tune/trial_t4_b", sweep / "tune/trial_t4")  # newest first
    assert plan[None].params == {"teacher_temp": temps[-1]} and plan[None].resume_dirs == ()
    retried = {job.trial_id for job in point_jobs(spec, records, sweep, retry=("oom",))}
    assert retried == {"t1", "t2", "t4", "t5", "t6", "t10", None}
    retried = {job.trial_id for job in point_jobs(spec, records, sweep, retry=("oom", "diverged"))}
    assert retried == {"t1", "t2", "t3", "t4", "t5", "t6", "t10", None}
    # a damaged record is never run itself: its point runs as a new trial, where no other record holds it
    damaged = {"trial_id": "x", "status": "damaged", "params": {}, "epochs": []}
    assert {job.trial_id for job in point_jobs(spec, [damaged, *records], sweep)} == set(plan)


def test_a_trials_seed_is_search_seed_plus_its_repeat(tmp_path: Path) -> None:
    """search.seed had reached only the Optuna sampler: every sweep's trials ran seeds 0, 1, ..."""
    from ablate.search import param_space
    from trainables.trial import trial_config

    spec = load_spec(write_spec(tmp_path, f"""
name: seeds
trainer: {TINY_TRAINER}
space:
  teacher_temp: {{type: choice, values: [0.04, 0.07]}}
search: {{algorithm: grid, seed: 5}}
repeats: 2
"""))
    shared = param_space(spec, tmp_path / "tune")
    jobs = point_jobs(spec, [], tmp_path / "sweep")
    assert [trial_config({**shared, **job.config()}).seed for job in jobs] == [5, 6, 5, 6]
    assert spec.trainer_config().seed == 5  # the reference kNN's untrained network is repeat 0's


def test_a_trial_that_trained_and_has_no_checkpoint_left_is_named(tmp_path: Path) -> None:
    """A sweep folder copied without tune/ (the checkpoints are most of its size): `ablate resume` ran
    its interrupted trials again from epoch 0 without a word."""
    from ablate.search import Job, without_checkpoints

    sweep = tmp_path / "sweep"
    (sweep / "tune" / "trial_b" / "checkpoint_000001").mkdir(parents=True)
    trained = [{"epoch": 0}, {"epoch": 1}]
    records = [{"trial_id": t, "epochs": rows, "status": "interrupted"}
               for t, rows in (("a", trained), ("b", trained), ("c", [{"epoch": 0}]))]
    jobs = [Job({}, 0, "a", (sweep / "tune" / "trial_a",)), Job({}, 0, "b", (sweep / "tune" / "trial_b",)),
            Job({}, 0, "c", (sweep / "tune" / "trial_c",)), Job({}, 1)]
    assert without_checkpoints(jobs, records, sweep) == (
        f"{sweep / 'tune'}: no checkpoint left of 1 trial that trained (a (epoch 1); a copy of the sweep "
        "folder made without tune/?): it starts again from epoch 0")
    (sweep / "tune" / "trial_a" / "checkpoint_000001").mkdir(parents=True)
    assert without_checkpoints(jobs, records, sweep) == ""
