"""``ablate report``: trials.parquet, epochs.parquet, report.md and report.html of one sweep."""

from __future__ import annotations

import argparse
from pathlib import Path

from sweep_format.layout import EPOCHS_TABLE, REPORT_DIR, REPORT_HTML, REPORT_MD, TRIALS_TABLE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help=f"parquet tables + {REPORT_MD}/{REPORT_HTML} of a sweep",
        description=f"Write DIR/{REPORT_DIR}/: {TRIALS_TABLE} (one row per trial), {EPOCHS_TABLE} (one "
                    f"row per trial and epoch; schema in reports/SCHEMA.md), {REPORT_MD} and a "
                    f"self-contained {REPORT_HTML} (leaderboard; the table of configurations: a one-factor "
                    "ablation's against its baseline, a grid's or Optuna's against the best; seed power, "
                    "cost, effect plots, learning curves, collapse diagnostics, parameter importance, "
                    "parallel coordinates, every trial). Works on running or interrupted sweeps.",
        epilog="example: ablate report runs/temps")
    p.add_argument("sweep", metavar="DIR", help="sweep folder, e.g. runs/temps")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ablate.api import Sweep  # pandas and matplotlib: not for --help

    out = Sweep(Path(args.sweep)).report()
    from sweep_format.text import printable

    for name in (REPORT_HTML, REPORT_MD, TRIALS_TABLE, EPOCHS_TABLE):
        print(printable(str(out / name)))  # a folder named in bytes that are not UTF-8: written out
    return 0
