"""``ImageList``: images held in memory as PIL images with integer labels (the embedded datasets)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset


class ImageList(Dataset):
    """A list of PIL images and integer labels, with a transform applied on access.

    ``pixels``: the same images as one (N, H, W, 3) uint8 array, where they were made from one (the
    embedded sets), so that ``trainables.data.in_memory`` takes it instead of converting each image
    back (0.25 s for the digit scenes, in every trial's start)."""

    def __init__(self, images: list[Image.Image], labels: np.ndarray, transform: Callable | None = None,
                 pixels: np.ndarray | None = None):
        self.images, self.labels, self.transform = images, np.asarray(labels, dtype=np.int64), transform
        if pixels is not None and (pixels.dtype != np.uint8 or pixels.shape[0] != len(images)
                                   or pixels.ndim != 4 or pixels.shape[-1] != 3):
            raise ValueError(f"pixels: expected ({len(images)}, H, W, 3) uint8, got {pixels.shape} "
                             f"{pixels.dtype}")
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img = self.images[i]
        return (self.transform(img) if self.transform else img), int(self.labels[i])

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1
