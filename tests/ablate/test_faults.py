"""Faults a sweep must survive and report truthfully: Ctrl-C, a lost optuna.db, eval_every > 1.

SIGKILL + resume is in test_sweep.py (test_sigkill_mid_sweep_then_resume); truncated checkpoints,
read-only storage and crafted pickles have their own modules.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from ablate.cli import main
from ablate.search import SweepSearch
from ablate.sweep_spec import load_spec
from reports.tables import load_trials
from sweep_format.files import write_json
from sweep_format.records import FORMAT, VERSION, read_records
from tests.helpers import TINY_TRAINER, trial_fault_env, write_spec


def record(sweep: Path, trial_id: str, config: dict, value: float, status: str = "completed") -> None:
    write_json(sweep / "trials" / f"{trial_id}.json", {
        "format": FORMAT, "version": VERSION, "trial_id": trial_id, "point": 0, "repeat": 0,
        "params": {"teacher_temp": config["teacher_temp"]}, "optuna_trial": config["_optuna_trial"],
        "status": status, "collapsed": False, "trial_dir": f"tune/{trial_id}",
        "epochs": [{"epoch": 0, "knn_top1": 10.0}, {"epoch": 1, "knn_top1": value}]})


def end(search: SweepSearch, sweep: Path, trial_id: str, config: dict, value: float,
        status: str = "completed") -> None:
    """A trial ends as in a sweep: its record holds its epochs when the searcher hears of it, and the
    driver closes it with its status after."""
    record(sweep, trial_id, config, value, "running")
    search.on_trial_complete(trial_id, {})
    record(sweep, trial_id, config, value, status)


def optuna_search(sweep: Path) -> tuple[SweepSearch, list]:
    """The searcher of a 3-point Optuna sweep in ``sweep``, opened as a run or resume opens it."""
    from ablate.study import OptunaSource

    spec = load_spec(write_spec(sweep.parent, f"""
name: s
trainer: {TINY_TRAINER}
space:
  teacher_temp: {{type: float, low: 0.01, high: 0.1}}
search: {{algorithm: optuna, sampler: random, num_samples: 3, seed: 0}}
"""))
    sweep.mkdir(parents=True, exist_ok=True)
    source = OptunaSource(spec, sweep)
    jobs = source.open(read_records(sweep))
    return SweepSearch(jobs, source, "knn_top1", "max"), jobs


def values(sweep: Path) -> list[tuple[float, float]]:
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{sweep / 'optuna.db'}")
    return sorted((t.params["teacher_temp"], t.value) for t in study.trials if t.value is not None)


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_lost_optuna_db_mid_sweep_is_rebuilt_from_the_records(tmp_path: Path, damage: str,
                                                               capsys: pytest.CaptureFixture) -> None:
    sweep = tmp_path / "sweep"
    search, _ = optuna_search(sweep)
    done = search.suggest("a")
    end(search, sweep, "a", done, 70.0)
    running = search.suggest("b")  # started, no record yet: kept in memory
    db = sweep / "optuna.db"
    if damage == "delete":
        db.unlink()
    else:
        db.write_bytes(b"this is not a database" * 100)
    end(search, sweep, "b", running, 60.0)  # no traceback: rebuilt, then told
    assert search.suggest("c") is not None
    err = capsys.readouterr().err
    assert "rebuilt from 1 finished settings" in err and "the sweep continues" in err
    assert values(sweep) == sorted([(done["teacher_temp"], 70.0), (running["teacher_temp"], 60.0)])
    assert any(p.name.startswith("optuna.db.damaged-") for p in sweep.iterdir()) == (damage == "corrupt")


def test_resume_rebuilds_a_deleted_study_and_continues_its_running_point(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sweep = tmp_path / "sweep"
    search, _ = optuna_search(sweep)
    done = search.suggest("a")
    end(search, sweep, "a", done, 70.0)
    running = search.suggest("b")
    record(sweep, "b", running, 20.0, status="interrupted")  # the driver stopped mid-trial
    (sweep / "optuna.db").unlink()  # lost while the driver was down
    resumed, jobs = optuna_search(sweep)  # what `ablate resume` opens: nothing of Ray's, no pickle
    assert "missing or damaged when the sweep resumed" in capsys.readouterr().err
    assert [(j.trial_id, j.resume_dirs) for j in jobs] == [("b", (sweep / "tune" / "b",))]
    config = resumed.suggest("x")
    assert config["_trial_id"] == "b" and config["teacher_temp"] == running["teacher_temp"]
    record(sweep, "b", running, 50.0)  # Ray's trial "x" continues the record "b"
    resumed.on_trial_complete("x", {})
    assert sorted(v for _, v in values(sweep)) == [50.0, 70.0]
    third = resumed.suggest("y")  # the sampler goes on: the third point is a new one
    assert "_trial_id" not in third and third["_optuna_trial"] == 2
    assert resumed.suggest("z") == "FINISHED"  # search.num_samples points in all


def test_resume_tells_the_study_a_setting_whose_repeats_all_ended(tmp_path: Path) -> None:
    """A Ctrl-C after a trial's last result closes its record (collapsed, say) before the searcher
    hears of it: the study kept the setting running for ever (no job, nobody told it)."""
    sweep = tmp_path / "sweep"
    search, _ = optuna_search(sweep)
    config = search.suggest("a")
    record(sweep, "a", config, 55.0, status="collapsed")  # closed by the interrupt, not by the searcher
    _, jobs = optuna_search(sweep)
    assert jobs == [] and values(sweep) == [(config["teacher_temp"], 55.0)]


def test_resume_tells_a_setting_asked_again_whose_repeats_all_ended(tmp_path: Path) -> None:
    """The same, for a setting the sampler had asked for again: that later ask is told too."""
    from ablate.study import OptunaSource

    sweep, source, search = two_choice_search(tmp_path, num_samples=3)
    started = {name: search.suggest(name) for name in ("t0", "t1")}
    assert search.suggest("t2") == "FINISHED"  # the third ask repeated a setting: it waits for it
    for name, config in started.items():  # both closed by the interrupt, the searcher never told
        record(sweep, name, config, 100 * config["teacher_temp"], status="collapsed")
    assert OptunaSource(source.spec, sweep).open(read_records(sweep)) == []
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert all(t.value == 100 * t.params["teacher_temp"] for t in study.trials)


def test_a_repeat_run_again_by_resume_gives_the_study_its_new_value(tmp_path: Path) -> None:
    """An errored repeat (run again by `ablate resume`, as an oom one is with --retry oom) that then
    completes: the study kept the failure it was told first, so the sampler and the report's
    importance never saw the value the report ranks. Its new value replaces it, and is no new sample."""
    from reports.importance import param_importance
    from sweep_format.study import current

    sweep = tmp_path / "sweep"
    search, _ = optuna_search(sweep)
    config = search.suggest("a")
    record(sweep, "a", config, 0.0, "running")
    search.on_trial_complete("a", None, error=True)
    record(sweep, "a", config, 0.0, "errored")
    resumed, jobs = optuna_search(sweep)
    assert [(j.trial_id, j.optuna) for j in jobs] == [("a", 0)]
    assert resumed.suggest("x")["_trial_id"] == "a"
    record(sweep, "a", config, 50.0, "running")  # Ray's trial "x" continues the record "a"
    resumed.on_trial_complete("x", {})
    record(sweep, "a", config, 50.0, "completed")
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert [(t.params, t.state.name, t.value) for t in current(study.trials)] == [
        ({"teacher_temp": config["teacher_temp"]}, "COMPLETE", 50.0)]
    news = [resumed.suggest(name) for name in ("y", "z")]  # search.num_samples: 3 settings in all
    assert [c["_optuna_trial"] for c in news] == [2, 3] and resumed.suggest("w") == "FINISHED"
    for name, new in zip(("y", "z"), news, strict=True):
        end(resumed, sweep, name, new, 60.0 + new["teacher_temp"])
    again, jobs = optuna_search(sweep)  # a later resume: nothing runs twice, the values stay
    assert jobs == [] and again.suggest("v") == "FINISHED"
    assert sorted(v for _, v in values(sweep))[0] == 50.0
    assert param_importance(sweep, "s").n_trials == 3  # the failure it replaced is not counted


def carried(epoch: int, outcome: str, knn: float) -> dict:
    """A result without evaluation: it carries the last kNN forward."""
    return {"epoch": epoch, "knn_top1": knn, "knn_evaluated": False, "trial_outcome": outcome}


@pytest.mark.parametrize(("rows", "told"), [
    ([carried(1, "oom", 30.0)], None),  # out of memory in epoch 1: the untrained network's kNN carried
    ([carried(1, "diverged", 30.0)], None),  # nothing measured after training
    ([{"epoch": 1, "knn_top1": 41.0}, carried(2, "diverged", 41.0)], 41.0),
    ([{"epoch": 1, "knn_top1": 41.0}, {"epoch": 2, "knn_top1": 44.0, "trial_outcome": "completed"}], 44.0),
    ([{"epoch": 1, "knn_top1": 41.0}, carried(2, "oom", 41.0)], None),  # says nothing of the setting
])
def test_the_study_is_told_the_value_the_ranking_counts(tmp_path: Path, rows: list[dict],
                                                        told: float | None) -> None:
    """Tune's last result of a trial that ran out of memory (or diverged) in epoch 1 carries the
    untrained network's kNN (30.0): the study was told it as the setting's result, where the report
    ranks no value. Out of memory says nothing of a setting's quality: Optuna gets a failed trial."""
    sweep = tmp_path / "sweep"
    search, _ = optuna_search(sweep)
    config = search.suggest("a")
    write_json(sweep / "trials" / "a.json", {
        "format": FORMAT, "version": VERSION, "trial_id": "a", "point": 0, "repeat": 0,
        "params": {"teacher_temp": config["teacher_temp"]}, "optuna_trial": config["_optuna_trial"],
        "status": "running", "epochs_planned": 2, "epochs": [{"epoch": 0, "knn_top1": 30.0}, *rows]})
    search.on_trial_complete("a", {"knn_top1": rows[-1]["knn_top1"]})
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{sweep / 'optuna.db'}")
    (trial,) = study.trials
    assert (trial.state.name, trial.value) == (("COMPLETE", told) if told is not None else ("FAIL", None))


def test_a_resumed_study_asks_for_new_settings_not_its_first_ones_again(tmp_path: Path) -> None:
    """Optuna keeps no sampler state: a sampler seeded as at the start asked, after `ablate resume`,
    for the setting it had asked for first, which then ran again as a second 'repeat'."""
    sweep = tmp_path / "sweep"
    search, _ = optuna_search(sweep)
    first = search.suggest("a")
    end(search, sweep, "a", first, 70.0)
    resumed, jobs = optuna_search(sweep)
    assert jobs == []
    second = resumed.suggest("b")
    assert second["_optuna_trial"] == 1 and second["teacher_temp"] != first["teacher_temp"]


def test_a_finished_repeat_whose_record_was_deleted_runs_again(tmp_path: Path) -> None:
    """As in a grid sweep: the study had the setting as finished, and its repeat was lost in silence."""
    sweep = tmp_path / "sweep"
    search, _ = optuna_search(sweep)
    done = [search.suggest(name) for name in ("a", "b")]
    for name, config in zip(("a", "b"), done, strict=True):
        end(search, sweep, name, config, 70.0)
    (sweep / "trials" / "a.json").unlink()
    _, jobs = optuna_search(sweep)
    lost = {"teacher_temp": done[0]["teacher_temp"]}
    assert [(j.params, j.repeat, j.trial_id) for j in jobs] == [(lost, 0, None)]


def two_choice_search(tmp_path: Path, num_samples: int) -> tuple[Path, Any, SweepSearch]:
    """The folder, study and searcher of an Optuna sweep over two settings (random, seed 0)."""
    from ablate.study import OptunaSource

    spec = load_spec(write_spec(tmp_path, f"""
name: s
trainer: {TINY_TRAINER}
space:
  teacher_temp: {{type: choice, values: [0.04, 0.07]}}
search: {{algorithm: optuna, sampler: random, num_samples: {num_samples}, seed: 0}}
"""))
    sweep = tmp_path / "s"
    sweep.mkdir()
    source = OptunaSource(spec, sweep)
    return sweep, source, SweepSearch(source.open([]), source, "knn_top1", "max")


def test_a_setting_asked_for_again_is_not_run_again(tmp_path: Path) -> None:
    """Samplers ask for a setting again in a discrete space; it gets the earlier result (at once, or
    once its repeats end) instead of running the same seeds again as extra repeats."""
    sweep, source, search = two_choice_search(tmp_path, num_samples=6)
    started = [search.suggest("t0"), search.suggest("t1")]
    assert sorted(c["teacher_temp"] for c in started) == [0.04, 0.07]  # the two settings, once each
    assert search.suggest("t2") == "FINISHED"  # every other ask repeated one of them: nothing to run
    for name, config in zip(("t0", "t1"), started, strict=True):
        end(search, sweep, name, config, 100 * config["teacher_temp"])
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert len(study.trials) == 6 and all(t.value == 100 * t.params["teacher_temp"] for t in study.trials)


def test_a_setting_asked_again_gets_the_new_value_of_its_repeats_run_again(tmp_path: Path) -> None:
    """The later asks of a setting were told its first value (a failure): once `ablate resume` has
    run its errored repeat again, they hold its new value too."""
    from ablate.study import OptunaSource
    from sweep_format.study import current

    sweep, source, search = two_choice_search(tmp_path, num_samples=4)
    started = {name: search.suggest(name) for name in ("t0", "t1")}
    assert search.suggest("t2") == "FINISHED"
    for name, config in started.items():
        record(sweep, name, config, 70.0, "running")
        search.on_trial_complete(name, None, error=config["teacher_temp"] == 0.07)
        record(sweep, name, config, 70.0, "errored" if config["teacher_temp"] == 0.07 else "completed")
    errored = next(n for n, c in started.items() if c["teacher_temp"] == 0.07)
    resumed = OptunaSource(source.spec, sweep)
    again = SweepSearch(resumed.open(read_records(sweep)), resumed, "knn_top1", "max")
    assert again.suggest("x")["_trial_id"] == errored and again.suggest("y") == "FINISHED"
    record(sweep, errored, started[errored], 50.0, "running")
    again.on_trial_complete("x", {})
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert sorted((t.params["teacher_temp"], t.value) for t in current(study.trials)) == [
        (0.04, 70.0), (0.07, 50.0), (0.07, 50.0), (0.07, 50.0)]  # 0.07 was asked 3 times


def test_a_study_lost_while_a_setting_waits_for_its_repeated_ask(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """A setting asked again while it runs waits for its result. If optuna.db is lost meanwhile, the
    rebuilt study numbers its trials from 0 again: the lost study's waiting asks must not be told
    through a new point that took their old number."""
    sweep, source, search = two_choice_search(tmp_path, num_samples=5)
    first, second = search.suggest("t0"), search.suggest("t1")
    assert search.suggest("t2") == "FINISHED" and source.shadows  # the other asks repeated them
    record(sweep, "t0", first, 100 * first["teacher_temp"])
    record(sweep, "t1", second, 20.0, status="running")
    (sweep / "optuna.db").unlink()
    search.on_trial_complete("t0", {})  # rebuilt, then told
    assert "rebuilt from 1 finished settings" in capsys.readouterr().err
    end(search, sweep, "t1", second, 100 * second["teacher_temp"])  # a KeyError before
    assert [(t, round(v, 9)) for t, v in values(sweep)] == [(0.04, 4.0), (0.07, 7.0)]


# --- a real sweep: Ctrl-C, then a corrupted optuna.db, then resume ------------------------------------
def records(sweep: Path) -> dict[str, dict]:
    out = {}
    for file in (sweep / "trials").glob("*.json"):
        try:
            out[file.stem] = json.loads(file.read_text())
        except ValueError:
            continue
    return out


@pytest.mark.slow
def test_ctrl_c_then_resume_of_an_optuna_asha_sweep_with_eval_every_2(ray_cluster: str, tmp_path: Path):
    """Ctrl-C exits 130 with the resume hint, never a best over running trials; the metric is one
    that epoch 0 lacks (teacher_entropy, mode min) and kNN runs every 2nd epoch; resume after
    optuna.db was damaged finishes every trial with the right status."""
    spec = write_spec(tmp_path, f"""
name: faults
trainer: {dict(TINY_TRAINER, epochs=4, eval_every=2)}
space:
  teacher_temp: {{type: float, low: 0.02, high: 0.08}}
search: {{algorithm: optuna, sampler: random, num_samples: 2, seed: 3}}
metric: teacher_entropy
mode: min
scheduler: {{type: asha, grace_period: 1}}
resources: {{cpu: 2, gpu: 0}}
""")
    storage, sweep = tmp_path / "runs", tmp_path / "runs" / "faults"
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    cmd = [sys.executable, "-m", "ablate.cli"]
    driver = subprocess.Popen([*cmd, "run", str(spec), "--storage", str(storage), "--address", ray_cluster],
                              env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not any(r["epochs"] and r["epochs"][-1]["epoch"] >= 1
                                             for r in records(sweep).values()):
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the driver's process group
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err[-3000:]
    assert "interrupted:" in err and f"trials finished; continue with `ablate resume {sweep}`" in err
    assert "Tuner.restore" not in out + err and "Traceback" not in err
    assert "best " not in out or "partial" not in out  # never a running trial called best
    statuses = {r["status"] for r in records(sweep).values()}
    assert "interrupted" in statuses and "running" not in statuses, statuses

    (sweep / "optuna.db").write_bytes(b"garbage" * 1000)  # damaged while the sweep was stopped
    resumed = subprocess.run([*cmd, "resume", str(sweep), "--address", ray_cluster], env=env,
                             capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "rebuilt from" in resumed.stderr and "Traceback" not in resumed.stderr
    final = records(sweep)
    assert len(final) == 2
    assert {r["status"] for r in final.values()} <= {"completed", "flagged", "stopped early", "collapsed"}
    for rec in final.values():  # every result carried the kNN, the last epoch was evaluated
        rows = rec["epochs"]
        assert all("knn_top1" in r for r in rows)
        for r in rows:  # every 2nd epoch, ASHA's rungs and every trial's last, stopped early or not
            # (after a resume ASHA judges a restored trial off its rungs: those epochs are evaluated too)
            if r["epoch"] % 2 == 0 or r["epoch"] in (1, 2, 4) or r is rows[-1]:
                assert r["knn_evaluated"] is True, (r["epoch"], rec["status"])
    assert "best teacher_entropy (min):" in resumed.stdout


@pytest.mark.slow
def test_ctrl_c_after_an_epoch_without_knn_names_the_evaluated_epoch_and_resume_evaluates_the_last(
        ray_cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture):
    """Ray gives a stopped trial no chance to evaluate (see trainables/trial.py): interrupted after
    epoch 1, which carried epoch 0's kNN, the record, the summary and the report give the value
    measured at epoch 0 and say so, and nothing calls the untrained network's value a configuration's
    best (`ablate ls`); `ablate resume` finishes the trial, its last epoch evaluated."""
    spec = write_spec(tmp_path, f"""
name: carried
trainer: {dict(TINY_TRAINER, epochs=4, eval_every=2)}
space:
  teacher_temp: {{type: choice, values: [0.04]}}
search: {{algorithm: grid}}
resources: {{cpu: 1, gpu: 0}}
""")
    storage, sweep = tmp_path / "runs", tmp_path / "runs" / "carried"
    cmd = [sys.executable, "-m", "ablate.cli"]
    env = trial_fault_env(tmp_path / "fault", epoch=2, fault="hang")  # epoch 2 never ends
    driver = subprocess.Popen([*cmd, "run", str(spec), "--storage", str(storage), "--num-cpus", "2"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not any(r["epochs"] and r["epochs"][-1]["epoch"] == 1
                                             for r in records(sweep).values()):
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)  # Ctrl-C
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err[-3000:]
    (rec,) = records(sweep).values()
    assert rec["epochs"][-1]["knn_evaluated"] is False and rec["epochs"][-1]["epoch"] == 1
    assert "interrupted after 1/4 epochs; kNN last evaluated at epoch 0" in rec["reason"]
    assert "knn_epoch" in out  # the summary's trial table
    trial = load_trials(sweep)[0].iloc[0]
    assert (trial["knn_top1"], trial["knn_epoch"]) == (rec["epochs"][0]["knn_top1"], 0)
    main(["ls", str(storage)])
    listing = capsys.readouterr()
    assert "no value after training yet" in listing.out, listing.out + listing.err
    assert f"{trial['knn_top1']:.2f} (epoch 0)" in (sweep / "report" / "report.md").read_text()

    # the session's cluster: the fault lived in the local Ray of the run (a new one costs its start)
    resumed = subprocess.run([*cmd, "resume", str(sweep), "--address", ray_cluster],
                             env={**os.environ, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True,
                             timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (rec,) = records(sweep).values()
    assert rec["status"] == "completed" and rec["epochs"][-1] == {**rec["epochs"][-1], "epoch": 4,
                                                                  "knn_evaluated": True}
    assert load_trials(sweep)[0].iloc[0]["knn_epoch"] == 4
    assert "kNN at epoch" not in resumed.stdout
