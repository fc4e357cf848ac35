"""Fault injection through the CLI: crafted pickles, damaged checkpoints, read-only or full storage.

Each fault must end in one clear line on stderr and exit code 2, with nothing run or half-written.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

from ablate.cli import main
from tests.helpers import (
    OPTUNA_SPEC,
    TINY_TRAINER,
    trial_fault_env,
    write_crafted_pickle,
    write_image_folder,
    write_spec,
)
from trainables.config import DINOConfig

SETS = [a for k, v in TINY_TRAINER.items() for a in ("--set", f"{k}={v}")]


def run_folder(folder: Path, **changes) -> Path:
    """A run folder as `ablate train` leaves it, without training: config.yaml only."""
    folder.mkdir(parents=True)
    cfg = DINOConfig(**{**TINY_TRAINER, **changes}).model_dump(mode="json")
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


def assert_one_clear_error(capsys: pytest.CaptureFixture, command: str, *phrases: str) -> str:
    err = capsys.readouterr().err
    assert f"ablate {command}: error:" in err and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase in err, err
    return err


# --- crafted pickles: refused, nothing runs -----------------------------------------------------
def test_attention_refuses_a_crafted_pickle(tmp_path: Path, capsys: pytest.CaptureFixture):
    marker = tmp_path / "pwned"
    evil = write_crafted_pickle(tmp_path / "evil.pt", marker)
    assert main(["attention", str(evil), "--out", str(tmp_path / "a.png")]) == 2
    assert_one_clear_error(capsys, "attention", "evil.pt: refused to load", "io.open")
    assert not marker.exists() and not (tmp_path / "a.png").exists()


def test_train_resume_refuses_a_crafted_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture):
    marker = tmp_path / "pwned"
    run = run_folder(tmp_path / "run")
    write_crafted_pickle(run / "checkpoint.pt", marker, epoch=1)
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 2
    assert_one_clear_error(capsys, "train", "checkpoint.pt: refused to load", "io.open")
    assert not marker.exists() and not (run / "metrics.jsonl").exists()


def test_train_refuses_crafted_pretrained_weights(tmp_path: Path, capsys: pytest.CaptureFixture):
    marker = tmp_path / "pwned"
    evil = write_crafted_pickle(tmp_path / "evil.pt", marker)
    out = tmp_path / "run"
    assert main(["train", *SETS, "--set", f"pretrained_weights={evil}", "--out", str(out)]) == 2
    assert_one_clear_error(capsys, "train", "evil.pt: refused to load this pretrained_weights file")
    assert not marker.exists() and not out.exists()


# --- storage that is read-only or full ----------------------------------------------------------
@pytest.fixture
def read_only_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A read-only folder: a read-only tmpfs mount where the test may mount (root ignores chmod),
    else a folder whose write probe fails with EROFS (injected into tempfile.NamedTemporaryFile)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
    except OSError:  # no mount command
        mounted = False
    if mounted:
        yield folder
        subprocess.run(["umount", str(folder)], check=True)
        return
    real = tempfile.NamedTemporaryFile

    def refuse(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve().is_relative_to(folder.resolve()):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    yield folder


def test_run_on_read_only_storage_exits_2_before_ray_starts(read_only_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch):
    def never(*args, **kwargs):
        raise AssertionError("Ray was started on read-only storage")

    monkeypatch.setattr("ablate.sweep.start_ray", never)
    spec = write_spec(tmp_path, OPTUNA_SPEC)
    assert main(["run", str(spec), "--storage", str(read_only_dir / "runs")]) == 2
    assert_one_clear_error(capsys, "run", f"--storage {read_only_dir / 'runs'}: cannot write there (EROFS",
                           "nothing was started")


def test_train_with_a_full_disk_keeps_the_last_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch):
    out = tmp_path / "run"
    real_save, calls = torch.save, []

    def full_at_second_checkpoint(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 2:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_at_second_checkpoint)
    assert main(["train", *SETS, "--out", str(out), "--no-progress"]) == 2
    # the file it was writing, not its temporary '.XXXX-checkpoint.pt.tmp' (sweep_format.files.atomic_path)
    assert_one_clear_error(capsys, "train", f"cannot write {out / 'checkpoint.pt'} (ENOSPC: No space left",
                           f"ablate train --out {out} --resume")
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.yaml", "metrics.jsonl"]
    # epoch 2's row is written before its checkpoint (a kill mid-row must not leave a checkpoint without
    # its row): --resume drops it with the epoch it trains again, and writes it once
    assert [json.loads(r)["epoch"] for r in (out / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    monkeypatch.setattr(torch, "save", real_save)
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0  # space is back
    assert [json.loads(r)["epoch"] for r in (out / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]


# --- ablate train --resume: damaged checkpoint, changed configuration ----------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run (resuming it has nothing left to do, but loads and checks everything)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", *SETS, "--out", str(out), "--no-progress"]) == 0
    return out


def _copy_run(trained: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(trained, tmp_path / "run"))


def test_train_resume_with_a_truncated_checkpoint_exits_2(trained: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture):
    run = _copy_run(trained, tmp_path)
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    before = (run / "metrics.jsonl").read_text()
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 2
    assert_one_clear_error(capsys, "train", "checkpoint.pt: not a readable PyTorch checkpoint (truncated")
    assert (run / "metrics.jsonl").read_text() == before


def test_train_resume_lists_the_keys_that_changed(trained: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture):
    run = _copy_run(trained, tmp_path)
    # Changed on the command line: refused, naming each key with both values.
    assert main(["train", *SETS, "--set", "teacher_temp=0.07", "--set", "lr=0.001", "--out", str(run),
                 "--resume"]) == 2
    assert_one_clear_error(capsys, "train", "Differs: ", "teacher_temp: 0.03 -> 0.07", "lr: 0.008 -> 0.001")
    # config.yaml edited behind the checkpoint's back: refused too.
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**cfg, "student_temp": 0.2}))
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 2
    assert_one_clear_error(capsys, "train", "checkpoint.pt: written by a run with another configuration",
                           "student_temp: 0.1 -> 0.2")
    # The same configuration again (and another device) is a resume.
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", *SETS, "--set", "device=cpu", "--out", str(run), "--resume", "--no-progress"]) == 0


def test_train_resume_on_a_dataset_that_changed_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture):
    """A checkpoint resumed on an image folder whose files were removed since (or a retried trial, which
    lists the folder again) trained on in silence: other images, and steps per epoch that no longer fit
    the schedules it was saved with."""
    data = write_image_folder(tmp_path / "images", n=20)
    sets = [*SETS, "--set", "dataset=imagefolder", "--set", f"data_path={data}", "--set", "batch_size=8",
            "--set", "epochs=1"]
    run = tmp_path / "run"
    assert main(["train", *sets, "--out", str(run), "--no-progress"]) == 0
    for gone in sorted((data / "train" / "a").iterdir())[:4]:
        gone.unlink()
    before = (run / "metrics.jsonl").read_text()
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 2
    assert_one_clear_error(capsys, "train", "checkpoint.pt: trained on other data than this run reads",
                           "Differs: train images: 40 -> 36; knn memory images: 40 -> 36")
    assert (run / "metrics.jsonl").read_text() == before


def test_a_sweep_whose_disk_fills_up_exits_2_saying_what_is_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    def disk_full(*args, **kwargs):  # an ENOSPC from one of ablate's own writes, mid-sweep
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "runs/tiny/spec.yaml"))

    monkeypatch.setattr("ablate.sweep.run_sweep", disk_full)
    spec = write_spec(tmp_path, OPTUNA_SPEC)
    assert main(["run", str(spec), "--storage", str(tmp_path / "runs")]) == 2
    assert_one_clear_error(capsys, "run", "cannot write", "runs/tiny/spec.yaml (ENOSPC: No space left",
                           "keeps finished trials", "ablate resume")


@pytest.mark.slow
def test_a_trial_that_finds_the_disk_full_stops_the_sweep_with_one_line(ray_cluster: str, tmp_path: Path):
    """ENOSPC inside a trial's checkpoint write: not Ray's retries and an errored trial, but the trial's
    own outcome, then one line (path, errno, what is kept, how to go on), exit 2; resume finishes it."""
    spec = write_spec(tmp_path, f"""
name: full
trainer: {dict(TINY_TRAINER, epochs=3)}
space:
  teacher_temp: {{type: choice, values: [0.04]}}
search: {{algorithm: grid}}
resources: {{cpu: 1, gpu: 0}}
""")
    storage, sweep = tmp_path / "runs", tmp_path / "runs" / "full"
    cmd = [sys.executable, "-m", "ablate.cli"]
    env = trial_fault_env(tmp_path / "fault", epoch=2, fault="enospc")
    run = subprocess.run([*cmd, "run", str(spec), "--storage", str(storage), "--num-cpus", "2"], env=env,
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 2, run.stderr[-3000:]
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert errors[0].startswith("ablate run: error: ") and errors[0] == run.stderr.splitlines()[-1]
    for phrase in ("/checkpoint.pt: cannot write the checkpoint of epoch 2 (ENOSPC: No space left on "
                   "device)", "the sweep stopped: 0 of 1 trials finished", f"`ablate resume {sweep}`"):
        assert phrase in errors[0], errors[0]
    (rec,) = (json.loads(f.read_text()) for f in (sweep / "trials").glob("*.json"))
    assert rec["status"] == "storage_full" and "ENOSPC" in rec["reason"], rec["reason"]
    assert (rec["epochs"][-1]["epoch"], rec["epochs"][-1]["trial_outcome"]) == (2, "storage_full")

    # space is back; on the session's cluster (the fault lived in the run's local Ray)
    resumed = subprocess.run([*cmd, "resume", str(sweep), "--address", ray_cluster],
                             env={**os.environ, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True,
                             timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (rec,) = (json.loads(f.read_text()) for f in (sweep / "trials").glob("*.json"))
    assert rec["status"] == "completed" and [r["epoch"] for r in rec["epochs"]] == [0, 1, 2, 3]
