"""Time one full DINO training step: ablate's own trainer against lightly's DINO parts.

One step = the 2 global crops through the teacher, all crops through the student, the DINO loss,
backward, per-parameter gradient clipping, an AdamW step and the EMA update of the teacher, on
synthetic input (random tensors already on the device: no data loading, no augmentation).

    python bench/step.py --impl ablate  --arch vit_tiny_patch16_224 --patch-size 4 --img 32 \\
        --local-img 16 --locals 6 --batch 64 --out-dim 4096
    python bench/step.py --impl lightly ...same options...

Prints ONE JSON line: impl, arch, batch, img_per_s (an image = one sample with all its crops),
step_ms (median), flops_per_step (torch.utils.flop_counter over one step, forward + backward),
peak_flops (best large-matmul flop/s measured on the same device and dtype), mfu, device, dtype,
threads, and the shapes. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

DROP_PATH_RATE = 0.1  # student stochastic depth, both impls (the teacher has none)
CLIP_GRAD = 3.0
MOMENTUM_TEACHER = 0.996
BASE_LR, WEIGHT_DECAY = 5e-4, 0.04


# --- flop counting ------------------------------------------------------------------------------
def _register_cpu_attention_flops() -> None:
    """FlopCounterMode knows the CUDA SDPA kernels but not the CPU flash kernel timm's ViT uses on
    CPU: without this, attention matmuls would count 0 flops on CPU (and inflate nothing else)."""
    from torch.utils import flop_counter as fc
    aten = torch.ops.aten
    pairs = [("_scaled_dot_product_flash_attention_for_cpu", fc.sdpa_flop),
             ("_scaled_dot_product_flash_attention_for_cpu_backward", fc.sdpa_backward_flop)]
    for name, formula in pairs:
        op = getattr(aten, name, None)
        if op is not None and op not in fc.flop_registry and op.default not in fc.flop_registry:
            fc.register_flop_formula(op, get_raw=True)(formula)  # formula already takes shapes


def count_flops(step: Callable[[], Any]) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    _register_cpu_attention_flops()
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


# --- device, dtype, peak ----------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    from trainables.config import ConfigError
    from trainables.dino.trainer import resolve_device as trainer_device

    try:
        return trainer_device(name)
    except ConfigError as exc:
        raise SystemExit(f"--device {name}: {exc}") from None


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise SystemExit("--precision fp16: needs a CUDA device (use bf16 or fp32 on CPU)")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_peak_flops(device: torch.device, dtype: torch.dtype, size: int, reps: int = 5) -> float:
    """Best flop/s of a square matmul of ``size`` on ``device`` in ``dtype`` (best of ``reps``)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    inner = 10 if device.type == "cuda" else 1  # amortize launch overhead on GPUs
    torch.matmul(a, b)  # warm-up (library init, kernel selection)
    sync(device)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(inner):
            torch.matmul(a, b)
        sync(device)
        best = min(best, (time.perf_counter() - start) / inner)
    return 2.0 * size**3 / best


def synthetic_crops(args: argparse.Namespace, device: torch.device) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    sizes = [args.img] * 2 + [args.local_img] * args.locals
    return [torch.randn(args.batch, 3, s, s, generator=gen).to(device) for s in sizes]


# --- ablate: the production DINOTrainer.train_step ---------------------------------------------
def build_ablate(args: argparse.Namespace, device: torch.device, n_steps: int) -> Callable[[list, int], Any]:
    from trainables.config import DINOConfig
    from trainables.dino.trainer import DINOTrainer

    class BenchTrainer(DINOTrainer):
        """The production trainer minus its dataset: crops are handed to ``train_step`` directly."""

        def _build_data(self) -> None:
            self.niter_per_ep = n_steps  # only sizes the lr / wd / momentum schedules

    cfg = DINOConfig(
        arch=args.arch, patch_size=args.patch_size, global_crops_size=args.img,
        local_crops_size=args.local_img, local_crops_number=args.locals, batch_size=args.batch,
        out_dim=args.out_dim, head_hidden_dim=args.head_hidden, head_bottleneck_dim=args.bottleneck,
        drop_path_rate=DROP_PATH_RATE, clip_grad=CLIP_GRAD, momentum_teacher=MOMENTUM_TEACHER,
        lr=BASE_LR, weight_decay=WEIGHT_DECAY, freeze_last_layer=0, warmup_epochs=0, epochs=1,
        dataset="synthetic", device=str(device), precision=args.precision, seed=0)
    trainer = BenchTrainer(cfg)

    def step(crops: list[torch.Tensor], it: int) -> Any:
        return trainer.train_step([crops], it, 0)
    return step


# --- lightly: its documented DINO usage --------------------------------------------------------
def _timm_backbone(args: argparse.Namespace, drop_path_rate: float) -> torch.nn.Module:
    import timm
    try:
        return timm.create_model(args.arch, pretrained=False, num_classes=0, img_size=args.img,
                                 patch_size=args.patch_size, dynamic_img_size=True,
                                 drop_path_rate=drop_path_rate)
    except TypeError:  # not a ViT
        return timm.create_model(args.arch, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate)


def build_lightly(args: argparse.Namespace, device: torch.device, n_steps: int) -> Callable[[list, int], Any]:
    """lightly's DINO example (examples/pytorch/dino.py) with a timm ViT, plus the parts of its
    ImageNet ViT benchmark that the official recipe needs (teacher without drop path, AdamW with
    no decay on norms/biases, cosine EMA momentum) and per-parameter clipping."""
    from lightly.loss import DINOLoss
    from lightly.models.modules import DINOProjectionHead
    from lightly.models.utils import deactivate_requires_grad, get_weight_decay_parameters, update_momentum
    from lightly.utils.scheduler import cosine_schedule

    from trainables.dino.backbone import feature_dim

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lightly's head uses the deprecated nn.utils.weight_norm
        student_backbone = _timm_backbone(args, DROP_PATH_RATE)
        dim = feature_dim(student_backbone)  # the width the backbone returns, as the trainer's head takes
        student_head = DINOProjectionHead(dim, args.head_hidden, args.bottleneck, args.out_dim,
                                          freeze_last_layer=0)
        teacher_backbone = _timm_backbone(args, 0.0)
        teacher_head = DINOProjectionHead(dim, args.head_hidden, args.bottleneck, args.out_dim)
    teacher_backbone.load_state_dict(student_backbone.state_dict())
    teacher_head.load_state_dict(student_head.state_dict())
    deactivate_requires_grad(teacher_backbone)
    deactivate_requires_grad(teacher_head)
    for m in (student_backbone, student_head, teacher_backbone, teacher_head):
        m.to(device)

    criterion = DINOLoss(output_dim=args.out_dim, warmup_teacher_temp=0.04, teacher_temp=0.04).to(device)
    params, params_no_wd = get_weight_decay_parameters([student_backbone, student_head])
    optimizer = torch.optim.AdamW([{"params": params, "weight_decay": WEIGHT_DECAY},
                                   {"params": params_no_wd, "weight_decay": 0.0}],
                                  lr=BASE_LR * args.batch / 256)
    student_params = [p for p in (*student_backbone.parameters(), *student_head.parameters())
                      if p.requires_grad]
    dtype = amp_dtype(args.precision, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()

    def forward_student(x: torch.Tensor) -> torch.Tensor:
        return student_head(student_backbone(x).flatten(start_dim=1))

    def forward_teacher(x: torch.Tensor) -> torch.Tensor:
        return teacher_head(teacher_backbone(x).flatten(start_dim=1))

    def step(views: list[torch.Tensor], it: int) -> Any:
        momentum = cosine_schedule(it, n_steps, MOMENTUM_TEACHER, 1.0)
        with autocast():
            teacher_out = [forward_teacher(v) for v in views[:2]]  # one backbone pass per view,
            student_out = [forward_student(v) for v in views]      # as in lightly's example
            loss = criterion(teacher_out, student_out, epoch=0)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(optimizer)
        student_head.cancel_last_layer_gradients(current_epoch=0)
        for p in student_params:  # per-parameter clipping, as the official DINO recipe
            if p.grad is not None:
                torch.nn.utils.clip_grad_norm_(p, CLIP_GRAD)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        update_momentum(student_backbone, teacher_backbone, m=momentum)
        update_momentum(student_head, teacher_head, m=momentum)
        return loss.detach()
    return step


IMPLS = {"ablate": build_ablate, "lightly": build_lightly}


# --- the benchmark ------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--impl", choices=sorted(IMPLS), default="ablate")
    p.add_argument("--arch", default="vit_tiny_patch16_224", help="timm model name")
    p.add_argument("--patch-size", type=int, default=4)
    p.add_argument("--img", type=int, default=32, help="global crop side (px)")
    p.add_argument("--local-img", type=int, default=16, help="local crop side (px)")
    p.add_argument("--locals", type=int, default=6, help="local crops per image")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out-dim", type=int, default=4096, help="prototypes K")
    p.add_argument("--head-hidden", type=int, default=2048, help="head MLP hidden width")
    p.add_argument("--bottleneck", type=int, default=256, help="head bottleneck width")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--iters", type=int, default=10, help="timed steps (median reported)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0: all cores")
    p.add_argument("--peak-size", type=int, default=0,
                   help="side of the peak-flops matmul; 0: 2048 on CPU, 8192 on CUDA")
    args = p.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        p.error("--iters must be >= 1 and --warmup >= 0")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = args.threads or cores
    torch.set_num_threads(threads)
    device = resolve_device(args.device)
    dtype = amp_dtype(args.precision, device)
    n_steps = args.warmup + args.iters + 1  # + the flop-counted step
    step = IMPLS[args.impl](args, device, n_steps)
    crops = synthetic_crops(args, device)

    it = 0
    for _ in range(args.warmup):
        step(crops, it)
        it += 1
    sync(device)
    times = []
    for _ in range(args.iters):
        sync(device)
        start = time.perf_counter()
        step(crops, it)
        sync(device)
        times.append(time.perf_counter() - start)
        it += 1
    flops = count_flops(lambda: step(crops, it))
    sync(device)

    step_s = statistics.median(times)
    peak_size = args.peak_size or (8192 if device.type == "cuda" else 2048)
    peak = measure_peak_flops(device, dtype or torch.float32, peak_size)
    achieved = flops / step_s
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "impl": args.impl, "arch": args.arch, "batch": args.batch,
        "img_per_s": round(args.batch / step_s, 2), "step_ms": round(step_s * 1e3, 2),
        "step_ms_min": round(min(times) * 1e3, 2),
        "flops_per_step": flops, "achieved_flops": round(achieved),
        "peak_flops": round(peak), "mfu": round(achieved / peak, 4),
        "device": f"{device.type}:{name}" if device.type == "cuda" else "cpu",
        "dtype": args.precision, "threads": threads,
        "patch_size": args.patch_size, "img": args.img, "local_img": args.local_img,
        "locals": args.locals, "out_dim": args.out_dim, "head_hidden": args.head_hidden,
        "bottleneck": args.bottleneck, "warmup": args.warmup, "iters": args.iters,
        "peak_matmul": peak_size, "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    result = run(parse_args(argv))
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
