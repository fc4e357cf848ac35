import torch
from torch import nn

from trainables.dino.backbone import build_backbone
from trainables.dino.multicrop import MultiCropWrapper


class CountingBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return x.mean(dim=(2, 3))


def test_one_backbone_pass_per_resolution_group():
    backbone = CountingBackbone()
    wrapper = MultiCropWrapper(backbone, nn.Identity())
    crops = [torch.randn(2, 3, 8, 8)] * 2 + [torch.randn(2, 3, 4, 4)] * 3
    feats, logits = wrapper(crops)
    assert backbone.calls == [(4, 3, 8, 8), (6, 3, 4, 4)]
    assert feats.shape == (10, 3) and torch.equal(feats, logits)


def test_vit_interpolates_positions_for_local_crops():
    vit = build_backbone("vit_tiny_patch16_224", img_size=16, patch_size=4, drop_path_rate=0.1)
    assert vit(torch.randn(2, 3, 16, 16)).shape == (2, 192)
    assert vit(torch.randn(2, 3, 8, 8)).shape == (2, 192)
