"""A trial's own decisions without a cluster (trainables/trial.py, trainables/tune_trial.py): restoring
from the checkpoints Ray kept (a damaged latest one falls back, none restarts), the device of a
zero-GPU trial, the OOM outcome, the per-epoch verdicts (kNN carried forward when eval_every > 1, one
collapse rule)."""

from __future__ import annotations

import errno
import os
import shutil
import types
from pathlib import Path

import pytest
import ray
import torch
from ray import tune

from tests.helpers import TINY_TRAINER
from trainables import trial as trial_module
from trainables import tune_trial
from trainables.checkpoint import DamagedFileError
from trainables.config import DINOConfig
from trainables.dino.trainer import CHECKPOINT_NAME, DINOTrainer
from trainables.stop_rules import CollapseMonitor, StopRules
from trainables.trial import (
    DeviceClock,
    KnnCarry,
    checkpoints_in,
    end_verdict,
    restore_trial,
    retire_checkpoints,
)


@pytest.fixture(scope="module")
def trial_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trial folder as Ray leaves it with num_to_keep=2: checkpoints after epochs 1 and 2."""
    trial = tmp_path_factory.mktemp("trial")
    trainer = DINOTrainer(DINOConfig(**TINY_TRAINER))
    for metrics in trainer.run():
        if metrics["epoch"]:
            folder = trial / f"checkpoint_{metrics['epoch'] - 1:06d}"
            trainer.save_checkpoint(folder / CHECKPOINT_NAME)
            torch.save({"streak": metrics["epoch"], "kind": None}, folder / "monitor.pt")
    return trial


def restored(trial: Path, *damaged: str, file_name: str = CHECKPOINT_NAME
             ) -> tuple[DINOTrainer, CollapseMonitor, str]:
    for name in damaged:
        file = trial / name / file_name
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])  # a crash mid-write
    trainer, monitor = DINOTrainer(DINOConfig(**TINY_TRAINER)), CollapseMonitor(StopRules())
    note, _ = restore_trial(trainer, monitor, checkpoints_in(trial), KnnCarry())
    return trainer, monitor, note


def test_intact_latest_checkpoint_restores_silently(trial_dir: Path, tmp_path: Path):
    trainer, monitor, note = restored(_copy(trial_dir, tmp_path))
    assert (trainer.epoch, monitor.streak, note) == (2, 2, "")


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(trial_dir: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture):
    trainer, monitor, note = restored(_copy(trial_dir, tmp_path), "checkpoint_000001")
    assert (trainer.epoch, monitor.streak) == (1, 1)
    assert "checkpoint_000001/checkpoint.pt: not a readable PyTorch checkpoint" in note
    assert "continued from checkpoint_000000 (epoch 1)" in note
    assert note in capsys.readouterr().err


@pytest.mark.parametrize("file_name", [CHECKPOINT_NAME, "monitor.pt"])
def test_no_usable_checkpoint_restarts_from_epoch_0(trial_dir: Path, tmp_path: Path, file_name: str):
    trainer, monitor, note = restored(_copy(trial_dir, tmp_path), "checkpoint_000001", "checkpoint_000000",
                                      file_name=file_name)
    assert (trainer.epoch, trainer.baseline_done, monitor.streak) == (0, False, 0)
    assert "no usable checkpoint is left, so the trial restarts from epoch 0" in note
    assert [m["epoch"] for m in trainer.run()] == [0, 1, 2]


def test_a_continued_trial_keeps_two_checkpoints_across_its_runs(tmp_path: Path):
    """ablate resume continues a trial in a new folder; its earlier folders give up their checkpoints
    as the new one fills, newest kept last, so a sweep resumed N times does not hold N + 2 per trial.
    Its current folder is Ray's to prune while it runs; once it never runs again, one is kept."""
    def folder(name: str, *epochs: int) -> Path:
        for e in epochs:
            (tmp_path / name / f"checkpoint_{e:06d}").mkdir(parents=True)
        return tmp_path / name

    first, second, now = folder("trial_a", 0, 1), folder("trial_a_b", 2), folder("trial_a_c")
    runs = [now, second, first]  # newest run first
    assert retire_checkpoints(runs, 2, running=True) == [first / "checkpoint_000000"]
    assert [c.name for c in checkpoints_in(first)] == ["checkpoint_000001"] and checkpoints_in(second)
    folder("trial_a_c", 3)
    assert retire_checkpoints(runs, 2, running=True) == [first / "checkpoint_000001"]
    assert [c.name for c in checkpoints_in(second)] == ["checkpoint_000002"] and not checkpoints_in(first)
    folder("trial_a_c", 4, 5)  # Ray writes the next before it deletes the oldest: not ours to delete
    assert retire_checkpoints(runs, 2, running=True) == [second / "checkpoint_000002"]
    assert not checkpoints_in(second) and len(checkpoints_in(now)) == 3
    assert second.is_dir() and first.is_dir()  # the folders (Ray's files in them) stay
    assert retire_checkpoints(runs, 2, running=True) == []
    finished = retire_checkpoints(runs, 1, running=False)
    assert finished == [now / "checkpoint_000004", now / "checkpoint_000003"]
    assert [c.name for c in checkpoints_in(now)] == ["checkpoint_000005"]


def _copy(trial: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(trial, tmp_path / "trial"))



class OutOfMemoryTrainer:
    """Stands in for DINOTrainer: records its config, runs out of memory in the first epoch."""

    configs: list = []

    def __init__(self, cfg):
        self.configs.append(cfg)
        self.cfg, self.epoch, self.device = cfg, 0, torch.device("cpu")

    def run(self):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        yield  # a generator, like the real run()


def test_zero_gpu_trial_runs_on_cpu_and_oom_ends_the_trial(monkeypatch):
    reports = []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    context = types.SimpleNamespace(get_assigned_resources=lambda: {"CPU": 1.0})
    monkeypatch.setattr(ray, "get_runtime_context", lambda: context)
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(tune, "report", lambda metrics, checkpoint=None: reports.append(metrics))
    monkeypatch.setattr(tune_trial, "placement", lambda: {})
    monkeypatch.setattr(tune_trial, "DINOTrainer", OutOfMemoryTrainer)
    tune_trial.dino_trainable({**TINY_TRAINER, "device": "auto"})
    assert OutOfMemoryTrainer.configs[-1].device == "cpu"
    assert [r["trial_outcome"] for r in reports] == ["oom"]
    assert "out of memory: peak" in reports[0]["stop_reason"] and "20.00 GiB" in reports[0]["stop_reason"]

class HostOutOfMemoryTrainer(OutOfMemoryTrainer):
    """The same, where the host cannot give a tensor its memory (torch raises a plain RuntimeError)."""

    def run(self):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 274877906944 bytes. Error code 12")
        yield


def tune_trial_with(monkeypatch, trainer) -> list[dict]:
    """The rows ``dino_trainable`` reports on one CPU of a Ray node, with ``trainer`` for DINOTrainer."""
    reports = []
    context = types.SimpleNamespace(get_assigned_resources=lambda: {"CPU": 1.0})
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    monkeypatch.setattr(ray, "get_runtime_context", lambda: context)
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(tune, "report", lambda metrics, checkpoint=None: reports.append(metrics))
    monkeypatch.setattr(tune_trial, "placement", lambda: {})
    monkeypatch.setattr(tune_trial, "DINOTrainer", trainer)
    tune_trial.dino_trainable(dict(TINY_TRAINER))
    return reports


def test_a_trial_the_host_cannot_hold_ends_oom_at_once(monkeypatch):
    """Ray retried it twice (each failing the same way) and recorded a traceback as `errored`."""
    reports = tune_trial_with(monkeypatch, HostOutOfMemoryTrainer)
    assert [r["trial_outcome"] for r in reports] == ["oom"]
    assert reports[0]["stop_reason"].startswith("out of host memory (DefaultCPUAllocator: can't allocate "
                                                "memory: you tried to allocate 274877906944 bytes")
    assert "; lower batch_size or num_workers, or run fewer trials at once (search.max_concurrent_trials)" \
        in reports[0]["stop_reason"]


class PythonOutOfMemoryTrainer(OutOfMemoryTrainer):
    """The same, where NumPy (or Python itself) cannot allocate: a MemoryError, no RuntimeError."""

    def run(self):
        raise MemoryError("Unable to allocate 32.0 TiB for an array with shape (35184372088832,) and data "
                          "type uint8")
        yield


class BuildOutOfMemoryTrainer:
    """Stands in for DINOTrainer: its in-memory dataset does not fit on its GPU share as it is built."""

    def __init__(self, cfg):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.90 GiB")


@pytest.mark.parametrize(("trainer", "reason"), [
    (PythonOutOfMemoryTrainer, "out of host memory (MemoryError: Unable to allocate 32.0 TiB for an array"),
    (BuildOutOfMemoryTrainer, "out of memory: peak 0.00 GB allocated on cpu (CUDA out of memory. Tried to "
                              "allocate 2.90 GiB)"),
])
def test_every_allocation_that_fails_ends_the_trial_oom_at_once(monkeypatch, trainer, reason):
    """A MemoryError in the epochs, and an OOM while the trainer is built (before any epoch: its data and
    models go to the device), were not caught: Ray retried the trial twice, each failing the same way, and
    it ended `errored` with "MemoryError" or a traceback's last line, and no advice."""
    reports = tune_trial_with(monkeypatch, trainer)
    assert [r["trial_outcome"] for r in reports] == ["oom"]
    assert reports[0]["stop_reason"].startswith(reason), reports[0]["stop_reason"]
    if trainer is BuildOutOfMemoryTrainer:  # no epoch: a resumed trial's earlier epochs stay as they are
        assert "epoch" not in reports[0] and "while building the trainer" in reports[0]["stop_reason"]


LN_K = 3.4657  # ln 32


def epoch(e: int, entropy: float, kl: float = 0.0) -> dict:
    return {"epoch": e, "teacher_entropy": entropy, "kl_teacher_student": kl, "ln_out_dim": LN_K}


def test_every_result_carries_the_knn_and_says_whether_it_was_measured(tmp_path: Path) -> None:
    carry = KnnCarry()
    first = {"epoch": 0, "knn_top1": 40.0, "knn_top5": 80.0}
    carry.apply(first)
    skipped = {"epoch": 1, "loss": 1.0}
    carry.apply(skipped)
    assert (skipped["knn_top1"], skipped["knn_top5"], skipped["knn_evaluated"]) == (40.0, 80.0, False)
    assert first["knn_evaluated"] is True
    carry.save(tmp_path)
    restored = KnnCarry()
    restored.load(tmp_path)  # a trial restored from its checkpoint carries the same values
    later = {"epoch": 3}
    restored.apply(later)
    assert later["knn_top1"] == 40.0 and later["knn_evaluated"] is False


def test_collapse_at_the_last_epoch_for_fewer_than_patience_epochs_is_flagged() -> None:
    monitor = CollapseMonitor(StopRules(patience=3))
    for e, h in ((1, 2.0), (2, LN_K), (3, LN_K)):  # uniform for the last 2 epochs only
        reason = monitor.update(epoch(e, h))
    assert reason == ""
    metrics = {**epoch(3, LN_K), "collapse_flag": monitor.flag(3)}
    verdict = end_verdict(metrics, reason, epochs=3, monitor=monitor)
    assert verdict["trial_outcome"] == "flagged"
    assert "collapse condition held at its last epoch 3 for 2 epoch(s), fewer than patience 3" in \
        verdict["stop_reason"]
    healthy = CollapseMonitor(StopRules(patience=3))
    healthy.update(epoch(3, 2.0))
    assert end_verdict({**epoch(3, 2.0), "collapse_flag": healthy.flag(3)}, "", 3, healthy) == {
        "trial_outcome": "completed"}
    assert end_verdict(epoch(2, 2.0), "", 3, healthy) == {}  # mid-run: still running
    assert end_verdict(epoch(2, LN_K), "collapsed (uniform): ...", 3, monitor)["trial_outcome"] == "collapsed"


class CollapsingTrainer(DINOTrainer):
    """A real trainer whose teacher reads as collapsed (uniform) from epoch 1 on, or at ``collapsed_at``."""

    collapsed_at: frozenset[int] | None = None

    def run(self):
        for metrics in super().run():
            if metrics["epoch"] in self.collapsed_at if self.collapsed_at else metrics["epoch"] >= 1:
                metrics = {**metrics, "teacher_entropy": metrics["ln_out_dim"], "kl_teacher_student": 0.0}
            yield metrics


def test_the_epoch_the_collapse_rule_stops_a_trial_carries_its_reason_as_the_flag() -> None:
    """Stopped as collapsed at epoch 2 (patience 2): that epoch's collapse_flag (epochs.parquet) read
    'flagged as collapsed (uniform): the collapse condition held at its last epoch 2 for 2 epoch(s),
    fewer than patience 2', a flag the rule had not given, next to the stop reason it had."""
    cfg = DINOConfig(**{**TINY_TRAINER, "epochs": 3})
    reports: list[dict] = []
    trial_module.run_trial(CollapsingTrainer(cfg), {**cfg.model_dump(mode="json"), "_stop": {"patience": 2}},
                           DeviceClock(), [], lambda metrics, write: reports.append(metrics))
    assert [(r["epoch"], r["trial_outcome"], r["collapsed"]) for r in reports] == [
        (0, "running", False), (1, "running", True), (2, "collapsed", True)]
    assert reports[1]["collapse_flag"] == ("collapse condition (uniform) holds at epoch 1, 1 epoch(s) in a "
                                           "row (patience 2)")
    stop = reports[-1]
    assert stop["stop_reason"].startswith("collapsed (uniform): teacher entropy 3.466 at ln(out_dim)=3.466")
    assert stop["stop_reason"].endswith("for 2 epochs (until epoch 2)")
    assert stop["collapse_flag"] == stop["stop_reason"]



def test_a_middle_epochs_collapse_flag_is_true_of_that_epoch_and_a_short_streak_at_the_end_flags() -> None:
    """Uniform at epochs 1 and 3 of 3 (patience 2): epoch 1's collapse_flag (epochs.parquet) read
    'flagged as collapsed (uniform): the collapse condition held at its last epoch 1 for 1 epoch(s),
    fewer than patience 2' for a trial that recovered at epoch 2 and ran to epoch 3. Each epoch's text
    is now true of that epoch; the trial's reason, its last epoch's, still says it was flagged."""
    cfg = DINOConfig(**{**TINY_TRAINER, "epochs": 3})
    trainer = CollapsingTrainer(cfg)
    trainer.collapsed_at = frozenset({1, 3})
    reports: list[dict] = []
    trial_module.run_trial(trainer, {**cfg.model_dump(mode="json"), "_stop": {"patience": 2}},
                           DeviceClock(), [], lambda metrics, write: reports.append(metrics))
    assert [(r["epoch"], r["trial_outcome"], r["collapsed"]) for r in reports] == [
        (0, "running", False), (1, "running", True), (2, "running", False), (3, "flagged", True)]
    assert [r["collapse_flag"] for r in reports] == [
        "", "collapse condition (uniform) holds at epoch 1, 1 epoch(s) in a row (patience 2)", "",
        "collapse condition (uniform) holds at epoch 3, 1 epoch(s) in a row (patience 2)"]
    assert [r["stop_reason"] for r in reports] == ["", "", "", (
        "flagged as collapsed (uniform): the collapse condition held at its last epoch 3 for 1 epoch(s), "
        "fewer than patience 2")]

# --- the last epoch is evaluated where ASHA may stop the trial; a full disk ends it -------------------
def test_asha_may_stop_at_its_rungs_and_after_a_restore_past_them() -> None:
    fresh = trial_module.AshaRungs([1, 2, 4])
    assert [e for e in range(9) if fresh.may_stop(e)] == [1, 2, 4]
    # Restored from epoch 2 by `ablate resume`: ASHA's bookkeeping starts empty and judges the
    # trial at one forgotten rung per result (epochs 3 and 4), then at rung 4 (epoch 5).
    resumed = trial_module.AshaRungs([1, 2, 4])
    assert [e for e in range(3, 9) if resumed.may_stop(e)] == [3, 4, 5]


def test_a_trial_restored_past_a_rung_evaluates_where_asha_judges_it(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    """Restored from epoch 2 (past rungs 1 and 2) with eval_every 4: the epoch the checkpoint holds is
    reported again first (the driver that stopped may not have recorded it) and evaluated, and so is
    epoch 3, since the resumed ASHA judges the forgotten rungs at these results."""
    cfg = DINOConfig(**{**TINY_TRAINER, "epochs": 5, "eval_every": 4})
    before, carry = DINOTrainer(cfg), KnnCarry()
    for metrics in before.run():  # the trial before `ablate resume`: epochs 0-2
        carry.apply(metrics)
        if metrics["epoch"] == 2:
            break
    trial_module.save_trial(tmp_path, before, CollapseMonitor(StopRules()), carry,
                            row={**metrics, "device_seconds": 0.0})
    reports: list[dict] = []
    config = {**cfg.model_dump(mode="json"), "_eval_at": [1, 2, 4]}
    trial_module.run_trial(DINOTrainer(cfg), config, DeviceClock(), [tmp_path],
                           lambda metrics, write: reports.append(metrics))
    assert [(r["epoch"], r["knn_evaluated"]) for r in reports] == [(2, True), (3, True), (4, True), (5, True)]
    assert all(r["knn_eval_s"] > 0 for r in reports)  # the seconds each evaluation took, for the profile
    assert reports[0]["replayed"] and reports[0]["restored_from_epoch"] == 2 and "replayed" not in reports[1]


def test_a_trial_asha_stopped_ends_at_the_epoch_it_judged_where_report_does_not_wait() -> None:
    """A data-parallel trial's workers report and train on: they ask ASHA's decision (``stopped``) after
    each epoch it judges, and only then, and end at the first it stopped, with nothing trained past it."""
    cfg = DINOConfig(**{**TINY_TRAINER, "epochs": 5})
    reports: list[dict] = []
    asked: list[int] = []

    def stopped(epoch: int) -> bool:
        asked.append(epoch)
        return epoch == 2

    trainer = DINOTrainer(cfg)
    trial_module.run_trial(trainer, {**cfg.model_dump(mode="json"), "_eval_at": [1, 2, 4]}, DeviceClock(), [],
                           lambda metrics, write: reports.append(metrics), stopped=stopped)
    assert asked == [1, 2] and [r["epoch"] for r in reports] == [0, 1, 2] and trainer.epoch == 2
    assert reports[-1]["knn_evaluated"]  # the epoch it ends with is measured
    # Its last epoch is a rung too (ASHA's max_t), where Tune's epoch limit decides, not ASHA: nothing
    # is left to stop, and the workers once waited there for a word that never came
    asked.clear()
    cfg = DINOConfig(**{**TINY_TRAINER, "epochs": 4})
    config = {**cfg.model_dump(mode="json"), "_eval_at": [1, 2, 4]}
    trial_module.run_trial(DINOTrainer(cfg), config, DeviceClock(), [], lambda metrics, write: None,
                           stopped=lambda epoch: bool(asked.append(epoch)))
    assert asked == [1, 2]


def test_a_checkpoint_that_cannot_be_written_ends_the_trial_as_storage_full(monkeypatch: pytest.MonkeyPatch):
    import errno

    reports: list[dict] = []

    def disk_full_at_epoch_2(metrics, write):  # as Ray's copy into the storage fails: no file named
        if write is not None and metrics["epoch"] == 2:
            raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28]", "runs/t")
        reports.append(metrics)

    config = {**TINY_TRAINER, "epochs": 3}
    trial_module.run_trial(DINOTrainer(DINOConfig(**config)), config, DeviceClock(), [],
                           disk_full_at_epoch_2)
    assert [r["epoch"] for r in reports] == [0, 1, 2]  # epoch 3 never ran, no retry
    assert reports[-1]["trial_outcome"] == "storage_full"
    assert reports[-1]["stop_reason"] == ("runs/t: cannot write the checkpoint of epoch 2 "
                                          "(ENOSPC: No space left on device)")


@pytest.mark.parametrize("damage", [b"{not json", b"[1, 2]", b"\xff\xfe binary"])
def test_a_damaged_knn_carry_file_is_named_and_the_checkpoint_before_it_is_used(
        trial_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, damage: bytes):
    """A knn_carry.json that does not parse names its file; the trial continues from the checkpoint
    before it (instead of a bare JSONDecodeError on every retry and resume)."""
    trial = _copy(trial_dir, tmp_path)
    for folder in checkpoints_in(trial):
        KnnCarry().save(folder)
    (trial / "checkpoint_000001" / KnnCarry.FILE).write_bytes(damage)
    trainer, monitor = DINOTrainer(DINOConfig(**TINY_TRAINER)), CollapseMonitor(StopRules())
    note, restored = restore_trial(trainer, monitor, checkpoints_in(trial), KnnCarry())
    assert restored and trainer.epoch == 1
    assert f"{trial / 'checkpoint_000001' / KnnCarry.FILE}: " in note
    assert "continued from checkpoint_000000" in note
    with pytest.raises(DamagedFileError, match="knn_carry.json"):
        KnnCarry().load(trial / "checkpoint_000001")


def test_a_trial_of_an_earlier_run_continues_from_its_folder(trial_dir: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    """`ablate resume` names the folders of the trial's earlier runs (``_resume_dirs``, newest run
    first: a run stopped before its first checkpoint leaves the one before it); a retry in this run
    restores from its own folder, all of it: a checkpoint newer than Tune's (its result lost on the
    way to the driver) comes first."""
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    empty = tmp_path / "interrupted-run"  # stopped before it wrote a checkpoint
    empty.mkdir()
    assert tune_trial.restore_sources({"_resume_dirs": [str(empty), str(trial_dir)]}) == [
        trial_dir / "checkpoint_000001", trial_dir / "checkpoint_000000"]
    assert tune_trial.restore_sources({}) == []
    latest = tune.Checkpoint.from_directory(str(trial_dir / "checkpoint_000000"))
    monkeypatch.setattr(tune, "get_checkpoint", lambda: latest)
    assert tune_trial.restore_sources({"_resume_dirs": ["elsewhere"]}) == [
        trial_dir / "checkpoint_000001", trial_dir / "checkpoint_000000"]
    # the newer one is Tune's to register again (its replay reports it); an earlier run's never is
    sources = tune_trial.restore_sources({})
    assert tune_trial.unregistered(sources, {}) == trial_dir / "checkpoint_000001"
    monkeypatch.setattr(tune, "get_checkpoint", lambda: tune.Checkpoint.from_directory(str(sources[0])))
    assert tune_trial.unregistered(sources, {}) is None
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    resumed = {"_resume_dirs": [str(trial_dir)], "_storage_dir": str(tmp_path)}
    context = types.SimpleNamespace(get_trial_dir=lambda: "/tmp/ray/working_dirs/trial_new")
    monkeypatch.setattr(tune, "get_context", lambda: context)
    assert tune_trial.unregistered(tune_trial.restore_sources(resumed), resumed) is None


def test_a_trial_restored_from_its_last_epoch_reports_it_again_and_ends(tmp_path: Path) -> None:
    """The driver stopped as the trial's last result arrived: its checkpoint holds the end. Resumed, the
    trial reports that epoch again (the record may lack it) and ends, without training on."""
    cfg = DINOConfig(**{**TINY_TRAINER, "epochs": 2})
    before, carry = DINOTrainer(cfg), KnnCarry()
    for metrics in before.run():
        carry.apply(metrics)
    final = {**metrics, "device_seconds": 1.5, "trial_outcome": "completed"}
    trial_module.save_trial(tmp_path, before, CollapseMonitor(StopRules()), carry, row=final)
    reports: list[dict] = []
    trainer = DINOTrainer(cfg)
    trial_module.run_trial(trainer, cfg.model_dump(mode="json"), DeviceClock(), [tmp_path],
                           lambda m, write: reports.append(m))
    assert [(r["epoch"], r["trial_outcome"], r["replayed"]) for r in reports] == [(2, "completed", True)]
    assert reports[0]["knn_top1"] == final["knn_top1"] and trainer.epoch == 2


def test_an_epoch_report_of_another_epoch_than_its_checkpoint_does_not_end_the_trial(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An epoch.json claiming the last epoch `completed` beside the checkpoint of an earlier one is
    damaged: the trial continues from the checkpoint before it and trains to its last epoch."""
    cfg = DINOConfig(**{**TINY_TRAINER, "epochs": 3})
    before, carry, monitor = DINOTrainer(cfg), KnnCarry(), CollapseMonitor(StopRules())
    for metrics in before.run():
        carry.apply(metrics)
        if metrics["epoch"] in (1, 2):
            row = {**metrics, "device_seconds": 1.0, "trial_outcome": "running"}
            trial_module.save_trial(tmp_path / f"checkpoint_{metrics['epoch'] - 1:06d}", before, monitor,
                                    carry, row=row)
        if metrics["epoch"] == 2:
            break
    crafted = tmp_path / "checkpoint_000001" / "epoch.json"
    crafted.write_text('{"epoch": 3, "trial_outcome": "completed", "knn_top1": 99.0}')
    reports: list[dict] = []
    trial_module.run_trial(DINOTrainer(cfg), cfg.model_dump(mode="json"), DeviceClock(),
                           checkpoints_in(tmp_path), lambda m, write: reports.append(m))
    assert [(r["epoch"], r["trial_outcome"]) for r in reports] == [
        (1, "running"), (2, "running"), (3, "completed")]
    assert reports[0]["replayed"] and reports[0]["restored_from_epoch"] == 1
    assert f"{crafted}: reports epoch 3, but the checkpoint holds epoch 2" in reports[-1]["restore_note"]
    assert "continued from checkpoint_000000 (epoch 1)" in capsys.readouterr().err


@pytest.mark.parametrize("epochs, fails_at", [(1, 0), (2, 2)])
def test_an_oom_in_the_knn_evaluation_ends_the_trial_at_the_epoch_it_evaluated(
        monkeypatch: pytest.MonkeyPatch, epochs: int, fails_at: int) -> None:
    """The untrained (epoch 0) or the last epoch's kNN runs out of memory after the epoch trained: the
    trial ends oom at that epoch, saying where. It was recorded at an epoch past its schedule (3 of 2:
    every failure counted as one in the next epoch's training)."""
    cfg = DINOConfig(**{**TINY_TRAINER, "epochs": epochs})
    trainer = DINOTrainer(cfg)
    real = trainer.evaluate

    def evaluate() -> tuple[float, float]:
        if trainer.epoch == fails_at:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        return real()

    monkeypatch.setattr(trainer, "evaluate", evaluate)
    monkeypatch.setattr(trainer, "untrained_knn", evaluate)
    reports: list[dict] = []
    trial_module.run_trial(trainer, cfg.model_dump(mode="json"), DeviceClock(), [],
                           lambda m, write: reports.append(m))
    assert [(r["epoch"], r["trial_outcome"]) for r in reports] == [
        *((e, "running") for e in range(fails_at)), (fails_at, "oom")]
    assert reports[-1]["stop_reason"].startswith("out of memory: peak")
    assert f"in the kNN evaluation of epoch {fails_at}, after it trained" in reports[-1]["stop_reason"]


def test_an_oom_while_training_an_epoch_ends_the_trial_at_that_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = DINOConfig(**{**TINY_TRAINER, "epochs": 2})
    trainer = DINOTrainer(cfg)

    def train_one_epoch(epoch: int) -> dict:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(trainer, "train_one_epoch", train_one_epoch)
    reports: list[dict] = []
    trial_module.run_trial(trainer, cfg.model_dump(mode="json"), DeviceClock(), [],
                           lambda m, write: reports.append(m))
    assert [(r["epoch"], r["trial_outcome"]) for r in reports] == [(0, "running"), (1, "oom")]
    assert "kNN" not in reports[-1]["stop_reason"]


def test_an_oom_in_the_knn_of_a_replayed_epoch_ends_the_trial_oom_at_it(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """Resumed past an ASHA rung, the epoch its checkpoint holds is evaluated as it is reported again:
    an OOM there ended the trial errored after Ray's retries (it was outside the trial's outcomes)."""
    cfg = DINOConfig(**{**TINY_TRAINER, "epochs": 3, "eval_every": 4})
    before, carry = DINOTrainer(cfg), KnnCarry()
    for metrics in before.run():
        carry.apply(metrics)
        if metrics["epoch"] == 1:
            break
    trial_module.save_trial(tmp_path, before, CollapseMonitor(StopRules()), carry,
                            row={**metrics, "device_seconds": 0.0})
    trainer = DINOTrainer(cfg)

    def evaluate() -> tuple[float, float]:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(trainer, "evaluate", evaluate)
    reports: list[dict] = []
    trial_module.run_trial(trainer, {**cfg.model_dump(mode="json"), "_eval_at": [1, 2]}, DeviceClock(),
                           [tmp_path], lambda m, write: reports.append(m))
    assert [(r["epoch"], r["trial_outcome"]) for r in reports] == [(1, "oom")]
    assert "in the kNN evaluation of epoch 1, after it trained" in reports[0]["stop_reason"]
    assert reports[0]["loss"] == metrics["loss"]  # it replaces the epoch's row in the record


class Killed(BaseException):
    """The trial's process killed (SIGKILL: a lost node, the kernel's OOM killer): nothing runs after it."""


class RayStorage:
    """What Ray does with a trial's ``tune.report(metrics, checkpoint=...)``: it copies the checkpoint into
    the trial folder as ``checkpoint_<index>`` (the index after the last one the driver registered),
    then the result travels to the driver, which registers the checkpoint. ``kill_after_copy``: the epoch
    whose process dies between the two."""

    def __init__(self, trial: Path, kill_after_copy: int, full_after: int | None = None) -> None:
        self.trial, self.kill_after_copy = trial, kill_after_copy
        self.full_after = full_after  # the epoch after which the storage is full
        self.registered: list[Path] = []  # the driver's checkpoints (tune.get_checkpoint: the last)
        self.results: list[dict] = []  # what reached the driver
        self.overwritten: list[tuple[str, int, int]] = []  # (folder, its epoch, the epoch copied over it)

    def report(self, metrics: dict, checkpoint: tune.Checkpoint | None = None) -> None:
        if checkpoint is not None:
            folder = self.trial / f"checkpoint_{len(self.registered):06d}"
            if self.full_after is not None and self.kill_after_copy < 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))
            held = tune_trial.held_epoch(folder)  # None: a new folder
            if held not in (None, metrics["epoch"]):
                self.overwritten.append((folder.name, held, metrics["epoch"]))
            shutil.copytree(checkpoint.path, folder, dirs_exist_ok=True)
            if metrics["epoch"] == self.kill_after_copy:
                self.kill_after_copy = -1  # once
                raise Killed
            self.registered.append(folder)
        self.results.append(metrics)

    def run(self, monkeypatch: pytest.MonkeyPatch, config: dict) -> None:
        """One try of ``dino_trainable``, as Ray runs it on a CPU of a node."""
        context = types.SimpleNamespace(get_assigned_resources=lambda: {"CPU": 1.0},
                                        get_trial_dir=lambda: f"/tmp/ray/working_dirs/{self.trial.name}")
        monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
        monkeypatch.setattr(ray, "get_runtime_context", lambda: context)
        monkeypatch.setattr(tune, "get_context", lambda: context)
        latest = tune.Checkpoint.from_directory(str(self.registered[-1])) if self.registered else None
        monkeypatch.setattr(tune, "get_checkpoint", lambda: latest)
        monkeypatch.setattr(tune, "report", self.report)
        monkeypatch.setattr(tune_trial, "placement", lambda: {})
        try:
            tune_trial.dino_trainable(config)
        except Killed:
            pass


RETRIED = {**TINY_TRAINER, "epochs": 3}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The results of RETRIED's trial where nothing fails."""
    tune_dir = tmp_path_factory.mktemp("tune")
    whole = RayStorage(tune_dir / "trial_whole", kill_after_copy=-1)
    with pytest.MonkeyPatch.context() as monkeypatch:
        whole.run(monkeypatch, {**RETRIED, "_storage_dir": str(tune_dir)})
    return whole.results


@pytest.mark.parametrize("lost", [1, 2])
def test_a_retry_continues_from_a_checkpoint_whose_result_never_reached_the_driver(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uninterrupted: list[dict], lost: int) -> None:
    """The process dies after Ray copied epoch ``lost``'s checkpoint into the trial folder, before the
    result reached the driver: the driver's latest checkpoint is the one before it (none for epoch 1's).
    Ray's retry continued from the driver's, training that epoch again (from epoch 0 when the first
    checkpoint's result was lost). It continues from the newest in the folder, reports its epoch once
    (the driver never had it) and ends with the figures of a run that was never interrupted."""
    config = {**RETRIED, "_storage_dir": str(tmp_path / "tune")}
    driver = RayStorage(tmp_path / "tune" / "trial_t0", kill_after_copy=lost)
    driver.run(monkeypatch, config)
    assert [r["epoch"] for r in driver.results] == list(range(lost))  # the killed try
    driver.run(monkeypatch, config)  # Ray's retry
    retry = driver.results[lost:]
    assert [(r["epoch"], r.get("replayed", False), r["restored_from_epoch"]) for r in retry] == [
        (lost, True, lost), *((e, False, lost) for e in range(lost + 1, 4))]
    assert [r["epoch"] for r in driver.results] == [0, 1, 2, 3]  # each epoch once, in order
    for key in ("loss", "knn_top1", "teacher_entropy", "trial_outcome"):
        assert [r.get(key) for r in driver.results] == [r.get(key) for r in uninterrupted], key
    newest = checkpoints_in(driver.trial)[0]  # what `ablate resume` continues from: the last epoch
    assert trial_module.reported_epochs([driver.trial])[3]["recovered_from"] == newest.name
    # the replay hands Tune the checkpoint it restored: the next epoch's is copied into a folder of its
    # own, not over it (Ray's next index), where a kill mid-copy would leave two epochs' files mixed
    assert driver.overwritten == []
    assert [tune_trial.held_epoch(f) for f in driver.registered] == [1, 2, 3]


def test_a_retry_whose_storage_is_full_ends_storage_full_with_the_epoch_it_restored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk filled as the process died: the retry hands Tune the checkpoint it restored (its replay)
    and cannot write it. The trial ends storage_full with that epoch, in one line, as an epoch's
    checkpoint that cannot be written does (not an OSError that every Ray retry repeats)."""
    config = {**RETRIED, "_storage_dir": str(tmp_path / "tune")}
    driver = RayStorage(tmp_path / "tune" / "trial_t0", kill_after_copy=1, full_after=1)
    driver.run(monkeypatch, config)
    driver.run(monkeypatch, config)  # Ray's retry
    assert [(r["epoch"], r["trial_outcome"]) for r in driver.results] == [(0, "running"), (1, "storage_full")]
    assert driver.results[-1]["restored_from_epoch"] == 1 and driver.results[-1]["replayed"]
    assert driver.results[-1]["stop_reason"].startswith(
        f"{tmp_path / 'tune' / 'trial_t0'}: cannot write the checkpoint of epoch 1 (ENOSPC")
