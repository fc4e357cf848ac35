"""Per-iteration schedules, precomputed as arrays indexed by the global step (official utils.py)."""

from __future__ import annotations

import numpy as np


def cosine_scheduler(base_value: float, final_value: float, epochs: int, niter_per_ep: int,
                     warmup_epochs: int = 0, start_warmup_value: float = 0.0) -> np.ndarray:
    """Linear warmup from ``start_warmup_value`` to ``base_value``, then a cosine to ``final_value``.

    Identical to facebookresearch/dino ``utils.cosine_scheduler``: the cosine reaches
    ``final_value`` one step after the last iteration, so the last value is within
    ``(base - final) * (1 - cos(pi / n)) / 2`` of it. A warmup longer than the run (where the
    official code fails) is cut at the run's end, as the teacher temperature's: the value climbs at
    the warmup's own pace and never reaches ``base_value``.

    Example::

        lr = cosine_scheduler(5e-4, 1e-6, epochs=100, niter_per_ep=1251, warmup_epochs=10)
        lr[it]  # learning rate of global iteration ``it``
    """
    total, warmup_iters = epochs * niter_per_ep, warmup_epochs * niter_per_ep
    warmup = np.linspace(start_warmup_value, base_value, warmup_iters)[:total]
    iters = np.arange(max(total - warmup_iters, 0))
    cosine = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / max(len(iters), 1)))
    schedule = np.concatenate((warmup, cosine))
    assert len(schedule) == epochs * niter_per_ep
    return schedule


def teacher_temp_schedule(*, warmup_teacher_temp: float, teacher_temp: float,
                          warmup_teacher_temp_epochs: int, nepochs: int) -> np.ndarray:
    """Per-epoch teacher temperature: linear warmup, then constant (official DINOLoss).

    Unlike the official code, a warmup longer than the run is cut at ``nepochs`` instead of failing.
    """
    warmup = np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs)
    rest = np.ones(max(nepochs - warmup_teacher_temp_epochs, 0)) * teacher_temp
    return np.concatenate((warmup, rest))[:nepochs]
