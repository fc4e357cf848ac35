"""Reference accuracies of a dataset that a DINO run must beat: kNN on raw pixels and untrained.

Both use the run's own kNN (memory split, test split, eval transform, ``knn_k``,
``knn_temperature``), so they read on the same scale as the run's ``knn_top1``.

Example::

    ref = reference_knn(DINOConfig())   # {"pixel_knn_top1": ..., "untrained_knn_top1": ...}
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from trainables.config import DINOConfig
from trainables.dino.trainer import DINOTrainer
from trainables.knn import extract_features, knn_accuracy


def pixel_knn_top1(memory: Dataset, test: Dataset, k: int, temperature: float,
                   device: torch.device | str = "cpu") -> float:
    """Weighted kNN top-1 (percent) on flattened pixels, centred on the memory set's mean image.

    Centring matters: without it every image shares the mean's direction and cosine similarity
    mostly measures overall brightness.
    """
    device = torch.device(device)
    train_f, train_y = extract_features(nn.Flatten(), memory, device)
    test_f, test_y = extract_features(nn.Flatten(), test, device)
    mean = train_f.mean(dim=0, keepdim=True)
    return knn_accuracy(train_f - mean, train_y, test_f - mean, test_y, k=k, temperature=temperature)[0]


def reference_knn(cfg: DINOConfig) -> dict[str, float]:
    """kNN top-1 (percent) on raw pixels and with the untrained teacher backbone of ``cfg``.

    The untrained figure is ``DINOTrainer(cfg).evaluate()``, i.e. the run's own epoch-0 kNN
    (same seed, same initialization).
    """
    trainer = DINOTrainer(cfg)
    pixel = pixel_knn_top1(trainer.memory_set, trainer.test_set, cfg.knn_k, cfg.knn_temperature,
                           trainer.device)
    untrained, _ = trainer.evaluate()
    return {"pixel_knn_top1": pixel, "untrained_knn_top1": untrained}
