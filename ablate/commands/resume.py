"""``ablate resume DIR/NAME``: continue an interrupted sweep where it stopped."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    from ablate.sweep import SweepInterrupted, load_sweep_spec, resume_sweep

    total = load_sweep_spec(Path(args.sweep).expanduser().resolve()).num_trials
    try:
        sweep_dir = resume_sweep(args.sweep, args.address, args.num_cpus, args.num_gpus,
                                  args.connect_timeout,
                                  verbose=args.verbose)
    except SweepInterrupted as stop:
        return finish(stop.sweep_dir, total, interrupted=True)
    return finish(sweep_dir, total)
