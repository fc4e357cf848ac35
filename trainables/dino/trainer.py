"""DINOTrainer: one DINO run, read top to bottom like facebookresearch/dino ``train_dino``.

The trainer knows nothing of Ray: ``run()`` yields one metrics dict per epoch (epoch 0 is the
untrained baseline), and ``save_checkpoint`` / ``load_checkpoint`` make a run resumable. The
command-line ``ablate train`` and the Ray Tune trainable are both thin loops over ``run()``.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from trainables import cuda
from trainables.config import ConfigError, DINOConfig
from trainables.data import build_datasets, in_memory, knn_memory_split, with_transform
from trainables.dino.augment import DataAugmentationDINO, eval_transform
from trainables.dino.backbone import build_backbone, is_vit
from trainables.dino.batch_augment import BatchDataAugmentationDINO
from trainables.dino.head import DINOHead
from trainables.dino.loaders import CPUMultiCropLoader, DeviceMultiCropLoader, FolderMultiCropLoader
from trainables.dino.loss import DINOLoss, KoLeoLoss
from trainables.dino.multicrop import MultiCropWrapper
from trainables.dino.optim import build_optimizer
from trainables.dino.schedules import cosine_scheduler
from trainables.knn import extract_features, extract_features_in_memory, knn_accuracy

CHECKPOINT_NAME = "checkpoint.pt"


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the run cannot continue."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r}: CUDA is not available on this machine (use auto or cpu)")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32. auto: bf16 on GPUs with native bf16, else fp16; fp32 on CPU."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if cuda.native_bf16(device) else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision='fp16': needs a CUDA device (use bf16 or fp32 on CPU)")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_params_groups(model: nn.Module) -> list[dict[str, Any]]:
    """No weight decay on biases and 1-D parameters (norms), as in the official code."""
    regularized, not_regularized = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (not_regularized if name.endswith(".bias") or param.ndim == 1 else regularized).append(param)
    return [{"params": regularized}, {"params": not_regularized, "weight_decay": 0.0}]


def clip_gradients(params: list[nn.Parameter], clip: float) -> None:
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
        self.device = resolve_device(cfg.device)
        self.amp_dtype = resolve_precision(cfg.precision, self.device)
        if self.device.type == "cuda":
            cuda.use_expandable_segments()
            cuda.enable_fast_math()
        seed_everything(cfg.seed)
        self._build_data()
        self._build_models()
        self._build_optimization()
        self.epoch = 0  # epochs completed
        self.baseline_done = False

    # --- construction ---------------------------------------------------------------------
    def _build_data(self) -> None:
        cfg = self.cfg
        train, test = build_datasets(cfg)
        if len(train) < cfg.batch_size * cfg.grad_accum_steps:  # type: ignore[arg-type]
            raise ConfigError(f"batch_size={cfg.batch_size} x grad_accum_steps={cfg.grad_accum_steps}: "
                              f"larger than the {len(train)} training images of {cfg.dataset!r}")
        if cfg.augment_device == "gpu" and self.device.type != "cuda":
            raise ConfigError(f"augment_device='gpu': the run's device is {self.device} (use auto or cpu)")
        self.loader_generator = torch.Generator()
        self.loader = self._make_loader(train)
        memory = self._knn_memory(knn_memory_split(cfg, train))
        self.memory_data, self.test_data = in_memory(memory), in_memory(test)
        self.memory_set = with_transform(memory, eval_transform(cfg.global_crops_size))
        self.test_set = with_transform(test, eval_transform(cfg.global_crops_size))
        self.niter_per_ep = len(self.loader) // cfg.grad_accum_steps

    def _make_loader(self, train: Dataset) -> Any:
        """In memory: batched on the device; from disk: CPU crops + device colour on CUDA, else per image."""
        cfg = self.cfg
        batched = BatchDataAugmentationDINO(
            cfg.global_crops_scale, cfg.local_crops_scale, cfg.local_crops_number, cfg.global_crops_size,
            cfg.local_crops_size, cfg.blur_radius_relative, cfg.seed)
        data = in_memory(train) if cfg.augment_device != "cpu" else None
        if data is not None:
            return DeviceMultiCropLoader(*data, batched, cfg.batch_size, self.loader_generator, self.device)
        workers = self._num_workers()
        if cfg.augment_device != "cpu" and self.device.type == "cuda":
            return FolderMultiCropLoader(train, batched, cfg.batch_size, workers, self.loader_generator,
                                         self.device)
        per_image = DataAugmentationDINO(cfg.global_crops_scale, cfg.local_crops_scale, cfg.local_crops_number,
                                         cfg.global_crops_size, cfg.local_crops_size, cfg.blur_radius_relative)
        return CPUMultiCropLoader(train, per_image, cfg.seed, cfg.batch_size, workers, self.loader_generator,
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
        head = DINOHead(backbone.num_features, cfg.out_dim, use_bn=cfg.use_bn_in_head,
                        norm_last_layer=cfg.norm_last_layer, nlayers=cfg.head_nlayers,
                        hidden_dim=cfg.head_hidden_dim, bottleneck_dim=cfg.head_bottleneck_dim,
                        use_ln=cfg.use_ln_in_head)
        return MultiCropWrapper(backbone, head)

    def _build_models(self) -> None:
        self.student = self._make_network(self.cfg.drop_path_rate).to(self.device)
        self.teacher = self._make_network(0.0).to(self.device)  # the teacher has no drop path
        # CNNs run faster on NHWC tensors: tensor cores on GPUs, oneDNN on CPUs (resnet10t's
        # step 1.4x on one core, bench/README.md). State dicts are unchanged.
        self.memory_format = (torch.contiguous_format if is_vit(self.student.backbone)
                              else torch.channels_last)
        if self.memory_format == torch.channels_last:
            self.student.to(memory_format=self.memory_format)
            self.teacher.to(memory_format=self.memory_format)
        self.teacher.load_state_dict(self.student.state_dict())
        for p in self.teacher.parameters():
            p.requires_grad = False
        self.student_params = list(self.student.parameters())
        self.teacher_params = list(self.teacher.parameters())
        self.last_layer_params = [p for n, p in self.student.named_parameters() if "last_layer" in n]
        if self.cfg.compile:  # in place: parameter names, state dicts and checkpoints stay the same
            self.student.backbone.compile()
            self.teacher.backbone.compile()

    def _build_optimization(self) -> None:
        cfg = self.cfg
        self.loss_fn = DINOLoss(cfg.out_dim, cfg.ncrops, cfg.warmup_teacher_temp, cfg.teacher_temp,
                                cfg.warmup_teacher_temp_epochs, cfg.epochs, cfg.student_temp,
                                cfg.center_momentum, cfg.centering).to(self.device)
        self.koleo = KoLeoLoss()
        self.optimizer = build_optimizer(cfg.optimizer, get_params_groups(self.student), self.device)
        use_scaler = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        n = self.niter_per_ep
        self.lr_schedule = cosine_scheduler(cfg.effective_lr, cfg.min_lr, cfg.epochs, n, cfg.warmup_epochs)
        self.wd_schedule = cosine_scheduler(cfg.weight_decay, cfg.weight_decay_end, cfg.epochs, n)
        self.momentum_schedule = cosine_scheduler(cfg.momentum_teacher, 1.0, cfg.epochs, n)

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> Iterator[dict[str, Any]]:
        """Yield the epoch-0 baseline (once), then one metrics dict per remaining epoch."""
        if not self.baseline_done:
            top1, top5 = self.evaluate()
            self.baseline_done = True
            yield {"epoch": 0, "knn_top1": top1, "knn_top5": top5, "ln_out_dim": self.cfg.ln_out_dim}
        while self.epoch < self.cfg.epochs:
            metrics = self.train_one_epoch(self.epoch)
            self.epoch += 1
            every = self.cfg.eval_every
            if self.epoch == self.cfg.epochs or (every and self.epoch % every == 0):
                metrics["knn_top1"], metrics["knn_top5"] = self.evaluate()
            yield metrics

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_one_epoch(self, epoch: int) -> dict[str, Any]:
        cfg = self.cfg
        # Every epoch starts from RNG states derived from (seed, epoch) only, so a resumed run
        # draws the same crops and drop-path masks as an uninterrupted one.
        seed_everything(cfg.seed * 100_003 + epoch + 1)
        self.loader_generator.manual_seed(cfg.seed * 100_003 + epoch + 1)
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
        means = (sums / max(n_steps, 1)).tolist()
        if not math.isfinite(means[0]):
            raise NonFiniteLossError(f"loss is {means[0]} at epoch {epoch + 1}: training diverged "
                                     "(try a lower lr, a lower teacher_temp or precision=fp32)")
        elapsed = time.perf_counter() - start
        last_it = (epoch + 1) * self.niter_per_ep - 1
        return {**self._data_metrics(batches.wait_s, elapsed),
            "epoch": epoch + 1, "loss": means[0], "dino_loss": means[1],
            "teacher_entropy": means[2], "kl_teacher_student": means[3],
            "ln_out_dim": cfg.ln_out_dim,
            "loss_at_ln_out_dim": bool(abs(means[1] - cfg.ln_out_dim) < 0.01 * cfg.ln_out_dim),
            "lr": float(self.lr_schedule[last_it]), "weight_decay": float(self.wd_schedule[last_it]),
            "teacher_temp": self.loss_fn.teacher_temp(epoch),
            "momentum_teacher": float(self.momentum_schedule[last_it]),
            "epoch_time_s": elapsed, "images_per_s": images / elapsed if elapsed > 0 else 0.0,
        }

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
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = self.lr_schedule[it]
            if i == 0:  # only the regularized group has weight decay
                group["weight_decay"] = self.wd_schedule[it]
        self.optimizer.zero_grad(set_to_none=True)
        stats = torch.zeros(4, device=self.device)
        for crops in micro_batches:
            crops = [c.to(self.device, non_blocking=True, memory_format=self.memory_format) for c in crops]
            with self._autocast():
                _, teacher_out = self.teacher(crops[:2])
                student_feats, student_out = self.student(crops)
                dino = self.loss_fn(student_out, teacher_out, epoch)
                loss = dino
                if cfg.koleo_weight > 0:
                    batch = crops[0].shape[0]
                    koleo = sum(self.koleo(f) for f in student_feats[:2 * batch].chunk(2))
                    loss = dino + cfg.koleo_weight * koleo
            scaled = loss / cfg.grad_accum_steps
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            stats += torch.stack([loss.detach(), dino.detach(), self.loss_fn.teacher_entropy,
                                  self.loss_fn.kl_teacher_student]).float() / len(micro_batches)
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

    def _progress_bar(self, epoch: int):  # noqa: ANN202
        if not self.progress:
            return None
        from tqdm.auto import tqdm
        return tqdm(total=self.niter_per_ep, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", leave=False,
                    unit="step", dynamic_ncols=True)

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """Weighted kNN top-1/top-5 (percent) of the teacher backbone's features."""
        backbone = self.teacher.backbone
        with self._autocast():
            train_f, train_y = self._features(backbone, self.memory_data, self.memory_set)
            test_f, test_y = self._features(backbone, self.test_data, self.test_set)
        self.teacher.train()
        return knn_accuracy(train_f, train_y, test_f, test_y, k=self.cfg.knn_k,
                            temperature=self.cfg.knn_temperature)

    def _features(self, backbone: nn.Module, data: tuple[torch.Tensor, torch.Tensor] | None,
                  dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        if data is not None:  # in memory: resized and normalized in batches on the device
            return extract_features_in_memory(backbone, *data, self.cfg.global_crops_size, self.device,
                                              memory_format=self.memory_format)
        return extract_features(backbone, dataset, self.device, num_workers=self._num_workers())

    # --- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "student": self.student.state_dict(), "teacher": self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(), "dino_loss": self.loss_fn.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "epoch": self.epoch, "baseline_done": self.baseline_done,
            "config": self.cfg.model_dump(mode="json"),
            # Only the run's own GPU: querying every visible one would create a context on each.
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.student.load_state_dict(state["student"])
        self.teacher.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.loss_fn.load_state_dict(state["dino_loss"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.baseline_done = int(state["epoch"]), bool(state.get("baseline_done", True))
        rng = state.get("rng") or {}
        if rng:
            random.setstate(rng["python"])
            np.random.set_state(rng["numpy"])
            torch.set_rng_state(rng["torch"].cpu())  # RNG states are CPU ByteTensors
            saved = rng.get("cuda")
            if saved is not None and self.device.type == "cuda":
                saved = saved[self.device.index or 0] if isinstance(saved, list) else saved  # older: all GPUs
                torch.cuda.set_rng_state(saved.cpu(), self.device)

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write atomically (temporary file, then rename), so a crash never leaves half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        return path

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        # Onto the CPU: load_state_dict copies weights to the device; RNG states must stay CPU
        # ByteTensors (moved to a GPU, torch.set_rng_state raises TypeError).
        state = torch.load(Path(path), map_location="cpu", weights_only=False)
        self.load_state_dict(state)


class _timed:  # noqa: N801 (reads as a function at the call site)
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
