"""The end of a sweep: report with the attention panel (ViT), best configuration, summary table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ablate.summary import finish


def test_finish_builds_report_with_attention_panel(real_sweep: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture):
    sweep = tmp_path / "tiny"
    shutil.copytree(real_sweep, sweep)
    assert finish(sweep) == 0
    out = capsys.readouterr().out
    assert "best knn_top1:" in out and "report.html" in out
    panel = sweep / "report" / "attention.png"
    assert panel.is_file() and panel.stat().st_size > 10_000
    html = (sweep / "report" / "report.html").read_text()
    assert "Attention maps" in html and "data:image/png;base64" in html
    md = (sweep / "report" / "report.md").read_text()
    assert "Attention maps" in md
