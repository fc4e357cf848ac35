"""DINOTrainer: one DINO run, read top to bottom like facebookresearch/dino ``train_dino``.

The trainer knows nothing of Ray: ``run()`` yields one metrics dict per epoch (epoch 0 is the
untrained baseline), and ``save_checkpoint`` / ``load_checkpoint`` make a run resumable. The
command-line ``ablate train`` and the Ray Tune trainable are both thin loops over ``run()``.

Data parallel: when a ``torch.distributed`` process group is initialised (Ray Train, torchrun),
every process is one worker of one run, as in the official ``main_dino.py``: the student is
wrapped in DDP (BatchNorm becomes SyncBatchNorm in student and teacher on GPUs), each rank trains on its
shard of every global batch, the center and Sinkhorn-Knopp reduce over ranks (``DINOLoss``),
gradients are averaged by DDP before the per-parameter clipping, the EMA teacher update is the
same on every rank, epoch metrics are averaged over ranks and kNN features are gathered, so N
workers x batch b train and evaluate like one process with batch N*b. Only rank 0 should write
checkpoints (``is_main_process``); every rank loads them.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sized
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, Subset

from sweep_format.files import atomic_path
from sweep_format.layout import CHECKPOINT_NAME as CHECKPOINT_NAME  # the file a run's weights are saved in
from trainables import cuda
from trainables.checkpoint import DamagedFileError, load_pt
from trainables.config import ConfigError, DINOConfig, config_differences
from trainables.data import (
    build_datasets,
    check_batch,
    check_steps,
    in_memory,
    knn_memory_split,
    with_transform,
)
from trainables.dino.augment import DataAugmentationDINO, eval_transform
from trainables.dino.backbone import build_backbone, feature_dim, is_vit, pointwise_weights_nhwc
from trainables.dino.batch_augment import BatchDataAugmentationDINO
from trainables.dino.cpu_bf16 import fp32_where_bf16_grads_fail
from trainables.dino.head import DINOHead
from trainables.dino.loaders import CPUMultiCropLoader, DeviceMultiCropLoader, FolderMultiCropLoader
from trainables.dino.loss import DINOLoss, KoLeoLoss
from trainables.dino.multicrop import MultiCropWrapper
from trainables.dino.optim import build_optimizer
from trainables.dino.schedules import cosine_scheduler, teacher_temp_schedule
from trainables.distributed import (
    ShardSampler,
    all_reduce_mean,
    broadcast_buffers,
    eval_indices,
    gather_rows,
    is_distributed,
    rank,
    world_size,
)
from trainables.inputs import check_model
from trainables.knn import extract_features, extract_features_in_memory, knn_accuracy

# kNN of untrained networks this process has evaluated, by a digest of their weights and the data:
# in a sweep, Ray reuses a trial's process for the next trial, and every repeat of a seed starts
# from the same initialization, so each is evaluated once (the values are the same ones).
_UNTRAINED_KNN: dict[str, tuple[float, float]] = {}


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the run cannot continue."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        why = cuda.unseen_gpu()
        raise ConfigError(f"device={name!r}: CUDA is not available {why and f'({why}) '}on this machine "
                          "(use auto or cpu)")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32. auto: bf16 on GPUs with native bf16, else fp16; fp32 on CPU.
    (fp16 off a GPU is refused before: DINOConfig.gpu_settings.)"""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if cuda.native_bf16(device) else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """Seed of the augmentation and drop-path randomness of one rank in one epoch.

    Depends on (seed, epoch, rank) only, so a resumed run draws what an uninterrupted one draws;
    ranks differ, so workers do not crop their different images with the same random draws.
    """
    return seed * 100_003 + epoch + 1 + rank * 1_000_000_007


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_params_groups(model: nn.Module) -> list[dict[str, Any]]:
    """Parameter groups tagged by name, as dinov2's: ``regularized`` (weight decay x 1) and
    ``not_regularized`` (biases and 1-D parameters such as norms: x 0, as in the official code)."""
    regularized: list[nn.Parameter] = []
    not_regularized: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (not_regularized if name.endswith(".bias") or param.ndim == 1 else regularized).append(param)
    return [{"params": regularized, "name": "regularized", "wd_multiplier": 1.0},
            {"params": not_regularized, "name": "not_regularized", "wd_multiplier": 0.0, "weight_decay": 0.0}]


GROUP_TAGS = ("name", "wd_multiplier")


def clip_gradients(params: list[torch.Tensor], clip: float) -> None:
    """Clip each parameter's gradient norm to ``clip`` separately (official ``clip_gradients``)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    norms = torch.stack(torch._foreach_norm(grads))
    coefs = (clip / (norms + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, list(coefs.unbind()))


class DINOTrainer:
    """A DINO run: student and EMA teacher, multi-crop data, schedules, kNN evaluation, checkpoints.

    Example::

        trainer = DINOTrainer(DINOConfig(epochs=5))
        for metrics in trainer.run():
            print(metrics["epoch"], metrics.get("knn_top1"))
        trainer.save_checkpoint("run/checkpoint.pt")
    """

    def __init__(self, cfg: DINOConfig, progress: bool = False) -> None:
        self.cfg, self.progress = cfg, progress
        self.rank, self.world_size = rank(), world_size()
        self.device = resolve_device(cfg.device)
        asks = cfg.gpu_settings()
        if asks and self.device.type != "cuda":
            raise ConfigError(f"{', '.join(asks)}: need{'s' * (len(asks) == 1)} a CUDA device, and this "
                              f"run's device is {self.device} (on a CPU: device auto or cpu, augment_device "
                              "auto, precision fp32 or bf16)")
        self.amp_dtype = resolve_precision(cfg.precision, self.device)
        check_model(cfg)  # the crops the backbone takes, before the data is read
        if self.device.type == "cuda":
            cuda.use_expandable_segments()
            cuda.enable_fast_math()
        seed_everything(cfg.seed)
        self._build_data()
        self._build_models()
        self._build_optimization()
        self.epoch = 0  # epochs completed
        self.baseline_done = False
        self.checkpoint_epoch: int | None = None  # the epoch of the checkpoint last written or read

    # --- construction ---------------------------------------------------------------------
    def _build_data(self) -> None:
        cfg = self.cfg
        train, test = build_datasets(cfg)
        n_train = len(cast(Sized, train))
        check_batch(cfg, n_train, self.world_size)
        # This worker's shard of each epoch's permutation of the training set (all of it alone).
        self.sampler = ShardSampler(n_train, cfg.seed, self.rank, self.world_size)
        self.loader = self._make_loader(train)
        memory = self._knn_memory(knn_memory_split(cfg, train))
        self.memory_data, self.test_data = in_memory(memory), in_memory(test)
        self.memory_set = with_transform(memory, eval_transform(cfg.global_crops_size))
        self.test_set = with_transform(test, eval_transform(cfg.global_crops_size))
        self.niter_per_ep = len(self.loader) // cfg.grad_accum_steps
        # what a checkpoint was trained and evaluated on: a resumed run must find the same (read_checkpoint)
        self.data_sizes = {"train": n_train, "knn memory": len(cast(Sized, memory)),
                           "test": len(cast(Sized, test))}

    def _make_loader(self, train: Dataset) -> Any:
        """In memory: batched on the device; from disk: CPU crops + device colour on CUDA, else per image."""
        cfg = self.cfg
        crops: dict[str, Any] = dict(
            global_crops_scale=cfg.global_crops_scale, local_crops_scale=cfg.local_crops_scale,
            local_crops_number=cfg.local_crops_number, global_crops_size=cfg.global_crops_size,
            local_crops_size=cfg.local_crops_size, blur_radius_relative=cfg.blur_radius_relative)
        batched = BatchDataAugmentationDINO(**crops, seed=cfg.seed)
        data = in_memory(train) if cfg.augment_device != "cpu" else None
        if data is not None:
            return DeviceMultiCropLoader(*data, batched, cfg.batch_size, self.sampler, self.device)
        workers = self._num_workers()
        if cfg.augment_device != "cpu" and self.device.type == "cuda":
            return FolderMultiCropLoader(train, batched, cfg.batch_size, workers, self.sampler, self.device)
        per_image = DataAugmentationDINO(**crops)
        return CPUMultiCropLoader(train, per_image, cfg.seed, cfg.batch_size, workers, self.sampler,
                                  self.device)

    def _num_workers(self) -> int:
        if self.cfg.num_workers is not None:
            return self.cfg.num_workers
        # On CUDA the trial's CPUs feed the GPU: all but the one running the training loop.
        return max(torch.get_num_threads() - 1, 0) if self.device.type == "cuda" else 0

    def _knn_memory(self, memory: Dataset) -> Dataset:
        size = self.cfg.knn_memory_size
        if size is None or size >= len(memory):  # type: ignore[arg-type]
            return memory
        pick = torch.randperm(len(memory), generator=torch.Generator().manual_seed(self.cfg.seed))  # type: ignore[arg-type]
        return Subset(memory, sorted(pick[:size].tolist()))

    def _make_network(self, drop_path_rate: float) -> MultiCropWrapper:
        cfg = self.cfg
        backbone = build_backbone(cfg.arch, cfg.global_crops_size, cfg.patch_size, drop_path_rate,
                                  cfg.pretrained_weights)
        head = DINOHead(in_dim=feature_dim(backbone), out_dim=cfg.out_dim,
                        use_bn=cfg.use_bn_in_head, norm_last_layer=cfg.norm_last_layer,
                        nlayers=cfg.head_nlayers, hidden_dim=cfg.head_hidden_dim,
                        bottleneck_dim=cfg.head_bottleneck_dim, use_ln=cfg.use_ln_in_head)
        return MultiCropWrapper(backbone, head)

    def _build_models(self) -> None:
        try:
            self.student = self._make_network(self.cfg.drop_path_rate)
            self.teacher = self._make_network(0.0)  # the teacher has no drop path
        except (RuntimeError, MemoryError) as exc:  # the host cannot hold them: a setting the user can lower
            if not cuda.out_of_memory(exc):
                raise
            raise ConfigError(f"arch={self.cfg.arch!r} with its DINO head (out_dim={self.cfg.out_dim}, "
                              f"head_hidden_dim={self.cfg.head_hidden_dim}, head_bottleneck_dim="
                              f"{self.cfg.head_bottleneck_dim}, head_nlayers={self.cfg.head_nlayers}) does "
                              f"not fit in this machine's memory ({cuda.short_reason(exc)}): choose a "
                              "smaller arch or lower them") from None
        # BatchNorm statistics over the global batch, as one process has them. PyTorch's
        # SyncBatchNorm runs on GPUs only: on CPU (gloo) each worker normalizes its own shard.
        if self.world_size > 1 and self.device.type == "cuda":
            self.student = nn.SyncBatchNorm.convert_sync_batchnorm(self.student)
            self.teacher = nn.SyncBatchNorm.convert_sync_batchnorm(self.teacher)
        self.student, self.teacher = self.student.to(self.device), self.teacher.to(self.device)
        # CNNs run faster on NHWC activations: tensor cores on GPUs, oneDNN on CPUs. GPUs get
        # NHWC weights too (cuDNN's layout). On CPUs the weights stay NCHW: oneDNN runs NHWC
        # activations with them, while NHWC weights cost a layout copy of every weight gradient
        # and a contiguous copy of every parameter in the fused AdamW step (resnet10t's step
        # 171 -> 153 ms on one core, bench/README.md). State dicts are the same either way.
        self.memory_format = (torch.contiguous_format if is_vit(self.student.backbone)
                              else torch.channels_last)
        if self.memory_format == torch.channels_last and self.device.type != "cpu":
            self.student.to(memory_format=self.memory_format)
            self.teacher.to(memory_format=self.memory_format)
        if self.device.type == "cpu" and self.amp_dtype == torch.bfloat16:  # the student's backward only
            fp32_where_bf16_grads_fail(self.student)  # oneDNN's unwritten weight gradients (cpu_bf16)
        self.teacher.load_state_dict(self.student.state_dict())
        for p in self.teacher.parameters():
            p.requires_grad = False
        self.student_params: list[torch.Tensor] = list(self.student.parameters())
        self.teacher_params: list[torch.Tensor] = list(self.teacher.parameters())
        self.last_layer_params = [p for n, p in self.student.named_parameters() if "last_layer" in n]
        if self.cfg.compile:  # in place: parameter names, state dicts and checkpoints stay the same
            self.student.backbone.compile()
            self.teacher.backbone.compile()
        # Forward passes go through DDP (it averages gradients over ranks); weights, EMA and
        # checkpoints use the plain module, so a checkpoint is the same with or without workers.
        self.student_forward: nn.Module = self.student
        if is_distributed():
            if self.memory_format == torch.channels_last and self.device.type == "cpu":
                pointwise_weights_nhwc(self.student)  # DDP's gradient layout (not in one process:
                # oneDNN then rounds a few sums differently, and trials stay bit for bit as they were)
            self.student_forward = DistributedDataParallel(self.student)  # on the student's device

    def _build_optimization(self) -> None:
        cfg = self.cfg
        self.loss_fn = DINOLoss(out_dim=cfg.out_dim, ncrops=cfg.ncrops, student_temp=cfg.student_temp,
                                center_momentum=cfg.center_momentum, centering=cfg.centering).to(self.device)
        self.teacher_temp_schedule = teacher_temp_schedule(
            warmup_teacher_temp=cfg.warmup_teacher_temp, teacher_temp=cfg.teacher_temp,
            warmup_teacher_temp_epochs=cfg.warmup_teacher_temp_epochs, nepochs=cfg.epochs)
        self.koleo = KoLeoLoss()
        self.optimizer = build_optimizer(cfg.optimizer, get_params_groups(self.student), self.device)
        use_scaler = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        n = self.niter_per_ep
        check_steps(cfg, n)  # the loader's own count (check_batch estimated it from the images)
        self.lr_schedule = cosine_scheduler(base_value=cfg.effective_lr(self.world_size),
                                            final_value=cfg.min_lr, epochs=cfg.epochs, niter_per_ep=n,
                                            warmup_epochs=cfg.warmup_epochs)
        self.wd_schedule = cosine_scheduler(base_value=cfg.weight_decay, final_value=cfg.weight_decay_end,
                                            epochs=cfg.epochs, niter_per_ep=n)
        self.momentum_schedule = cosine_scheduler(base_value=cfg.momentum_teacher, final_value=1.0,
                                                  epochs=cfg.epochs, niter_per_ep=n)

    def teacher_temp(self, epoch: int) -> float:
        """The teacher temperature of ``epoch`` (linear warmup, then constant)."""
        schedule = self.teacher_temp_schedule
        return float(schedule[min(epoch, len(schedule) - 1)])

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> Iterator[dict[str, Any]]:
        """Yield the epoch-0 baseline (once), then one metrics dict per remaining epoch."""
        if not self.baseline_done:
            baseline = self.knn_metrics(self.untrained_knn)
            self.baseline_done = True
            yield {"epoch": 0, **baseline, "ln_out_dim": self.cfg.ln_out_dim}
        while self.epoch < self.cfg.epochs:
            metrics = self.train_one_epoch(self.epoch)
            self.epoch += 1
            every = self.cfg.eval_every
            if self.epoch == self.cfg.epochs or (every and self.epoch % every == 0):
                metrics.update(self.knn_metrics())
            yield metrics

    def knn_metrics(self, evaluate: Callable[[], tuple[float, float]] | None = None) -> dict[str, float]:
        """``evaluate()`` (or ``evaluate``) as epoch metrics: ``knn_top1``, ``knn_top5`` and
        ``knn_eval_s``, the seconds it took (outside ``epoch_time_s``)."""
        start = time.perf_counter()
        top1, top5 = (evaluate or self.evaluate)()
        return {"knn_top1": top1, "knn_top5": top5, "knn_eval_s": time.perf_counter() - start}

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_one_epoch(self, epoch: int) -> dict[str, Any]:
        cfg = self.cfg
        # Every epoch starts from RNG states derived from (seed, epoch, rank) only, so a resumed
        # run draws the same crops and drop-path masks as an uninterrupted one.
        seed_everything(epoch_seed(cfg.seed, epoch, self.rank))
        self.loader.set_epoch(epoch)
        self.student.train()
        self.teacher.train()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        sums = torch.zeros(4, device=self.device)  # loss, dino, entropy, kl
        n_steps, images, start = 0, 0, time.perf_counter()
        micro: list[Any] = []
        bar = self._progress_bar(epoch)
        batches = _timed(self.loader)
        for crops, _ in batches:
            micro.append(crops)
            if len(micro) < cfg.grad_accum_steps:
                continue
            it = epoch * self.niter_per_ep + n_steps
            if n_steps >= self.niter_per_ep:
                break
            sums += self.train_step(micro, it, epoch)
            images += sum(c[0].shape[0] for c in micro)
            micro = []
            n_steps += 1
            if bar is not None:
                bar.update(1)
                if n_steps % 10 == 0 or n_steps == self.niter_per_ep:
                    bar.set_postfix(loss=f"{sums[0].item() / n_steps:.4f}")
        if bar is not None:
            bar.close()
        # Each rank's means are over its equal share of every global batch: their mean over ranks
        # is the global-batch value (and every rank then takes the same stop decisions).
        means = all_reduce_mean(sums / max(n_steps, 1)).tolist()
        images *= self.world_size
        if not math.isfinite(means[0]):
            raise NonFiniteLossError(f"loss is {means[0]} at epoch {epoch + 1}: training diverged "
                                     "(try a lower lr, a lower teacher_temp or precision=fp32)")
        if not self.weights_finite():  # the epoch's last updates: its losses were computed before them
            raise NonFiniteLossError(f"weights are NaN or infinite after epoch {epoch + 1} (its loss "
                                     f"{means[0]:.4g} was computed before its last update): training "
                                     "diverged (try a lower lr, clip_grad > 0 or precision=fp32)")
        elapsed = time.perf_counter() - start
        last_it = (epoch + 1) * self.niter_per_ep - 1
        return {
            "epoch": epoch + 1, "loss": means[0], "dino_loss": means[1],
            "teacher_entropy": means[2], "kl_teacher_student": means[3],
            "ln_out_dim": cfg.ln_out_dim,
            "loss_at_ln_out_dim": bool(abs(means[1] - cfg.ln_out_dim) < 0.01 * cfg.ln_out_dim),
            "lr": float(self.lr_schedule[last_it]), "weight_decay": float(self.wd_schedule[last_it]),
            "teacher_temp": self.teacher_temp(epoch),
            "momentum_teacher": float(self.momentum_schedule[last_it]),
            "epoch_time_s": elapsed, "images_per_s": images / elapsed if elapsed > 0 else 0.0,
            **self._data_metrics(batches.wait_s, elapsed),
        }

    def weights_finite(self) -> bool:
        """Whether the student's and the teacher's weights are all finite (read only: one flag per
        tensor, one sync). An update can turn them NaN after the last loss of an epoch was computed,
        and the kNN of NaN features is a chance-level score, not an error."""
        params = self.student_params + self.teacher_params
        return bool(torch.stack([p.isfinite().all() for p in params]).all())

    def _data_metrics(self, wait_s: float, elapsed: float) -> dict[str, float]:
        """Time the loop waited for batches (on CUDA the device-side augmentation is queued
        asynchronously, so this is the host's share), and the epoch's peak GPU memory."""
        metrics = {"data_wait_s": wait_s, "data_wait_share": wait_s / elapsed if elapsed > 0 else 0.0}
        if self.device.type == "cuda":
            metrics["gpu_mem_peak_gb"] = cuda.peak_memory_gb(self.device)
        return metrics

    def train_step(self, micro_batches: list[list[torch.Tensor]], it: int, epoch: int) -> torch.Tensor:
        """One optimizer step over ``grad_accum_steps`` micro-batches; returns summed diagnostics."""
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_schedule[it]
            if group["wd_multiplier"]:  # biases and norms keep weight_decay 0
                group["weight_decay"] = self.wd_schedule[it] * group["wd_multiplier"]
        self.optimizer.zero_grad(set_to_none=True)
        stats = torch.zeros(4, device=self.device)
        for i, crops in enumerate(micro_batches):
            crops = [c.to(self.device, non_blocking=True, memory_format=self.memory_format) for c in crops]
            with self._grad_sync(last=i == len(micro_batches) - 1):
                with self._autocast():
                    _, teacher_out = self.teacher(crops[:2])
                    student_feats, student_out = self.student_forward(crops)
                    out = self.loss_fn(student_out, teacher_out, self.teacher_temp(epoch))
                    self.loss_fn.update_center(teacher_out)
                    loss = dino = out.loss
                    if cfg.koleo_weight > 0:
                        batch = crops[0].shape[0]
                        koleo = sum(self.koleo(f) for f in student_feats[:2 * batch].chunk(2))
                        loss = dino + cfg.koleo_weight * koleo
                scaled = loss / cfg.grad_accum_steps
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            stats += torch.stack([loss.detach(), dino.detach(), out.teacher_entropy,
                                  out.kl_teacher_student]).float() / len(micro_batches)
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if cfg.clip_grad:
            clip_gradients(self.student_params, cfg.clip_grad)
        if epoch < cfg.freeze_last_layer:
            for p in self.last_layer_params:
                p.grad = None
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        with torch.no_grad():  # EMA: t = m * t + (1 - m) * s
            weight = 1.0 - float(self.momentum_schedule[it])
            torch._foreach_lerp_(self.teacher_params, self.student_params, weight)
        return stats

    def _grad_sync(self, last: bool) -> contextlib.AbstractContextManager:
        """DDP all-reduces gradients on the last micro-batch of a step only (grad_accum_steps > 1)."""
        if last or not isinstance(self.student_forward, DistributedDataParallel):
            return contextlib.nullcontext()
        return self.student_forward.no_sync()

    def _progress_bar(self, epoch: int) -> Any:
        if not self.progress:
            return None
        from tqdm.auto import tqdm
        return tqdm(total=self.niter_per_ep, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", leave=False,
                    unit="step", dynamic_ncols=True)

    @property
    def is_main_process(self) -> bool:
        """Rank 0, the one worker that writes checkpoints and logs."""
        return self.rank == 0

    def untrained_knn(self) -> tuple[float, float]:
        """``evaluate()`` of the untrained network (epoch 0), once per initialization and data."""
        key = self._untrained_key()
        if key is None:
            return self.evaluate()
        if key not in _UNTRAINED_KNN:
            _UNTRAINED_KNN[key] = self.evaluate()
        return _UNTRAINED_KNN[key]

    def _untrained_key(self) -> str | None:
        """A digest of what the epoch-0 kNN depends on: the teacher backbone's weights, the in-memory
        kNN memory and test images, the kNN and numerics settings (None: not cached)."""
        if self.world_size > 1 or self.memory_data is None or self.test_data is None:
            return None
        digest = hashlib.blake2b(digest_size=20)
        for tensor in [*self.teacher.backbone.state_dict().values(), *self.memory_data, *self.test_data]:
            digest.update(tensor.detach().contiguous().view(-1).view(torch.uint8).cpu().numpy().tobytes())
        cfg = self.cfg
        digest.update(repr((cfg.knn_k, cfg.knn_temperature, cfg.global_crops_size, str(self.amp_dtype),
                            str(self.device), str(self.memory_format))).encode())
        return digest.hexdigest()

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """Weighted kNN top-1/top-5 (percent) of the teacher backbone's features.

        With workers, each rank embeds its share of both sets and the features are gathered, so
        every rank votes over all images and gets the single-process top-1.
        """
        broadcast_buffers(self.teacher)  # CPU BatchNorm running stats differ per rank: use rank 0's
        with self._autocast():
            train_f, train_y = self._features(self.memory_data, self.memory_set)
            test_f, test_y = self._features(self.test_data, self.test_set)
        self.teacher.train()
        return knn_accuracy(train_f, train_y, test_f, test_y, k=self.cfg.knn_k,
                            temperature=self.cfg.knn_temperature)

    def _features(self, data: tuple[torch.Tensor, torch.Tensor] | None,
                  dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        backbone, n = self.teacher.backbone, len(cast(Sized, dataset))
        share = eval_indices(n, self.rank, self.world_size) if self.world_size > 1 else None
        if data is not None:  # in memory: resized and normalized in batches on the device
            if share is not None:
                data = (data[0][share], data[1][share])
            feats, labels = extract_features_in_memory(backbone, *data, self.cfg.global_crops_size,
                                                       self.device, memory_format=self.memory_format)
        else:
            feats, labels = extract_features(backbone, dataset if share is None else Subset(dataset, share),
                                             self.device, num_workers=self._num_workers())
        if share is None:
            return feats, labels
        return gather_rows(feats.float(), n).to(feats.dtype), gather_rows(labels, n)

    # --- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "student": self.student.state_dict(), "teacher": self.teacher.state_dict(),
            "optimizer": plain_optimizer_state(self.optimizer), "dino_loss": self.loss_fn.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "epoch": self.epoch, "baseline_done": self.baseline_done,
            "config": self.cfg.model_dump(mode="json"), "data_sizes": self.data_sizes,
            "rng": rng_state(self.device),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.student.load_state_dict(state["student"])
        self.teacher.load_state_dict(state["teacher"])
        tags = [{k: g[k] for k in GROUP_TAGS} for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])
        for group, tag in zip(self.optimizer.param_groups, tags, strict=True):
            for key, value in tag.items():  # checkpoints of ablate 0.1 have untagged groups
                group.setdefault(key, value)
        self.loss_fn.load_state_dict(state["dino_loss"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.baseline_done = int(state["epoch"]), bool(state.get("baseline_done", True))
        self.checkpoint_epoch = self.epoch
        if state.get("rng"):
            set_rng_state(state["rng"], self.device)

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write atomically (sweep_format.files), so a crash never leaves half a file."""
        path = Path(path)
        try:
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                try:
                    torch.save(self.state_dict(), f)
                except (OSError, RuntimeError) as exc:  # a full disk: the previous checkpoint stays
                    raise _write_error(exc, tmp) from None
        except OSError as exc:
            if exc.filename is None:
                raise OSError(exc.errno, exc.strerror, str(path)) from None
            raise
        self.checkpoint_epoch = self.epoch
        return path

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Load weights-only (a file that would run code is refused: ``UnsafeFileError``)."""
        self.load_state_dict(self.read_checkpoint(path))

    def read_checkpoint(self, path: str | os.PathLike) -> dict[str, Any]:
        """The state a checkpoint holds, checked against this run's configuration; the trainer is
        left as it is (``load_state_dict`` applies it)."""
        # Onto the CPU: load_state_dict copies weights to the device; RNG states must stay CPU
        # ByteTensors (moved to a GPU, torch.set_rng_state raises TypeError).
        state = load_pt(path, "checkpoint", map_location="cpu")
        if not isinstance(state, dict) or "student" not in state:
            raise DamagedFileError(f"{path}: not a checkpoint of a DINO run (no 'student' entry)")
        changed = config_differences(state.get("config") or {}, self.cfg.model_dump(mode="json"))
        if state.get("config") and changed:
            raise ConfigError(f"{path}: written by a run with another configuration; a resumed run "
                              f"must keep it. Differs: {'; '.join(changed)}")
        then = state.get("data_sizes") or {}  # checkpoints of ablate <= 0.1 do not say
        if moved := [f"{k} images: {then[k]:,} -> {n:,}" for k, n in self.data_sizes.items()
                     if k in then and then[k] != n]:
            raise ConfigError(f"{path}: trained on other data than this run reads (files added to or "
                              f"removed from the dataset since?); a resumed run must keep it: restore the "
                              f"files, or start again. Differs: {'; '.join(moved)}")
        return state


def _write_error(exc: Exception, path: Path) -> Exception:
    # torch.save reports a failed write (disk full, read-only) as a RuntimeError whose context is
    # the OSError with the errno: that OSError, naming the file, is the useful error.
    cause = exc if isinstance(exc, OSError) else exc.__context__
    if isinstance(cause, OSError):
        return OSError(cause.errno, cause.strerror, str(path))
    return exc


def plain_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state with the schedules' numpy scalars (lr, weight_decay) as floats."""
    state = optimizer.state_dict()
    for group in state["param_groups"]:
        group.update({k: v.item() for k, v in group.items() if isinstance(v, np.generic)})
    return state


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every generator's state as tensors, ints and tuples: what weights-only loading accepts.

    Only the run's own GPU: querying every visible one would create a context on each.
    """
    state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    kind, keys, pos, has_gauss, gauss = state
    return {"python": random.getstate(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def set_rng_state(rng: dict[str, Any], device: torch.device) -> None:
    random.setstate(rng["python"])
    kind, keys, *rest = rng["numpy"]  # keys: a tensor, or an array in checkpoints of ablate 0.1
    keys = keys.cpu().numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((kind, keys.astype(np.uint32), *rest))
    torch.set_rng_state(rng["torch"].cpu())
    saved = rng.get("cuda")
    if saved is not None and device.type == "cuda":
        saved = saved[device.index or 0] if isinstance(saved, list) else saved  # older: all GPUs
        torch.cuda.set_rng_state(saved.cpu(), device)


class _timed:
    """Iterate ``iterable`` and add up the seconds spent waiting for each item (``wait_s``)."""

    def __init__(self, iterable: Any) -> None:
        self.iterable, self.wait_s = iterable, 0.0

    def __iter__(self) -> Iterator[Any]:
        it = iter(self.iterable)
        while True:
            start = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                self.wait_s += time.perf_counter() - start
            yield item
