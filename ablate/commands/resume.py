"""``ablate resume DIR/NAME``: continue an interrupted sweep where it stopped."""

from __future__ import annotations

import argparse

from ablate.commands.run import add_ray_options
from ablate.summary import finish


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resume", help="continue an interrupted sweep",
        description="Continue an interrupted sweep: finished trials are kept, the searcher keeps "
                    "its state, trials that were running continue from their last checkpoint and "
                    "errored trials are retried.")
    p.add_argument("sweep", help="the sweep folder, e.g. runs/temps")
    add_ray_options(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ablate.sweep import resume_sweep

    return finish(resume_sweep(args.sweep, args.address, args.num_cpus, args.num_gpus, verbose=args.verbose))
