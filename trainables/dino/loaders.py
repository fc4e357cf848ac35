"""Multi-crop batch sources: where the augmentation runs and how images reach the device.

- ``DeviceMultiCropLoader``: an in-memory dataset as one uint8 tensor on the training device,
  the whole multi-crop pipeline batched there (``BatchDataAugmentationDINO``).
- ``FolderMultiCropLoader``: images read from disk; CPU workers decode, crop and flip to uint8,
  the device does colour, blur, solarization and normalization in batches.
- ``CPUMultiCropLoader``: the per-image PIL pipeline (``DataAugmentationDINO``) in DataLoader workers.

Each yields ``(crops, labels)``, ``crops`` a list of ``2 + local_crops_number`` float tensors on
the device, and has ``set_epoch`` (the epoch seeds the random parameters) and ``len``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms

from trainables.dino.batch_augment import BatchDataAugmentationDINO

Batch = tuple[list[torch.Tensor], torch.Tensor]


class DeviceMultiCropLoader:
    """Shuffled batches of multi-crops made on ``device`` from in-memory uint8 images.

    The order comes from ``generator`` (re-seeded per epoch by the trainer), each image's crops
    from (seed, epoch, index): resuming at an epoch gives the same batches.

    Example::

        loader = DeviceMultiCropLoader(images, labels, aug, batch_size=256,
                                       generator=torch.Generator().manual_seed(0), device="cuda")
        loader.set_epoch(0)
        for crops, labels in loader: ...
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: BatchDataAugmentationDINO,
                 batch_size: int, generator: torch.Generator, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        self.augment, self.batch_size, self.generator = augment, batch_size, generator
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images) // self.batch_size  # drop_last, as the DataLoader path

    def __iter__(self) -> Iterator[Batch]:
        order = torch.randperm(len(self.images), generator=self.generator).to(self.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            yield self.augment(self.images, index, self.epoch), self.labels[index]


class CropAndFlip:
    """The geometric half of DINO's augmentation for one PIL image: uint8 crops, no colour."""

    def __init__(self, augment: BatchDataAugmentationDINO) -> None:
        bicubic = transforms.InterpolationMode.BICUBIC
        self.transforms = [transforms.Compose([
            transforms.RandomResizedCrop(size, scale=scale, interpolation=bicubic),
            transforms.RandomHorizontalFlip(), transforms.PILToTensor()])
            for ids, size, scale in augment.groups() for _ in ids]

    def __call__(self, image: Image.Image) -> list[torch.Tensor]:
        return [t(image) for t in self.transforms]


class SeededSampler(Sampler):
    """A random order of ``range(n)`` from ``generator``, yielding ``(epoch, index)`` keys."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        self.n, self.generator, self.epoch = n, generator, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return iter([(epoch, int(i)) for i in torch.randperm(self.n, generator=self.generator)])


class SeededTransform(Dataset):
    """(transform(image), label, index), the transform's ``random``/``torch`` draws seeded by
    (seed, epoch, index): an image gets the same crops in any worker, so resume stays exact
    with persistent workers."""

    def __init__(self, base: Dataset, transform: Callable, seed: int) -> None:
        self.base, self.transform, self.seed = base, transform, seed

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int, int]:
        epoch, i = key
        image, label = self.base[i]
        seed = ((self.seed * 1_000_003 + epoch) * 1_000_033 + i) % 2**63
        state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            out = self.transform(image.convert("RGB"))
        random.setstate(state)
        return out, int(label), i


def _seeded_loader(dataset: Dataset, transform: Callable, seed: int, batch_size: int, num_workers: int,
                   generator: torch.Generator, device: torch.device) -> DataLoader:
    sampler = SeededSampler(len(dataset), generator)  # type: ignore[arg-type]
    return DataLoader(SeededTransform(dataset, transform, seed), batch_size=batch_size, sampler=sampler,
                      drop_last=True, num_workers=num_workers, pin_memory=device.type == "cuda",
                      generator=generator, persistent_workers=num_workers > 0)


class FolderMultiCropLoader:
    """Image-folder batches: CPU workers crop and flip (uint8), the device does the rest batched."""

    def __init__(self, dataset: Dataset, augment: BatchDataAugmentationDINO, batch_size: int,
                 num_workers: int, generator: torch.Generator, device: torch.device) -> None:
        self.augment, self.device, self.epoch = augment, device, 0
        self.loader = _seeded_loader(dataset, CropAndFlip(augment), augment.seed, batch_size, num_workers,
                                     generator, device)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = self.loader.sampler.epoch = epoch  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        for crops, labels, index in self.loader:
            index = index.to(self.device, non_blocking=True)
            out: list[torch.Tensor] = []
            first = 0
            for ids, _, _ in self.augment.groups():
                group = torch.cat([c.to(self.device, non_blocking=True) for c in crops[first:first + len(ids)]])
                x = group.float().mul_(1 / 255)
                u = self.augment.photometric_draws(index, self.epoch, ids)
                params = self.augment.crop_params(ids, len(index), self.device)
                out += self.augment.photometric(x, u, params).chunk(len(ids))
                first += len(ids)
            yield out, labels.to(self.device, non_blocking=True)


class CPUMultiCropLoader:
    """The per-image path: ``DataAugmentationDINO`` (PIL) in DataLoader workers, per (seed, epoch, index)."""

    def __init__(self, dataset: Dataset, augment: Callable, seed: int, batch_size: int, num_workers: int,
                 generator: torch.Generator, device: torch.device) -> None:
        self.loader = _seeded_loader(dataset, augment, seed, batch_size, num_workers, generator, device)

    def set_epoch(self, epoch: int) -> None:
        self.loader.sampler.epoch = epoch  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        for crops, labels, _ in self.loader:
            yield crops, labels
