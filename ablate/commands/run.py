"""``ablate run SPEC.yaml``: a DINO ablation sweep on Ray Tune, then its report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ablate.spec import load_spec
from ablate.summary import finish
from ablate.sweep import DEFAULT_CONNECT_TIMEOUT


def add_ray_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", metavar="HOST:PORT",
                   help="join this running Ray cluster instead of starting a local Ray "
                        "(token auth: export RAY_AUTH_MODE=token with the cluster's token)")
    p.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the local Ray (default: all)")
    p.add_argument("--num-gpus", type=int, metavar="N", help="GPUs of the local Ray (default: detected)")
    p.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT, metavar="SECONDS",
                   help="with --address: give up when the cluster does not answer within this "
                        f"time (default {DEFAULT_CONNECT_TIMEOUT:g})")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run an ablation sweep from a YAML search space",
        description="Run a DINO hyperparameter sweep described by a YAML spec (see "
                    "search_spaces/README.md) on Ray Tune. Results go to STORAGE/NAME/: Ray's "
                    "experiment (tune/), the Optuna study (optuna.db), the resolved spec "
                    "(spec.yaml) and the report (report/). An interrupted sweep continues with "
                    "`ablate resume STORAGE/NAME`.",
        epilog="example: ablate run search_spaces/temps.yaml --set trainer.epochs=2 "
               "--set search.num_samples=4 --set resources.gpu=0.25")
    p.add_argument("spec", help="sweep spec YAML, e.g. search_spaces/temps.yaml")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE",
                   help="override a spec key by its dotted path, e.g. trainer.epochs=2, "
                        "search.num_samples=4, resources.gpu=0.25, name=temps-cifar")
    p.add_argument("--storage", default="runs", metavar="DIR", help="sweeps folder (default: ./runs)")
    add_ray_options(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ablate.sweep import run_sweep

    spec = load_spec(args.spec, args.sets)  # every mistake is reported before Ray starts
    print(f"ablate: sweep {spec.name!r}: {spec.num_trials} trials ({spec.search.algorithm}), "
          f"results in {Path(args.storage) / spec.name}", file=sys.stderr)
    sweep_dir = run_sweep(spec, args.storage, args.address, args.num_cpus, args.num_gpus,
                          args.connect_timeout)
    return finish(sweep_dir)
