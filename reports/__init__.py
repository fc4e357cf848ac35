"""Reports on finished or running DINO ablation sweeps: parquet tables, plots, report.md/report.html.

This package only *reads* sweep folders (see docs/CONTRACTS.md); it knows nothing of training
and imports neither ``trainables`` nor ``ablate``.

    from reports.render import build_report
    report_dir = build_report(Path("runs/temps"))      # runs/temps/report/report.html

    from reports.tables import load_trials
    trials, epochs = load_trials(Path("runs/temps"))    # one row per trial / per trial and epoch

The column schema of ``trials.parquet`` and ``epochs.parquet`` is documented in reports/SCHEMA.md.
"""

from reports.errors import ReportError

__all__ = ["ReportError"]
