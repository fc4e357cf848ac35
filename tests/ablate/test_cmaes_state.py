"""CMA-ES state in optuna.db: read back as Optuna wrote it, and never a way to run code on resume."""

from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from ablate.study import optuna_sampler


def cma_study(db: Path, n: int) -> optuna.Study:
    """``n`` trials of a 2-parameter study sampled by ablate's CMA-ES (6 per generation)."""
    sampler = optuna_sampler(SimpleNamespace(search=SimpleNamespace(sampler="cmaes", seed=0)))
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="s", sampler=sampler,
                                load_if_exists=True)
    space = {name: optuna.distributions.FloatDistribution(-1, 1) for name in ("x", "y")}
    for _ in range(n):
        trial = study.ask(space)
        study.tell(trial, (trial.params["x"] - 0.3) ** 2 + trial.params["y"] ** 2)
    return study


def test_a_stored_state_reads_back_as_optunas_own_reader_reads_it(tmp_path: Path) -> None:
    cma_study(tmp_path / "optuna.db", 14)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    sampler = optuna_sampler(SimpleNamespace(search=SimpleNamespace(sampler="cmaes", seed=0)))
    mine = sampler._restore_optimizer(done)
    theirs = optuna.samplers.CmaEsSampler(seed=0)._restore_optimizer(done)
    assert mine is not None and mine.generation == theirs.generation >= 2
    assert (mine.mean == theirs.mean).all() and mine._sigma == theirs._sigma


def test_a_pickle_planted_in_the_study_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A folder someone else wrote: its optuna.db holds an object whose unpickling runs a command."""
    db, marker = tmp_path / "optuna.db", tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return os.system, (f"touch {marker}",)

    cma_study(db, 3)
    with sqlite3.connect(db) as con:
        (trial_id,) = con.execute("select max(trial_id) from trials where state='COMPLETE'").fetchone()
        con.execute("insert into trial_system_attributes(trial_id, key, value_json) values (?, ?, ?)",
                    (trial_id, "cma:optimizer:0", f'"{pickle.dumps(Payload()).hex()}"'))
    study = cma_study(db, 2)  # resume: the sampler reads the study's state on every ask
    assert not marker.exists()
    assert len(study.trials) == 5 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    err = capsys.readouterr().err
    assert err.count("ablate: warning:") == 1 and "posix.system" in err
    assert "starts a new CMA-ES optimizer" in err
