"""A tiny sweep started through the Python API with every tracker on, its progress output captured."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.helpers import TINY_TRAINER, built_once, write_spec

TRACKED_SPEC = f"""\
name: tracked
trainer: {dict(TINY_TRAINER, epochs=2)}
space:
  teacher_temp: {{type: choice, values: [0.02, 0.06]}}
search: {{algorithm: grid}}
resources: {{cpu: 1, gpu: 0}}
loggers: [tensorboard, mlflow]
"""


@pytest.fixture(scope="session")
def tracked_sweep(ray_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(sweep folder, what the live view printed) of ``ablate.run`` on a 2-trial grid with TensorBoard
    and MLflow from the spec and W&B from ``loggers=``, run once per pytest run (``built_once``: the
    tracker, API and live-view tests read it on both workers); treat as read-only."""
    pytest.importorskip("mlflow", reason="the tracker tests need ablate[mlflow]")
    pytest.importorskip("wandb", reason="the tracker tests need ablate[wandb]")
    import ablate

    def build(folder: Path) -> None:
        folder.mkdir()
        out = io.StringIO()  # not a terminal: one line per event
        sweep = ablate.run(write_spec(folder, TRACKED_SPEC), set={"trainer.epochs": 2},
                           storage=folder / "runs", address=ray_cluster, loggers=["wandb"], stream=out)
        assert sweep.path == folder / "runs" / "tracked", sweep.path
        (folder / "view.txt").write_text(out.getvalue())

    built = built_once(tmp_path_factory, "tracked-sweep", build)
    return built / "runs" / "tracked", (built / "view.txt").read_text()
