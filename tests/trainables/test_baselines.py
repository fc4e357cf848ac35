"""Reference kNN of a dataset: raw pixels (centred on the memory mean) and the untrained network."""

from __future__ import annotations

import torch

from tests.helpers import TINY_TRAINER
from trainables.baselines import pixel_knn_top1, reference_knn
from trainables.config import DINOConfig
from trainables.knn import knn_accuracy


def test_pixel_knn_centres_both_sets_on_the_memory_mean() -> None:
    g = torch.Generator().manual_seed(0)
    memory = [(torch.rand(3, 4, 4, generator=g) + 5.0, i % 3) for i in range(30)]
    test = [(torch.rand(3, 4, 4, generator=g) + 5.5, i % 3) for i in range(12)]  # another mean
    mx = torch.stack([x.flatten() for x, _ in memory])
    tx = torch.stack([x.flatten() for x, _ in test])
    mean = mx.mean(0, keepdim=True)
    expected, _ = knn_accuracy(mx - mean, torch.tensor([y for _, y in memory]), tx - mean,
                               torch.tensor([y for _, y in test]), k=5, temperature=0.07)
    assert pixel_knn_top1(memory, test, k=5, temperature=0.07) == expected


def test_reference_knn_of_the_tiny_dataset() -> None:
    values = reference_knn(DINOConfig(**TINY_TRAINER))
    assert set(values) == {"pixel_knn_top1", "untrained_knn_top1"}
    assert all(0.0 <= v <= 100.0 for v in values.values())
