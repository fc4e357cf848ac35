"""The Ray trainable's own decisions (device of a zero-GPU trial, OOM outcome), without a cluster."""

import types

import ray
import torch
from ray import tune

from tests.helpers import TINY_TRAINER
from trainables import tune_trainable


class OutOfMemoryTrainer:
    """Stands in for DINOTrainer: records its config, runs out of memory in the first epoch."""

    configs: list = []

    def __init__(self, cfg):
        self.configs.append(cfg)
        self.epoch, self.device = 0, torch.device("cpu")

    def run(self):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        yield  # a generator, like the real run()


def test_zero_gpu_trial_runs_on_cpu_and_oom_ends_the_trial(monkeypatch):
    reports = []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    context = types.SimpleNamespace(get_assigned_resources=lambda: {"CPU": 1.0})
    monkeypatch.setattr(ray, "get_runtime_context", lambda: context)
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(tune, "report", lambda metrics, checkpoint=None: reports.append(metrics))
    monkeypatch.setattr(tune_trainable, "_placement", lambda: {})
    monkeypatch.setattr(tune_trainable, "DINOTrainer", OutOfMemoryTrainer)
    tune_trainable.dino_trainable({**TINY_TRAINER, "device": "auto"})
    assert OutOfMemoryTrainer.configs[-1].device == "cpu"
    assert [r["trial_outcome"] for r in reports] == ["oom"]
    assert "out of memory: peak" in reports[0]["stop_reason"] and "20.00 GiB" in reports[0]["stop_reason"]
