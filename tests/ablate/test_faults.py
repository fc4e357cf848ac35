"""Fault injection through the CLI: crafted pickles, damaged files, bad storage, bad addresses.

Each fault must end in one clear line on stderr and exit code 2, with nothing run or half-written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ablate.cli import main
from tests.helpers import TINY_TRAINER, write_crafted_pickle
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
