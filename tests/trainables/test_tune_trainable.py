"""The trainable's per-epoch verdicts: kNN carried forward (eval_every > 1), one collapse rule."""

from __future__ import annotations

from pathlib import Path

from trainables.stop_rules import CollapseMonitor, StopRules
from trainables.tune_trainable import KnnCarry, end_verdict

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
    verdict = end_verdict(metrics, reason, epochs=3)
    assert verdict["trial_outcome"] == "flagged"
    assert "collapse condition held at its last epoch 3 for 2 epoch(s), fewer than patience 3" in \
        verdict["stop_reason"]
    healthy = CollapseMonitor(StopRules(patience=3))
    healthy.update(epoch(3, 2.0))
    assert end_verdict({**epoch(3, 2.0), "collapse_flag": healthy.flag(3)}, "", 3) == {
        "trial_outcome": "completed"}
    assert end_verdict(epoch(2, 2.0), "", 3) == {}  # mid-run: still running
    assert end_verdict(epoch(2, LN_K), "collapsed (uniform): ...", 3)["trial_outcome"] == "collapsed"
