"""BatchDataAugmentationDINO: DINO's multi-crop augmentation on a whole batch at once, on any device.

The same distributions as the per-image ``DataAugmentationDINO`` (torchvision + PIL), drawn per
sample, computed with batched tensor ops so that in-memory datasets never leave the training
device: RandomResizedCrop (torchvision's 10-attempt sampler) with bicubic resampling, flip,
ColorJitter(0.4, 0.4, 0.2, 0.1) with p=0.8 in a random order per sample, grayscale p=0.2,
Gaussian blur (p = 1.0 / 0.1 / 0.5 for global 1 / global 2 / locals), solarization p=0.2 on
global 2, ImageNet normalization.

Every random number is a hash of (seed, epoch, image index, crop, draw): an image gets the same
crops whatever batch, order, device or worker it is processed in, so a resumed run is exact.

No call reads a value back from the device or copies one to it: the constants are made on each
device once (``constant``) and the per-call keys are Python integers. On CUDA a tensor built from
host data each call (``torch.tensor(..., device="cuda")``) waits for all the GPU work queued
before it, so the host could never run ahead of the GPU: on the H200 the loop waited for its
batches 20 % of the time (``bench/gpu_check.sh``'s e2e stage, 2026-12-04).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, overload

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


def constant(values: tuple, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``torch.tensor(values)`` on ``device``, made once per device (read it, never write it)."""
    return _constant(values, torch.device(device), dtype)


@functools.lru_cache(maxsize=128)
def _constant(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, device=device)


@overload
def _mix(h: int) -> int: ...
@overload
def _mix(h: torch.Tensor) -> torch.Tensor: ...
def _mix(h: Any) -> Any:
    """A 32-bit integer hash (murmur3's finalizer with odd constants < 2^31: no int64 overflow),
    the same numbers on a Python int as on an int64 tensor."""
    h = h ^ (h >> 16)
    h = (h * 0x7FEB352D) & _MASK32
    h = h ^ (h >> 15)
    h = (h * 0x2C1B3C6D) & _MASK32
    return h ^ (h >> 16)


def uniforms(seed: int, epoch: int, index: torch.Tensor, crop: int | list[int], n: int) -> torch.Tensor:
    """(len(crops) * len(index), n) floats uniform in [0, 1), crop-major, a pure function of (seed,
    epoch, index, crop, draw). All the crops' draws come from one set of integer ops."""
    crops = (crop,) if isinstance(crop, int) else tuple(crop)
    device = index.device
    base = _mix((seed * 0x9E37 + epoch) & _MASK32)  # a Python int: nothing copied to the device
    key = _mix((constant(crops, device, torch.int64) * 0x1000193 + base) & _MASK32)  # (C,)
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


def _cubic_weights(t: torch.Tensor) -> torch.Tensor:
    """Weights of the taps at -1, 0, 1, 2 around a point ``t`` in [0, 1) past a pixel: the cubic
    convolution kernel with a = -0.75, as ``grid_sample(mode="bicubic")`` and PIL use."""
    a = -0.75
    near, far = torch.stack([t, 1 - t], -1), torch.stack([t + 1, 2 - t], -1)  # |distance| to each tap
    w_near = ((a + 2) * near - (a + 3)) * near * near + 1
    w_far = ((a * far - 5 * a) * far + 8 * a) * far - 4 * a
    return torch.stack([w_far[..., 0], w_near[..., 0], w_near[..., 1], w_far[..., 1]], -1)


def resample_matrix(start: torch.Tensor, length: torch.Tensor, flip: torch.Tensor | None, size: int,
                    supersample: int, extent: int) -> torch.Tensor:
    """(rows, size, extent): output pixel i of row r as a weighted sum of the ``extent`` input pixels
    along one axis, for the span [start, start + length) of each row resampled to ``size`` px.

    Bicubic at ``supersample`` points per output pixel, averaged; taps past an edge read the edge
    pixel (``padding_mode="border"``); ``flip`` mirrors a row's output.
    """
    side = size * supersample
    steps = (torch.arange(side, device=start.device, dtype=torch.float32) + 0.5) / side
    if flip is not None:
        steps = torch.where(flip[:, None], 1 - steps, steps)
    pos = start[:, None] + steps * length[:, None] - 0.5  # pixel centers are at .5
    base = pos.floor()
    weights = _cubic_weights(pos - base).mul_(1 / supersample)
    taps = (base.long()[..., None] + torch.arange(-1, 3, device=start.device)).clamp_(0, extent - 1)
    matrix = torch.zeros(start.shape[0], size, extent, device=start.device)
    taps, weights = taps.view(-1, size, supersample * 4), weights.view(-1, size, supersample * 4)
    return matrix.scatter_add_(2, taps, weights)


def resized_crops(images: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, size: int,
                  supersample: int) -> torch.Tensor:
    """Bicubic resample of boxes to ``size`` px (mirrored where ``flip``), in [0, 1].

    ``images`` (B, C, H, W) in [0, 255]; ``boxes`` and ``flip`` hold ``n`` crops per image,
    crop-major (row ``c * B + b`` is crop c of image b); the result has the same rows. Bicubic
    resampling is separable, so each crop is two matrix products, rows then columns:
    ``Ry @ image @ Rx^T``, with every crop of an image in one product with that image. Boxes
    larger than the output are sampled ``supersample`` times finer and averaged (folded into the
    matrices), the antialiasing that PIL's resize does when shrinking. The numbers are those of
    ``grid_sample(mode="bicubic", padding_mode="border")`` on the crops' sampling grid, to float
    rounding (the sums run in another order).
    """
    batch, channels, height, width = images.shape
    n = boxes.shape[0] // batch
    top, left, h, w = boxes.unbind(1)
    rows = resample_matrix(top, h, None, size, supersample, height).mul_(1 / 255)
    cols = resample_matrix(left, w, flip, size, supersample, width)
    rows = rows.view(n, batch, size, height).transpose(0, 1).reshape(batch, n * size, height)
    cols = cols.view(n, batch, size, width).transpose(0, 1).reshape(batch * n, size, width)
    by_row = images.permute(0, 2, 1, 3).reshape(batch, height, channels * width)
    out = torch.bmm(rows, by_row).view(batch * n, size * channels, width)
    out = torch.bmm(out, cols.transpose(1, 2))  # (B * n, size * C, size): [b, c][y, channel, x]
    out = out.view(batch, n, size, channels, size).permute(1, 0, 3, 2, 4)
    out = out.reshape(n * batch, channels, size, size)
    return out.clamp_(0, 1)


def _gray_rows(device: torch.device) -> torch.Tensor:
    """(3, 3): every row the grayscale weights, so ``rows @ rgb`` puts gray(x) in each channel."""
    return constant(_GRAY, device).expand(3, 3)


def colour_matrices(scale: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) = scale * I + gray * [gray weights in each row]: x -> scale * x + gray * gray(x)."""
    eye = torch.eye(3, device=scale.device)
    return scale[..., None, None] * eye + gray[..., None, None] * _gray_rows(scale.device)


def jitter_stages(ops: torch.Tensor, factors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour matrices (N, S, 3, 3) and mean-gray weights (N, S) of S linear ColorJitter stages.

    ``ops`` (N, S): brightness 0, contrast 1, saturation 2, 3 the identity (the hue slot);
    ``factors`` (N, >=3): each sample's brightness, contrast and saturation factors. Each stage
    is torchvision's ``_blend``, ``clamp(a*x + g*gray(x) + m*mean(gray(x)), 0, 1)``: brightness
    a = b; contrast a = c, m = 1 - c; saturation a = s, g = 1 - s.
    """
    b, c, s = factors[:, 0], factors[:, 1], factors[:, 2]
    one, zero = torch.ones_like(b), torch.zeros_like(b)
    scale = torch.stack([b, c, s, one], 1).gather(1, ops)
    gray = torch.stack([zero, zero, 1 - s, zero], 1).gather(1, ops)
    mean = torch.stack([zero, 1 - c, zero, zero], 1).gather(1, ops)
    return colour_matrices(scale, gray), mean


def blend(flat: torch.Tensor, matrix: torch.Tensor, mean_weight: torch.Tensor) -> torch.Tensor:
    """One linear jitter stage on (N, 3, P) pixels in [0, 1]: ``matrix @ x + mean_weight *
    mean(gray(x))``, clamped to [0, 1] (one batched matrix product)."""
    gray_mean = flat.mean(2) @ _gray_rows(flat.device)[0]  # (N,)
    return torch.baddbmm((mean_weight * gray_mean)[:, None, None], matrix, flat).clamp_(0, 1)


def _float_mask(compare: Callable[..., torch.Tensor], a: torch.Tensor,
                b: torch.Tensor | float) -> torch.Tensor:
    """``compare(a, b)`` as 1.0 / 0.0 floats, written straight into a float tensor (CPU kernels on
    bool tensors are several times slower than the float arithmetic around them)."""
    shape = torch.broadcast_shapes(a.shape, b.shape) if isinstance(b, torch.Tensor) else a.shape
    return compare(a, b, out=torch.empty(shape, dtype=a.dtype, device=a.device))


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """torchvision's ``adjust_hue`` per sample on (N, 3, ...) RGB in [0, 1]: to HSV, hue + shift
    (mod 1), back to RGB. Value (max) and chroma (max - min) are kept, so the result is
    ``max - chroma * clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 * hue) mod 6``, n = 5, 3, 1."""
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    chroma = maxc - minc
    inv = 1 / (chroma + _float_mask(torch.eq, chroma, 0.0))  # gray pixels: any hue, chroma 0
    is_r = _float_mask(torch.eq, maxc, r)
    is_g = _float_mask(torch.eq, maxc, g) * (1 - is_r)
    is_b = (1 - is_r) * (1 - is_g)
    sixths = (is_r * (g - b) + is_g * (b - r) + is_b * (r - g)) * inv + 2 * is_g + 4 * is_b  # hue * 6
    shift = shift.view(-1, *([1] * (x.dim() - 2)))
    n = constant((5.0, 3.0, 1.0), x.device).view(1, 3, *([1] * (x.dim() - 2)))
    k = (sixths + 6 * shift).unsqueeze(1) + n
    k = k - 6 * torch.floor(k * (1 / 6))  # mod 6 (float ops: remainder is slower on CPU)
    return maxc.unsqueeze(1) - chroma.unsqueeze(1) * torch.minimum(k, 4 - k).clamp_(0, 1)


def jitter_factors(u: torch.Tensor, p: float) -> torch.Tensor:
    """(N, 4) brightness, contrast, saturation, hue factors from 4 uniforms (identity where not applied)."""
    low = constant((0.6, 0.6, 0.8, -0.1), u.device)
    span = constant((0.8, 0.8, 0.4, 0.2), u.device)
    identity = constant((1.0, 1.0, 1.0, 0.0), u.device)
    return torch.where((u[:, 0] < p)[:, None], low + span * u[:, 5:9], identity)


def color_jitter(x: torch.Tensor, u: torch.Tensor, p: float = 0.8) -> torch.Tensor:
    """ColorJitter(0.4, 0.4, 0.2, 0.1) with probability ``p``, the 4 ops in a random order per sample.

    ``u``: (B, 9) uniforms: apply, 4 for the order (argsort = a uniform random permutation),
    brightness, contrast, saturation, hue. Each sample's three linear ops sit in 6 stage slots
    around the one hue step (3 before it, 3 after; a slot a sample does not use is the
    identity), so each sample gets exactly its own sequence and hue is computed once.
    """
    factors = jitter_factors(u, p)
    order = u[:, 1:5].argsort(dim=1)  # order[:, k] = op at stage k (0 b, 1 c, 2 s, 3 hue)
    hue_at = (order == 3).int().argmax(dim=1, keepdim=True)
    slots = torch.arange(3, device=u.device)
    before = torch.where(hue_at > slots, order[:, :3], 3)
    after = torch.where(hue_at < slots + 1, order[:, 1:], 3)
    matrices, means = jitter_stages(torch.cat([before, after], 1), factors)
    flat = x.reshape(x.shape[0], 3, -1)
    for k in range(6):
        if k == 3:
            flat = adjust_hue(flat, factors[:, 3])
        flat = blend(flat, matrices[:, k], means[:, k])
    return flat.view_as(x)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per sample (edges replicated, like PIL's)."""
    n, ch, height, width = x.shape
    radius = max(1, math.ceil(3 * max_sigma))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(taps[None] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True))[:, None].expand(n, ch, -1).reshape(n * ch, -1)
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
        rows = tuple((1.0, self.global_radius, 0.0) if c == 0 else (0.1, self.global_radius, 0.2) if c == 1
                     else (0.5, self.local_radius, 0.0) for c in crop_ids)
        return constant(rows, device)[:, None].expand(-1, batch, -1).reshape(-1, 3)

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
        n = x.shape[0]
        x = color_jitter(x, u[:, :9])
        to_gray = (u[:, 9] < 0.2).float()  # RandomGrayscale(p=0.2): x -> gray(x) in all 3 channels
        x = torch.bmm(colour_matrices(1 - to_gray, to_gray), x.view(n, 3, -1)).view_as(x)
        sigma = torch.where(u[:, 10] < blur_p, radius * (0.1 + 1.9 * u[:, 11]), 1e-3)
        x = gaussian_blur(x, sigma, 2.0 * max(self.global_radius, self.local_radius))
        # Solarization: 1 - x where x >= 128/255, on the samples drawn (p = solarize_p).
        solarize = _float_mask(torch.ge, x, 128 / 255).mul_((u[:, 12] < solarize_p).float().view(-1, 1, 1, 1))
        x = torch.addcmul(x, solarize, 1 - 2 * x)
        mean = constant(tuple(IMAGENET_MEAN), x.device).view(1, 3, 1, 1)
        std = constant(tuple(IMAGENET_STD), x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def photometric_draws(self, index: torch.Tensor, epoch: int, crop_ids: list[int]) -> torch.Tensor:
        """The (rows, 13) uniforms ``photometric`` takes, for crops made elsewhere (CPU workers)."""
        return self.draws(index, epoch, crop_ids)[:, 2 * _ATTEMPTS + 3:]
