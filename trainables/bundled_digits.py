"""scikit-learn's bundled 8x8 digits and its stratified train/test split, without importing it.

``import sklearn`` costs 1-3 s (SciPy, joblib, ...) in every process that builds the embedded
datasets (``digits``, ``digit_scenes``): the sweep's driver and each trial's worker. Both only
need the data file scikit-learn ships and the split ``train_test_split(..., stratify=labels,
random_state=seed)`` draws, so this module reads the one and draws the other the same way
(``StratifiedShuffleSplit``: the per-class counts of ``_approximate_mode``, then one permutation
per class and one of each side, from ``numpy.random.RandomState(seed)``).
tests/trainables/test_bundled_digits.py checks both against scikit-learn's own functions.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA_FILE = ("datasets", "data", "digits.csv.gz")  # inside the installed scikit-learn package


def data_file() -> Path:
    """scikit-learn's ``digits.csv.gz``, found without executing scikit-learn's ``__init__``."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("scikit-learn is not installed: its bundled digits are the "
                                  "embedded datasets' source (pip install scikit-learn)", name="sklearn")
    return Path(next(iter(spec.submodule_search_locations)), *DATA_FILE)


@lru_cache(maxsize=1)
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float64 in 0..16, labels (1797,) int): ``sklearn.datasets.load_digits()``'s
    ``images`` and ``target``. Read-only arrays (cached)."""
    with gzip.open(data_file(), "rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")
    images, labels = data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def stratified_split(labels: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices of ``train_test_split(arange(n), test_size=test_size, stratify=labels,
    random_state=seed)``: each class split in proportion, ties in rounding broken at random."""
    n = len(labels)
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    _, y, counts = np.unique(labels, return_inverse=True, return_counts=True)
    by_class = np.split(np.argsort(y, kind="stable"), np.cumsum(counts)[:-1])
    rng = np.random.RandomState(seed)
    train_counts = _approximate_mode(counts, n_train, rng)
    test_counts = _approximate_mode(counts - train_counts, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for members, k, t in zip(by_class, train_counts, test_counts, strict=True):
        shuffled = members.take(rng.permutation(len(members)), mode="clip")
        train.extend(shuffled[:k])
        test.extend(shuffled[k:k + t])
    return rng.permutation(train), rng.permutation(test)


def _approximate_mode(counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Per-class draws closest to ``counts / counts.sum() * draws``, summing to ``draws``: the floors,
    plus one for the largest remainders (ties drawn at random)."""
    continuous = counts / counts.sum() * draws
    floored = np.floor(continuous)
    need = int(draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (candidates,) = np.where(remainder == value)
            add = min(len(candidates), need)
            floored[rng.choice(candidates, size=add, replace=False)] += 1
            need -= add
            if need == 0:
                break
    return floored.astype(int)
