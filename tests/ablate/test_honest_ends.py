"""Honest ends (issue 18, point 3): a sweep in which no trial trained past epoch 0 names no best in
the summary, `ablate ls` and the report, and exits non-zero; the untrained network's kNN at epoch 0
is never a configuration's result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablate.cli import main
from ablate.folder import create
from ablate.summary import finish
from ablate.sweep_spec import load_spec
from sweep_format.files import write_json
from sweep_format.records import FORMAT, VERSION
from tests.helpers import TINY_TRAINER, write_spec


def diverged_sweep(tmp_path: Path) -> Path:
    """Two configurations x 1 seed, both diverged at epoch 1 (lr 1e9): only epoch 0 has a kNN."""
    spec = load_spec(write_spec(tmp_path, f"""
name: nothing-trained
trainer: {dict(TINY_TRAINER, lr=1.0e9)}
space:
  teacher_temp: {{type: choice, values: [0.02, 0.04]}}
search: {{algorithm: grid}}
"""))
    sweep = tmp_path / "runs" / "nothing-trained"
    create(spec, sweep)
    (sweep / "reference_knn.json").write_text(json.dumps({"pixel_knn_top1": 22.87,
                                                          "untrained_knn_top1": 29.81}))
    for point, temp in enumerate((0.02, 0.04)):
        write_json(sweep / "trials" / f"t{point}.json", {
            "format": FORMAT, "version": VERSION, "trial_id": f"t{point}", "point": point,
            "label": f"teacher_temp={temp}", "params": {"teacher_temp": temp}, "seed": 0, "repeat": 0,
            "epochs_planned": 2, "status": "diverged", "collapsed": False, "created_at": float(point),
            "reason": "loss is nan at epoch 1: training diverged", "trial_dir": f"tune/t{point}",
            "epochs": [{"epoch": 0, "knn_top1": 29.81, "knn_top5": 70.0, "knn_evaluated": True},
                       {"epoch": 1, "knn_top1": 29.81, "knn_top5": 70.0, "knn_evaluated": False,
                        "trial_outcome": "diverged", "stop_reason": "loss is nan at epoch 1"}]})
    return sweep


def test_no_trial_trained_means_no_best_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sweep = diverged_sweep(tmp_path)
    assert finish(sweep, total=2) == 1
    out, err = capsys.readouterr()
    assert "best knn_top1" not in out and "2 diverged" in out
    # the summary says what the report's headline says: every trial diverged, when, and what to try
    # (it said "no best configuration: ... none has finished an epoch yet, ... oom, errored ...")
    assert "Every trial diverged (2 of 2): the loss went NaN or inf in epoch 1 of 2" in out
    assert "'loss is nan at epoch 1: training diverged'" in out and "no best configuration" not in out
    # they trained an epoch (it said "no trial trained")
    assert "no trial has a value measured after training: nothing to call best" in err
    report = (sweep / "report" / "report.md").read_text()
    board = report.split("## Leaderboard")[1][:400]
    assert "Every trial diverged (2 of 2)" in report and "beats raw pixels" not in board
    assert main(["ls", str(sweep.parent)]) == 0
    listing = capsys.readouterr().out
    assert "2 diverged" in listing and "no value after training yet" in listing and "29.81" not in listing


def test_a_sweep_whose_trained_trials_all_failed_names_no_best(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    """Both trials trained an epoch, then errored (an image that became unreadable) and ran out of memory:
    the summary said "best knn_top1 (max): 36.25 (teacher_temp=0.02; mean of 1, partial: no trial ran its
    schedule)", `ablate ls` the same value "(partial)", and the report "**Best: teacher_temp=0.02**"."""
    sweep = diverged_sweep(tmp_path)
    for point, (status, reason) in enumerate((("errored", "/data/train/a/1.png: not a readable image"),
                                              ("oom", "out of host memory (MemoryError)"))):
        file = sweep / "trials" / f"t{point}.json"
        rec = json.loads(file.read_text())
        rec["epochs"][1].update(knn_top1=36.25 - point, knn_evaluated=True, trial_outcome="running")
        write_json(file, {**rec, "status": status, "reason": reason})
    assert finish(sweep, total=2) == 1
    out, err = capsys.readouterr()
    assert "best knn_top1" not in out and "no best configuration" in out and "1 oom, 1 errored" in out
    assert "every trial that trained failed: nothing to call best" not in err  # an errored one is named
    assert "ablate: trial t0 errored: /data/train/a/1.png" in err
    report = (sweep / "report" / "report.md").read_text()
    assert "No best configuration" in report and "**Best" not in report and "finished yet" not in report
    assert main(["ls", str(sweep.parent)]) == 0
    listing = capsys.readouterr().out
    assert "none: every trial that trained failed" in listing and "36.25" not in listing
    write_json(sweep / "trials" / "t0.json", {**json.loads((sweep / "trials" / "t0.json").read_text()),
                                              "status": "oom", "reason": "out of host memory (MemoryError)"})
    assert finish(sweep, total=2) == 1
    assert "every trial that trained failed: nothing to call best" in capsys.readouterr().err
