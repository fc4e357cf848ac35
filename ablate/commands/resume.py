"""``ablate resume DIR/NAME``: continue an interrupted sweep where it stopped."""

from __future__ import annotations

import argparse

from ablate.commands.run import add_ray_options
from ablate.session import check_connect_timeout, cluster_address
from ablate.summary import conclude
from sweep_format.files import user_path
from sweep_format.layout import OPTUNA_DB, TRIALS_DIR
from sweep_format.statuses import RETRYABLE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resume", help="continue an interrupted sweep",
        description=f"Continue an interrupted sweep from its own records ({TRIALS_DIR}/), its Optuna study "
                    f"({OPTUNA_DB}) and its weights-only checkpoints; nothing of Ray's experiment state is "
                    "read back. Finished trials are kept, trials that were running continue from their "
                    "newest usable checkpoint, errored trials are retried, and trials that never started "
                    "start. One driver per sweep folder: a sweep still being run or resumed is refused.",
        epilog="example: ablate resume runs/temps --retry oom   (after lowering nothing: a trial that ran "
               "out of memory is run again, e.g. on a larger GPU)")
    p.add_argument("sweep", metavar="SWEEP", help="the sweep folder, e.g. runs/temps")
    p.add_argument("--retry", action="append", default=[], choices=list(RETRYABLE), metavar="STATUS",
                   help=f"also run again the trials that ended with this status ({', '.join(RETRYABLE)}; "
                        "repeatable); by default they are kept, since they would end the same way")
    add_ray_options(p, sweep="SWEEP")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ablate.ending import SweepInterrupted
    from ablate.folder import load_sweep_spec
    from ablate.sweep import resume_sweep

    check_connect_timeout(args.connect_timeout)
    total = load_sweep_spec(user_path(args.sweep).resolve()).num_trials
    try:
        address = cluster_address(args.address, say=False)  # said in resume's opening line
        sweep_dir = resume_sweep(args.sweep, address, args.num_cpus, args.num_gpus, args.connect_timeout,
                                 verbose=args.verbose, retry=args.retry)
    except SweepInterrupted as stop:
        return conclude(stop.sweep_dir, total, interrupted=True, exit_code=stop.exit_code,
                        ended=stop.ended)
    return conclude(sweep_dir, total)
