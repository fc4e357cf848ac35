"""Multi-crop batch sources: where the augmentation runs and how images reach the device.

- ``DeviceMultiCropLoader``: an in-memory dataset as one uint8 tensor on the training device,
  the whole multi-crop pipeline batched there (``BatchDataAugmentationDINO``).
- ``FolderMultiCropLoader``: images read from disk; CPU workers decode, crop and flip to uint8,
  the device does colour, blur, solarization and normalization in batches.
- ``CPUMultiCropLoader``: the per-image PIL pipeline (``DataAugmentationDINO``) in DataLoader workers.

Each yields ``(crops, labels)``, ``crops`` a list of ``2 + local_crops_number`` float tensors on
the device, and has ``set_epoch`` (the epoch seeds the random parameters) and ``len``. Which images
an epoch visits, in which order, comes from a ``ShardSampler``: a pure function of (seed, epoch,
rank, world size), so N data-parallel workers see the global batches of one big-batch process.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms

from trainables.data import to_rgb
from trainables.data_workers import BadImageFile, dead_worker, raised_text, start_worker
from trainables.dino.batch_augment import BatchDataAugmentationDINO
from trainables.distributed import ShardSampler

Batch = tuple[list[torch.Tensor], torch.Tensor]


class DeviceMultiCropLoader:
    """Shuffled batches of multi-crops made on ``device`` from in-memory uint8 images.

    The order comes from ``sampler`` (this rank's shard of the epoch's permutation), each image's
    crops from (seed, epoch, index): resuming at an epoch gives the same batches. Several batches
    are augmented in one call (``batches_per_call``: up to ``CALL_IMAGES`` images and
    ``CALL_BYTES`` of crops): each call has a fixed cost of some 2,700 small tensor ops, which on a
    CPU is as much as the pixel work of 30 small images (32 px: 10-11 ms per batch of 32 one
    batch per call, 7-8 ms two to four per call, more again at eight, out of the caches). An
    image's crops do not depend on the call it is made in, so the batches are the same, bit for bit.

    Example::

        loader = DeviceMultiCropLoader(images, labels, aug, batch_size=256,
                                       sampler=ShardSampler(len(images), seed=0), device="cuda")
        loader.set_epoch(0)
        for crops, labels in loader: ...
    """

    CALL_IMAGES = 128
    CALL_BYTES = 64 << 20

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: BatchDataAugmentationDINO,
                 batch_size: int, sampler: ShardSampler, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        self.augment, self.batch_size, self.sampler = augment, batch_size, sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size  # drop_last, as the DataLoader path

    def batches_per_call(self) -> int:
        """Whole batches per augmentation call: at least one, within both call limits."""
        crop_bytes = 4 * 3 * sum(len(ids) * side * side for ids, side, _ in self.augment.groups())
        images = min(self.CALL_IMAGES, self.CALL_BYTES // crop_bytes)
        return max(1, min(images // self.batch_size, len(self)))

    def __iter__(self) -> Iterator[Batch]:
        order = torch.as_tensor(list(self.sampler), dtype=torch.long).to(self.device)
        size, per_call = self.batch_size, self.batches_per_call()
        for first in range(0, len(self), per_call):
            count = min(per_call, len(self) - first)
            index = order[first * size:(first + count) * size]
            crops, labels = self.augment(self.images, index, self.epoch), self.labels[index]
            for b in range(count):
                rows = slice(b * size, (b + 1) * size)
                yield [c[rows] for c in crops], labels[rows]


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
    """``sampler``'s indices as ``(epoch, index)`` keys, so workers seed each image's crops."""

    def __init__(self, sampler: ShardSampler) -> None:
        self.sampler, self.epoch = sampler, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return iter([(epoch, int(i)) for i in self.sampler])


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
            out = self.transform(to_rgb(image))
        random.setstate(state)
        return out, int(label), i


class Loader(DataLoader):
    """A ``DataLoader`` whose workers' failures are ``BadImageFile`` or ``WorkerDied``
    (``trainables.data_workers``) instead of torch's words, which name neither the file nor the signal.
    Its workers start with ``start_worker``: a crash signal is worded once, by ablate."""

    def __init__(self, dataset: Dataset, *, worker_init_fn: Callable[[int], None] | None = None,
                 **kwargs: Any) -> None:  # DataLoader's other arguments by keyword only
        start = functools.partial(start_worker, then=worker_init_fn)
        super().__init__(dataset, worker_init_fn=start, **kwargs)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        try:  # persistent workers: a new epoch waits for each one's answer, a dead one's too
            batches = super().__iter__()
        except RuntimeError as exc:
            if (death := dead_worker(exc, getattr(self, "_iterator", None))) is None:
                raise
            raise death from None
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except BadImageFile as exc:  # its text: the worker's traceback, its last line the file's
                raise BadImageFile(raised_text(exc)) from None
            except RuntimeError as exc:
                if (death := dead_worker(exc, batches)) is None:
                    raise
                raise death from None
            yield batch


def _seeded_loader(dataset: Dataset, transform: Callable, seed: int, batch_size: int, num_workers: int,
                   sampler: ShardSampler, device: torch.device) -> Loader:
    # The DataLoader draws worker base seeds on each new iterator, but persistent workers keep
    # theirs: its own generator keeps those draws out of the order and the global RNG.
    return Loader(SeededTransform(dataset, transform, seed), batch_size=batch_size,
                      sampler=SeededSampler(sampler), drop_last=True, num_workers=num_workers,
                      pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(seed),
                      persistent_workers=num_workers > 0)


class FolderMultiCropLoader:
    """Image-folder batches: CPU workers crop and flip (uint8), the device does the rest batched."""

    def __init__(self, dataset: Dataset, augment: BatchDataAugmentationDINO, batch_size: int,
                 num_workers: int, sampler: ShardSampler, device: torch.device) -> None:
        self.augment, self.device, self.epoch = augment, device, 0
        self.loader = _seeded_loader(dataset, CropAndFlip(augment), augment.seed, batch_size, num_workers,
                                     sampler, device)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        for crops, labels, index in self.loader:
            index = index.to(self.device, non_blocking=True)
            out: list[torch.Tensor] = []
            first = 0
            for ids, _, _ in self.augment.groups():
                group = torch.cat([c.to(self.device, non_blocking=True)
                                   for c in crops[first:first + len(ids)]])
                x = group.float().mul_(1 / 255)
                u = self.augment.photometric_draws(index, self.epoch, ids)
                params = self.augment.crop_params(ids, len(index), self.device)
                out += self.augment.photometric(x, u, params).chunk(len(ids))
                first += len(ids)
            yield out, labels.to(self.device, non_blocking=True)


class CPUMultiCropLoader:
    """The per-image path: ``DataAugmentationDINO`` (PIL) in DataLoader workers, per (seed, epoch, index)."""

    def __init__(self, dataset: Dataset, augment: Callable, seed: int, batch_size: int, num_workers: int,
                 sampler: ShardSampler, device: torch.device) -> None:
        self.loader = _seeded_loader(dataset, augment, seed, batch_size, num_workers, sampler, device)

    def set_epoch(self, epoch: int) -> None:
        self.loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        for crops, labels, _ in self.loader:
            yield crops, labels
