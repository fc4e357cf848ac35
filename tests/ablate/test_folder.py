"""The sweep folder's reference kNN: computed alongside the sweep, written once, failures only warn."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from ablate.folder import create, reference_knn_alongside
from ablate.sweep_spec import load_spec
from sweep_format.layout import REFERENCE_FILE
from tests.helpers import OPTUNA_SPEC, write_spec
from trainables.baselines import reference_knn


@pytest.fixture
def sweep(tmp_path: Path):
    spec = load_spec(write_spec(tmp_path, OPTUNA_SPEC))
    create(spec, tmp_path / "runs" / spec.name)
    return spec, tmp_path / "runs" / spec.name


def test_the_reference_runs_while_the_sweep_does_and_is_written_when_it_ends(sweep, monkeypatch):
    spec, folder = sweep
    sweep_running = threading.Event()
    seen: dict[str, object] = {}

    def reference_after_the_sweep_started(cfg):
        seen["sweep_was_running"] = sweep_running.wait(timeout=60)  # serial: the block never starts
        seen["threads"] = torch.get_num_threads()
        return reference_knn(cfg)

    monkeypatch.setattr("trainables.baselines.reference_knn", reference_after_the_sweep_started)
    threads = torch.get_num_threads()
    with reference_knn_alongside(spec, folder):
        sweep_running.set()
    assert seen == {"sweep_was_running": True, "threads": 1}
    assert torch.get_num_threads() == threads
    written = json.loads((folder / REFERENCE_FILE).read_text())
    expected = reference_knn(spec.trainer_config())
    assert {k: written[k] for k in expected} == expected
    assert (written["dataset"], written["arch"]) == ("synthetic", "test_vit")


def test_a_folder_that_has_it_is_not_recomputed(sweep, monkeypatch):
    spec, folder = sweep
    (folder / REFERENCE_FILE).write_text('{"pixel_knn_top1": 12.5}')
    monkeypatch.setattr("trainables.baselines.reference_knn",
                        lambda cfg: pytest.fail("reference kNN computed again"))
    with reference_knn_alongside(spec, folder):
        pass
    assert json.loads((folder / REFERENCE_FILE).read_text()) == {"pixel_knn_top1": 12.5}


def test_a_failure_warns_and_the_sweep_goes_on(sweep, monkeypatch, capsys):
    spec, folder = sweep

    def broken(cfg):
        raise RuntimeError("no data on this machine")

    monkeypatch.setattr("trainables.baselines.reference_knn", broken)
    with reference_knn_alongside(spec, folder):
        ran = True
    assert ran and not (folder / REFERENCE_FILE).exists()
    assert "warning: reference kNN (raw pixels, untrained network) not computed: no data on this machine" \
        in capsys.readouterr().err
