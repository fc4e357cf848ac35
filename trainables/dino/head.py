"""DINOHead: MLP -> L2-normalized bottleneck -> weight-normalized prototypes (paper Sec. 3.1)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrizations


def _trunc_normal_init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class DINOHead(nn.Module):
    """The projection head of DINO, as in facebookresearch/dino ``vision_transformer.py``.

    ``nlayers`` Linear layers (GELU between, optional BatchNorm or LayerNorm), a bottleneck that is
    L2-normalized, then a weight-normalized ``Linear(bottleneck_dim, out_dim, bias=False)`` whose
    magnitude ``weight_g`` is filled with 1 and frozen when ``norm_last_layer``.

    Example::

        head = DINOHead(in_dim=192, out_dim=65536)
        logits = head(torch.randn(8, 192))   # (8, 65536), fed to DINOLoss
    """

    def __init__(self, in_dim: int, out_dim: int, use_bn: bool = False, norm_last_layer: bool = True,
                 nlayers: int = 3, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 use_ln: bool = False) -> None:
        super().__init__()
        nlayers = max(nlayers, 1)
        if nlayers == 1:
            self.mlp: nn.Module = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim)]
            layers += self._norm_act(hidden_dim, use_bn, use_ln)
            for _ in range(nlayers - 2):
                layers.append(nn.Linear(hidden_dim, hidden_dim))
                layers += self._norm_act(hidden_dim, use_bn, use_ln)
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        self.apply(_trunc_normal_init)
        self.last_layer = parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, out_dim, bias=False))
        # weight_norm's g is named original0, v original1 in the parametrization API.
        self.last_layer.parametrizations.weight.original0.data.fill_(1)
        if norm_last_layer:
            self.last_layer.parametrizations.weight.original0.requires_grad = False

    @staticmethod
    def _norm_act(dim: int, use_bn: bool, use_ln: bool) -> list[nn.Module]:
        norm: list[nn.Module] = [nn.BatchNorm1d(dim)] if use_bn else [nn.LayerNorm(dim)] if use_ln else []
        return [*norm, nn.GELU()]

    @property
    def weight_g(self) -> torch.Tensor:
        return self.last_layer.parametrizations.weight.original0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(x)
        x = F.normalize(x, dim=-1, p=2)
        return self.last_layer(x)
