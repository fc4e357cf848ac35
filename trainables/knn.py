"""Weighted k-nearest-neighbour evaluation of frozen features (DINO paper Sec. 4.1, eval_knn.py)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from trainables.dino.loaders import Loader


def knn_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, k: int = 20, temperature: float = 0.07,
                 num_classes: int | None = None, max_chunk_elems: int = 2**24) -> tuple[float, float]:
    """Top-1 and top-5 accuracy (percent) of DINO's weighted kNN vote.

    Features are L2-normalized; each test image takes its ``k`` most cosine-similar train images,
    weights them by ``exp(sim / temperature)``, sums the weights per class and predicts the
    argmax. Test images are processed in chunks of at most ``max_chunk_elems`` similarities,
    so memory stays bounded for any number of images (and any number below 100 works).

    Example::

        top1, top5 = knn_accuracy(train_f, train_y, test_f, test_y, k=20, temperature=0.07)
    """
    # Similarities in fp16 on a GPU (features are stored in fp16), fp32 on the CPU.
    dtype = torch.float16 if train_features.is_cuda else torch.float32
    train = F.normalize(train_features.float(), dim=1).to(dtype)
    test = F.normalize(test_features.float(), dim=1).to(dtype)
    train_labels = train_labels.to(train.device).long()
    test_labels = test_labels.to(train.device).long()
    n_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, train.shape[0])
    chunk = max(1, max_chunk_elems // max(train.shape[0], 1))
    top1 = top5 = 0.0
    for start in range(0, test.shape[0], chunk):
        sim = test[start:start + chunk] @ train.t()
        sim_k, idx = sim.topk(k, dim=1)
        weights = (shifted(sim_k.float(), k, temperature) / temperature).exp()
        votes = torch.zeros(sim.shape[0], n_classes, device=sim.device)
        votes.scatter_add_(1, train_labels[idx], weights)
        pred = votes.topk(min(5, n_classes), dim=1).indices
        truth = test_labels[start:start + chunk, None]
        top1 += (pred[:, :1] == truth).sum().item()
        top5 += (pred == truth).any(dim=1).sum().item()
    n = test.shape[0]
    return 100.0 * top1 / n, 100.0 * top5 / n


def shifted(sim_k: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
    """The similarities the vote exponentiates: as they are, the official code's numbers, unless a
    sum of ``k`` weights ``exp(sim / T)`` (cosines of at most 1) could overflow float32 (T below
    about 0.0117 at k = 20): every voted class then tied at inf (knn_temperature 0.005: top-1 29 %
    where the nearest neighbour gets 100 %). Less each test image's largest, which ranks the classes
    the same way (a factor per image) and tends to the nearest neighbour's vote as T falls."""
    if 1.0 / temperature < math.log(torch.finfo(torch.float32).max / k):
        return sim_k
    return sim_k - sim_k[:, :1]


@torch.no_grad()
def extract_features(model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 256,
                     num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features (fp16, L2-normalized) and labels of a dataset that yields (tensor, label)."""
    model.eval()
    loader = Loader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    feats, labels = [], []
    for images, targets in loader:
        feats.append(_normalized_half(model(images.to(device, non_blocking=True))))
        labels.append(targets.to(device))
    return concat(feats, device), torch.cat(labels)


def eval_batch_size(device: torch.device) -> int:
    """Images per forward pass of the kNN evaluation: 512 on a GPU; 256 on a CPU, where the
    activations of 512 images fall out of the caches (the main job's per-epoch evaluation of 5,391
    images on one core: 0.82-0.89 s at 256, 0.91-1.09 s at 512, median of 8 interleaved calls in 3
    processes; bench/README.md). A speed setting: the main job's features were the same bit for bit
    at 64 to 1,024 images per batch (oneDNN may round differently for batches of a few images)."""
    return 512 if device.type == "cuda" else 256


@torch.no_grad()
def extract_features_in_memory(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, size: int,
                               device: torch.device, batch_size: int | None = None,
                               memory_format: torch.memory_format = torch.contiguous_format,
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of in-memory uint8 images (N, 3, H, W), evaluated in batches on ``device``
    (``batch_size`` images at a time; None: ``eval_batch_size(device)``).

    The test-time transform of ``eval_transform`` done batched: resize the short side to
    ``size`` (bicubic, antialiased), center crop, ImageNet normalization.

    Example::

        feats, y = extract_features_in_memory(backbone, cifar_uint8, cifar_labels, 32, torch.device("cuda"))
    """
    from trainables.dino.augment import IMAGENET_MEAN, IMAGENET_STD

    model.eval()
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
    feats = []
    batch_size = batch_size or eval_batch_size(device)
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device, non_blocking=True).float()
        x = resize_center_crop(x, size)
        x = ((x - mean) / std).contiguous(memory_format=memory_format)
        feats.append(_normalized_half(model(x)))
    return concat(feats, device), labels.to(device)


def resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """``eval_transform``'s Resize(size) and CenterCrop(size) on a float batch (N, C, H, W) in
    [0, 255]: bicubic, antialiased; images already at ``size`` are returned as they are."""
    height, width = x.shape[-2:]
    if (height, width) == (size, size):
        return x
    scale = size / min(height, width)
    new = (max(size, round(height * scale)), max(size, round(width * scale)))
    x = F.interpolate(x, size=new, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 255)
    top, left = (new[0] - size) // 2, (new[1] - size) // 2
    return x[..., top:top + size, left:left + size]


def concat(feats: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """The batches' fp16 features as one tensor, outside autocast: the trainer evaluates under its
    autocast, and CPU autocast's ``cat`` refuses fp16 inputs (bf16 training on a CPU)."""
    with torch.autocast(device.type, enabled=False):
        return torch.cat(feats)


def _normalized_half(out: torch.Tensor | tuple) -> torch.Tensor:
    """fp16 halves the memory bank; normalizing first keeps every value in fp16 range."""
    feats = out[0] if isinstance(out, tuple) else out
    return F.normalize(feats.float(), dim=1).half()
