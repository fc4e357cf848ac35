"""Multi-crop loaders: batches, and crops that depend on (seed, epoch, index) only."""

import torch

from trainables.data import in_memory, make_synthetic
from trainables.dino.augment import DataAugmentationDINO
from trainables.dino.batch_augment import BatchDataAugmentationDINO
from trainables.dino.loaders import (
    CPUMultiCropLoader,
    DeviceMultiCropLoader,
    FolderMultiCropLoader,
    SeededTransform,
)
from trainables.distributed import ShardSampler, epoch_permutation

ARGS = ((0.4, 1.0), (0.05, 0.4), 2, 16, 8)


def test_device_loader_batches_are_a_shuffle_with_per_image_crops():
    train, _ = make_synthetic(n_train=40, size=16)
    images, labels = in_memory(train)
    aug = BatchDataAugmentationDINO(*ARGS, seed=0)
    loader = DeviceMultiCropLoader(images, labels, aug, 8, ShardSampler(40, seed=1), "cpu")
    loader.set_epoch(2)
    batches = list(loader)
    assert len(batches) == len(loader) == 5
    crops, y = batches[0]
    assert [tuple(c.shape) for c in crops] == [(8, 3, 16, 16)] * 2 + [(8, 3, 8, 8)] * 2
    order = epoch_permutation(40, seed=1, epoch=2)
    assert torch.equal(y, labels[order[:8]])
    alone = aug(images, order[:1], epoch=2)
    torch.testing.assert_close(crops[0][:1], alone[0], rtol=0, atol=1e-5)


def test_device_loader_batches_do_not_depend_on_how_many_are_augmented_per_call(monkeypatch):
    train, _ = make_synthetic(n_train=44, size=16)
    images, labels = in_memory(train)
    loader = DeviceMultiCropLoader(images, labels, BatchDataAugmentationDINO(*ARGS, seed=0), 8,
                                   ShardSampler(44, seed=1), "cpu")
    loader.set_epoch(1)
    runs = {}
    for call_images in (8, 16, 1 << 20):  # 1, 2 (calls of 2, 2, 1) and all 5 batches per call
        monkeypatch.setattr(DeviceMultiCropLoader, "CALL_IMAGES", call_images)
        runs[call_images] = (loader.batches_per_call(), list(loader))
    assert [per_call for per_call, _ in runs.values()] == [1, 2, 5]
    one_by_one = runs[8][1]
    assert len(one_by_one) == 5
    for _, batches in runs.values():
        for (crops, y), (want_crops, want_y) in zip(batches, one_by_one, strict=True):
            assert torch.equal(y, want_y)
            assert all(torch.equal(c, w) for c, w in zip(crops, want_crops, strict=True))
    monkeypatch.setattr(DeviceMultiCropLoader, "CALL_BYTES", 1)  # a batch's crops exceed it: still 1
    assert loader.batches_per_call() == 1


def test_per_image_crops_are_seeded_by_epoch_and_index():
    train, _ = make_synthetic(n_train=8, size=16)
    seeded = SeededTransform(train, DataAugmentationDINO(*ARGS), seed=0)
    torch.manual_seed(5)
    a, label, index = seeded[(1, 3)]
    torch.manual_seed(6)  # the global RNG does not matter, and is left as it was
    before = torch.get_rng_state()
    b, _, _ = seeded[(1, 3)]
    assert torch.equal(torch.get_rng_state(), before)
    assert label == int(train.labels[3]) and index == 3
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], seeded[(2, 3)][0][0])


def test_cpu_and_folder_loaders_yield_normalized_multicrops():
    train, _ = make_synthetic(n_train=16, size=16)
    cpu = CPUMultiCropLoader(train, DataAugmentationDINO(*ARGS), 0, 8, 0, ShardSampler(16, 0),
                             torch.device("cpu"))
    folder = FolderMultiCropLoader(train, BatchDataAugmentationDINO(*ARGS), 8, 0, ShardSampler(16, 0),
                                   torch.device("cpu"))
    for loader in (cpu, folder):
        loader.set_epoch(0)
        crops, labels = next(iter(loader))
        assert [tuple(c.shape) for c in crops] == [(8, 3, 16, 16)] * 2 + [(8, 3, 8, 8)] * 2
        assert crops[0].dtype == torch.float32 and crops[0].min() < 0 and labels.shape == (8,)


def test_per_image_batches_do_not_depend_on_the_number_of_workers():
    # Resume builds a fresh loader; with persistent workers the straight run reuses its iterator.
    train, _ = make_synthetic(n_train=32, size=16)

    def first_batch(loader, epoch):
        loader.set_epoch(epoch)  # the order is the ShardSampler's, from (seed, epoch)
        return next(iter(loader))[0][0]
    cpu = torch.device("cpu")
    with_workers = CPUMultiCropLoader(train, DataAugmentationDINO(*ARGS), 0, 8, 2, ShardSampler(32, 0), cpu)
    first_batch(with_workers, 0)
    resumed = CPUMultiCropLoader(train, DataAugmentationDINO(*ARGS), 0, 8, 0, ShardSampler(32, 0), cpu)
    assert torch.equal(first_batch(with_workers, 1), first_batch(resumed, 1))
