"""DataAugmentationDINO: 2 global + N local crops with DINO's photometric augmentations (paper App. A)."""

from __future__ import annotations

import random

import torch
from PIL import Image, ImageFilter, ImageOps
from torchvision import transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class GaussianBlur:
    """Blur with probability ``p`` and a radius uniform in [radius_min, radius_max] (official)."""

    def __init__(self, p: float = 0.5, radius_min: float = 0.1, radius_max: float = 2.0) -> None:
        self.prob, self.radius_min, self.radius_max = p, radius_min, radius_max

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.random() > self.prob:
            return img
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(self.radius_min, self.radius_max)))


class Solarization:
    """Solarize (invert pixels above 128) with probability ``p`` (official)."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, img: Image.Image) -> Image.Image:
        return ImageOps.solarize(img) if random.random() < self.p else img


def normalize() -> transforms.Compose:
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class DataAugmentationDINO:
    """The multi-crop augmentation of facebookresearch/dino ``main_dino.py``.

    Global crop 1: blur p=1.0; global crop 2: blur p=0.1 and solarization p=0.2; local crops:
    blur p=0.5. All: flip p=0.5, ColorJitter(0.4, 0.4, 0.2, 0.1) p=0.8, grayscale p=0.2,
    ImageNet normalization. Returns a list of ``2 + local_crops_number`` tensors. The blur radius
    is (0.1, 2.0) px, the official one for 224/96 px crops; ``blur_radius_relative`` scales it by
    ``global_crops_size / 224`` and ``local_crops_size / 96``.

    Example::

        aug = DataAugmentationDINO((0.4, 1.0), (0.05, 0.4), local_crops_number=8)
        crops = aug(pil_image)   # [3x224x224, 3x224x224, 8 x 3x96x96]
    """

    def __init__(self, global_crops_scale: tuple[float, float], local_crops_scale: tuple[float, float],
                 local_crops_number: int, global_crops_size: int = 224, local_crops_size: int = 96,
                 blur_radius_relative: bool = False) -> None:
        g_radius = global_crops_size / 224 if blur_radius_relative else 1.0
        l_radius = local_crops_size / 96 if blur_radius_relative else 1.0
        bicubic = transforms.InterpolationMode.BICUBIC
        flip_and_color_jitter = transforms.Compose([
            transforms.RandomHorizontalFlip(p=0.5),
            transforms.RandomApply(
                [transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8),
            transforms.RandomGrayscale(p=0.2),
        ])
        self.global_transfo1 = transforms.Compose([
            transforms.RandomResizedCrop(global_crops_size, scale=global_crops_scale, interpolation=bicubic),
            flip_and_color_jitter, GaussianBlur(1.0, 0.1 * g_radius, 2.0 * g_radius), normalize(),
        ])
        self.global_transfo2 = transforms.Compose([
            transforms.RandomResizedCrop(global_crops_size, scale=global_crops_scale, interpolation=bicubic),
            flip_and_color_jitter, GaussianBlur(0.1, 0.1 * g_radius, 2.0 * g_radius), Solarization(0.2),
            normalize(),
        ])
        self.local_crops_number = local_crops_number
        self.local_transfo = transforms.Compose([
            transforms.RandomResizedCrop(local_crops_size, scale=local_crops_scale, interpolation=bicubic),
            flip_and_color_jitter, GaussianBlur(0.5, 0.1 * l_radius, 2.0 * l_radius), normalize(),
        ])

    def __call__(self, image: Image.Image) -> list[torch.Tensor]:
        crops = [self.global_transfo1(image), self.global_transfo2(image)]
        crops += [self.local_transfo(image) for _ in range(self.local_crops_number)]
        return crops


def eval_transform(size: int) -> transforms.Compose:
    """Test-time transform for kNN features: resize the short side, center crop, normalize."""
    return transforms.Compose([
        transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(size), normalize(),
    ])
