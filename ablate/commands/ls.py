"""``ablate ls``: the sweeps in a storage folder, their trials by status and best kNN top-1."""

from __future__ import annotations

import argparse
from pathlib import Path

from ablate.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ls", help="list the sweeps in a storage folder",
        description="One line per sweep: name, description, trials by status (and how many of the "
                    "spec's trials have not started), the best configuration's value of the sweep's metric "
                    "(the spec's, e.g. knn_top1 63.20: the mean of its repeats' final values; the report's "
                    "ranking), cost, last update.",
        epilog="example: ablate ls runs")
    p.add_argument("storage", nargs="?", default="runs", metavar="DIR",
                   help="storage folder of sweeps (default: ./runs)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ablate.folder import planned_trials
    from ablate.lock import driven
    from reports.errors import ReportError
    from reports.listing import format_listing, list_sweeps

    try:
        print(format_listing(list_sweeps(Path(args.storage), planned_trials, driven)))
    except ReportError as exc:
        raise UserError(str(exc)) from None
    return 0
