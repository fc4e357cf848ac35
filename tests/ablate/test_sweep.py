"""Sweeps on a real two-node Ray cluster: Optuna + repeats, packing, ablation, stop reasons, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from ablate.cli import main
from ablate.sweep import run_sweep
from ablate.sweep_spec import load_spec
from sweep_format.layout import trial_folders
from tests.helpers import HEAD_IP, TINY_TRAINER, WORKER_IP, write_spec
from trainables.trial import checkpoints_in, reported_epochs

pytestmark = pytest.mark.slow


def trial_rows(sweep: Path) -> dict[str, list[dict]]:
    """Each trial's reported rows, from its record (a resumed trial's rows span its runs), each with the
    trial's config as Ray's rows have it."""
    out = {}
    for file in sorted((sweep / "trials").glob("*.json")):
        rec = json.loads(file.read_text())
        config = {**rec["config"], **rec["params"]}
        out[rec["trial_id"]] = [{**row, "config": config} for row in rec["epochs"]]
    return out


def test_optuna_sweep_with_repeats(real_sweep: Path):
    trials = trial_rows(real_sweep)
    assert len(trials) == 4  # num_samples 2 x repeats 2
    by_config: dict[tuple, list[dict]] = {}
    for rows in trials.values():
        cfg = rows[-1]["config"]
        key = (cfg["teacher_temp"], cfg["student_temp"], cfg["warmup_teacher_temp_epochs"])
        by_config.setdefault(key, []).append(rows[-1])
        assert [r["epoch"] for r in rows] == [0, 1, 2] and rows[-1]["trial_outcome"] == "completed"
    assert len(by_config) == 2
    for finals in by_config.values():  # each configuration twice, with different seeds
        assert sorted(r["repeat"] for r in finals) == [0, 1]
        assert sorted(r["seed"] for r in finals) == [0, 1]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{real_sweep / 'optuna.db'}")
    assert len(study.trials) == 2 and all(t.value is not None for t in study.trials)
    assert (real_sweep / "spec.yaml").is_file()


def test_fractional_gpus_pack_four_trials_per_gpu(ray_cluster: str, tmp_path: Path):
    spec = write_spec(tmp_path, f"""
name: packing
trainer: {dict(TINY_TRAINER, epochs=4)}
space:
  teacher_temp: {{type: choice, values: [0.02, 0.03, 0.04, 0.05, 0.06]}}
search: {{algorithm: grid}}
resources: {{cpu: 0.5, gpu: 0.25}}
""")
    sweep = run_sweep(load_spec(spec), tmp_path / "runs", address=ray_cluster)
    trials = trial_rows(sweep)
    assert len(trials) == 5
    spans = sorted((rows[0]["started_at"], rows[-1]["reported_at"]) for rows in trials.values())
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 4  # four share the one GPU at once, never five
    fifth_start = spans[4][0]
    assert fifth_start >= min(end for _, end in spans[:4])  # the fifth waited for a free quarter
    for rows in trials.values():
        assert {r["gpu_ids"] for r in rows} == {"0"} and rows[0]["node_ip"] == HEAD_IP


def test_ablation_on_two_nodes_records_collapse_and_divergence(ray_cluster: str, tmp_path: Path):
    spec = write_spec(tmp_path, f"""
name: stops
trainer: {dict(TINY_TRAINER, epochs=4, student_temp=100.0)}
space:
  teacher_temp: {{type: choice, values: [1000.0]}}
  lr: {{type: choice, values: [1.0e+30]}}
  epochs: {{type: choice, values: [5]}}
search: {{algorithm: ablation}}
resources: {{cpu: 2, gpu: 0}}
stop: {{patience: 2}}
""")
    sweep = run_sweep(load_spec(spec), tmp_path / "runs", address=ray_cluster)
    finals = {}
    for rows in trial_rows(sweep).values():
        cfg = rows[-1]["config"]
        searched = {"lr": cfg["lr"] > 1, "temp": cfg["teacher_temp"] > 1, "epochs": cfg["epochs"] == 5}
        label = next((name for name, differs in searched.items() if differs), "baseline")
        finals[label] = rows[-1]
    assert finals["baseline"]["trial_outcome"] == "completed" and finals["baseline"]["epoch"] == 4
    # a searched epochs longer than the baseline's runs its own schedule (Tune stopped it at 4 before)
    assert finals["epochs"]["trial_outcome"] == "completed" and finals["epochs"]["epoch"] == 5
    assert finals["temp"]["trial_outcome"] == "collapsed"
    assert "collapsed (uniform)" in finals["temp"]["stop_reason"] and finals["temp"]["epoch"] == 2
    assert finals["lr"]["trial_outcome"] == "diverged" and "diverged" in finals["lr"]["stop_reason"]
    assert {r["node_ip"] for r in finals.values() if "node_ip" in r} == {HEAD_IP, WORKER_IP}


ENV = {**os.environ, "RAY_AUTH_MODE": "token"}
CLI = [sys.executable, "-m", "ablate.cli"]


def run_then_sigkill(spec: Path, sweep: Path, address: str, epoch: int) -> Path:
    """`ablate run` in its own process group, SIGKILLed once a trial has reported ``epoch`` and its
    checkpoint of that epoch is in the sweep folder (on a loaded machine the record can hold the epoch
    before Ray has moved its checkpoint there: the kill then lost it, and the trial started over)."""
    driver = subprocess.Popen([*CLI, "run", str(spec), "--storage", str(sweep.parent), "--address", address],
                              env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if any(checkpointed(sweep, file) >= epoch for file in (sweep / "trials").glob("*.json")):
            break
        assert driver.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.5)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    return sweep


def checkpointed(sweep: Path, file: Path) -> int:
    """The newest epoch a trial both recorded and has a checkpoint of in the sweep folder (-1: none)."""
    try:
        record = json.loads(file.read_text())
    except ValueError:  # being written
        return -1
    recorded = {row.get("epoch") for row in record.get("epochs", [])}
    saved = reported_epochs(trial_folders(sweep, record))
    return max((e for e in saved if e in recorded), default=-1)


def resume(sweep: Path, address: str) -> None:
    resumed = subprocess.run([*CLI, "resume", str(sweep), "--address", address], env=ENV,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]


def test_sigkill_mid_sweep_then_resume(ray_cluster: str, tmp_path: Path):
    spec = write_spec(tmp_path, f"""
name: killed
trainer: {dict(TINY_TRAINER, epochs=5)}
space:
  teacher_temp: {{type: float, low: 0.02, high: 0.08}}
search: {{algorithm: optuna, sampler: random, num_samples: 3, seed: 1}}
resources: {{cpu: 2, gpu: 0}}
""")
    sweep = run_then_sigkill(spec, tmp_path / "runs" / "killed", ray_cluster, epoch=2)
    before = {name: rows[-1]["epoch"] for name, rows in trial_rows(sweep).items()}
    assert before and min(before.values()) < 5, before  # interrupted mid-way
    resume(sweep, ray_cluster)
    trials = trial_rows(sweep)
    assert len(trials) == 3
    temps = [rows[-1]["config"]["teacher_temp"] for rows in trials.values()]
    assert len(set(temps)) == 3  # no configuration ran twice
    assert all(rows[-1]["epoch"] == 5 for rows in trials.values())
    continued = []
    for rows in trials.values():
        pids = [r["pid"] for r in rows]
        if len(set(pids)) > 1:  # ran in two processes: before and after the kill
            first_after = next(r for r in rows if r["pid"] != pids[0])
            continued.append(first_after["epoch"])
    assert continued and max(continued) >= 2, continued  # resumed from a checkpoint, not epoch 0
    assert (sweep / "report" / "trials.parquet").is_file()
    # ablate's own records say what happened, whatever Ray's state files say
    records = [json.loads(f.read_text()) for f in (sweep / "trials").glob("*.json")]
    assert len(records) == 3 and {r["status"] for r in records} == {"completed"}
    assert all([e["epoch"] for e in r["epochs"]] == [0, 1, 2, 3, 4, 5] for r in records)
    assert any(len(r.get("trial_dirs") or []) > 1 for r in records)  # continued in a second folder
    kept = [checkpointed_epochs(sweep, r) for r in records]  # a finished trial keeps its last one
    assert kept == [[5]] * 3, kept


def checkpointed_epochs(sweep: Path, record: dict) -> list[int]:
    """The epochs of a trial's checkpoints, in all the folders it ran in (the report beside each)."""
    folders = trial_folders(sweep, record)
    assert sum(len(checkpoints_in(f)) for f in folders) == len(reported_epochs(folders))
    return sorted(reported_epochs(folders))


def test_run_refuses_an_existing_sweep_and_bad_specs_write_nothing(real_sweep: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture):
    spec = write_spec(tmp_path, (real_sweep / "spec.yaml").read_text())
    assert main(["run", str(spec), "--storage", str(real_sweep.parent)]) == 2
    assert "ablate resume" in capsys.readouterr().err
    storage = tmp_path / "empty"
    assert main(["run", str(spec), "--storage", str(storage), "--set", "search.num_samples=0"]) == 2
    err = capsys.readouterr().err
    assert "search.num_samples" in err and "0" in err
    assert not storage.exists()


def test_a_data_parallel_trial_asha_stops_ends_its_workers_at_the_epoch_it_stopped(ray_cluster: str,
                                                                                     tmp_path: Path):
    """ASHA stops the second trial at its first rung. A data-parallel trial's workers do not wait for the
    driver, and its Ray Train run trained on to its last epoch, holding its workers and writing
    checkpoints its record never had (measured: a 4-point grid, 2 workers, every stopped trial's folder
    held the checkpoints of epochs 2-4). Now they wait for Tune's decision at a rung, and end there."""
    spec = write_spec(tmp_path, f"""
name: ddpasha
trainer: {dict(TINY_TRAINER, epochs=2, batch_size=16)}
space:
  student_temp: {{type: choice, values: [0.2, 1.0]}}
search: {{algorithm: grid, max_concurrent_trials: 1}}
metric: loss
scheduler: {{type: asha, grace_period: 1}}
resources: {{workers: 2, cpu: 1, gpu: 0}}
""")
    sweep = run_sweep(load_spec(spec), tmp_path / "runs", address=ray_cluster)
    recs = {}
    for file in (sweep / "trials").glob("*.json"):
        rec = json.loads(file.read_text())
        recs[rec["params"]["student_temp"]] = rec
    done, stopped = recs[0.2], recs[1.0]
    assert done["status"] == "completed" and [r["epoch"] for r in done["epochs"]] == [0, 1, 2]
    assert stopped["status"] == "stopped early" and [r["epoch"] for r in stopped["epochs"]] == [0, 1]
    assert [c.name for c in checkpoints_in(sweep / stopped["trial_dir"])] == ["checkpoint_000001"]


def test_two_worker_trial_runs_resumes_after_sigkill_and_reports(ray_cluster: str, tmp_path: Path):
    spec = write_spec(tmp_path, f"""
name: ddp
trainer: {dict(TINY_TRAINER, epochs=5, batch_size=16)}
space:
  teacher_temp: {{type: choice, values: [0.04]}}
search: {{algorithm: grid}}
resources: {{workers: 2, cpu: 1, gpu: 0}}
""")
    sweep = run_then_sigkill(spec, tmp_path / "runs" / "ddp", ray_cluster, epoch=1)
    [(name, before)] = trial_rows(sweep).items()
    assert before[-1]["epoch"] < 5, before[-1]  # interrupted mid-way
    resume(sweep, ray_cluster)
    rows = trial_rows(sweep)[name]
    assert rows[-1]["epoch"] == 5 and rows[-1]["trial_outcome"] == "completed"
    assert {r["workers"] for r in rows} == {2}  # every epoch trained by two DDP workers
    # The training process is rank 0 (``pid`` is Tune's trial process in a live row, rank 0's in a
    # row recovered from a checkpoint the killed run wrote after its driver died).
    rank0 = [r["rank0_pid"] for r in rows]
    after = [r for r in rows if r["rank0_pid"] != rank0[0]]
    assert after and after[0]["epoch"] >= 2, after[:1]  # continued from its checkpoint, not epoch 0
    resumed = [r["epoch"] for r in rows if r["rank0_pid"] == after[0]["rank0_pid"]]
    assert resumed == list(range(after[0]["epoch"], 6))
    rec = json.loads((sweep / "trials" / f"{name}.json").read_text())
    trial_dir = sweep / rec["trial_dir"]  # Ray Train checkpoints where a one-process trial has them
    assert (trial_dir / "checkpoint_000005" / "checkpoint.pt").is_file()
    assert len(rec["trial_dirs"]) == 2
    assert checkpointed_epochs(sweep, rec) == [5]
    report = pd.read_parquet(sweep / "report" / "trials.parquet")
    assert len(report) == 1 and report["status"].tolist() == ["completed"], report.T
