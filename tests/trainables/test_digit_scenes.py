"""digit_scenes: the embedded default dataset (deterministic, disjoint splits, shapes, labels)."""

from __future__ import annotations

import numpy as np

from trainables.config import DINOConfig
from trainables.data import ImageList, build_datasets
from trainables.digit_scenes import SceneDesign, make_digit_scenes, source_split

SMALL = SceneDesign(train_copies=1)


def pixels(ds: ImageList, n: int = 50) -> np.ndarray:
    return np.stack([np.asarray(img) for img in ds.images[:n]])


def test_deterministic_from_the_seed():
    a_train, a_test = make_digit_scenes(seed=1, design=SMALL)
    make_digit_scenes.cache_clear()  # a fresh render, not the cached object
    b_train, b_test = make_digit_scenes(seed=1, design=SMALL)
    assert a_train is not b_train
    assert np.array_equal(pixels(a_train), pixels(b_train)) and np.array_equal(a_test.labels, b_test.labels)
    c_train, _ = make_digit_scenes(seed=2, design=SMALL)
    assert not np.array_equal(pixels(a_train), pixels(c_train))


def test_shapes_labels_and_sizes():
    train, test = build_datasets(DINOConfig())
    d = SceneDesign()
    assert isinstance(train, ImageList) and isinstance(test, ImageList)
    assert (len(train), len(test)) == (1437 * d.train_copies, 360 * d.test_copies)
    sizes = {img.size for img in train.images} | {img.size for img in test.images}
    modes = {img.mode for img in train.images} | {img.mode for img in test.images}
    assert sizes == {(d.size, d.size)} and modes == {"RGB"}
    assert train.num_classes == test.num_classes == 10
    assert np.bincount(test.labels, minlength=10).min() >= 35  # stratified: ~36 per class
    assert pixels(train).std() > 20  # scenes, not blank canvases


def test_train_and_test_come_from_disjoint_source_digits():
    idx_train, idx_test = source_split()
    assert not set(idx_train) & set(idx_test)
    assert len(idx_train) + len(idx_test) == 1797
    train, test = make_digit_scenes(design=SMALL)
    train_bytes = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in train_bytes for img in test.images)


def test_the_scenes_do_not_depend_on_how_many_are_converted_at_a_time(monkeypatch):
    import trainables.digit_scenes as scenes

    small = SceneDesign(train_copies=1, test_copies=1)
    monkeypatch.setattr(scenes, "_CHUNK", 10**6)  # every scene in one array
    make_digit_scenes.cache_clear()
    whole = make_digit_scenes(seed=3, design=small)
    monkeypatch.setattr(scenes, "_CHUNK", 7)  # many chunks, the last one partial
    make_digit_scenes.cache_clear()
    chunked = make_digit_scenes(seed=3, design=small)
    make_digit_scenes.cache_clear()
    for a, b in zip(whole, chunked, strict=True):
        assert np.array_equal(pixels(a, len(a)), pixels(b, len(b)))


def test_the_scenes_in_memory_are_their_images_pixels():
    """``in_memory`` takes the scenes' own array (no per-image conversion in each trial's start): the same
    tensor, bit for bit, as converting each PIL image, through ``with_transform`` and a ``Subset`` too."""
    import torch
    from torch.utils.data import Subset

    from trainables.data import in_memory, with_transform

    train, test = make_digit_scenes()
    for ds in (train, test, with_transform(test, lambda im: im)):
        assert ds.pixels is not None
        images, labels = in_memory(ds)
        slow = ImageList(ds.images, ds.labels)  # no array: each image converted back
        want_images, want_labels = in_memory(slow)
        assert images.dtype == torch.uint8 and torch.equal(images, want_images)
        assert torch.equal(labels, want_labels)
    slow = Subset(ImageList(train.images, train.labels), [5, 0, 17])
    assert torch.equal(in_memory(Subset(train, [5, 0, 17]))[0], in_memory(slow)[0])
