"""Multi-crop loaders: batches, and crops that depend on (seed, epoch, index) only."""

import torch

from trainables.data import in_memory, make_synthetic
from trainables.dino.augment import DataAugmentationDINO
from trainables.dino.batch_augment import BatchDataAugmentationDINO
from trainables.dino.loaders import CPUMultiCropLoader, DeviceMultiCropLoader, FolderMultiCropLoader, SeededTransform

ARGS = ((0.4, 1.0), (0.05, 0.4), 2, 16, 8)


def test_device_loader_batches_are_a_shuffle_with_per_image_crops():
    train, _ = make_synthetic(n_train=40, size=16)
    images, labels = in_memory(train)
    aug = BatchDataAugmentationDINO(*ARGS, seed=0)
    loader = DeviceMultiCropLoader(images, labels, aug, 8, torch.Generator().manual_seed(1), "cpu")
    loader.set_epoch(2)
    batches = list(loader)
    assert len(batches) == len(loader) == 5
    crops, y = batches[0]
    assert [tuple(c.shape) for c in crops] == [(8, 3, 16, 16)] * 2 + [(8, 3, 8, 8)] * 2
    order = torch.randperm(40, generator=torch.Generator().manual_seed(1))
    assert torch.equal(y, labels[order[:8]])
    alone = aug(images, order[:1], epoch=2)
    torch.testing.assert_close(crops[0][:1], alone[0], rtol=0, atol=1e-5)


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
    gen = torch.Generator().manual_seed(0)
    cpu = CPUMultiCropLoader(train, DataAugmentationDINO(*ARGS), 0, 8, 0, gen, torch.device("cpu"))
    folder = FolderMultiCropLoader(train, BatchDataAugmentationDINO(*ARGS), 8, 0, gen, torch.device("cpu"))
    for loader in (cpu, folder):
        loader.set_epoch(0)
        crops, labels = next(iter(loader))
        assert [tuple(c.shape) for c in crops] == [(8, 3, 16, 16)] * 2 + [(8, 3, 8, 8)] * 2
        assert crops[0].dtype == torch.float32 and crops[0].min() < 0 and labels.shape == (8,)
