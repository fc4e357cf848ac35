"""CUDA set-up decisions, tested on the CPU by faking what the GPU would answer."""

import pytest
import torch

from trainables import cuda
from trainables.config import ConfigError
from trainables.dino.trainer import resolve_precision


def test_trial_without_gpu_share_runs_on_cpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # Ray leaves it as is for zero-GPU actors
    assert cuda.trial_device("auto", []) == "cpu"
    assert cuda.trial_device("cpu", []) == "cpu"
    assert cuda.trial_device("auto", [0]) == "auto"
    with pytest.raises(ConfigError, match="no GPU share"):
        cuda.trial_device("cuda", [])


@pytest.mark.parametrize("capability,expected", [((7, 5), torch.float16), ((8, 0), torch.bfloat16),
                                                 ((9, 0), torch.bfloat16)])
def test_auto_precision_needs_native_bf16(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # emulated
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.version, "hip", None)
    assert resolve_precision("auto", torch.device("cuda")) == expected
    assert resolve_precision("auto", torch.device("cpu")) is None


def test_oom_reason_names_peak_memory_and_share(monkeypatch):
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 7.5e9)
    reason = cuda.oom_reason(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
                             torch.device("cuda"), 0.25)
    assert "peak 7.50 GB" in reason and "0.25 GPU share" in reason and "Tried to allocate" in reason


def test_a_memory_error_of_the_host_is_an_oom_said_as_the_hosts():
    """Python's MemoryError (NumPy's ``_ArrayMemoryError`` is one) was no OOM: the trial errored."""
    import numpy as np

    try:
        np.empty(2**62, dtype=np.uint8)
    except MemoryError as exc:
        numpy_error: BaseException = exc
    for exc in (MemoryError(), numpy_error):
        assert cuda.out_of_memory(exc)
        reason = cuda.oom_reason(exc, torch.device("cpu"), 0.0)
        assert reason.startswith("out of host memory (MemoryError") and "peak" not in reason, reason
    assert not cuda.out_of_memory(ValueError("boom"))


def test_expandable_segments_are_requested_before_cuda_starts(monkeypatch):
    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    cuda.use_expandable_segments()
    import os
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:128")  # the user's own choice stays
    cuda.use_expandable_segments()
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:128"


def test_memory_cap_is_the_trial_share_on_the_trials_device(monkeypatch):
    """A trial's device is ``cuda`` with no index (``device: auto``); PyTorch needs one here."""
    from torch.cuda._utils import _get_device_index

    calls = []
    # PyTorch's own argument check (it raised on the first GPU run), without a GPU
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction",
                        lambda f, d=None: calls.append((f, _get_device_index(d))))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    cuda.cap_memory(0.25, torch.device("cuda"))
    cuda.cap_memory(0.5, torch.device("cuda:1"))
    cuda.cap_memory(1.0, torch.device("cuda"))  # a whole GPU: no cap
    assert calls == [(0.25, 0), (0.5, 1)]


def test_a_gpu_torch_cannot_use_is_named_with_why(tmp_path, monkeypatch):
    """On a GPU machine with a CPU-only torch (a CPU wheel index), `device: auto` trained on the CPU and a
    sweep warned only 'no GPU in the Ray cluster': the researcher learnt neither that the GPU is there
    nor why torch cannot use it."""
    from trainables.dino.trainer import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert cuda.unseen_gpu(tmp_path) == ""  # no NVIDIA device: nothing to say
    (tmp_path / "nvidiactl").touch()
    assert cuda.unseen_gpu(tmp_path) == ""  # the control node alone is no GPU
    (tmp_path / "nvidia0").touch()
    monkeypatch.setattr(torch.version, "cuda", None)
    gpu = tmp_path / "nvidia0"
    assert cuda.unseen_gpu(tmp_path) == (f"this machine has an NVIDIA GPU ({gpu}), but torch "
                                         f"{torch.__version__} is a CPU-only build: install a CUDA build of "
                                         "torch (pytorch.org/get-started) in this environment")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    assert cuda.unseen_gpu(tmp_path).endswith("cannot use it: is the NVIDIA driver installed and new enough "
                                              "(nvidia-smi)?")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert cuda.unseen_gpu(tmp_path).endswith("but CUDA_VISIBLE_DEVICES='' hides it from torch")
    monkeypatch.setattr(cuda, "unseen_gpu", lambda: "WHY")
    with pytest.raises(ConfigError, match=r"device='cuda': CUDA is not available \(WHY\) on this machine"):
        resolve_device("cuda")
