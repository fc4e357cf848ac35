"""Datasets: the embedded digits split, and clear errors for missing data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainables.config import ConfigError, DINOConfig
from trainables.data import build_datasets, load_digits_split


def test_digits_fixed_stratified_split():
    train, test = load_digits_split()
    assert (len(train), len(test)) == (1437, 360)
    assert train.images[0].size == (32, 32) and train.images[0].mode == "RGB"
    counts = np.bincount(test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 per class
    again, _ = load_digits_split()
    assert np.array_equal(again.labels, train.labels)


def test_missing_torchvision_data_says_how_to_get_it(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"cifar10.*download=true"):
        build_datasets(DINOConfig(dataset="cifar10", data_path=str(tmp_path)))


def test_imagefolder_needs_train_and_val(tmp_path: Path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"train/ and val/.*missing: \['val'\]"):
        build_datasets(DINOConfig(dataset="imagefolder", data_path=str(tmp_path)))


def test_in_memory_datasets_become_one_uint8_tensor():
    import types

    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import Subset

    from trainables.data import ImageList, in_memory, make_synthetic

    train, _ = make_synthetic(n_train=6, size=12)
    images, labels = in_memory(train)
    assert images.shape == (6, 3, 12, 12) and images.dtype == torch.uint8
    assert torch.equal(images[2].permute(1, 2, 0), torch.from_numpy(np.asarray(train.images[2])))
    assert torch.equal(labels, torch.as_tensor(train.labels))
    sub_images, sub_labels = in_memory(Subset(train, [4, 1]))
    assert torch.equal(sub_images, images[[4, 1]]) and torch.equal(sub_labels, labels[[4, 1]])
    cifar_like = types.SimpleNamespace(data=np.zeros((5, 32, 32, 3), np.uint8), targets=[0, 1, 2, 3, 4])
    assert in_memory(cifar_like)[0].shape == (5, 3, 32, 32)
    stl_like = types.SimpleNamespace(data=np.zeros((5, 3, 96, 96), np.uint8), labels=np.arange(5))
    assert in_memory(stl_like)[0].shape == (5, 3, 96, 96)
    mixed = ImageList([Image.new("RGB", (8, 8)), Image.new("RGB", (9, 8))], np.array([0, 1]))
    assert in_memory(mixed) is None  # different sizes: the per-image path
