"""MultiCropWrapper: one backbone pass per group of same-resolution crops, one head pass on all."""

from __future__ import annotations

import torch
from torch import nn


class MultiCropWrapper(nn.Module):
    """Backbone + head over a list of crops, as in facebookresearch/dino ``utils.MultiCropWrapper``.

    Consecutive crops with the same resolution are concatenated and run through the backbone
    together (2 global crops in one pass, all local crops in another); the head then runs once
    on all features. Returns ``(features, logits)``, both with the crops stacked along the batch,
    in the order given.

    Example::

        student = MultiCropWrapper(backbone, DINOHead(feature_dim(backbone), 65536))
        feats, logits = student(crops)          # crops: list of (B, 3, H, W) tensors
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, crops: list[torch.Tensor] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(crops, torch.Tensor):
            crops = [crops]
        features = []
        start = 0
        while start < len(crops):
            end = start
            while end < len(crops) and crops[end].shape[-2:] == crops[start].shape[-2:]:
                end += 1
            out = self.backbone(torch.cat(crops[start:end]))
            features.append(out[0] if isinstance(out, tuple) else out)
            start = end
        feats = torch.cat(features)
        return feats, self.head(feats)
