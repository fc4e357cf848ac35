"""ASHA's decisions, told to a data-parallel trial's workers through its folder (ablate.asha,
trainables.ddp_trial.asha_verdict); the whole path on a cluster: tests/ablate/test_sweep.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

from ablate.asha import WorkersTold
from sweep_format.layout import ASHA_VERDICT, tell_verdict, told_verdict
from trainables.ddp_trial import asha_verdict


def test_each_decision_is_written_where_the_trials_workers_wait_for_it(tmp_path: Path) -> None:
    """Tune marks a result it stops the trial on ``done`` before its callbacks see it (ASHA's decision,
    or its epoch limit): each result's decision lands in the trial's folder, by the folder's name."""
    told = WorkersTold(tmp_path)
    for name, done in (("a", False), ("b", True)):
        (tmp_path / f"trial_{name}").mkdir()
        trial = SimpleNamespace(path=str(tmp_path / "elsewhere" / f"trial_{name}"))
        told.on_trial_result(0, [trial], trial, {"epoch": 1, "loss": 1.0, "done": done})
        told.on_trial_result(0, [trial], trial, {"loss": 1.0})  # no epoch: nothing to tell
    assert [asha_verdict(tmp_path / f"trial_{n}", wait=5, poll=0.01)(1) for n in ("a", "b")] == [False, True]


def test_the_workers_wait_for_the_epoch_they_ask_about_and_only_so_long(tmp_path: Path) -> None:
    """An older decision (of the epoch before) is not this epoch's: rank 0 waits for the driver's next
    word; past ``wait`` seconds without one, the trial goes on as before the change."""
    tell_verdict(tmp_path, 1, True)
    later = threading.Timer(0.3, tell_verdict, (tmp_path, 2, True))
    later.start()
    start = time.monotonic()
    assert asha_verdict(tmp_path, wait=30, poll=0.01)(2) is True
    assert 0.25 < time.monotonic() - start < 10
    start = time.monotonic()
    assert asha_verdict(tmp_path, wait=0.3, poll=0.01)(3) is False  # never said: it trains on
    assert time.monotonic() - start >= 0.3


def test_a_word_half_written_or_foreign_is_no_word(tmp_path: Path) -> None:
    """The folder is the trial's, on storage every node mounts: what is not a whole decision on the epoch
    asked about is waited past, never read as one."""
    assert told_verdict(tmp_path, 1) is None  # nothing yet
    for text in ('{"epoch": 1, "st', "[1, true]", '{"epoch": 1, "stop": "yes"}', '{"epoch": true, "stop": 1}',
                 '{"epoch": true, "stop": true}'):
        (tmp_path / ASHA_VERDICT).write_text(text)
        assert told_verdict(tmp_path, 1) is None, text
    tell_verdict(tmp_path, 1, False)
    assert told_verdict(tmp_path, 1) is False and told_verdict(tmp_path, 2) is None
