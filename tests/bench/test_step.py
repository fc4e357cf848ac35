"""bench/step.py: both impls run one tiny step, print one JSON line and count the same flops."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pytest
import torch

STEP_PY = Path(__file__).resolve().parents[2] / "bench" / "step.py"
TINY = ["--arch", "vit_tiny_patch16_224", "--patch-size", "4", "--img", "16", "--local-img", "8",
        "--locals", "2", "--batch", "4", "--out-dim", "64", "--head-hidden", "64", "--bottleneck", "32",
        "--warmup", "0", "--iters", "1", "--device", "cpu", "--peak-size", "128",
        # one thread: on a shared, oversubscribed CPU two OpenMP threads make this tiny step ~50x slower
        "--threads", "1"]
IMPLS = ("ablate", "lightly")


@pytest.fixture(scope="module")
def results() -> dict[str, tuple[dict, str]]:
    """Each impl's returned dict and printed stdout (the bench sets torch's thread count: restored)."""
    pytest.importorskip("lightly")
    spec = importlib.util.spec_from_file_location("bench_step", STEP_PY)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads, out = torch.get_num_threads(), {}
    try:
        for impl in IMPLS:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                result = bench.main(["--impl", impl, *TINY])
            out[impl] = (result, buf.getvalue())
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.mark.parametrize("impl", IMPLS)
def test_prints_one_json_line_with_positive_figures(results, impl):
    result, stdout = results[impl]
    lines = stdout.strip().splitlines()
    assert len(lines) == 1
    printed = json.loads(lines[0])
    assert printed == result
    assert printed["impl"] == impl and printed["batch"] == 4
    assert printed["device"] == "cpu" and printed["dtype"] == "fp32" and printed["threads"] == 1
    assert printed["img_per_s"] > 0 and printed["step_ms"] > 0
    assert printed["flops_per_step"] > 0 and printed["peak_flops"] > 0 and printed["mfu"] > 0


def test_same_work_same_flops(results):
    """Identical shapes => identical work: a bench that skipped part of the step would differ."""
    a, b = (results[impl][0]["flops_per_step"] for impl in IMPLS)
    assert abs(a - b) <= 0.10 * max(a, b), (a, b)
