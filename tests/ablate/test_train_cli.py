"""`ablate train`: files written, resume through the CLI, and user mistakes (exit 2, nothing written)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ablate.admission import Cluster
from ablate.cli import main
from tests.helpers import TINY_TRAINER, write_image_folder
from trainables import cuda
from trainables.data_workers import died

SETS = [a for k, v in {**TINY_TRAINER, "epochs": 2}.items() for a in ("--set", f"{k}={v}")]


def readme_metrics_keys() -> set[str]:
    """The keys README says a row of ``ablate train``'s metrics.jsonl holds."""
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    listed = readme.split("`DIR/metrics.jsonl` (one JSON object per epoch:", 1)[1].split(") and `DIR/", 1)[0]
    return set(re.findall(r"`([a-z0-9_]+)`", listed)) - {"eval_every"}


def test_train_writes_metrics_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "run"
    assert main(["train", *SETS, "--out", str(out), "--no-progress"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    # README lists a row's keys: it left out four that every row has (knn_eval_s, ln_out_dim, data_wait_*)
    assert set(rows[-1]) == readme_metrics_keys() - {"gpu_mem_peak_gb"}  # that one on CUDA only
    assert set(rows[0]) == {"epoch", "knn_top1", "knn_top5", "knn_eval_s", "ln_out_dim"}
    assert "kNN top-1" in capsys.readouterr().err
    # A second run into the same folder is refused; --resume with nothing left to do keeps the rows.
    assert main(["train", *SETS, "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    # --set alone goes on top of the run's own config: where it runs may change, what it computes not
    # (it was compared with the defaults, and refused with changes the user never asked for)
    assert main(["train", "--out", str(out), "--resume", "--no-progress", "--set", "num_workers=1"]) == 0
    assert main(["train", "--out", str(out), "--resume", "--set", "epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "Differs: epochs: 2 -> 3" in err and "batch_size" not in err


def test_a_run_stopped_before_its_first_checkpoint_starts_over_with_one_row_per_epoch(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    out = tmp_path / "run"

    def interrupted(*args: object, **kwargs: object) -> int:
        (out / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "knn_top1": -1.0}) + "\n")
        raise KeyboardInterrupt  # Ctrl-C during epoch 1: epoch 0's row written, no checkpoint yet

    with monkeypatch.context() as m:
        m.setattr("ablate.commands.train.run_epochs", interrupted)
        assert main(["train", *SETS, "--out", str(out), "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "--resume" not in err  # --resume would be refused: no checkpoint
    assert main(["train", *SETS, "--out", str(out), "--no-progress"]) == 0
    assert "starting it over" in capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2] and rows[0]["knn_top1"] > 0  # the stale row is gone


def test_a_run_piped_or_in_ci_prints_its_epoch_lines_without_a_progress_bar(
        tmp_path: Path, capsys: pytest.CaptureFixture):
    """`ablate train ... > log` (stderr not a terminal) wrote tqdm's every redraw into the log, a line of
    carriage returns for each epoch (16.7 kB for 3 epochs of 134 steps)."""
    assert main(["train", *SETS, "--set", "epochs=1", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "step/s" not in err
    epochs = [line.split()[:2] for line in err.splitlines() if line.startswith("epoch")]
    assert epochs == [["epoch", "0/1"], ["epoch", "1/1"]]


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_train_on_a_folder_a_run_trains_in_now_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture, resume: bool):
    """`ablate train --out DIR` again while the first one still trained there (a background job, which
    ignores Ctrl-C; another terminal): "holds a run stopped before its first checkpoint: starting it
    over", then both appended to metrics.jsonl, every epoch twice. The second is refused in one line and
    writes nothing; once the first ends, the folder is free."""
    import fcntl
    import os

    out = tmp_path / "run"
    assert main(["train", *SETS, "--set", "epochs=1", "--out", str(out), "--no-progress"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    fd = os.open(out, os.O_RDONLY)  # the run training there now holds its folder
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        again = ["train", *SETS, "--set", "epochs=1", "--out", str(out), "--no-progress"]
        assert main(again + (["--resume"] if resume else [])) == 2
    finally:
        os.close(fd)
    assert capsys.readouterr().err.strip().splitlines() == [
        f"ablate train: error: --out {out}: another `ablate train` is training in this folder now; one run "
        "per folder. Wait for it to end, or stop it (Ctrl-C, or kill its process), then run this command "
        "again"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_kill_while_the_run_files_are_rewritten_keeps_them_whole(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch):
    """--resume rewrote metrics.jsonl (dropping rows past the checkpoint) and config.yaml in place: a
    kill during the write left half of each, the run's epoch rows lost or its config unreadable."""
    from ablate.commands.train import CONFIG_NAME, keep_metrics, write_config
    from trainables.config import DINOConfig

    metrics = tmp_path / "metrics.jsonl"
    rows = "".join(json.dumps({"epoch": e, "knn_top1": 30.0 + e}) + "\n" for e in range(4))
    metrics.write_text(rows)
    write_config(tmp_path, DINOConfig())
    config = (tmp_path / CONFIG_NAME).read_text()

    def killed(self: Path, text: str, *args: object, **kwargs: object) -> int:
        with open(self, "w") as f:  # half the text reaches the disk, then the process is stopped
            f.write(text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed)
    for write in (lambda: keep_metrics(metrics, 2), lambda: write_config(tmp_path, DINOConfig(epochs=3))):
        with pytest.raises(KeyboardInterrupt):
            write()
    monkeypatch.undo()
    assert metrics.read_text() == rows and (tmp_path / CONFIG_NAME).read_text() == config
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_NAME, "metrics.jsonl"]  # no temporary left


def test_a_run_killed_while_it_writes_a_metrics_row_resumes_with_every_row_whole(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill in the middle of the last epoch's row: the resumed run's first row was not glued onto the
    partial one (keep_metrics rewrites whole rows first), but the row was written after the epoch's
    checkpoint, so --resume found nothing left to train and the row was gone for good: metrics.jsonl
    read epochs 0 and 1 of 2."""
    out, real_open = tmp_path / "run", Path.open

    def killed_mid_row(self: Path, mode: str = "r", *args: object, **kwargs: object):
        f = real_open(self, mode, *args, **kwargs)
        if self.name == "metrics.jsonl" and mode == "a":
            write = f.write

            def half(text: str) -> int:
                if json.loads(text)["epoch"] != 2:
                    return write(text)
                write(text[: len(text) // 2])
                f.flush()
                raise KeyboardInterrupt  # half the row reached the disk, then the process was stopped
            f.write = half
        return f

    with monkeypatch.context() as m:
        m.setattr(Path, "open", killed_mid_row)
        assert main(["train", *SETS, "--out", str(out), "--no-progress"]) == 130
    assert not (out / "metrics.jsonl").read_text().endswith("\n")  # the partial row
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert "resuming" in capsys.readouterr().err


def test_sigterm_stops_the_run_as_ctrl_c_does(tmp_path: Path, capsys: pytest.CaptureFixture):
    """SIGTERM (`timeout`, Slurm, Kubernetes) killed `ablate train` by its default action: the last
    epoch's checkpoint stayed, but no line said so and the exit code was the kill's (-15). Now it
    stops as Ctrl-C does: one line naming the epoch kept and the --resume command, exit 143, and the
    run resumes to its end with one row per epoch."""
    out, epochs = tmp_path / "run", 4
    sets = [a for k, v in {**TINY_TRAINER, "epochs": epochs}.items() for a in ("--set", f"{k}={v}")]
    run = subprocess.Popen([sys.executable, "-m", "ablate.cli", "train", *sets, "--out", str(out),
                            "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    assert run.stderr is not None
    lines = []
    for line in run.stderr:  # the epoch-1 line comes once its checkpoint is written
        lines.append(line)
        if line.startswith(f"epoch 1/{epochs}"):
            run.send_signal(signal.SIGTERM)
            break
    lines += run.stderr.readlines()
    assert run.wait(timeout=120) == 143, "".join(lines)
    stopped = re.fullmatch(rf"interrupted by SIGTERM after epoch (\d)/{epochs} \(its checkpoint kept\); "
                           rf"continue with: ablate train --out {re.escape(str(out))} --resume\n", lines[-1])
    assert stopped, "".join(lines)
    saved = int(stopped.group(1))
    assert 1 <= saved < epochs and not any("Traceback" in line for line in lines)
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert f"resuming {out} after epoch {saved}/{epochs}" in capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(epochs + 1))


class DoneThenTerm:
    """stderr that receives SIGTERM as the run's done line is written: the signal `timeout` or Slurm
    sends as a short run ends."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        if text.startswith("done: "):
            signal.raise_signal(signal.SIGTERM)
        return written

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def test_a_sigterm_as_the_done_line_is_printed_leaves_it_the_one_ending(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """A SIGTERM that came as the run printed 'done: ...' added 'interrupted by SIGTERM after epoch 1/1
    (its checkpoint kept); continue with: ... --resume' below it, exit 143: two endings that contradict.
    The run was done; the done line stays the one ending, exit 0."""
    out = tmp_path / "run"
    sets = [a for k, v in {**TINY_TRAINER, "epochs": 1}.items() for a in ("--set", f"{k}={v}")]
    capsys.readouterr()
    monkeypatch.setattr(sys, "stderr", DoneThenTerm(sys.stderr))
    assert main(["train", *sets, "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"done: {out / 'metrics.jsonl'}, {out / 'checkpoint.pt'}", err
    assert not any("interrupted" in line for line in err), err


def test_a_signal_as_the_command_returns_after_its_done_line_adds_no_ending(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Past run_train, a signal (as the command returns) reached the command line's own handler, which
    printed 'ablate train: interrupted (SIGTERM)' under the done line."""
    from ablate.ending import SignalInterrupt

    def done_then_term(args: object, signals: object, ending) -> int:
        ending.done = True
        raise SignalInterrupt(signal.SIGTERM)

    monkeypatch.setattr("ablate.commands.train.run_train", done_then_term)
    assert main(["train", "--out", "run"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("done_first", [True, False])
def test_a_sigterm_as_workers_end_prints_one_ending(done_first: bool, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch):
    """`--workers 2`: a SIGTERM that came as a short run ended printed rank 0's 'done: ...' line (the
    driver echoes train.log) and then 'interrupted by SIGTERM; continue with: ... --resume --workers 2',
    exit 143. Whichever came first is now the one ending line: done (exit 0), or interrupted (143)."""
    out = tmp_path / "run"
    done = f"done: {out / 'metrics.jsonl'}, {out / 'checkpoint.pt'}"

    class EndsAsTerminated:  # rank 0's lines in train.log, and SIGTERM handed to Ray Train's Ctrl-C handler
        def fit(self) -> None:
            lines = ["epoch 0/1  kNN top-1 50.00% (untrained baseline)", *([done] if done_first else [])]
            (out / "train.log").write_text("".join(f"{line}\n" for line in lines))
            (out / "checkpoint.pt").write_bytes(b"")  # epoch 1's, written before the done line
            signal.signal(signal.SIGINT, lambda *args: sys.exit(1))
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr("ray.is_initialized", lambda: True)  # no Ray is started for the fake workers
    monkeypatch.setattr("ablate.admission.cluster", lambda: Cluster(2.0, 0.0, ((2.0, 0.0),), "fake:6379"))
    monkeypatch.setattr("trainables.ddp_trial.torch_trainer", lambda *args, **kwargs: EndsAsTerminated())
    sigint = signal.getsignal(signal.SIGINT)
    try:
        code = main(["train", *SETS, "--out", str(out), "--workers", "2"])
    finally:
        signal.signal(signal.SIGINT, sigint)
    err = capsys.readouterr().err.splitlines()
    interrupted = f"interrupted by SIGTERM; continue with: ablate train --out {out} --resume --workers 2"
    assert (code, err[-1]) == ((0, done) if done_first else (143, interrupted)), err
    assert sum(line in (done, interrupted) for line in err) == 1, err


def test_a_data_key_its_dataset_does_not_read_is_warned_once(tmp_path: Path, capsys: pytest.CaptureFixture):
    """num_workers 3 and download true with the in-memory synthetic set trained as without them, in
    silence; each is now one warning line, and the run goes on."""
    sets = [a for k, v in {**TINY_TRAINER, "epochs": 1, "num_workers": 3, "download": "true"}.items()
            for a in ("--set", f"{k}={v}")]
    assert main(["train", *sets, "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "has no effect on dataset" in line]
    assert warnings == [
        "ablate train: warning: download true has no effect on dataset 'synthetic': only cifar10, cifar100, "
        "stl10 read it; leave it out",
        "ablate train: warning: num_workers 3 has no effect on dataset 'synthetic': only imagefolder reads "
        "it, or any dataset with augment_device: cpu; leave it out"]


@pytest.mark.parametrize("args,expected", [
    (["--set", "teacher_tmp=0.1"], "Valid keys:"),
    (["--set", "teacher_temp=-1"], "teacher_temp=-1"),
    (["--set", "epochs=abc"], "epochs='abc'"),
    (["--set", "centering=bogus"], "'center', 'sinkhorn_knopp' or 'none'"),
    (["--set", "batch_size"], "KEY=VALUE"),
    (["--set", "dataset=imagefolder"], "data_path"),
    (["--set", "arch=vit_smal_patch16_224"], "--set arch='vit_smal_patch16_224': not a timm model name"),
    (["--set", "arch=vit_smal_patch16_224"], "did you mean vit_small_patch16_224,"),
])
def test_bad_config_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture, args, expected):
    out = tmp_path / "never"
    assert main(["train", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not out.exists()


def test_bad_config_file_names_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("epochs: 2\nteacher_temp: [0.1\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "line" in err
    assert main(["train", "--out", str(tmp_path / "x"), "--resume"]) == 2
    assert "no checkpoint.pt" in capsys.readouterr().err
    # a key YAML reads as a number, true or null ended in difflib's TypeError traceback
    for text, shown in (("1: 2\n", "1"), ("trainer:\n  null: 2\n", "null"), ("yes: 2\n", "true")):
        cfg.write_text(text)
        assert main(["train", str(cfg), "--out", str(tmp_path / "x")]) == 2
        said = f"{cfg}: the key {shown} is not text; keys are names (quote a key YAML reads as a number, "
        assert capsys.readouterr().err == f"ablate train: error: {said}true/false or null)\n"
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("key", ["pretrained_weights", "data_path"])
def test_an_empty_path_in_a_config_file_is_refused_naming_the_file(tmp_path: Path, key: str,
                                                                   capsys: pytest.CaptureFixture):
    """`data_path: "  "` was made absolute (a file of blanks in the folder ablate ran in) and refused as a
    data_path the dataset does not read; `""` trained as if the key were not there."""
    cfg = tmp_path / "c.yaml"
    for blank in ("''", "'  '"):
        cfg.write_text(f"dataset: cifar10\n{key}: {blank}\n")
        assert main(["train", str(cfg), "--out", str(tmp_path / "never")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"ablate train: error: {cfg}: {key}={blank}: an empty path names no file; ")
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "never").exists()


def test_a_crop_the_backbone_cannot_take_is_refused_naming_the_config_file(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture):
    """A crop size a ViT's patches do not divide was refused as the bare "global_crops_size=30 (...)",
    without the CONFIG file (or --set) every other refusal of a value starts with; so were the rest of the
    input check (a step larger than the data, a weights file that is not there)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("arch: test_vit\npatch_size: 4\nglobal_crops_size: 30\nlocal_crops_number: 0\n"
                   "dataset: synthetic\n")
    crop = ("global_crops_size=30 (Input height (30) should be divisible by patch size (4).): arch "
            "'test_vit' with patch_size=4 cannot take this crop; set global_crops_size: 32 (the next size it "
            "takes)")
    for args, where in (([str(cfg)], f"{cfg}: "), ([str(cfg), "--set", "epochs=1"], f"{cfg} + --set: "),
                        (["--set", "arch=test_vit", "--set", "patch_size=4", "--set", "global_crops_size=30",
                          "--set", "local_crops_number=0"], "--set ")):
        assert main(["train", *args, "--out", str(tmp_path / "never")]) == 2
        assert capsys.readouterr().err == f"ablate train: error: {where}{crop}\n"
    cfg.write_text("dataset: synthetic\nbatch_size: 1000\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "never")]) == 2
    assert capsys.readouterr().err == (f"ablate train: error: {cfg}: batch_size=1000 x grad_accum_steps=1: "
                                       "larger than the 160 training images of 'synthetic'\n")
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("text,expected", [
    ("name: x\ntrainer: 5\nspace: {}\n", "spec.yaml: trainer: got 5; expected a mapping of trainer keys"),
    ("name: x\nepochs: 2\ntrainer: {epochs: 3}\n",
     "spec.yaml: epochs: a trainer key at the top of a sweep spec, which would be left out"),
    ("name: x\ntrainer: epochs:2\n",
     "spec.yaml: trainer: got 'epochs:2'; expected a mapping of trainer keys to values, e.g. trainer: "
     "{epochs: 4} (a key needs a space after its colon: epochs: 2, not epochs:2)"),
])
def test_a_sweep_spec_as_config_is_read_by_its_trainer_section(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                               text: str, expected: str):
    """`ablate train SPEC.yaml` takes the spec's trainer section: `trainer: 5` ended in a TypeError
    traceback, a spec without one was read as trainer keys ("unknown trainer key 'name'"), and a trainer
    key beside the spec's keys was dropped in silence."""
    from ablate.commands.train import resolve_config

    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    assert main(["train", str(spec), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and not (tmp_path / "never").exists()
    spec.write_text("name: x\nspace: {teacher_temp: {type: float, low: 0.01, high: 0.1}}\n")
    assert resolve_config(str(spec), ["epochs=3"]).epochs == 3  # no trainer section: the defaults


def test_an_out_folder_that_cannot_be_written_is_refused_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """--out on a read-only disk trained, then ended in a traceback at its first write (an --out of
    /proc/x: FileNotFoundError); --out '' wrote the run's files into the folder ablate ran in."""
    import errno

    import ablate.folder
    import trainables.dino.trainer

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    def never(*args, **kwargs):
        raise AssertionError("the run was built before its folder was checked")

    monkeypatch.setattr(ablate.folder.tempfile, "NamedTemporaryFile", read_only)
    monkeypatch.setattr(trainables.dino.trainer, "DINOTrainer", never)
    out = tmp_path / "runs" / "one"
    assert main(["train", *SETS, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: cannot write there (EROFS: Read-only file system)" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # the folders the check made are taken away again
    monkeypatch.chdir(tmp_path)
    assert main(["train", *SETS, "--out", ""]) == 2
    assert "--out '': give a folder for the run" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_run_out_of_memory_stops_in_one_line(tmp_path: Path):
    """A CUDA OOM (or the host's) in an epoch ended `ablate train` in a traceback."""
    import io
    import types

    import torch

    from ablate.commands.train import run_epochs
    from trainables.config import DINOConfig

    def run():
        yield {"epoch": 0, "knn_top1": 30.0, "knn_top5": 70.0}
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    trainer = types.SimpleNamespace(cfg=DINOConfig(**TINY_TRAINER), epoch=0, baseline_done=False, run=run,
                                    device=torch.device("cpu"))
    log = io.StringIO()
    assert run_epochs(trainer, tmp_path, log) == 1  # type: ignore[arg-type]
    last = log.getvalue().splitlines()[-1]
    # what `ablate train` can change: its trainer keys, not a sweep's trials per GPU
    assert last.startswith("ablate train: stopped: out of memory: peak 0.00 GB allocated on cpu (CUDA out "
                           "of memory. Tried to allocate 20.00 GiB); lower batch_size, global_crops_size, "
                           "local_crops_size or local_crops_number (--set batch_size=N); "), last
    # none written
    assert last.endswith("; it stopped before its first checkpoint (nothing to resume: the same command "
                         "starts it over)")


def test_a_run_whose_data_does_not_fit_in_memory_stops_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """An out-of-memory error while the trainer was built (its in-memory dataset, its models) or
    restored ended `ablate train` in a Python traceback. Its advice is the run's keys: it told `ablate
    train` to run fewer trials at once (search.max_concurrent_trials), a sweep's key."""
    from trainables.dino.trainer import DINOTrainer

    def too_large(self):
        raise MemoryError("Unable to allocate 32.0 GiB for an array with shape (1,) and data type uint8")

    monkeypatch.setattr(DINOTrainer, "_build_data", too_large)
    out = tmp_path / "new" / "run"
    assert main(["train", *SETS, "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == (
        "ablate train: stopped: out of host memory (MemoryError: Unable to allocate 32.0 GiB for an array "
        "with shape (1,) and data type uint8); lower batch_size or num_workers (--set batch_size=N); while "
        "building the trainer (its data and models)")
    assert not (tmp_path / "new").exists()  # nothing written, no folder left


def test_a_worker_whose_data_does_not_fit_raises_the_line_one_process_prints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """With --workers, a rank whose trainer could not be built for memory failed the run with 'a worker
    failed: rank 1: MemoryError: ...'; it raises the line one process prints (RankEnded ends every rank)."""
    from ablate.commands.train import worker_loop
    from trainables import ddp_trial, trial
    from trainables.dino.trainer import DINOTrainer

    def too_large(self):
        raise MemoryError("Unable to allocate 32.0 GiB")

    monkeypatch.setattr(DINOTrainer, "_build_data", too_large)
    monkeypatch.setattr(trial, "use_assigned_cpus", lambda: None)  # not in a Ray worker here
    with pytest.raises(ddp_trial.RankEnded) as raised:
        worker_loop({"trainer": {**TINY_TRAINER, "epochs": 2}, "out": str(tmp_path), "resume": False})
    assert raised.value.row["stop_reason"] == (
        "ablate train: stopped: out of host memory (MemoryError: Unable to allocate 32.0 GiB); "
        f"{cuda.TRAIN_HOST_MEMORY_ADVICE}; while building the trainer (its data and models)")


def test_a_worker_out_of_memory_raises_the_line_one_process_prints(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch):
    """With --workers, each rank runs out of memory alone: rank 1 returned 1 unheard (rank 0 alone
    writes) while rank 0 waited for it in the step's all-reduce, and the run hung. Now the rank raises
    the line (Ray Train ends the group; train_with_workers prints it and exits 1)."""
    import io
    import types

    from ablate.commands.train import run_epochs
    from trainables import ddp_trial, distributed
    from trainables.config import DINOConfig

    def run():
        yield {"epoch": 0, "knn_top1": 30.0, "knn_top5": 70.0}
        raise MemoryError("Unable to allocate 3.00 GiB for an array with shape (50000, 3, 96, 96)")

    trainer = types.SimpleNamespace(cfg=DINOConfig(**TINY_TRAINER), epoch=0, baseline_done=False, run=run,
                                    device=torch.device("cpu"))
    log = io.StringIO()
    assert run_epochs(trainer, tmp_path, log) == 1  # type: ignore[arg-type]
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    with pytest.raises(ddp_trial.RankEnded) as raised:
        run_epochs(trainer, tmp_path, None)  # type: ignore[arg-type]  # rank 1: it writes nothing
    assert raised.value.row["stop_reason"] == log.getvalue().splitlines()[-1]


def test_train_with_two_workers_writes_metrics_and_resumes(ray_cluster: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture):
    """`--workers 2` (Ray Train, gloo): rank 0 writes, both ranks restore on --resume.

    The session's Ray is joined (``ablate train`` starts a local one only when none is running).
    """
    out = tmp_path / "ddp"
    sets = [a for k, v in {**TINY_TRAINER, "epochs": 2, "batch_size": 16, "eval_every": 0}.items()
            for a in ("--set", f"{k}={v}")]
    sigint = signal.getsignal(signal.SIGINT)
    assert main(["train", *sets, "--out", str(out), "--workers", "2"]) == 0
    # Ray Train's fit() left its own Ctrl-C handler in, and a Ctrl-C after the run (or in a later test:
    # ablate.ending.Signals handed SIGTERM to it) stopped no run and raised nothing
    assert signal.getsignal(signal.SIGINT) is sigint
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]  # once each: only rank 0 writes
    # rank 0's lines reach this terminal once each (Ray Train's workers printed them twice, and its
    # own lines and tracebacks beside them), and stay in train.log
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("ablate train: 2 data-parallel workers (one CPU each) on the running Ray")
    assert [line.split("  ")[0] for line in err[1:-1]] == ["epoch 0/2", "epoch 1/2", "epoch 2/2"], err
    assert err[-1].startswith("done: ") and err[1:] == (out / "train.log").read_text().splitlines()
    assert rows[1]["lr"] > 0 and "knn_top1" in rows[2]
    # Every rank restores the checkpoint (a finished run has nothing left to train); a resume
    # that changes the run (here its epochs) is refused, as for one process.
    assert main(["train", "--out", str(out), "--resume", "--workers", "2"]) == 0
    assert (out / "metrics.jsonl").read_text().count("\n") == 3
    config = (out / "config.yaml").read_text()
    (out / "config.yaml").write_text(config.replace("epochs: 2", "epochs: 3"))
    assert main(["train", "--out", str(out), "--resume", "--workers", "2"]) == 2
    assert "epochs" in capsys.readouterr().err
    assert main(["train", *sets, "--out", str(tmp_path / "never"), "--workers", "0"]) == 2
    assert "--workers 0" in capsys.readouterr().err

    class CtrlC:  # Ray Train's Ctrl-C handler stops the workers, then calls sys.exit inside fit()
        def fit(self) -> None:
            raise SystemExit(1)

    with pytest.MonkeyPatch.context() as m:
        m.setattr("trainables.ddp_trial.torch_trainer", lambda *args, **kwargs: CtrlC())
        assert main(["train", "--out", str(out), "--resume", "--workers", "2"]) == 130
    hint = f"interrupted; continue with: ablate train --out {out} --resume --workers 2"
    assert hint in capsys.readouterr().err

    class Terminated:  # SIGTERM: handed to Ray Train's Ctrl-C handler (Ray's own exits the driver)
        def fit(self) -> None:
            signal.signal(signal.SIGINT, lambda *args: sys.exit(1))
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "SIGTERM would kill ablate train"
            signal.raise_signal(signal.SIGTERM)

    sigint = signal.getsignal(signal.SIGINT)
    with pytest.MonkeyPatch.context() as m:
        m.setattr("trainables.ddp_trial.torch_trainer", lambda *args, **kwargs: Terminated())
        try:
            assert main(["train", "--out", str(out), "--resume", "--workers", "2"]) == 143
        finally:
            signal.signal(signal.SIGINT, sigint)
    hint = f"interrupted by SIGTERM; continue with: ablate train --out {out} --resume --workers 2"
    assert hint in capsys.readouterr().err


def test_train_makes_relative_paths_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`--set data_path=data` means the folder `ablate train` runs in, also for --workers, whose Ray Train
    workers run in other folders (they ended "missing: ['train', 'val']" with a relative one)."""
    from ablate.commands.train import resolve_config

    write_image_folder(tmp_path / "data", n=12)
    monkeypatch.chdir(tmp_path)
    sets = [f"{k}={v}" for k, v in {**TINY_TRAINER, "dataset": "imagefolder", "data_path": "data",
                                     "batch_size": 4}.items()]
    assert resolve_config(None, sets, workers=2).data_path == str(tmp_path / "data")


def test_a_run_folder_with_a_symbolic_link_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture):
    """A run folder someone else wrote: --resume rewrote metrics.jsonl through a link to any file."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").symlink_to(victim)
    assert main(["train", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--out {out}: {out / 'metrics.jsonl'}: a symbolic link (to {victim})" in err[0]
    assert victim.read_text() == "precious\n"


def test_an_out_folder_holding_files_no_run_wrote_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture):
    """`ablate train exp/config.yaml --out exp` replaced the user's own config.yaml (comments and all)
    with the resolved keys, and a run into a sweep folder mixed its files with the sweep's. Both are
    refused in one line, nothing written."""
    exp = tmp_path / "exp"
    exp.mkdir()
    own = "# my recipe\nepochs: 1\n"
    (exp / "config.yaml").write_text(own)
    assert main(["train", str(exp / "config.yaml"), "--out", str(exp)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ablate train: error: --out {exp}: holds a config.yaml that is not an ablate train "
                   "run's, which the run would replace with its own; choose another folder, or move the file"]
    assert (exp / "config.yaml").read_text() == own
    assert sorted(p.name for p in exp.iterdir()) == ["config.yaml"]
    sweep = tmp_path / "runs" / "temps"
    (sweep / "trials").mkdir(parents=True)
    (sweep / "spec.yaml").write_text("name: temps\n")
    for out in (sweep, sweep / "trials" / "one"):
        assert main(["train", "--set", "epochs=1", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"ablate train: error: --out {out}: inside the sweep folder {sweep}, whose files are "
                       f"the sweep's; give a folder beside it, e.g. --out {tmp_path / 'runs' / 'one'}"]
    assert sorted(p.name for p in sweep.iterdir()) == ["spec.yaml", "trials"]
    assert not any((sweep / "trials").iterdir())


@pytest.mark.parametrize("name", ["metrics.jsonl", "checkpoint.pt"])
@pytest.mark.parametrize("resume", [False, True])
def test_a_metrics_or_checkpoint_file_without_a_runs_config_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture, name: str, resume: bool):
    """`ablate train --out exp` where exp holds the user's own metrics.jsonl (no config.yaml) rewrote it:
    its rows dropped as 'a run stopped before its first checkpoint', the run's appended. A run writes its
    config.yaml before anything else, so a metrics.jsonl or checkpoint.pt without one is no run's:
    refused in one line, nothing written, with or without --resume."""
    exp = tmp_path / "exp"
    exp.mkdir()
    own = '{"step": 1, "acc": 0.5}\n'
    (exp / name).write_text(own)
    assert main(["train", *SETS, "--out", str(exp), *(["--resume"] if resume else [])]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"ablate train: error: --out {exp}: holds a {name} that no ablate train run wrote (no config.yaml "
        "beside it, which a run writes first), which the run would overwrite; choose another folder, or "
        "move the file"]
    assert sorted(p.name for p in exp.iterdir()) == [name] and (exp / name).read_text() == own


@pytest.mark.parametrize("resume", [False, True])
def test_a_fifo_in_the_place_of_a_runs_checkpoint_is_named_not_opened(
        tmp_path: Path, capsys: pytest.CaptureFixture, resume: bool):
    """A run's folder whose checkpoint.pt is a named pipe: `--resume` said "no checkpoint.pt" and a new
    run "already holds a run; pass --resume", each sending the user to the other. It is named as what it
    is, in one line, and never opened (a read would wait for a writer for ever)."""
    import os

    from ablate.commands.train import write_config
    from trainables.config import DINOConfig

    exp = tmp_path / "exp"
    exp.mkdir()
    write_config(exp, DINOConfig())
    os.mkfifo(exp / "checkpoint.pt")
    assert main(["train", *SETS, "--out", str(exp), *(["--resume"] if resume else [])]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"ablate train: error: --out {exp}: its checkpoint.pt is not a regular file (a FIFO, socket or "
        "device), not a run's checkpoint; choose another folder, or move it"]
    assert sorted(p.name for p in exp.iterdir()) == ["checkpoint.pt", "config.yaml"]


@pytest.mark.parametrize("out", ["config.yaml", "config.yaml/run"])
def test_an_out_folder_that_is_a_file_is_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         out: str):
    (tmp_path / "config.yaml").write_text("epochs: 1\n")
    assert main(["train", "--set", "epochs=1", "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ablate train: error: --out {tmp_path / out}: {tmp_path / 'config.yaml'} is a file, "
                   "not a folder; give a folder for the run"]


def test_workers_that_never_start_leave_no_folder_behind(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch):
    """`--workers 2` whose workers fail before a result (no GPU per worker, a worker that raises at
    start) removed nothing: the --out folder it made stayed with config.yaml, ray.log and ray_train/."""
    from ray import train

    from ablate.commands.train import write_config
    from trainables.config import ConfigError, DINOConfig

    refused = ConfigError("arch='test_vit' with its DINO head (out_dim=1048576) does not fit in this "
                          "machine's memory " + "(DefaultCPUAllocator: can't allocate memory) " * 8 + "end")

    class FailsAtStart:
        def fit(self) -> None:
            error = train.TrainingFailedError(f"worker 0: {type(refused).__name__}: {refused}")
            error.worker_failures = {0: refused}  # as Ray Train's WorkerGroupError holds them
            raise error

    monkeypatch.setattr("ray.is_initialized", lambda: True)  # no Ray is started for the fake workers
    monkeypatch.setattr("ablate.admission.cluster", lambda: Cluster(2.0, 0.0, ((2.0, 0.0),), "fake:6379"))
    monkeypatch.setattr("trainables.ddp_trial.torch_trainer", lambda *args, **kwargs: FailsAtStart())
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    for sets in (SETS, [*SETS, "--set", "device=cuda"]):
        assert main(["train", *sets, "--out", str(tmp_path / "new" / "run"), "--workers", "2"]) == 2
        assert "ablate train: error: " in capsys.readouterr().err
        assert not (tmp_path / "new").exists()
    assert main(["train", *SETS, "--out", str(tmp_path / "run"), "--workers", "2"]) == 2
    # the worker's own message whole (it was Ray's last line cut at 300 characters, mid-word)
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == f"ablate train: error: ablate train --workers 2: a worker failed: {refused}"
    kept = tmp_path / "kept"  # a folder it did not make, or one holding a result, is kept
    (kept / "run").mkdir(parents=True)
    write_config(kept / "run", DINOConfig())  # a run's folder: its config.yaml, then its metrics
    (kept / "run" / "metrics.jsonl").write_text("")
    assert main(["train", *SETS, "--out", str(kept / "run"), "--workers", "2"]) == 2
    assert sorted(p.name for p in (kept / "run").iterdir()) == ["config.yaml", "metrics.jsonl", "ray.log"]


def test_more_workers_than_a_joined_ray_holds_are_refused_at_once(ray_cluster: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch):
    """`--workers N` on a Ray this process has joined (the session's: 4 CPUs, 1 GPU on two nodes) was not
    sized: Ray Train waited 60 s for workers that could never start, then failed. Its CPUs, and its GPUs
    when each worker takes one, are now asked first."""
    monkeypatch.setattr("trainables.ddp_trial.torch_trainer", lambda *a, **k: pytest.fail("workers started"))
    out = tmp_path / "run"
    assert main(["train", *SETS, "--out", str(out), "--workers", "5"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"ablate train: error: --workers 5: the Ray cluster at {ray_cluster} has 4 CPUs, and each "
        "data-parallel worker takes one; give --workers 1 to 4"]
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)  # this machine's GPUs: not the cluster's
    assert main(["train", *SETS, "--set", "device=cuda", "--out", str(out), "--workers", "2"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"ablate train: error: --workers 2: the Ray cluster at {ray_cluster} has 4 CPUs and 1 GPU, and each "
        "data-parallel worker takes one CPU and one GPU; give --workers 1 to 1 (or --set device=cpu: "
        "workers of one CPU each)")
    assert not out.exists()


@pytest.mark.parametrize(("here", "node_gpus", "on_gpu"), [(2, (0.0, 0.0), False), (0, (1.0, 1.0), True),
                                                        (0, (1.0, 0.0), False), (0, (0.5, 0.5), False)])
def test_auto_workers_take_the_gpus_of_the_ray_they_join(here: int, node_gpus: tuple[float, float],
                                                         on_gpu: bool, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch):
    """`device: auto` on a Ray this process joined decided GPU workers by this machine's GPUs: a laptop
    with a GPU joining a CPU cluster asked for GPUs the cluster lacks (refused), a CPU driver joining a
    GPU cluster trained its workers on CPU. Now the cluster's GPUs decide, one per worker, node by node."""
    started = []

    class Started:
        def fit(self) -> None:
            raise KeyboardInterrupt  # stops the command once the workers' resources are known

    def trainer(*args: object, gpu: float, **kwargs: object) -> Started:
        started.append(gpu)
        return Started()

    monkeypatch.setattr("ray.is_initialized", lambda: True)  # no Ray is started for the fake workers
    nodes = tuple((2.0, g) for g in node_gpus)  # two nodes of 2 CPUs; a worker takes a whole GPU of one
    monkeypatch.setattr("ablate.admission.cluster", lambda: Cluster(4.0, sum(node_gpus), nodes, "fake:6379"))
    monkeypatch.setattr("trainables.ddp_trial.torch_trainer", trainer)
    monkeypatch.setattr("torch.cuda.device_count", lambda: here)
    main(["train", *SETS, "--set", "device=auto", "--out", str(tmp_path / "run"), "--workers", "2"])
    assert started == [1.0 if on_gpu else 0.0]
    err = capsys.readouterr().err
    assert ("GPUs for 1 of 2 workers: training on CPU (gloo)" in err) == (node_gpus == (1.0, 0.0)), err


RAY_DEATH = ("ActorDiedError: The actor died because its worker process has died. Worker exit type: "
             "SYSTEM_ERROR. (1) The process is killed by SIGKILL by OOM killer due to memory usage. (2) ray "
             "stop --force is called. (3) The worker crashed due to SIGSEGV or other unexpected errors. Set "
             "max_restarts and max_task_retries to enable retry when the task crashes due to OOM.")


def test_a_long_worker_error_is_cut_at_a_word_and_its_whole_text_named(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """A worker error that is not the user's (Ray's text) was cut at 300 characters mid-word ("... Set
    max_restarts and max_task_"), its rest nowhere. Now cut after a whole word, marked "…", and the whole
    text is in ray.log, named; a run folder that a failed start removes names Ray's own logs instead."""
    from ray import train

    from ablate.commands.train import write_config
    from ablate.session import session_logs  # this session's Ray (the tests'), if one runs
    from trainables.config import DINOConfig

    class Dies:
        def fit(self) -> None:
            raise train.TrainingFailedError(f"Training failed due to worker errors:\n{RAY_DEATH}")

    monkeypatch.setattr("ray.is_initialized", lambda: True)  # no Ray is started for the fake workers
    monkeypatch.setattr("ablate.admission.cluster", lambda: Cluster(2.0, 0.0, ((2.0, 0.0),), "fake:6379"))
    monkeypatch.setattr("trainables.ddp_trial.torch_trainer", lambda *args, **kwargs: Dies())
    out = tmp_path / "run"  # a run with a result: kept, and its ray.log with it
    out.mkdir()
    write_config(out, DINOConfig())  # a run's folder: its config.yaml, then its metrics
    (out / "metrics.jsonl").write_text("")
    assert main(["train", *SETS, "--out", str(out), "--workers", "2"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    prefix = "ablate train: error: ablate train --workers 2: a worker failed: "
    assert last.startswith(prefix) and last.endswith(f"… (the whole error: {out / 'ray.log'})"), last
    shown = last.removeprefix(prefix).split("… (the whole error:")[0]
    assert RAY_DEATH.startswith(shown) and RAY_DEATH[len(shown)] == " " and len(shown) < 300
    assert shown.endswith("other unexpected errors. Set max_restarts and")  # it was "... and max_task_"
    assert RAY_DEATH in (out / "ray.log").read_text()
    assert main(["train", *SETS, "--out", str(tmp_path / "new"), "--workers", "2"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"… (the whole error: {session_logs()})")
    assert not (tmp_path / "new").exists()


def test_workers_whose_step_is_larger_than_the_data_are_refused_before_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """A bundled dataset's size was checked only by each worker, after Ray and its workers started."""
    monkeypatch.setattr("ablate.commands.train.train_with_workers", lambda *args, **kwargs: pytest.fail())
    monkeypatch.setattr("os.cpu_count", lambda: 4)  # 3 workers fit: the step is what is refused
    out = str(tmp_path / "new")
    assert main(["train", *SETS, "--set", "batch_size=60", "--out", out, "--workers", "3"]) == 2
    assert "batch_size=60 x grad_accum_steps=1 x 3 workers: larger than the" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert main(["train", *SETS, "--out", out, "--workers", "200000000000000"]) == 2  # Ray takes 1e14 at most
    assert "--workers 200000000000000: expected a number of data-parallel workers from 1 to 100000000000000" \
        in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("data", [[], ["--set", "dataset=cifar10", "--set", "data_path=no/such/folder"]])
def test_more_workers_than_cpus_are_refused_before_the_data_or_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, data: list[str]):
    """`--workers 100` on 2 CPUs: the embedded dataset started a local Ray declaring 100 CPUs and its
    workers ran out of memory minutes later; CIFAR was stopped by its data check, after reading the
    folder. Now one check of the machine, for every dataset, before either."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("ray.is_initialized", lambda: False)  # a local Ray would be started
    monkeypatch.setattr("ablate.commands.train.check_inputs", lambda *a, **k: pytest.fail("data read"))
    monkeypatch.setattr("ablate.commands.train.train_with_workers", lambda *a, **k: pytest.fail("Ray"))
    out = tmp_path / "run"
    assert main(["train", *data, "--out", str(out), "--workers", "100"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ablate train: error: --workers 100: this machine has 2 CPUs, and each data-parallel "
                   "worker takes one; give --workers 1 to 2"], err
    assert not out.exists()
    monkeypatch.setattr("ablate.commands.train.check_inputs", lambda *a, **k: None)
    monkeypatch.setattr("ablate.commands.train.train_with_workers", lambda *a, **k: 0)
    assert main(["train", *data, "--out", str(out), "--workers", "2"]) == 0  # as many as the CPUs: let in


@pytest.mark.parametrize(("error", "said"), [
    (RuntimeError("DataLoader worker (pid 24405) is killed by signal: Killed. "),  # torch's SIGCHLD handler
     "a data-loading worker (DataLoader, pid 24405) was killed by SIGKILL; not sent by ablate"),
    ("died", "a data-loading worker (DataLoader, pid 3426) was killed by SIGKILL; not sent by ablate"),
    ("bad", "1.png: no longer a readable image (image file is truncated); it decoded when"),
])
def test_a_data_loading_failure_stops_in_one_line(tmp_path: Path, error: Exception | str, said: str):
    """A killed DataLoader worker or an image file that changed as the run read it ended `ablate train`
    in a traceback ending in torch's words, which named neither the signal nor the file. "died": the
    ``WorkerDied`` a ``Loader`` raises as it waits for a batch, the usual case (a worker that the
    kernel's OOM killer killed, measured in a memory cgroup), still ended in a traceback."""
    import io
    import types

    import torch

    from ablate.commands.train import run_epochs
    from tests.helpers import write_image_folder
    from trainables.config import DINOConfig
    from trainables.data_workers import bad_image, died

    png = write_image_folder(tmp_path / "data", n=2) / "train" / "a" / "1.png"
    png.write_bytes(png.read_bytes()[:60])  # truncated after the check before training

    def run():
        yield {"epoch": 0, "knn_top1": 30.0, "knn_top5": 70.0}
        if error == "died":
            raise died(3426, -9)
        raise bad_image(str(png), OSError("image file is truncated")) if error == "bad" else error

    trainer = types.SimpleNamespace(cfg=DINOConfig(**TINY_TRAINER), epoch=0, baseline_done=False, run=run,
                                    device=torch.device("cpu"))
    log = io.StringIO()
    assert run_epochs(trainer, tmp_path, log) == 1  # type: ignore[arg-type]
    last = log.getvalue().splitlines()[-1]
    assert last.startswith("ablate train: stopped: ") and said in last
    # in epoch 1: no checkpoint.pt was written, and the line named one
    assert last.endswith("; it stopped before its first checkpoint (nothing to resume: the same command "
                         "starts it over)")
    (tmp_path / "checkpoint.pt").write_bytes(b"an epoch")  # one written before (a resumed run's)
    assert run_epochs(trainer, tmp_path, log) == 1  # type: ignore[arg-type]
    assert log.getvalue().splitlines()[-1].endswith("checkpoint.pt holds the last finished epoch")


@pytest.mark.parametrize("config", [False, True])
def test_a_bad_image_found_before_training_names_the_data_path_key(
        tmp_path: Path, capsys: pytest.CaptureFixture, config: bool):
    """The check before training read "ablate train: error: --set /data/train/a/bad.png: not a readable
    image ..." (the --set prefix is meant for a key=value). It names data_path, as a missing folder's
    refusal does and as `ablate run` words it for a spec ("spec.yaml: trainer: data_path=...: ...")."""
    data = write_image_folder(tmp_path / "data", n=4)
    (data / "train" / "a" / "bad.png").write_text("not an image")
    keys = {"dataset": "imagefolder", "data_path": str(data)}
    args = [f"--set={k}={v}" for k, v in keys.items()]
    if config:
        (tmp_path / "c.yaml").write_text(json.dumps(keys))
        args = [str(tmp_path / "c.yaml")]
    out = tmp_path / "run"
    assert main(["train", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    where = f"{tmp_path / 'c.yaml'}: " if config else "--set "
    assert err.startswith(f"ablate train: error: {where}data_path='{data}': train/a/bad.png: not a readable "
                          "image (cannot identify image file"), err
    assert not out.exists()


DIED_9 = "a data-loading worker (DataLoader, pid 24406) was killed by SIGKILL; not sent by ablate"
KERNEL_SAYS = "Out of memory: Killed process {} (python)"


@pytest.mark.parametrize(("signal_", "rose", "log", "said"), [
    (-9, False, None, f"{DIED_9}: a kill -9, or the kernel's OOM killer"),  # no kill counted: either
    (-9, True, None, "out of host memory, likely: its data-loading worker (pid 24406) died unexpectedly as "
                     "the kernel's OOM killer killed a process in this run's memory cgroup (its oom_kill "
                     "count rose); lower batch_size or num_workers"),
    (-9, True, KERNEL_SAYS.format(24406),
     "out of host memory: its data-loading worker (pid 24406) was killed by the kernel's OOM killer (the "
     "kernel log names it); lower batch_size or num_workers"),
    (-9, True, KERNEL_SAYS.format(9999), DIED_9),  # the kernel killed another process
    (-11, True, None,  # not a signal of the OOM killer's
     "a data-loading worker (DataLoader, pid 24406) was killed by SIGSEGV; it stopped before its first"),
])
def test_a_worker_the_kernels_oom_killer_killed_is_said_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signal_: int, rose: bool, log: str | None,
        said: str):
    """A SIGKILLed data-loading worker read "not sent by ablate: a kill -9, or the kernel's OOM killer" even
    when the kernel counted an OOM kill in this run's memory cgroup as it ran, which a sweep's driver calls
    `oom` (ablate.records.kernel_kill). `ablate train` now words it as the sweep does: a fact where the
    kernel's log names the pid, "likely" where it cannot be read."""
    import io
    import types

    from ablate import oom_kills
    from ablate.commands.train import run_epochs
    from trainables.config import DINOConfig

    counts = iter([3, 4 if rose else 3])  # the cgroup's oom_kill as the run starts, and as the worker died
    monkeypatch.setattr(oom_kills, "read_count", lambda: oom_kills.Count(oom_kills.CGROUP, next(counts)))
    kmsg = tmp_path / "kmsg"
    if log:
        kmsg.write_text(f"6,1,2,-;{log}\n")
    monkeypatch.setattr(oom_kills, "KERNEL_LOG", kmsg)  # absent: unreadable (dmesg_restrict)

    def run():
        yield {"epoch": 0, "knn_top1": 30.0, "knn_top5": 70.0}
        raise died(24406, signal_)

    trainer = types.SimpleNamespace(cfg=DINOConfig(**TINY_TRAINER), epoch=0, baseline_done=False, run=run,
                                    device=torch.device("cpu"))
    out = io.StringIO()
    assert run_epochs(trainer, tmp_path, out) == 1  # type: ignore[arg-type]
    last = out.getvalue().splitlines()[-1]
    assert last.startswith(f"ablate train: stopped: {said}"), last
    assert "trials" not in last  # the run's advice, not a sweep's (search.max_concurrent_trials)
