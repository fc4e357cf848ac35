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
