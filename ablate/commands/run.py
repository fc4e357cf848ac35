"""``ablate run SPEC.yaml``: a DINO ablation sweep on Ray Tune, then its report."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ablate.session import (
    DEFAULT_CONNECT_TIMEOUT,
    MAX_CONNECT_TIMEOUT,
    check_connect_timeout,
    cluster_address,
)
from ablate.summary import conclude
from ablate.sweep_spec import MAX_SAMPLES, load_spec
from ablate.trackers import TRACKERS
from sweep_format.files import user_arg
from sweep_format.layout import MLFLOW_DIR, OPTUNA_DB, RAY_LOG, REPORT_DIR, SPEC_FILE, TRIALS_DIR, TUNE_DIR


def count(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``least`` (a --num-cpus 0 is refused before Ray starts)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= {least}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value}: expected a whole number >= {least}")
        return value
    return parse


def add_ray_options(p: argparse.ArgumentParser, sweep: str = "STORAGE/NAME") -> None:
    """The options of the Ray a sweep runs on; ``sweep``: how the command's help names the sweep folder."""
    p.add_argument("--address", metavar="HOST:PORT",
                   help="join this running Ray cluster instead of starting a local Ray (default: "
                        "$RAY_ADDRESS when set, as under `ray job submit`; token auth: export "
                        "RAY_AUTH_MODE=token with the cluster's token)")
    p.add_argument("--num-cpus", type=count(1), metavar="N", help="CPUs of the local Ray (default: all)")
    p.add_argument("--num-gpus", type=count(0), metavar="N", help="GPUs of the local Ray (default: detected)")
    p.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT, metavar="SECONDS",
                   help="with --address: give up when the cluster does not answer within this "
                        f"time (default {DEFAULT_CONNECT_TIMEOUT:g}, at most {MAX_CONNECT_TIMEOUT:g})")
    p.add_argument("--verbose", action="store_true",
                   help=f"print Ray's own log lines too (default: they go to {sweep}/{RAY_LOG})")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run an ablation sweep from a YAML search space",
        description="Run a DINO hyperparameter sweep described by a YAML spec (see "
                    "search_spaces/README.md) on Ray Tune. Results go to STORAGE/NAME/: the resolved spec "
                    f"({SPEC_FILE}), ablate's trial records ({TRIALS_DIR}/), the Optuna study ({OPTUNA_DB}), "
                    f"Ray's trial folders and checkpoints ({TUNE_DIR}/), Ray's own log ({RAY_LOG}) and the "
                    f"report ({REPORT_DIR}/). Progress: one view redrawn in place on a terminal, one line "
                    "per event otherwise. Ctrl-C, SIGTERM or SIGHUP stop it cleanly (exit 130, 143, 129); an "
                    "interrupted sweep continues with `ablate resume STORAGE/NAME`.",
        epilog="example: ablate run search_spaces/temps.yaml --set trainer.epochs=2 "
               "--set search.num_samples=4 --set resources.gpu=0.25")
    p.add_argument("spec", help="sweep spec YAML, e.g. search_spaces/temps.yaml")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE",
                   help="override a spec key by its dotted path, e.g. trainer.epochs=2, "
                        "search.num_samples=4, resources.gpu=0.25, name=temps-cifar")
    p.add_argument("--storage", default="runs", type=user_arg, metavar="DIR",
                   help="sweeps folder (default: ./runs)")
    p.add_argument("--force", action="store_true",
                   help=f"accept more than {MAX_SAMPLES} trials (search.num_samples, or configurations x "
                        "repeats; otherwise refused as a likely typo)")
    p.add_argument("--logger", dest="loggers", action="append", default=[], metavar="NAME",
                   choices=list(TRACKERS),
                   help="also log to this experiment tracker (repeatable; adds to the spec's `loggers`): "
                        f"tensorboard, mlflow (file store STORAGE/NAME/{MLFLOW_DIR} unless "
                        "MLFLOW_TRACKING_URI), wandb (offline unless WANDB_API_KEY or WANDB_MODE)")
    add_ray_options(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ablate import api
    from ablate.ending import SweepInterrupted

    check_connect_timeout(args.connect_timeout)
    spec = load_spec(args.spec, args.sets, force=args.force)  # every mistake is reported before Ray starts
    try:
        sweep = api.run_spec(spec, args.storage, cluster_address(args.address, say=False),
                             loggers=args.loggers, num_cpus=args.num_cpus,
                             num_gpus=args.num_gpus, verbose=args.verbose,
                             connect_timeout=args.connect_timeout)
    except SweepInterrupted as stop:
        return conclude(stop.sweep_dir, spec.num_trials, interrupted=True, exit_code=stop.exit_code,
                        ended=stop.ended)
    return conclude(sweep.path, spec.num_trials)
