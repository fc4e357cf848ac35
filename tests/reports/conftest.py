"""One tiny real sweep per test session, made by ``ablate.sweep.run_sweep`` on the synthetic data.

4 trials (2 Optuna configurations x 2 seed repeats) x 2 epochs, run in a subprocess with its own
local Ray (2 CPUs, no dashboard), so no Ray state leaks into the test process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SPEC = """\
name: tiny
description: tiny real sweep for the report tests
trainer: {dataset: synthetic, epochs: 2, batch_size: 32, out_dim: 16, head_hidden_dim: 16,
          head_bottleneck_dim: 8, local_crops_number: 1, global_crops_size: 16, local_crops_size: 8,
          eval_every: 1, device: cpu}
space:
  teacher_temp: {type: float, low: 0.01, high: 0.1, log: true}
  student_temp: {type: float, low: 0.05, high: 0.2}
  warmup_teacher_temp_epochs: {type: choice, values: [0, 1]}
search: {algorithm: optuna, sampler: random, num_samples: 2, seed: 0}
metric: knn_top1
mode: max
repeats: 2
resources: {cpu: 1, gpu: 0}
"""

RUN = """
import sys, ray
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
from ablate.spec import load_spec
from ablate.sweep import run_sweep
try:
    print(run_sweep(load_spec(sys.argv[1]), sys.argv[2]))
finally:
    ray.shutdown()
"""


@pytest.fixture(scope="session")
def real_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sweep folder; treat it as read-only (copy it with ``sweep_copy`` to change it)."""
    root = tmp_path_factory.mktemp("storage")
    spec = root / "tiny.yaml"
    spec.write_text(SPEC)
    proc = subprocess.run([sys.executable, "-c", RUN, str(spec), str(root / "runs")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep = root / "runs" / "tiny"
    shutil.rmtree(sweep / "report", ignore_errors=True)  # tests build their own
    return sweep


@pytest.fixture(scope="session")
def report_dir(real_sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of an untouched copy of the real sweep, built once."""
    from reports.render import build_report

    copy = tmp_path_factory.mktemp("reported") / "tiny"
    shutil.copytree(real_sweep, copy)
    return build_report(copy)


@pytest.fixture
def sweep_copy(real_sweep: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(real_sweep, copy)
    return copy

