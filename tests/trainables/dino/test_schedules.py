import math

import numpy as np
import pytest

from trainables.dino.schedules import cosine_scheduler


def test_lr_schedule_warmup_and_cosine_endpoints():
    s = cosine_scheduler(5e-4, 1e-6, epochs=10, niter_per_ep=20, warmup_epochs=2)
    assert len(s) == 200
    assert s[0] == 0.0 and s[39] == pytest.approx(5e-4)  # linear warmup reaches the peak
    assert np.all(np.diff(s[:40]) > 0) and np.all(np.diff(s[40:]) <= 0)
    n = 160
    assert s[-1] == pytest.approx(1e-6 + 0.5 * (5e-4 - 1e-6) * (1 + math.cos(math.pi * (n - 1) / n)))
    assert s[-1] < 1e-6 + 1e-7


def test_momentum_and_weight_decay_schedules_go_up():
    m = cosine_scheduler(0.996, 1.0, epochs=100, niter_per_ep=10)
    assert m[0] == pytest.approx(0.996) and 0.99999 < m[-1] < 1.0
    wd = cosine_scheduler(0.04, 0.4, epochs=100, niter_per_ep=10)
    assert wd[0] == pytest.approx(0.04) and wd[-1] == pytest.approx(0.4, abs=1e-4)
    assert wd[500] == pytest.approx(0.22, abs=1e-3)  # halfway up the cosine


def test_warmup_longer_than_run_is_cut():
    s = cosine_scheduler(1.0, 0.0, epochs=2, niter_per_ep=5, warmup_epochs=5)
    assert len(s) == 10 and s[-1] == pytest.approx(9 / 24)  # 10 of the warmup's 25 steps: never the peak
    np.testing.assert_allclose(s, np.linspace(0.0, 1.0, 25)[:10])
    # each warmup keeps its pace, so a sweep over warmup_epochs above epochs runs different schedules
    assert cosine_scheduler(1.0, 0.0, epochs=2, niter_per_ep=5, warmup_epochs=3)[-1] > s[-1]
    assert cosine_scheduler(1.0, 0.0, epochs=2, niter_per_ep=5, warmup_epochs=2)[-1] == pytest.approx(1.0)
