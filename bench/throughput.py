"""End-to-end DINO training throughput (data included): images/s of ``DINOTrainer.train_one_epoch``.

One run builds the production trainer and trains ``--epochs`` epochs; each epoch's ``images_per_s``
is the trainer's own figure (wall time of the epoch loop: data loading, augmentation, step). The
first epoch is a warm-up and is not counted. Prints one JSON line.

    python bench/throughput.py                                 # digits, resnet10t, batch 32, 2x32 + 4x16
    python bench/throughput.py --set augment_device=cpu        # the per-image PIL pipeline
    python bench/throughput.py --compare /tmp/h9-base --pairs 3  # A/B against another checkout
    python bench/throughput.py --device cuda --cifar-like 50000 --set arch=vit_tiny_patch16_224 \
        --set patch_size=4 --set batch_size=256 --set local_crops_number=6 --set precision=bf16

``--compare DIR`` runs this bench alternately with ``PYTHONPATH=DIR`` (the other checkout) and with
this checkout, ``--pairs`` times, and prints each pair's ratio (this / other) and the median;
``--concurrent`` starts the two runs of a pair together, so that both see the same machine load.
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
    from sweep_format import yamltext  # as ablate reads a --set value (1e-4 is a number)
    return yamltext.load(text)


class CifarLike:
    """Random uint8 images held like torchvision's CIFAR (``.data`` N x H x W x 3, ``.targets``)."""

    def __init__(self, n: int, side: int = 32, seed: int = 0) -> None:
        import numpy as np
        rng = np.random.default_rng(seed)
        self.data = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
        self.targets = rng.integers(0, 10, n).tolist()

    def __len__(self) -> int:
        return len(self.data)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from trainables.config import DINOConfig
    from trainables.dino import trainer as trainer_module
    from trainables.dino.trainer import DINOTrainer

    if args.cifar_like:  # CIFAR-sized in-memory data without a download
        n = args.cifar_like
        trainer_module.build_datasets = lambda cfg: (CifarLike(n), CifarLike(max(n // 5, 1), seed=1))

    torch.set_num_threads(args.threads)
    values = {**WORK, "device": args.device, "epochs": args.epochs + 1,
              **{k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}}
    known = {k: v for k, v in values.items() if k in DINOConfig.model_fields}
    trainer = DINOTrainer(DINOConfig(**known))
    if args.augment_only:
        return {**augment_only(trainer), "threads": args.threads, "loadavg": os.getloadavg()[0]}
    epochs = [trainer.train_one_epoch(e) for e in range(args.epochs + 1)][1:]  # epoch 0 warms up
    speeds = [m["images_per_s"] for m in epochs]
    extra = knn_cost(trainer, statistics.median(speeds)) if args.eval else {}
    return {"img_per_s": round(statistics.median(speeds), 2), "per_epoch": [round(s, 2) for s in speeds],
            **extra,
            "data_wait_share": [round(m.get("data_wait_share", float("nan")), 3) for m in epochs],
            "gpu_mem_peak_gb": max((m.get("gpu_mem_peak_gb", 0.0) for m in epochs), default=0.0),
            "threads": args.threads, "device": str(trainer.device),
            "skipped_keys": sorted(set(values) - set(known)),
            "code": str(ROOT), "torch": torch.__version__, "loadavg": os.getloadavg()[0]}


def augment_only(trainer: Any) -> dict[str, Any]:
    """Images/s of the data path alone: one epoch of batches from the trainer's loader, no step."""
    import time
    loader = trainer.loader
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(0)
    start, images = time.perf_counter(), 0
    for crops, _ in loader:
        images += crops[0].shape[0]
    return {"augment_img_per_s": round(images / (time.perf_counter() - start), 1),
            "loader": type(loader).__name__}


def knn_cost(trainer: Any, train_img_per_s: float) -> dict[str, float]:
    """One kNN evaluation timed, and its cost relative to an epoch estimated for CIFAR-10.

    Evaluation forwards every memory and test image once (CIFAR-10: 50,000 + 10,000): measured
    here as eval images/s. The vote is one (10,000 x D) @ (D x 50,000) similarity matmul plus a
    top-k: timed on a 1/25 slice (2,000 x 10,000) and scaled by 25. An epoch trains on the
    50,000 train images at the measured train images/s. Share = (forward + vote) / epoch.
    """
    import time

    import torch

    from trainables.dino.backbone import feature_dim

    n = len(trainer.memory_set) + len(trainer.test_set)
    start = time.perf_counter()
    trainer.evaluate()
    eval_img_per_s = n / (time.perf_counter() - start)
    dim = feature_dim(trainer.teacher.backbone)
    memory = torch.randn(10_000, dim, device=trainer.device)
    queries = torch.randn(2_000, dim, device=trainer.device)
    start = time.perf_counter()
    (queries @ memory.t()).topk(trainer.cfg.knn_k, dim=1)
    vote_s = 25 * (time.perf_counter() - start)
    eval_s = 60_000 / eval_img_per_s + vote_s
    return {"eval_img_per_s": round(eval_img_per_s, 1), "knn_vote_s_cifar10": round(vote_s, 2),
            "knn_eval_share_cifar10": round(eval_s / (50_000 / train_img_per_s), 4)}


def compare(args: argparse.Namespace) -> None:
    """Alternate runs of the other checkout and this one; one ratio per pair."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--epochs", str(args.epochs),
            "--threads", str(args.threads), "--device", args.device,
            *[a for s in args.set for a in ("--set", s)]]
    ratios = []
    for pair in range(args.pairs):
        procs = {}
        for name, path in (("base", args.compare), ("this", str(ROOT))):
            env = {**os.environ, "PYTHONPATH": path}
            procs[name] = subprocess.Popen([*argv, "--code", path], env=env, stdout=subprocess.PIPE,
                                           text=True)
            if not args.concurrent:
                procs[name].wait()
        runs = {name: json.loads(proc.communicate()[0].strip().splitlines()[-1])
                for name, proc in procs.items()}
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
    p.add_argument("--cifar-like", type=int, default=0, metavar="N",
                   help="train on N random 32 px uint8 images held like CIFAR (in memory)")
    p.add_argument("--augment-only", action="store_true", help="time the data path alone (no step)")
    p.add_argument("--eval", action="store_true", help="also time one kNN evaluation (see knn_cost)")
    p.add_argument("--compare", metavar="DIR", help="another checkout to A/B against")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--concurrent", action="store_true",
                   help="run the two checkouts of a pair at the same time (same load on a busy machine)")
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
