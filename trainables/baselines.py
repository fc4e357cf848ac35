"""Reference kNN accuracies of a dataset: what a sweep's trials must beat to show learning.

``pixel_knn_top1``: DINO's weighted kNN on raw pixels (the eval transform's pixels, flattened,
mean-centred with the kNN memory's mean, L2-normalised). ``untrained_knn_top1``: the same kNN on
the features of the untrained teacher of ``DINOTrainer(cfg)`` (the trials' epoch 0 for repeat 0).

    reference_knn(DINOConfig(dataset="digits"))  # {"pixel_knn_top1": 98.06, "untrained_knn_top1": 86.4}
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from sweep_format.layout import PIXEL_KNN, UNTRAINED_KNN
from trainables.config import DINOConfig
from trainables.knn import knn_accuracy, resize_center_crop


def reference_knn(cfg: DINOConfig) -> dict[str, float]:
    """Raw-pixel and untrained-network kNN top-1 (percent) of ``cfg``'s dataset and kNN settings."""
    from trainables.dino.trainer import DINOTrainer

    trainer = DINOTrainer(cfg)
    if trainer.memory_data is not None and trainer.test_data is not None:  # in memory: batched
        memory = eval_pixels(*trainer.memory_data, cfg.global_crops_size)
        test = eval_pixels(*trainer.test_data, cfg.global_crops_size)
    else:
        memory, test = flat_pixels(trainer.memory_set), flat_pixels(trainer.test_set)
    pixel = pixel_knn(memory, test, cfg.knn_k, cfg.knn_temperature)
    untrained, _ = trainer.evaluate()
    return {PIXEL_KNN: pixel, UNTRAINED_KNN: float(untrained)}


Pixels = tuple[torch.Tensor, torch.Tensor]  # (N, D) flattened images, (N,) labels


def flat_pixels(dataset: Dataset) -> Pixels:
    """The flattened images of a dataset of (tensor, label), as its transform makes them."""
    images, labels = [], []
    for x, y in DataLoader(dataset, batch_size=512, shuffle=False):
        images.append(x.flatten(1).float())
        labels.append(y)
    return torch.cat(images), torch.cat(labels)


def eval_pixels(images: torch.Tensor, labels: torch.Tensor, size: int) -> Pixels:
    """``flat_pixels`` of in-memory uint8 images (N, 3, H, W) under ``eval_transform(size)``, batched:
    resized and centre-cropped as the kNN evaluation does, then ToTensor's / 255 and Normalize in
    torchvision's order, so that images stored at ``size`` give the per-image path's pixels bit for
    bit (the digit scenes: 0.4 s instead of 1.5 s through PIL)."""
    from trainables.dino.augment import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = resize_center_crop(images.to("cpu", torch.float32, copy=True), size)  # ours: normalized in place
    return x.div_(255).sub_(mean).div_(std).flatten(1), labels.cpu()


def pixel_knn_top1(memory: Dataset, test: Dataset, k: int, temperature: float) -> float:
    """kNN top-1 (%) on the flattened pixels of two datasets of (tensor, label): ``pixel_knn``."""
    return pixel_knn(flat_pixels(memory), flat_pixels(test), k, temperature)


def pixel_knn(memory: Pixels, test: Pixels, k: int, temperature: float) -> float:
    """kNN top-1 (%) on flattened pixels, both sets centred on the memory's mean (knn_accuracy
    L2-normalises them)."""
    (train_x, train_y), (test_x, test_y) = memory, test
    mean = train_x.mean(dim=0, keepdim=True)
    top1, _ = knn_accuracy(train_x - mean, train_y, test_x - mean, test_y, k=k, temperature=temperature)
    return float(top1)
