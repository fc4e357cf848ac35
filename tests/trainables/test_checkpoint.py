"""Weights-only loading: crafted pickles are refused without running, damaged files are named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import write_crafted_pickle
from trainables.checkpoint import DamagedFileError, UnsafeFileError, load_pt


def test_a_crafted_pickle_is_refused_and_runs_nothing(tmp_path: Path):
    marker = tmp_path / "pwned"
    evil = write_crafted_pickle(tmp_path / "monitor.pt", marker)
    refused = r"monitor\.pt: refused to load this monitor state: it asks for io\.open"
    with pytest.raises(UnsafeFileError, match=refused):
        load_pt(evil, "monitor state")
    assert not marker.exists()
    # The same file under torch's own default-off safety does run code: the test can tell.
    torch.load(evil, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("cut", [0, 10, 0.5])
def test_a_truncated_or_empty_file_is_damaged(tmp_path: Path, cut):
    good = tmp_path / "good.pt"
    torch.save({"w": torch.arange(1000)}, good)
    data = good.read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    with pytest.raises(DamagedFileError, match=r"bad\.pt: not a readable PyTorch checkpoint"):
        load_pt(bad, "checkpoint")


@pytest.mark.parametrize(("content", "why"), [
    (b"not a pickle", "Unsupported operand 110)"),
    (b"PK\x03\x04garbage", "PytorchStreamReader failed reading zip archive: not a ZIP archive)"),
])
def test_a_file_that_is_not_a_torch_save_file_says_why_in_a_few_words(tmp_path: Path, content: bytes,
                                                                     why: str) -> None:
    """The message quoted torch's first 200 characters: for a file that is no pickle, torch's advice to
    retry with weights_only=False (which runs the file's code), cut off mid-sentence."""
    bad = tmp_path / "weights.pt"
    bad.write_bytes(content)
    with pytest.raises(DamagedFileError) as err:
        load_pt(bad, "pretrained_weights file")
    assert str(err.value) == (f"{bad}: not a readable PyTorch pretrained_weights file (truncated or not a "
                              f"torch.save file: {why}")


def test_numpy_rng_state_of_older_checkpoints_still_loads(tmp_path: Path):
    old = tmp_path / "old.pt"
    torch.save({"numpy": np.random.get_state()}, old)
    kind, keys, *_ = load_pt(old, "checkpoint")["numpy"]
    assert kind == "MT19937" and np.array_equal(keys, np.random.get_state()[1])


def test_a_trainer_checkpoint_holds_only_weights_only_types(tmp_path: Path):
    from tests.helpers import TINY_TRAINER
    from trainables.config import DINOConfig
    from trainables.dino.trainer import DINOTrainer

    trainer = DINOTrainer(DINOConfig(**{**TINY_TRAINER, "epochs": 1}))
    for _ in trainer.run():
        pass
    path = trainer.save_checkpoint(tmp_path / "checkpoint.pt")
    state = torch.load(path, weights_only=True)  # torch's own check, without ablate's allowances
    assert state["epoch"] == 1 and isinstance(state["rng"]["numpy"][1], torch.Tensor)
