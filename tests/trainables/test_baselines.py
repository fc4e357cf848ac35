"""Reference kNN of a dataset: raw pixels (centred on the memory mean) and the untrained network."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from tests.helpers import TINY_TRAINER
from trainables.baselines import pixel_knn_top1, reference_knn
from trainables.config import DINOConfig
from trainables.dino.trainer import DINOTrainer
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


TINY = dict(dataset="synthetic", arch="test_vit", patch_size=4, global_crops_size=16,
            local_crops_size=8, local_crops_number=2, batch_size=32, out_dim=64, head_hidden_dim=32,
            head_bottleneck_dim=16, device="cpu", epochs=1)


def two_patterns(n: int, seed: int, flip_labels: bool = False) -> TensorDataset:
    """Images = a large shared offset + one of two class patterns + small noise."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.zeros(2, 3, 4, 4)
    patterns[0, :, :2], patterns[1, :, 2:] = 1.0, 1.0
    labels = torch.arange(n) % 2
    images = 10.0 + patterns[labels] + 0.05 * torch.randn(n, 3, 4, 4, generator=g)
    return TensorDataset(images, 1 - labels if flip_labels else labels)


def test_pixel_knn_reads_the_class_pattern_once_centred():
    # Uncentred, every image points along the shared offset (cosine ~0.99 for all pairs) and
    # the vote is near chance; centred on the memory mean, the pattern decides: 100 %.
    memory, test = two_patterns(40, seed=0), two_patterns(20, seed=1)
    assert pixel_knn_top1(memory, test, k=10, temperature=0.07) == 100.0
    assert pixel_knn_top1(memory, two_patterns(20, seed=1, flip_labels=True), k=10,
                          temperature=0.07) == 0.0


def test_reference_knn_is_the_runs_own_epoch_zero_and_pixel_knn():
    cfg = DINOConfig(**TINY)
    ref = reference_knn(cfg)
    assert set(ref) == {"pixel_knn_top1", "untrained_knn_top1"}
    trainer = DINOTrainer(cfg)
    assert ref["untrained_knn_top1"] == pytest.approx(trainer.evaluate()[0])
    assert ref["pixel_knn_top1"] == pytest.approx(pixel_knn_top1(
        trainer.memory_set, trainer.test_set, cfg.knn_k, cfg.knn_temperature))
    assert ref["pixel_knn_top1"] > 50.0  # the synthetic classes differ in colour: pixels see it


@pytest.mark.parametrize("size", [16, 12])
def test_in_memory_eval_pixels_are_the_eval_transforms(size: int):
    """``eval_pixels`` (batched, for in-memory data) against the per-image eval transform through
    PIL: the same pixels bit for bit at the stored size, to bicubic rounding when resized."""
    from trainables.baselines import eval_pixels, flat_pixels
    from trainables.data import in_memory, make_synthetic, with_transform
    from trainables.dino.augment import eval_transform

    train, _ = make_synthetic(n_train=40, size=16)
    want_x, want_y = flat_pixels(with_transform(train, eval_transform(size)))
    got_x, got_y = eval_pixels(*in_memory(train), size)
    assert got_x.shape == want_x.shape == (40, 3 * size * size) and torch.equal(got_y, want_y)
    if size == 16:
        assert torch.equal(got_x, want_x)
    else:
        assert (got_x - want_x).abs().max() < 0.1 and not torch.equal(got_x, want_x)
