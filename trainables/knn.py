"""Weighted k-nearest-neighbour evaluation of frozen features (DINO paper Sec. 4.1, eval_knn.py)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset


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
    train = F.normalize(train_features.float(), dim=1)
    test = F.normalize(test_features.float(), dim=1)
    train_labels = train_labels.to(train.device).long()
    test_labels = test_labels.to(train.device).long()
    n_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, train.shape[0])
    chunk = max(1, max_chunk_elems // max(train.shape[0], 1))
    top1 = top5 = 0.0
    for start in range(0, test.shape[0], chunk):
        sim = test[start:start + chunk] @ train.t()
        sim_k, idx = sim.topk(k, dim=1)
        weights = (sim_k / temperature).exp()
        votes = torch.zeros(sim.shape[0], n_classes, device=sim.device)
        votes.scatter_add_(1, train_labels[idx], weights)
        pred = votes.topk(min(5, n_classes), dim=1).indices
        truth = test_labels[start:start + chunk, None]
        top1 += (pred[:, :1] == truth).sum().item()
        top5 += (pred == truth).any(dim=1).sum().item()
    n = test.shape[0]
    return 100.0 * top1 / n, 100.0 * top5 / n


@torch.no_grad()
def extract_features(model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 256,
                     num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features and labels of a dataset that yields (tensor, label)."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    feats, labels = [], []
    for images, targets in loader:
        out = model(images.to(device, non_blocking=True))
        feats.append((out[0] if isinstance(out, tuple) else out).float())
        labels.append(targets.to(device))
    return torch.cat(feats), torch.cat(labels)
