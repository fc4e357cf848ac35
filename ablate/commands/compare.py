"""``ablate compare``: one report across sweeps, the same parameter side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from ablate.errors import UserError
from reports.compare import build_comparison
from reports.errors import ReportError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="one report across sweeps",
        description="Compare two or more sweeps: the parameters they all searched side by side, the "
                    "best configurations of each, and one combined trials.parquet (column `sweep`). "
                    "Writes OUT/trials.parquet, OUT/epochs.parquet, OUT/report.md, OUT/report.html.")
    p.add_argument("sources", nargs="+", metavar="SWEEP",
                   help="sweep folders (runs/NAME) or their report/trials.parquet files")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the comparison")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if len(args.sources) < 2:
        raise UserError(f"compare needs two or more sweeps, got {len(args.sources)} ({args.sources[0]})")
    refuse_repeats(args.sources)
    try:
        out = build_comparison([Path(s) for s in args.sources], Path(args.out))
    except ReportError as exc:
        raise UserError(str(exc)) from None
    for name in ("report.html", "report.md", "trials.parquet"):
        print(out / name)
    return 0


def refuse_repeats(sources: list[str]) -> None:
    """The same sweep twice (also as its folder and its report/trials.parquet) compares nothing."""
    seen: dict[Path, str] = {}
    for source in sources:
        path = Path(source).expanduser().resolve()
        if path.name == "trials.parquet" and path.parent.name == "report":
            path = path.parent.parent
        if path in seen:
            raise UserError(f"compare: {source} and {seen[path]} are the same sweep ({path}); "
                            "compare two or more different sweeps")
        seen[path] = source
