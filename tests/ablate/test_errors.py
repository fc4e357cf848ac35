"""ablate.errors: a failed write of `ablate train` names the checkpoint file the trainer keeps."""

from __future__ import annotations

import argparse
import errno

from ablate.errors import storage_failure
from trainables.dino.trainer import CHECKPOINT_NAME


def test_a_full_disk_in_train_names_the_trainers_checkpoint_and_the_resume() -> None:
    exc = OSError(errno.ENOSPC, "No space left on device", f"runs/one/{CHECKPOINT_NAME}.tmp")
    line = storage_failure(exc, argparse.Namespace(command="train", out="runs/one"))
    assert line.startswith(f"cannot write runs/one/{CHECKPOINT_NAME}.tmp (ENOSPC: No space left on device); "
                           f"runs/one/{CHECKPOINT_NAME} still holds the last finished epoch")
    assert line.endswith("`ablate train --out runs/one --resume`")
