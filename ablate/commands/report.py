"""``ablate report``: trials.parquet, epochs.parquet, report.md and report.html of one sweep."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="parquet tables + report.md/report.html of a sweep",
        description="Write DIR/report/: trials.parquet (one row per trial), epochs.parquet (one row per "
                    "trial and epoch; schema in reports/SCHEMA.md), report.md and a self-contained "
                    "report.html (leaderboard, ablation table, effect plots, learning curves, collapse "
                    "diagnostics, parameter importance). Works on running or interrupted sweeps.")
    p.add_argument("sweep", metavar="DIR", help="sweep folder, e.g. runs/temps")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ablate.api import Sweep  # pandas and matplotlib: not for --help

    out = Sweep(Path(args.sweep)).report()
    from sweep_format.layout import EPOCHS_TABLE, REPORT_HTML, REPORT_MD, TRIALS_TABLE
    from sweep_format.text import printable

    for name in (REPORT_HTML, REPORT_MD, TRIALS_TABLE, EPOCHS_TABLE):
        print(printable(str(out / name)))  # a folder named in bytes that are not UTF-8: written out
    return 0
