"""End-to-end DINO training throughput (data included): images/s of ``DINOTrainer.train_one_epoch``.

One run builds the production trainer and trains ``--epochs`` epochs; each epoch's ``images_per_s``
is the trainer's own figure (wall time of the epoch loop: data loading, augmentation, step). The
first epoch is a warm-up and is not counted. Prints one JSON line.

    python bench/throughput.py                                 # digits, resnet10t, batch 32, 2x32 + 4x16
    python bench/throughput.py --set augment_device=cpu        # the per-image PIL pipeline
    python bench/throughput.py --compare /tmp/h9-base --pairs 3  # A/B against another checkout

``--compare DIR`` runs this bench alternately with ``PYTHONPATH=DIR`` (the other checkout) and with
this checkout, ``--pairs`` times, and prints each pair's ratio (this / other) and the median.
Keys the other checkout does not know are skipped there, so both do the same work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = {  # the identical work of the issue: digits, resnet10t, batch 32, 2 x 32 px + 4 x 16 px crops
    "dataset": "digits", "arch": "resnet10t", "batch_size": 32, "global_crops_size": 32,
    "local_crops_size": 16, "local_crops_number": 4, "out_dim": 1024, "head_hidden_dim": 512,
    "head_bottleneck_dim": 128, "koleo_weight": 0.1, "precision": "fp32", "num_workers": 0,
    "eval_every": 0, "seed": 0,
}


def parse_value(text: str) -> Any:
    import yaml
    return yaml.safe_load(text)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from trainables.config import DINOConfig
    from trainables.dino.trainer import DINOTrainer

    torch.set_num_threads(args.threads)
    values = {**WORK, "device": args.device, "epochs": args.epochs + 1,
              **{k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}}
    known = {k: v for k, v in values.items() if k in DINOConfig.model_fields}
    trainer = DINOTrainer(DINOConfig(**known))
    epochs = [trainer.train_one_epoch(e) for e in range(args.epochs + 1)][1:]  # epoch 0 warms up
    speeds = [m["images_per_s"] for m in epochs]
    return {"img_per_s": round(statistics.median(speeds), 2), "per_epoch": [round(s, 2) for s in speeds],
            "data_wait_share": [round(m.get("data_wait_share", float("nan")), 3) for m in epochs],
            "threads": args.threads, "device": str(trainer.device), "skipped_keys": sorted(set(values) - set(known)),
            "code": str(ROOT), "torch": torch.__version__, "loadavg": os.getloadavg()[0]}


def compare(args: argparse.Namespace) -> None:
    """Alternate runs of the other checkout and this one; one ratio per pair."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--epochs", str(args.epochs),
            "--threads", str(args.threads), "--device", args.device, *[a for s in args.set for a in ("--set", s)]]
    ratios = []
    for pair in range(args.pairs):
        runs = {}
        for name, path in (("base", args.compare), ("this", str(ROOT))):
            env = {**os.environ, "PYTHONPATH": path}
            out = subprocess.run([*argv, "--code", path], env=env, check=True, capture_output=True, text=True)
            runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
        ratio = runs["this"]["img_per_s"] / runs["base"]["img_per_s"]
        ratios.append(ratio)
        print(json.dumps({"pair": pair, "base": runs["base"]["img_per_s"], "this": runs["this"]["img_per_s"],
                          "ratio": round(ratio, 3), "this_data_wait_share": runs["this"]["data_wait_share"],
                          "loadavg": runs["this"]["loadavg"]}), flush=True)
    print(json.dumps({"median_ratio": round(statistics.median(ratios), 3), "pairs": len(ratios)}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up epoch)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="trainer key override")
    p.add_argument("--compare", metavar="DIR", help="another checkout to A/B against")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--code", help=argparse.SUPPRESS)  # where the code comes from (set by --compare)
    args = p.parse_args()
    if args.compare:
        compare(args)
        return
    if args.code:
        sys.path.insert(0, args.code)
    else:
        sys.path.insert(0, str(ROOT))
    print(json.dumps(measure(args)), flush=True)


if __name__ == "__main__":
    main()
