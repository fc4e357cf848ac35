"""Every way a trial can end, followed end to end (issue 18, point 2): each outcome the trainer can
end with is raised at its boundary on CPU (tests/helpers.py OUTCOMES) and followed through the
record, the exit code, the summary, the live view, `ablate ls`, the report and the parquet; `ablate
resume` runs the errored trials again, the oom and diverged ones only when asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from ablate.cli import main
from tests.helpers import (
    OUTCOMES,
    RANK_OOM,
    RANK_OOM_FAULT,
    TINY_TRAINER,
    fault_env,
    outcome_fault_env,
    write_image_folder,
    write_spec,
)
from trainables import cuda

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "ablate.cli"]


def records(sweep: Path) -> dict[float, dict]:
    """student_temp -> the trial's record."""
    out = {}
    for file in (sweep / "trials").glob("*.json"):
        rec = json.loads(file.read_text())
        out[round(rec["params"]["student_temp"], 4)] = rec
    return out


def test_every_outcome_is_final_truthful_and_followed_end_to_end(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    spec = write_spec(tmp_path, f"""
name: outcomes
trainer: {dict(TINY_TRAINER, epochs=3)}
space:
  student_temp: {{type: choice, values: {list(OUTCOMES)}}}
search: {{algorithm: grid}}
resources: {{cpu: 1, gpu: 0}}
stop: {{patience: 2}}
""")
    storage, sweep = tmp_path / "runs", tmp_path / "runs" / "outcomes"
    env = outcome_fault_env(tmp_path / "fault")
    run = subprocess.run([*CLI, "run", str(spec), "--storage", str(storage), "--num-cpus", "2"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stderr[-3000:]  # errored trials: exit 1, neither 0 nor 130
    assert "Traceback" not in run.stderr and "interrupted" not in run.stderr
    recs = records(sweep)
    status = {temp: rec["status"] for temp, rec in recs.items()}
    assert status == {0.1: "completed", 0.11: "flagged", 0.12: "collapsed", 0.13: "diverged", 0.14: "oom",
                      0.15: "errored", 0.16: "errored", 0.17: "errored", 0.18: "oom", 0.19: "errored",
                      0.2: "completed", 0.21: "completed"}
    assert [recs[t]["collapsed"] for t in OUTCOMES] == [False, True, True, False, False, False, False, False,
                                                        False, False, False, False]
    assert "out of memory: peak 0.00 GB allocated on cpu (CUDA out of memory. Tried to allocate 20.00 GiB)" \
        in recs[0.14]["reason"]
    assert "diverged" in recs[0.13]["reason"] and recs[0.13]["epochs"][-1]["epoch"] == 2
    assert "ValueError: boom" in recs[0.15]["reason"] and "RuntimeError: CUDA error" in recs[0.16]["reason"]
    for temp in (0.15, 0.16):  # the reason is one line; the whole error, tracebacks and all, is kept beside
        whole = f"trials/{recs[temp]['trial_id']}.error.txt"  # the record (Ray's copy is in its session)
        assert recs[temp]["reason"].endswith(f" (the whole error: {whole})"), recs[temp]["reason"]
        text = (sweep / whole).read_text()
        assert [ln[:11] for ln in text.splitlines() if ln.startswith("Failure #")] == [
            "Failure # 1", "Failure # 2", "Failure # 3"]  # Ray's 2 retries, each with its traceback
        assert text.count("in train_one_epoch") == 3 and "\x1b[" not in text  # the frame that raised it
    # inputs a trial cannot use (a ConfigError) end it at once, with the message as it is: no Ray retry
    assert recs[0.17]["reason"] == "/data/train/a/0.17.png: not a readable image (a test fault at the start)"
    assert recs[0.17]["restarts"] == [] and recs[0.17]["epochs"] == []  # at once, and it measured nothing
    assert [r["epoch"] for r in recs[0.18]["epochs"]] == [0, 1, 2] and recs[0.18]["restarts"] == []
    # an exception in epoch 3: Ray's 2 retries from the checkpoint of epoch 2, then errored with its epochs
    assert [r["epoch"] for r in recs[0.19]["epochs"]] == [0, 1, 2]
    assert [(r["from_epoch"], r["why"]) for r in recs[0.19]["restarts"]] == [
        (2, "retried by Ray after: ValueError: boom in epoch 3")] * 2
    assert recs[0.19]["reason"].startswith("ValueError: boom in epoch 3 (the whole error: trials/")
    # a lost worker (its process killed in epoch 2): retried from its checkpoint of epoch 1, and the
    # reason Ray gives is what happened, not one of Ray's guesses at why ("killed by the OOM killer")
    [killed] = recs[0.2]["restarts"]
    assert killed["from_epoch"] == 1 and [r["epoch"] for r in recs[0.2]["epochs"]] == [0, 1, 2, 3]
    assert killed["why"].startswith("retried by Ray after: The actor is dead because its worker process has "
                                    "died.") and "memory" not in killed["why"].lower(), killed["why"]
    # killed after its checkpoint of epoch 1 was in storage, before the result reached the driver: Ray's
    # retry continues from that checkpoint (it started again from epoch 0), its epoch reported once
    [copied] = recs[0.21]["restarts"]
    assert copied["from_epoch"] == 1 and "lost_epochs" not in copied, copied
    assert [(r["epoch"], r.get("replayed", False)) for r in recs[0.21]["epochs"]] == [
        (0, False), (1, True), (2, False), (3, False)]
    assert f"{recs[0.21]['trial_id']}  failed after epoch 1: " in run.stderr
    assert "; its checkpoint of epoch 1 is kept, its result unrecorded; Ray runs it again from its last " \
        "checkpoint (retry 1 of 2)" in run.stderr
    # the live view names each failure once, with its reason; the summary counts them all
    for temp, word in ((0.12, "collapsed"), (0.13, "diverged"), (0.14, "oom"), (0.15, "errored"),
                       (0.17, "errored"), (0.19, "errored")):
        lines = [ln for ln in run.stderr.splitlines() if f"  {word}  " in ln and recs[temp]["trial_id"] in ln]
        assert len(lines) == 1 and "reason: " in lines[0], (word, run.stderr[-2000:])
    retries = [ln.split("  ", 1)[1] for ln in run.stderr.splitlines() if recs[0.19]["trial_id"] in ln
               and "Ray runs it again" in ln]
    assert retries == [f"failed after epoch 2: ValueError: boom in epoch 3; Ray runs it again from its last "
                       f"checkpoint (retry {n} of 2)" for n in (1, 2)], retries
    counts = "3 completed, 1 flagged, 1 collapsed, 1 diverged, 2 oom, 4 errored"
    assert f"trials: {counts}" in run.stdout
    assert any("sweep done" in line and counts in line for line in run.stderr.splitlines())
    assert f"ablate: trial {recs[0.15]['trial_id']} errored: ValueError: boom" in run.stderr
    assert f"ablate: trial {recs[0.19]['trial_id']} errored: ValueError: boom in epoch 3" in run.stderr
    main(["ls", str(storage)])
    assert counts in capsys.readouterr().out
    trials = pd.read_parquet(sweep / "report" / "trials.parquet").set_index("student_temp")
    assert {round(t, 4): s for t, s in trials["status"].items()} == status
    report = (sweep / "report" / "report.md").read_text()
    assert counts in report and "out of memory: peak" in report
    assert f"| {recs[0.19]['trial_id']} | errored | 0.19 |" in report  # its row, with what it trained
    assert "| 2/3 | ValueError: boom in epoch 3 (the whole error: " in report

    # resume --retry oom: the errored trials and the oom one run again (and end the same way); the
    # diverged one is kept as it is (without --retry, oom is kept too: tests/ablate/test_resume_plan.py)
    before = recs[0.13]["updated_at"]
    kept = recs[0.2]["updated_at"]
    (tmp_path / "fault" / "inputs_gone").touch()  # 0.18's trainer can no longer be built (--retry oom)
    ended = {t: recs[t]["updated_at"] for t in (0.17, 0.18)}
    again = subprocess.run([*CLI, "resume", str(sweep), "--num-cpus", "2", "--retry", "oom"], env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 1 and "Traceback" not in again.stderr, again.stderr[-3000:]
    recs = records(sweep)
    assert recs[0.14]["status"] == "oom" and [r["why"] for r in recs[0.14]["restarts"]] == ["ablate resume"]
    whys = [r["why"] for r in recs[0.15]["restarts"]]  # Ray's 2 retries in each run, and the resume
    assert whys.count("ablate resume") == 1 and len(whys) == 5
    assert all(w.startswith("retried by Ray after: ValueError: boom") for w in whys if w != "ablate resume")
    assert recs[0.13]["updated_at"] == before and recs[0.13]["restarts"] == []
    assert recs[0.2]["updated_at"] == kept and recs[0.2]["status"] == "completed"  # the lost worker's: kept
    # errored in epoch 3: run again from its checkpoint of epoch 2 (not from the start), errored again
    assert recs[0.19]["status"] == "errored" and [r["epoch"] for r in recs[0.19]["epochs"]] == [0, 1, 2]
    assert [(r["from_epoch"], r["why"]) for r in recs[0.19]["restarts"]][2] == (2, "ablate resume")
    for temp in (0.17, 0.18):  # run again by the resume, ended at once: errored with the message
        assert recs[temp]["status"] == "errored" and recs[temp]["updated_at"] > ended[temp]
        assert recs[temp]["reason"].startswith(f"/data/train/a/{temp}.png: not a readable image")
    assert [r["epoch"] for r in recs[0.18]["epochs"]] == [0, 1, 2]  # what it trained before is kept


@pytest.mark.parametrize("workers", [1, 2])
def test_inputs_only_the_trials_see_end_them_at_once(ray_cluster: str, tmp_path: Path, workers: int) -> None:
    """On a cluster the driver's input check only warns (the nodes may see other files): a trial that
    finds an unreadable image ends errored with its message, once, instead of failing Ray's retries
    the same way; a data-parallel trial's ranks end together (a rank raises, Ray Train ends the group,
    the trial reports the ConfigError)."""
    from ablate.sweep import run_sweep
    from ablate.sweep_spec import load_spec

    data = write_image_folder(tmp_path / "data", n=12)
    (data / "train" / "b" / "bad.png").write_text("not an image")
    spec = write_spec(tmp_path, f"""
name: folder
trainer: {dict(TINY_TRAINER, dataset="imagefolder", data_path=str(data), batch_size=8)}
space:
  teacher_temp: {{type: choice, values: [0.04]}}
search: {{algorithm: grid}}
resources: {{workers: {workers}, cpu: 1, gpu: 0}}
""")
    sweep = run_sweep(load_spec(spec), tmp_path / "runs", address=ray_cluster)
    [rec] = [json.loads(f.read_text()) for f in (sweep / "trials").glob("*.json")]
    expected = f"data_path='{data}': train/b/bad.png: not a readable image (cannot identify image file"
    assert rec["status"] == "errored" and rec["reason"].startswith(expected), rec["reason"]
    assert rec["restarts"] == [] and rec["epochs"] == []  # no retry; nothing measured


def test_a_relative_data_path_means_the_folder_ablate_runs_in(ray_cluster: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`data_path: data` passes the driver's check in the folder `ablate run` runs in; the trials run in
    Ray's folders: they read the same folder (the spec holds it absolute) instead of each ending errored
    with "missing: ['train', 'val']"."""
    from ablate.sweep import run_sweep
    from ablate.sweep_spec import load_spec

    write_image_folder(tmp_path / "data", n=12)
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, f"""
name: relative
trainer: {dict(TINY_TRAINER, dataset="imagefolder", data_path="data", batch_size=8, epochs=1)}
space:
  teacher_temp: {{type: choice, values: [0.04]}}
search: {{algorithm: grid}}
resources: {{cpu: 1, gpu: 0}}
""")
    sweep = run_sweep(load_spec(spec), "runs", address=ray_cluster)
    [rec] = [json.loads(f.read_text()) for f in (sweep / "trials").glob("*.json")]
    assert rec["status"] == "completed", rec["reason"]
    assert rec["config"]["data_path"] == str(tmp_path / "data")


def test_a_trial_killed_by_rays_memory_monitor_ends_oom_end_to_end(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """Host memory: Ray's memory monitor kills the trial's process (here its threshold is set below what
    any node running Ray uses). Ray retries it from its checkpoint twice, each retry said with the reason;
    it then ends `oom` (not `errored` with the tail of Ray's advice), and the summary says how to run it
    again (`ablate resume --retry oom`, followed through in the test above)."""
    spec = write_spec(tmp_path, f"""
name: hostmem
trainer: {dict(TINY_TRAINER, epochs=1)}
space:
  student_temp: {{type: choice, values: [0.1]}}
search: {{algorithm: grid}}
resources: {{cpu: 1, gpu: 0}}
""")
    storage, sweep = tmp_path / "runs", tmp_path / "runs" / "hostmem"
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)  # a local Ray, started with the tight threshold
    tight = {**env, "RAY_memory_usage_threshold": "0.02", "RAY_memory_monitor_refresh_ms": "100"}
    run = subprocess.run([*CLI, "run", str(spec), "--storage", str(storage), "--num-cpus", "1"], env=tight,
                         capture_output=True, text=True, timeout=600)
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    (rec,) = records(sweep).values()
    assert rec["status"] == "oom", (rec["status"], rec["reason"])
    assert rec["reason"].startswith("out of host memory: killed by Ray's memory monitor on node ")
    assert "over Ray's kill threshold of 2.0% (RAY_memory_usage_threshold)" in rec["reason"]
    retried = [ln for ln in run.stderr.splitlines() if "Ray runs it again" in ln]
    assert len(retried) == 2
    assert all("failed before its first epoch ended: out of host memory" in ln for ln in retried)
    assert "trials: 1 oom" in run.stdout
    assert f"`ablate resume {sweep} --retry oom` runs them again" in run.stderr  # as the test above
    # nothing trained: exit 1, as the summary says; `ablate ls` counts it and names no value
    assert run.returncode == 1
    assert f"no trial has a value measured after training: nothing to call best in {sweep}" in run.stderr
    assert any("sweep done" in ln and ": 1 oom; " in ln for ln in run.stderr.splitlines())
    main(["ls", str(storage)])
    listing = capsys.readouterr().out
    assert "1 oom" in listing and "no value after training yet" in listing, listing


def test_a_data_parallel_trial_whose_rank_runs_out_of_memory_ends_oom_at_once(tmp_path: Path) -> None:
    """Rank 1 alone of a 2-worker trial runs out of memory in a step of epoch 2 (tests/helpers.py
    RANK_OOM), while rank 0 waits in that step's all-reduce: the trial ends `oom` with the reason a
    one-process trial gets, and the summary's retry hint. Before, rank 1 reported its oom and stopped,
    and rank 0 waited in the all-reduce: the sweep hung (gloo's timeout is 30 min). (Out of memory as a
    rank builds its trainer: tests/trainables/test_worker_errors.py; one such trial here, for the suite's
    time.) The other trial, no fault, runs to its end: 2 workers x 1 CPU on a 2-CPU machine (issue 18,
    point 1, tests/ablate/test_admission.py: they once waited forever, the driver holding 0.01 CPU)."""
    spec = write_spec(tmp_path, f"""
name: rankoom
trainer: {dict(TINY_TRAINER, epochs=2, batch_size=16)}
space:
  student_temp: {{type: choice, values: [0.11, 0.2]}}
search: {{algorithm: grid}}
resources: {{workers: 2, cpu: 1, gpu: 0}}
""")
    storage, sweep = tmp_path / "runs", tmp_path / "runs" / "rankoom"
    env = fault_env(tmp_path / "fault", RANK_OOM_FAULT)
    run = subprocess.run([*CLI, "run", str(spec), "--storage", str(storage), "--num-cpus", "2"], env=env,
                         capture_output=True, text=True, timeout=600)
    # 0: a trial trained to its end (an oom alone exits 1: tests/ablate/test_honest_ends.py)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-3000:]
    recs = records(sweep)
    rec = recs[0.11]
    assert rec["status"] == "oom" and rec["reason"] == cuda.oom_reason(RuntimeError(RANK_OOM[0.11]),
                                                                       torch.device("cpu"), 0.0)
    assert [r["epoch"] for r in rec["epochs"]] == [0, 1, 2] and rec["restarts"] == []  # at once: no retry
    done = recs[0.2]
    assert done["status"] == "completed" and [r["workers"] for r in done["epochs"]] == [2, 2, 2]
    assert "trials: 1 completed, 1 oom" in run.stdout
    assert f"`ablate resume {sweep} --retry oom` runs them again" in run.stderr
