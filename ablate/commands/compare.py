"""``ablate compare``: one report across sweeps, the same parameter side by side."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="one report across sweeps",
        description="Compare two or more sweeps: the parameters they all searched side by side, the "
                    "best configurations of each, and one combined trials.parquet (column `sweep`). "
                    "Writes OUT/trials.parquet, OUT/epochs.parquet (when the sweeps have per-epoch rows: "
                    "sweep folders, or trials.parquet files with their epochs.parquet beside them), "
                    "OUT/report.md, OUT/report.html.")
    p.add_argument("sources", nargs="+", metavar="SWEEP",
                   help="sweep folders (runs/NAME) or their report/trials.parquet files")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the comparison")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ablate import api  # pandas and matplotlib: not for --help

    out = api.compare(*args.sources, out=args.out)
    from sweep_format.layout import EPOCHS_TABLE, REPORT_HTML, REPORT_MD, TRIALS_TABLE
    from sweep_format.text import printable

    for name in (REPORT_HTML, REPORT_MD, TRIALS_TABLE, EPOCHS_TABLE):
        if (out / name).is_file():  # epochs.parquet: only where the sweeps have epochs
            print(printable(str(out / name)))  # a folder named in bytes that are not UTF-8: written out
    return 0

