"""``ImageList``: images held in memory as PIL images with integer labels (the embedded datasets)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset


class ImageList(Dataset):
    """A list of PIL images and integer labels, with a transform applied on access."""

    def __init__(self, images: list[Image.Image], labels: np.ndarray, transform: Callable | None = None):
        self.images, self.labels, self.transform = images, np.asarray(labels, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img = self.images[i]
        return (self.transform(img) if self.transform else img), int(self.labels[i])

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1
