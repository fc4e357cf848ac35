"""``ablate compare``: one report across sweeps, the same parameter side by side."""

from __future__ import annotations

import argparse

from sweep_format.files import user_arg
from sweep_format.layout import EPOCHS_TABLE, REPORT_DIR, REPORT_HTML, REPORT_MD, TRIALS_TABLE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="one report across sweeps",
        description="Compare two or more sweeps: the parameters they all searched side by side, the "
                    f"best configurations of each, and one combined {TRIALS_TABLE} (column `sweep`). "
                    f"Writes OUT/{TRIALS_TABLE}, OUT/{EPOCHS_TABLE} (when the sweeps have per-epoch rows: "
                    f"sweep folders, or {TRIALS_TABLE} files with their {EPOCHS_TABLE} beside them), "
                    f"OUT/{REPORT_MD}, OUT/{REPORT_HTML}.",
        epilog="example: ablate compare runs/temps runs/temps-cifar10 --out runs/compare")
    p.add_argument("sources", nargs="+", metavar="SWEEP",
                   help=f"sweep folders (runs/NAME) or their {REPORT_DIR}/{TRIALS_TABLE} files")
    p.add_argument("--out", required=True, type=user_arg, metavar="DIR", help="folder for the comparison")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ablate import api  # pandas and matplotlib: not for --help

    out = api.compare(*args.sources, out=args.out)
    from sweep_format.text import printable

    for name in (REPORT_HTML, REPORT_MD, TRIALS_TABLE, EPOCHS_TABLE):
        if (out / name).is_file():  # epochs.parquet: only where the sweeps have epochs
            print(printable(str(out / name)))  # a folder named in bytes that are not UTF-8: written out
    return 0

