"""BatchDataAugmentationDINO: DINO's multi-crop augmentation on a whole batch at once, on any device.

The same distributions as the per-image ``DataAugmentationDINO`` (torchvision + PIL), drawn per
sample, computed with batched tensor ops so that in-memory datasets never leave the training
device: RandomResizedCrop (torchvision's 10-attempt sampler) with bicubic resampling, flip,
ColorJitter(0.4, 0.4, 0.2, 0.1) with p=0.8 in a random order per sample, grayscale p=0.2,
Gaussian blur (p = 1.0 / 0.1 / 0.5 for global 1 / global 2 / locals), solarization p=0.2 on
global 2, ImageNet normalization.

Every random number is a hash of (seed, epoch, image index, crop, draw): an image gets the same
crops whatever batch, order, device or worker it is processed in, so a resumed run is exact.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from trainables.dino.augment import IMAGENET_MEAN, IMAGENET_STD

_MASK32 = 0xFFFFFFFF
_LOG_RATIO = (math.log(3 / 4), math.log(4 / 3))
_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
_ATTEMPTS = 10  # torchvision RandomResizedCrop tries 10 boxes before its fallback
# Draws per crop: 10 scales, 10 log-ratios, top, left, flip, jitter (apply + order 4 + factors 4),
# grayscale, blur (apply + sigma), solarize.
_N_DRAWS = 2 * _ATTEMPTS + 3 + 9 + 1 + 2 + 1


def _mix(h: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (murmur3's finalizer with odd constants < 2^31: no int64 overflow)."""
    h = h ^ (h >> 16)
    h = (h * 0x7FEB352D) & _MASK32
    h = h ^ (h >> 15)
    h = (h * 0x2C1B3C6D) & _MASK32
    return h ^ (h >> 16)


def uniforms(seed: int, epoch: int, index: torch.Tensor, crop: int | list[int], n: int) -> torch.Tensor:
    """(len(crops) * len(index), n) floats uniform in [0, 1), crop-major, a pure function of (seed,
    epoch, index, crop, draw). All the crops' draws come from one set of integer ops."""
    crops = [crop] if isinstance(crop, int) else list(crop)
    device = index.device
    key = _mix(torch.tensor([(seed * 0x9E37 + epoch) & _MASK32], dtype=torch.int64, device=device))
    key = _mix((key + torch.tensor(crops, dtype=torch.int64, device=device) * 0x1000193) & _MASK32)  # (C,)
    h = _mix((index.long()[None, :, None] + key[:, None, None]) & _MASK32)  # (C, B, 1)
    draws = torch.arange(n, device=device, dtype=torch.int64) * 0x3C6EF35F & _MASK32
    h = _mix(_mix((h + draws) & _MASK32) ^ h)
    return ((h >> 8).float() * (1.0 / (1 << 24))).view(-1, n)


def crop_boxes(u: torch.Tensor, height: int, width: int, scale: tuple[float, float]) -> torch.Tensor:
    """torchvision ``RandomResizedCrop.get_params`` per row of ``u``: (top, left, h, w) as floats."""
    area = height * width
    s = scale[0] + (scale[1] - scale[0]) * u[:, :_ATTEMPTS]
    ratio = torch.exp(_LOG_RATIO[0] + (_LOG_RATIO[1] - _LOG_RATIO[0]) * u[:, _ATTEMPTS:2 * _ATTEMPTS])
    w = torch.round(torch.sqrt(area * s * ratio))
    h = torch.round(torch.sqrt(area * s / ratio))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = ok.int().argmax(dim=1, keepdim=True)  # first accepted attempt (0 if none)
    w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
    # Fallback when all 10 attempts fail: the central crop with the ratio clamped to [3/4, 4/3].
    in_ratio = width / height
    fw, fh = (width, round(width / (3 / 4))) if in_ratio < 3 / 4 else \
        (round(height * 4 / 3), height) if in_ratio > 4 / 3 else (width, height)
    found = ok.any(dim=1)
    w, h = torch.where(found, w, float(fw)), torch.where(found, h, float(fh))
    top = torch.where(found, torch.floor(u[:, 2 * _ATTEMPTS] * (height - h + 1)), (height - h) // 2)
    left = torch.where(found, torch.floor(u[:, 2 * _ATTEMPTS + 1] * (width - w + 1)), (width - w) // 2)
    return torch.stack([top, left, h, w], dim=1)


def resized_crops(images: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, size: int,
                  supersample: int) -> torch.Tensor:
    """Bicubic resample of boxes to ``size`` px (mirrored where ``flip``), in [0, 1].

    ``boxes`` and ``flip`` hold ``n`` crops per image, crop-major (row ``c * B + b`` is crop c of
    image b); the result has the same rows. One ``grid_sample`` reads the ``B`` images once: the
    n sampling grids of an image are stacked along the grid's height. Boxes larger than the
    output are sampled ``supersample`` times finer and average-pooled, the antialiasing that
    PIL's resize does when shrinking.
    """
    batch, _, height, width = images.shape
    n, side = boxes.shape[0] // batch, size * supersample
    steps = (torch.arange(side, device=images.device, dtype=torch.float32) + 0.5) / side
    top, left, h, w = boxes.unbind(1)
    steps_x = torch.where(flip[:, None], 1 - steps, steps)
    xs = (left[:, None] + steps_x * w[:, None]) * (2 / width) - 1  # pixel edges -> [-1, 1]
    ys = (top[:, None] + steps * h[:, None]) * (2 / height) - 1
    grid = torch.stack([xs[:, None, :].expand(-1, side, side), ys[:, :, None].expand(-1, side, side)], -1)
    grid = grid.view(n, batch, side, side, 2).transpose(0, 1).reshape(batch, n * side, side, 2)
    out = F.grid_sample(images, grid, mode="bicubic", padding_mode="border", align_corners=False)
    if supersample > 1:
        out = F.avg_pool2d(out, supersample)
    out = out.view(batch, 3, n, size, size).permute(2, 0, 1, 3, 4).reshape(n * batch, 3, size, size)
    return out.clamp_(0, 255).mul_(1 / 255)


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_rgb2hsv``, hue in [0, 1)."""
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    cr_divisor = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / cr_divisor, (maxc - g) / cr_divisor, (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=1)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """HSV -> RGB, the closed form v - v*s*clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6."""
    h, s, v = hsv[:, 0:1], hsv[:, 1:2], hsv[:, 2:3]
    n = torch.tensor([5.0, 3.0, 1.0], device=hsv.device).view(1, 3, 1, 1)
    k = torch.remainder(n + 6 * h, 6)
    return v - v * s * torch.minimum(k, 4 - k).clamp(0, 1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    hsv = _rgb_to_hsv(x)
    hue = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(torch.stack((hue, hsv[:, 1], hsv[:, 2]), dim=1))


def _blend_stage(x: torch.Tensor, op: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                 s: torch.Tensor) -> torch.Tensor:
    """One ColorJitter stage: brightness (op 0), contrast (1) or saturation (2) per sample; any
    other op is the identity. All three are ``clamp(a*x + g*gray(x) + m*mean(gray(x)))``."""
    one = torch.ones_like(b)
    a = torch.where(op == 0, b, torch.where(op == 1, c, torch.where(op == 2, s, one)))
    g = torch.where(op == 2, 1 - s, torch.zeros_like(s)).view(-1, 1, 1, 1)
    m = torch.where(op == 1, 1 - c, torch.zeros_like(c)).view(-1, 1, 1, 1)
    gray = _gray(x)
    mean = gray.mean(dim=(1, 2, 3), keepdim=True)
    return (a.view(-1, 1, 1, 1) * x + g * gray + m * mean).clamp_(0, 1)


def color_jitter(x: torch.Tensor, u: torch.Tensor, p: float = 0.8) -> torch.Tensor:
    """ColorJitter(0.4, 0.4, 0.2, 0.1) with probability ``p``, the 4 ops in a random order per sample.

    ``u``: (B, 9) uniforms: apply, 4 for the order (argsort = a uniform random permutation),
    brightness, contrast, saturation, hue. The three linear ops run masked around the one hue
    step, so each sample gets exactly its own sequence and hue is computed once.
    """
    apply = u[:, 0] < p
    order = u[:, 1:5].argsort(dim=1)  # order[:, k] = op at stage k (0 b, 1 c, 2 s, 3 hue)
    b = torch.where(apply, 0.6 + 0.8 * u[:, 5], 1.0)
    c = torch.where(apply, 0.6 + 0.8 * u[:, 6], 1.0)
    s = torch.where(apply, 0.8 + 0.4 * u[:, 7], 1.0)
    hue = torch.where(apply, -0.1 + 0.2 * u[:, 8], 0.0)
    hue_stage = (order == 3).int().argmax(dim=1)
    none = torch.full_like(hue_stage, 3)
    for k in range(3):  # stages before the hue step
        x = _blend_stage(x, torch.where(hue_stage > k, order[:, k], none), b, c, s)
    x = adjust_hue(x, hue)
    for k in range(1, 4):  # stages after it
        x = _blend_stage(x, torch.where(hue_stage < k, order[:, k], none), b, c, s)
    return x


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per sample (edges replicated, like PIL's)."""
    n, ch, height, width = x.shape
    radius = max(1, math.ceil(3 * max_sigma))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(taps[None] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(ch, dim=0)  # (n*ch, K)
    y = F.pad(x.reshape(1, n * ch, height, width), (radius,) * 4, mode="replicate")
    y = F.conv2d(y, kernel[:, None, None, :], groups=n * ch)
    y = F.conv2d(y, kernel[:, None, :, None], groups=n * ch)
    return y.view(n, ch, height, width)


class BatchDataAugmentationDINO:
    """DINO's multi-crop augmentation (``DataAugmentationDINO``) for a batch of uint8 images.

    ``images`` is the whole in-memory dataset (N, 3, H, W) uint8 on the training device and
    ``index`` the batch's image indices; returns ``2 + local_crops_number`` float tensors
    (B, 3, size, size), normalized. Random parameters depend only on (seed, epoch, index).

    Example::

        aug = BatchDataAugmentationDINO((0.4, 1.0), (0.05, 0.4), 8, 224, 96, seed=0)
        data = torch.from_numpy(cifar.data).permute(0, 3, 1, 2).cuda()   # uint8, once
        crops = aug(data, torch.arange(64, device="cuda"), epoch=0)     # 2 x (64,3,224,224) + 8 x 96
    """

    def __init__(self, global_crops_scale: tuple[float, float], local_crops_scale: tuple[float, float],
                 local_crops_number: int, global_crops_size: int = 224, local_crops_size: int = 96,
                 blur_radius_relative: bool = True, seed: int = 0) -> None:
        self.global_crops_scale, self.local_crops_scale = global_crops_scale, local_crops_scale
        self.local_crops_number, self.seed = local_crops_number, seed
        self.global_crops_size, self.local_crops_size = global_crops_size, local_crops_size
        self.global_radius = global_crops_size / 224 if blur_radius_relative else 1.0
        self.local_radius = local_crops_size / 96 if blur_radius_relative else 1.0

    def groups(self) -> list[tuple[list[int], int, tuple[float, float]]]:
        """Crops made together: (crop ids, side, scale) for the globals, then the locals."""
        groups = [([0, 1], self.global_crops_size, self.global_crops_scale)]
        if self.local_crops_number:
            groups.append((list(range(2, 2 + self.local_crops_number)), self.local_crops_size,
                           self.local_crops_scale))
        return groups

    def crop_params(self, crop_ids: list[int], batch: int, device: torch.device) -> torch.Tensor:
        """Per row (crop-major): blur p, blur radius scale, solarize p, as in the official code."""
        rows = [(1.0, self.global_radius, 0.0) if c == 0 else (0.1, self.global_radius, 0.2) if c == 1
                else (0.5, self.local_radius, 0.0) for c in crop_ids]
        return torch.tensor(rows, device=device).repeat_interleave(batch, dim=0)

    def __call__(self, images: torch.Tensor, index: torch.Tensor, epoch: int) -> list[torch.Tensor]:
        batch = images.index_select(0, index).float()
        crops: list[torch.Tensor] = []
        for crop_ids, size, scale in self.groups():
            crops += self.crop_group(batch, index, epoch, crop_ids, size, scale).chunk(len(crop_ids))
        return crops

    def draws(self, index: torch.Tensor, epoch: int, crop_ids: list[int]) -> torch.Tensor:
        """(len(crop_ids) * B, _N_DRAWS) uniforms, crop-major."""
        return uniforms(self.seed, epoch, index, crop_ids, _N_DRAWS)

    def crop_group(self, batch: torch.Tensor, index: torch.Tensor, epoch: int, crop_ids: list[int],
                   size: int, scale: tuple[float, float]) -> torch.Tensor:
        """Crops ``crop_ids`` (0, 1: global; 2...: local) of float images in [0, 255], crop-major."""
        u = self.draws(index, epoch, crop_ids)
        height, width = batch.shape[-2:]
        boxes = crop_boxes(u, height, width, scale)
        largest = min(max(height, width), math.sqrt(scale[1] * height * width * 4 / 3))
        # Antialias where a box can be larger than the output: PIL averages when it shrinks.
        supersample = min(4, max(1, math.ceil(largest / size - 0.05)))
        x = resized_crops(batch, boxes, u[:, 2 * _ATTEMPTS + 2] < 0.5, size, supersample)
        params = self.crop_params(crop_ids, len(index), x.device)
        return self.photometric(x, u[:, 2 * _ATTEMPTS + 3:], params)

    def photometric(self, x: torch.Tensor, u: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Jitter, grayscale, blur, solarize and normalize crops in [0, 1].

        ``u``: (rows, 13) uniforms (see ``photometric_draws``); ``params``: ``crop_params`` rows.
        """
        blur_p, radius, solarize_p = params.unbind(1)
        x = color_jitter(x, u[:, :9])
        x = torch.where((u[:, 9] < 0.2).view(-1, 1, 1, 1), _gray(x).expand_as(x), x)
        sigma = torch.where(u[:, 10] < blur_p, radius * (0.1 + 1.9 * u[:, 11]), 1e-3)
        x = gaussian_blur(x, sigma, 2.0 * max(self.global_radius, self.local_radius))
        flip = (u[:, 12] < solarize_p).view(-1, 1, 1, 1) & (x >= 128 / 255)
        x = torch.where(flip, 1 - x, x)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def photometric_draws(self, index: torch.Tensor, epoch: int, crop_ids: list[int]) -> torch.Tensor:
        """The (rows, 13) uniforms ``photometric`` takes, for crops made elsewhere (CPU workers)."""
        return self.draws(index, epoch, crop_ids)[:, 2 * _ATTEMPTS + 3:]
