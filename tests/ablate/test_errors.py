"""ablate.errors: a failed write of `ablate train` names the checkpoint file the trainer keeps."""

from __future__ import annotations

import argparse
import errno
from pathlib import Path

from ablate.errors import storage_failure
from trainables.dino.trainer import CHECKPOINT_NAME


def test_a_full_disk_in_train_names_the_trainers_checkpoint_and_the_resume(tmp_path: Path,
                                                                           monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "one").mkdir(parents=True)
    (tmp_path / "runs" / "one" / CHECKPOINT_NAME).write_bytes(b"epoch 1")
    exc = OSError(errno.ENOSPC, "No space left on device", f"runs/one/{CHECKPOINT_NAME}.tmp")
    line = storage_failure(exc, argparse.Namespace(command="train", out="runs/one"))
    assert line.startswith(f"cannot write runs/one/{CHECKPOINT_NAME}.tmp (ENOSPC: No space left on device); "
                           f"runs/one/{CHECKPOINT_NAME} still holds the last finished epoch")
    assert line.endswith("`ablate train --out runs/one --resume`")


def test_a_full_disk_before_trains_first_checkpoint_offers_no_resume(tmp_path: Path) -> None:
    """It named a checkpoint that was never written and a --resume that would be refused."""
    out = tmp_path / "one"
    exc = OSError(errno.ENOSPC, "No space left on device", str(out / "config.yaml"))
    line = storage_failure(exc, argparse.Namespace(command="train", out=str(out)))
    assert line == (f"cannot write {out}/config.yaml (ENOSPC: No space left on device); no epoch was saved "
                    "yet (nothing to resume); free space, then train anew")


def test_each_failed_write_is_told_the_remedy_for_its_errno() -> None:
    """A read-only disk was told to 'free space', and a file over the file-size limit (EFBIG: `ulimit -f`,
    a FAT disk's 4 GiB) too: each errno now gets its own remedy, in the line of `ablate run`/`resume`/
    `train` and in the one of a sweep stopped by a trial's failed write (which reaches the driver as text)."""
    def advice(code: int) -> str:
        exc = OSError(code, "x", "runs/temps/trials/a.json")
        return storage_failure(exc, argparse.Namespace(command="resume", sweep="runs/temps")).split("; ")[-1]

    assert advice(errno.ENOSPC) == "free space, then `ablate resume runs/temps`"
    assert advice(errno.EROFS) == "make the storage writable, then `ablate resume runs/temps`"
    assert advice(errno.EFBIG).startswith("raise the file-size limit (`ulimit -f`")
    assert "free space" not in advice(errno.EFBIG) + advice(errno.EACCES)


def test_a_sweep_stopped_by_a_trials_failed_write_names_that_errnos_remedy(tmp_path: Path) -> None:
    from ablate.ending import stopped_for_storage
    from tests.helpers import crafted_sweep, good_record
    from trainables.storage_errors import write_failure

    sweep = crafted_sweep(tmp_path, [good_record("a")])
    for code, remedy in ((errno.EFBIG, "raise the file-size limit"), (errno.ENOSPC, "free space, then"),
                         (errno.EROFS, "make the storage writable")):
        failure = write_failure(OSError(code, "x", str(sweep / "trials" / "b.ckpt")), "the checkpoint")
        line = str(stopped_for_storage(sweep, 2, failure))
        assert line.startswith(failure) and f"; {remedy}" in line, line
    line = str(stopped_for_storage(sweep, 2, f"{sweep}/optuna.db: cannot write the Optuna study (disk I/O)"))
    assert line.endswith(f"free space (or make the storage writable), then `ablate resume {sweep}`")
