"""Data-parallel overhead on CPU: 2 gloo DDP workers against 1 process, on the same global batch.

Each configuration runs ``DINOTrainer.train_step`` (the production step: teacher and student
forward, DINO loss, backward, DDP's gradient all-reduce when there are workers, per-parameter
clipping, AdamW, EMA) on random crops already in memory (no data loading, no augmentation):

- ``single``: 1 process, global batch B, ``--threads`` threads (default 2: all of this machine);
- ``single-1t``: 1 process, global batch B, 1 thread (what one worker alone does per thread);
- ``ddp``: 2 processes x B/2, 1 thread each, gloo (``torch.multiprocessing``, as Ray Train
  would start them but without Ray, so only DDP itself is measured);
- ``independent``: the same 2 processes x B/2 at the same time, without a process group (two
  unrelated half-batch runs). ``ddp`` against ``independent`` isolates what DDP adds (gradient
  all-reduce, the center's all-reduce, waiting for the slower rank) under the same CPU contention,
  which makes it the figure to read on a shared machine.

    python bench/ddp_overhead.py --batch 64 --iters 8

Prints one JSON line per configuration: name, processes, threads, global batch, step_ms
(median), img_per_s (global batch / step time), and for ``ddp`` its scaling efficiency
against ``single-1t`` (img/s of 2 workers / (2 x img/s of 1 process with 1 thread)) and its
overhead against ``independent`` (ddp step time / independent step time - 1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repository

from trainables.config import DINOConfig
from trainables.dino.trainer import DINOTrainer


class StepTrainer(DINOTrainer):
    """The production trainer without a dataset: only ``train_step`` is timed."""

    def _build_data(self) -> None:
        self.niter_per_ep = 1000  # only sizes the schedules


def config(args: argparse.Namespace, batch: int) -> DINOConfig:
    return DINOConfig(arch=args.arch, patch_size=args.patch_size, global_crops_size=args.img,
                      local_crops_size=args.local_img, local_crops_number=args.locals, out_dim=args.out_dim,
                      batch_size=batch, device="cpu", precision="fp32", freeze_last_layer=0, koleo_weight=0.0)


def crops(args: argparse.Namespace, batch: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sizes = [args.img] * 2 + [args.local_img] * args.locals
    return [torch.randn(batch, 3, s, s, generator=g) for s in sizes]


def time_steps(args: argparse.Namespace, batch: int, rank: int = 0) -> float:
    """Median ms of one optimizer step after ``--warmup`` untimed steps."""
    trainer = StepTrainer(config(args, batch))
    local = crops(args, batch, seed=rank)
    times = []
    for it in range(args.warmup + args.iters):
        if dist.is_initialized():
            dist.barrier()  # time the same steps on every rank
        start = time.perf_counter()
        trainer.train_step([local], it=it, epoch=1)
        if it >= args.warmup:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _worker(rank: int, args: argparse.Namespace, init_file: str, out: str, ddp: bool) -> None:
    torch.set_num_threads(1)
    if ddp:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        ms = time_steps(args, args.batch // 2, rank)
        Path(out, f"rank{rank}.txt").write_text(str(ms))
    finally:
        if ddp:
            dist.destroy_process_group()


def two_processes(args: argparse.Namespace, ddp: bool) -> float:
    """Step ms of 2 processes x B/2 run at once: the slower rank's median."""
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_worker, args=(args, str(Path(folder) / "init"), folder, ddp), nprocs=2, join=True)
        return max(float(Path(folder, f"rank{r}.txt").read_text()) for r in range(2))


def record(name: str, processes: int, threads: int, batch: int, ms: float, **extra: float) -> dict:
    row = {"name": name, "processes": processes, "threads_per_process": threads, "global_batch": batch,
           "step_ms": round(ms, 1), "img_per_s": round(batch / ms * 1000, 2), **extra}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="vit_tiny_patch16_224")
    p.add_argument("--patch-size", type=int, default=4)
    p.add_argument("--img", type=int, default=32)
    p.add_argument("--local-img", type=int, default=16)
    p.add_argument("--locals", type=int, default=6)
    p.add_argument("--out-dim", type=int, default=4096)
    p.add_argument("--batch", type=int, default=64, help="global batch (even)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    record("single", 1, args.threads, args.batch, time_steps(args, args.batch))
    torch.set_num_threads(1)
    one = record("single-1t", 1, 1, args.batch, time_steps(args, args.batch))
    apart = record("independent", 2, 1, args.batch, two_processes(args, ddp=False))
    ms = two_processes(args, ddp=True)
    efficiency = args.batch / ms * 1000 / (2 * one["img_per_s"])
    record("ddp", 2, 1, args.batch, ms, efficiency_vs_2x_single_1t=round(efficiency, 3),
           overhead_vs_independent=round(ms / apart["step_ms"] - 1, 3))


if __name__ == "__main__":
    main()
