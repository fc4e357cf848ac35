"""Every bench/ script starts as `python bench/NAME.py` (the way bench/gpu_check.sh runs them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))


def test_no_script_is_named_like_a_standard_library_module():
    # Run as a script, bench/ is first on the import path: a bench/signal.py is what `subprocess`
    # and `multiprocessing` would then import as `signal`, and every sibling script fails to start.
    assert SCRIPTS
    assert not [p.name for p in SCRIPTS if p.stem in sys.stdlib_module_names]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_answers_help_from_outside_the_repository(script: Path, tmp_path: Path):
    done = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:"), done.stdout[:500]
