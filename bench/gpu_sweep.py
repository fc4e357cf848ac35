"""Aggregate training throughput of a small sweep at 1, 2 and 4 trials per GPU.

On a CUDA machine (no download needed: the embedded digits, upsampled), runs the same grid of
trials three times with ``resources.gpu`` = 1, 0.5 and 0.25 and prints one JSON line per
packing with the aggregate images/s (all trials' images over the sweep's wall time)::

    python bench/gpu_sweep.py                       # ViT-S/4 on 32 px digits, 8 trials x 2 epochs
    python bench/gpu_sweep.py --arch vit_tiny_patch16_224 --batch 512 --epochs 3

``--num-gpus N`` declares GPUs to the local Ray (a dry run of the packing on a CPU machine).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = """
name: gpu-{share}
trainer:
  arch: {arch}
  patch_size: {patch}
  global_crops_size: 32
  local_crops_size: 16
  local_crops_number: 6
  batch_size: {batch}
  out_dim: 4096
  epochs: {epochs}
  eval_every: 0
space:
  teacher_temp: {{type: choice, values: {temps}}}
search: {{algorithm: grid}}
resources: {{cpu: {cpu}, gpu: {share}}}
stop: {{collapse: false}}
"""


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most trials running at one instant, from their own (start, last report) timestamps."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return best


def aggregate(sweep: Path) -> dict[str, float]:
    """Images over wall time (all trials), the most concurrent trials, and their peak GPU memory.

    ``train_img_per_s`` counts only the training epochs' own time (no start-up, no kNN): the
    sum over trials of images / the union of the training intervals."""
    from sweep_format.layout import TUNE_DIR

    images, intervals, train_spans, peaks = 0.0, [], [], []
    for result in (sweep / TUNE_DIR).glob("*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        intervals.append((rows[0]["started_at"], rows[-1]["reported_at"]))
        trained = [r for r in rows if r.get("epoch_time_s")]
        images += sum(r.get("images_per_s", 0) * r.get("epoch_time_s", 0) for r in trained)
        if trained:
            first = trained[0]["reported_at"] - trained[0]["epoch_time_s"]
            train_spans.append((first, trained[-1]["reported_at"]))
        peaks.append(max((r.get("gpu_mem_peak_gb", 0.0) for r in rows), default=0.0))
    wall = max(e for _, e in intervals) - min(s for s, _ in intervals)
    train_wall = max(e for _, e in train_spans) - min(s for s, _ in train_spans) if train_spans else wall
    return {"trials": len(intervals), "images": images, "wall_s": wall, "img_per_s": images / wall,
            "train_img_per_s": images / train_wall, "max_concurrent": max_overlap(intervals),
            "gpu_mem_peak_gb_per_trial": round(max(peaks, default=0.0), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="vit_small_patch16_224")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--cpu", type=float, default=2, help="CPUs per trial")
    p.add_argument("--shares", default="1,0.5,0.25", help="GPU share per trial, comma-separated")
    p.add_argument("--trials", type=int, default=8, help="trials per packing (a grid of teacher_temp)")
    p.add_argument("--patch-size", type=int, default=4)
    p.add_argument("--num-gpus", type=int, default=None)
    args = p.parse_args()

    import ray

    from ablate.sweep import run_sweep, start_ray
    from ablate.sweep_spec import load_spec

    start_ray(num_gpus=args.num_gpus)
    gpus = ray.cluster_resources().get("GPU", 0)
    storage = Path(tempfile.mkdtemp(prefix="gpu-sweep-"))
    try:
        for share in [float(s) for s in args.shares.split(",")]:
            spec_file = storage / f"spec-{share}.yaml"
            temps = [round(0.02 + 0.01 * i, 3) for i in range(args.trials)]
            spec_file.write_text(SPEC.format(share=share, arch=args.arch, batch=args.batch, temps=temps,
                                             epochs=args.epochs, cpu=args.cpu,
                                             patch=args.patch_size))
            t0 = time.time()
            sweep = run_sweep(load_spec(spec_file), storage / "runs")
            out = {"trials_per_gpu": round(1 / share), "gpus": gpus, "arch": args.arch, "batch": args.batch,
                   **aggregate(sweep), "driver_s": time.time() - t0}
            print(json.dumps(out), flush=True)
    finally:
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    main()
