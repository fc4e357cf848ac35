"""The end of ``ablate run`` / ``ablate resume``: report, best configuration, per-trial table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    import pandas as pd


def finish(sweep_dir: Path) -> int:
    """Build the report (and the attention panel where the backbone is a ViT) and print a summary."""
    from reports.render import build_report
    from reports.tables import load_trials, working_trials

    spec = yaml.safe_load((sweep_dir / "spec.yaml").read_text())
    trials, _ = load_trials(sweep_dir)
    attention_panel(sweep_dir, trials, spec)
    report_dir = build_report(sweep_dir)
    metric, mode = spec.get("metric", "knn_top1"), spec.get("mode", "max")
    params = [p for p in spec.get("space", {}) if p in trials.columns]
    cols = ["trial_id", "status", *params, "repeat", "epochs_done", "knn_top1_epoch0", "knn_top1", "loss"]
    table = trials[[c for c in cols if c in trials.columns]]
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    scored = trials.dropna(subset=[metric]) if metric in trials.columns else trials.iloc[0:0]
    if len(scored):  # ranked as the report ranks: collapsed teachers last
        best = working_trials(scored).sort_values(metric, ascending=(mode == "min")).iloc[0]
        setting = ", ".join(f"{p}={best[p]:.4g}" if isinstance(best[p], float) else f"{p}={best[p]}"
                            for p in params)
        print(f"\nbest {metric}: {best[metric]:.2f} ({setting}; trial {best['trial_id']}, {best['status']})")
    counts = trials["status"].value_counts().to_dict()
    print(f"trials: {counts}")
    print(f"report: {report_dir / 'report.html'} (and report.md, trials.parquet, epochs.parquet)")
    return 0 if len(scored) else 1


def attention_panel(sweep_dir: Path, trials: pd.DataFrame, spec: dict) -> None:
    """Best, baseline and worst trials' attention maps side by side (ViT backbones only)."""
    try:
        from ablate.attention_plot import render_comparison_panel
    except ImportError:
        return
    metric, mode = spec.get("metric", "knn_top1"), spec.get("mode", "max")
    scored = trials.dropna(subset=[metric]).sort_values(metric, ascending=(mode == "min"))
    if scored.empty or "trial_dir" not in scored.columns:
        return
    picks = {f"best ({scored.iloc[0][metric]:.1f})": scored.iloc[0], f"worst ({scored.iloc[-1][metric]:.1f})":
             scored.iloc[-1]}
    baseline = scored[scored.get("is_baseline", False) == True]  # noqa: E712
    if len(baseline):
        picks[f"baseline ({baseline.iloc[0][metric]:.1f})"] = baseline.iloc[0]
    sources = {label: sweep_dir / row["trial_dir"] for label, row in picks.items()}
    if not _is_vit(spec):
        return  # a CNN has no [CLS] attention to draw
    out = sweep_dir / "report" / "attention.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        render_comparison_panel(sources, out)
    except Exception as exc:  # any failure: a missing picture must not lose the sweep's report
        print(f"ablate: attention panel skipped: {exc}", file=sys.stderr)


def _is_vit(spec: dict) -> bool:
    from trainables.config import DINOConfig
    from trainables.dino.backbone import build_backbone, is_vit

    cfg = DINOConfig(**(spec.get("trainer") or {}))
    return is_vit(build_backbone(cfg.arch, cfg.global_crops_size, cfg.patch_size, 0.0))
