"""bundled_digits: scikit-learn's digits and stratified split, read and drawn without importing it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits as sklearn_load_digits
from sklearn.model_selection import train_test_split

from trainables.bundled_digits import load_digits, stratified_split


def test_the_data_file_is_scikit_learns_digits():
    images, labels = load_digits()
    digits = sklearn_load_digits()
    assert np.array_equal(images, digits.images) and np.array_equal(labels, digits.target)
    assert images.shape == (1797, 8, 8) and not images.flags.writeable


@pytest.mark.parametrize("test_size", [0.2, 0.25, 0.1, 0.33])
def test_the_split_is_train_test_split_stratified(test_size):
    labels = load_digits()[1]
    for seed in range(5):
        expected = train_test_split(np.arange(len(labels)), test_size=test_size, stratify=labels,
                                    random_state=seed)
        got = stratified_split(labels, test_size, seed)
        assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True)), seed


def test_ties_in_the_class_counts_are_drawn_like_scikit_learn():
    rng = np.random.default_rng(1)
    for seed in range(10):  # 101 samples of 7 unequal classes: remainders tie and need draws
        labels = rng.integers(0, 7, size=101)
        expected = train_test_split(np.arange(101), test_size=0.3, stratify=labels, random_state=seed)
        got = stratified_split(labels, 0.3, seed)
        assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True)), seed


def test_the_embedded_datasets_do_not_import_scikit_learn():
    code = ("import sys; from trainables.data import load_digits_split; "
            "from trainables.digit_scenes import SceneDesign, make_digit_scenes; "
            "load_digits_split(); make_digit_scenes(design=SceneDesign(train_copies=1, test_copies=1)); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
