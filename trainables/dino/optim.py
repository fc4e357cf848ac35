"""The optimizers of the official code (``main_dino.py --optimizer adamw|sgd|lars``) and its LARS.

The trainer sets each group's ``lr`` (and the regularized group's ``weight_decay``) from the
precomputed schedules before every step, so the optimizers are built with ``lr=0``.
"""

from __future__ import annotations

from typing import Any

import torch


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) exactly as facebookresearch/dino ``utils.LARS``.

    For every parameter with more than one dimension, weight decay is added to the gradient and
    the update is rescaled by the trust ratio ``eta * ||p|| / ||update||``; 1-D parameters
    (biases, norm scales and shifts) get neither, as in the official code. Then SGD with momentum:
    ``mu = momentum * mu + update; p -= lr * mu``.

    Example::

        opt = LARS(get_params_groups(model))   # lr and weight decay set per step by the schedules
    """

    def __init__(self, params: Any, lr: float = 0.0, weight_decay: float = 0.0, momentum: float = 0.9,
                 eta: float = 0.001) -> None:
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta))

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if p.ndim != 1:
                    update = update.add(p, alpha=group["weight_decay"])
                    param_norm, update_norm = torch.norm(p), torch.norm(update)
                    one = torch.ones_like(param_norm)
                    trust = torch.where(param_norm > 0.0, torch.where(
                        update_norm > 0, group["eta"] * param_norm / update_norm, one), one)
                    update = update.mul(trust)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                state["mu"].mul_(group["momentum"]).add_(update)
                p.add_(state["mu"], alpha=-group["lr"])


def build_optimizer(name: str, params_groups: list[dict[str, Any]],
                    device: torch.device | None = None) -> torch.optim.Optimizer:
    """``adamw`` (ViTs), ``sgd`` (momentum 0.9, the convnet recipe) or ``lars``, as main_dino.py.

    AdamW uses the fused kernel on CPU and CUDA (on one CPU core 2-4x faster than foreach), which
    syncs with no host. SGD uses foreach: fused SGD fails once some momentum buffers exist and
    others do not, which is the case after ``freeze_last_layer`` (the last layer's first
    gradient comes an epoch after the others').
    """
    fused = device is not None and device.type in ("cuda", "cpu")
    if name == "adamw":
        return torch.optim.AdamW(params_groups, fused=fused or None, foreach=None if fused else True)
    if name == "sgd":
        return torch.optim.SGD(params_groups, lr=0.0, momentum=0.9, foreach=True)
    if name == "lars":
        return LARS(params_groups)
    raise ValueError(f"optimizer={name!r}: allowed adamw, sgd, lars")
