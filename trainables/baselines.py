"""Reference kNN accuracies of a dataset: what a sweep's trials must beat to show learning.

``pixel_knn_top1``: DINO's weighted kNN on raw pixels (the eval transform's pixels, flattened,
mean-centred with the kNN memory's mean, L2-normalised). ``untrained_knn_top1``: the same kNN on
the features of the untrained teacher of ``DINOTrainer(cfg)`` (the trials' epoch 0 for repeat 0).

    reference_knn(DINOConfig(dataset="digits"))  # {"pixel_knn_top1": 98.06, "untrained_knn_top1": 86.4}
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from trainables.config import DINOConfig
from trainables.knn import knn_accuracy


def reference_knn(cfg: DINOConfig) -> dict[str, float]:
    """Raw-pixel and untrained-network kNN top-1 (percent) of ``cfg``'s dataset and kNN settings."""
    from trainables.dino.trainer import DINOTrainer

    trainer = DINOTrainer(cfg)
    pixel = pixel_knn_top1(trainer.memory_set, trainer.test_set, cfg.knn_k, cfg.knn_temperature)
    untrained, _ = trainer.evaluate()
    return {"pixel_knn_top1": pixel, "untrained_knn_top1": float(untrained)}


def flat_pixels(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for x, y in DataLoader(dataset, batch_size=512, shuffle=False):
        images.append(x.flatten(1).float())
        labels.append(y)
    return torch.cat(images), torch.cat(labels)


def pixel_knn_top1(memory: Dataset, test: Dataset, k: int, temperature: float) -> float:
    """kNN top-1 (%) on flattened pixels, both sets centred on the memory's mean (knn_accuracy
    L2-normalises them)."""
    train_x, train_y = flat_pixels(memory)
    test_x, test_y = flat_pixels(test)
    mean = train_x.mean(dim=0, keepdim=True)
    top1, _ = knn_accuracy(train_x - mean, train_y, test_x - mean, test_y, k=k, temperature=temperature)
    return float(top1)
