"""Report fixtures over the session's tiny real sweep (``real_sweep`` in tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


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

