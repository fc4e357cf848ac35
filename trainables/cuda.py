"""CUDA set-up of one run: which device a trial may use, its memory share, fast-math switches, OOM.

Nothing here creates a CUDA context unless the run's device is CUDA: a CPU trial on a GPU
machine must not touch (or allocate memory on) the GPUs that other trials were given.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from trainables.config import ConfigError

ALLOCATOR_SETTINGS = "expandable_segments:True"  # less fragmentation when trials share a GPU


def trial_device(device: str, gpu_ids: list) -> str:
    """The device of a Ray trial: with no GPU share (``gpu_ids`` empty) it is the CPU.

    Ray leaves ``CUDA_VISIBLE_DEVICES`` untouched for zero-GPU actors, so ``device: auto`` would
    otherwise put the trial on GPU 0, uncounted, beside the trials that own it.
    """
    if gpu_ids:
        return device
    if device == "auto":
        return "cpu"
    if device.startswith("cuda"):
        raise ConfigError(f"device={device!r}: this trial has no GPU share (resources.gpu: 0); "
                          "give it resources.gpu > 0 or use device auto or cpu")
    return device


def unseen_gpu(dev: Path = Path("/dev")) -> str:
    """Why torch sees no GPU on a machine that has an NVIDIA one ("" where it sees one, or there is none):
    a CPU-only torch build (a CPU wheel index, some conda channels), CUDA_VISIBLE_DEVICES hiding it, or a
    CUDA build its driver cannot run. Said where a run falls back to the CPU or asks for CUDA."""
    devices = sorted(p.name for p in dev.glob("nvidia[0-9]*"))
    if not devices or torch.cuda.is_available():
        return ""
    has = f"this machine has an NVIDIA GPU ({dev / devices[0]}), but "
    if torch.version.cuda is None:
        return (has + f"torch {torch.__version__} is a CPU-only build: install a CUDA build of torch "
                "(pytorch.org/get-started) in this environment")
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None:
        return has + f"CUDA_VISIBLE_DEVICES={hidden!r} hides it from torch"
    return (has + f"torch {torch.__version__} (CUDA {torch.version.cuda}) cannot use it: is the NVIDIA "
            "driver installed and new enough (nvidia-smi)?")


def use_expandable_segments() -> None:
    """Ask for expandable segments; PyTorch reads this once, when CUDA first allocates."""
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", ALLOCATOR_SETTINGS)


def native_bf16(device: torch.device) -> bool:
    """True where the GPU computes bf16 natively (compute capability >= 8.0, or ROCm).

    ``torch.cuda.is_bf16_supported()`` also says True on older GPUs that only emulate bf16,
    slowly; those get fp16 with a GradScaler instead.
    """
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device) >= (8, 0)


def enable_fast_math() -> None:
    """cuDNN autotuning (fixed crop shapes) and TF32 matmuls/convolutions for the fp32 parts."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")


def cap_memory(share: float, device: torch.device) -> None:
    """Limit this process to ``share`` of the GPU's memory (a packed trial's ``resources.gpu``).

    ``device`` may be ``cuda`` with no index (a trial's ``device: auto`` or ``cuda``): the cap is
    then set on the current device, the one Ray's ``CUDA_VISIBLE_DEVICES`` made device 0. PyTorch
    itself refuses an index-less device here (``ValueError: Expected a torch.device with a
    specified index``), which failed every packed trial on the first GPU run.
    """
    if 0 < share < 1:
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.set_per_process_memory_fraction(share, index)


def peak_memory_gb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else 0.0


CPU_ALLOC_FAILED = "DefaultCPUAllocator: can't allocate memory"  # torch's RuntimeError on a CPU
# What to change when memory ran out, in the keys of what ran: a sweep's trial (the spec's keys; the
# host's memory also when Ray's memory monitor or the kernel's OOM killer killed it:
# ablate.records.memory_kill_reason, kernel_kill) or an `ablate train` run (its trainer keys, --set;
# it runs no other trial that search.max_concurrent_trials or a GPU share would keep off).
HOST_MEMORY_ADVICE = ("lower batch_size or num_workers, or run fewer trials at once "
                      "(search.max_concurrent_trials)")
GPU_MEMORY_ADVICE = "lower batch_size, crop sizes or the number of trials per GPU"
TRAIN_HOST_MEMORY_ADVICE = "lower batch_size or num_workers (--set batch_size=N)"
TRAIN_GPU_MEMORY_ADVICE = ("lower batch_size, global_crops_size, local_crops_size or local_crops_number "
                           "(--set batch_size=N)")


def memory_advice(host: bool, sweep: bool = True) -> str:
    """What to change when the ``host``'s memory (else a GPU's) ran out: in a ``sweep``'s trial, or in an
    ``ablate train`` run."""
    if sweep:
        return HOST_MEMORY_ADVICE if host else GPU_MEMORY_ADVICE
    return TRAIN_HOST_MEMORY_ADVICE if host else TRAIN_GPU_MEMORY_ADVICE


def out_of_memory(exc: BaseException) -> bool:
    """``exc`` is a failed allocation: CUDA's ``OutOfMemoryError``, the plain ``RuntimeError`` that
    torch raises when the host cannot give a tensor its memory (a head of 2^20 prototypes on a laptop),
    or Python's ``MemoryError`` (NumPy's ``Unable to allocate ...``, decoding an image, a list)."""
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(exc, RuntimeError) and CPU_ALLOC_FAILED in str(exc))


def host_memory(exc: BaseException) -> bool:
    """The allocation that failed was the host's (a CPU tensor, NumPy, Python), not a GPU's."""
    return not isinstance(exc, torch.OutOfMemoryError) and out_of_memory(exc)


def oom_reason(exc: BaseException, device: torch.device, share: float, sweep: bool = True) -> str:
    """The stop reason of a trial (``sweep``) or an ``ablate train`` run that ran out of memory: peak, cap
    and what to change (``memory_advice``); where the host ran out, that (a GPU's peak says nothing of it)."""
    first = short_reason(exc)
    if host_memory(exc):
        return f"out of host memory ({first}); {memory_advice(True, sweep)}"
    cap = f" of its {share:g} GPU share" if 0 < share < 1 else ""
    return (f"out of memory: peak {peak_memory_gb(device):.2f} GB allocated{cap} on {device} ({first}); "
            f"{memory_advice(False, sweep)}")


def start_oom_reason(exc: BaseException, device: torch.device, share: float, sweep: bool = True) -> str:
    """``oom_reason`` of a run that ran out of memory before it trained: while its trainer was built or
    restored (its in-memory dataset or models moved to the device, a checkpoint loaded)."""
    return f"{oom_reason(exc, device, share, sweep)}; while building the trainer (its data and models)"


def short_reason(exc: BaseException) -> str:
    """An allocation failure in a few words: torch's first line, without the CPU allocator's
    ``[enforce fail at alloc_cpu.cpp:127] err == 0.`` prefix."""
    text = str(exc).strip()
    if CPU_ALLOC_FAILED in text:
        text = text[text.index(CPU_ALLOC_FAILED):]
    elif isinstance(exc, MemoryError):  # its message alone may not say what it is ("Unable to allocate")
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text.splitlines()[0][:200] if text else type(exc).__name__
