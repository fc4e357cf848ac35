"""Optimizers of the official code: adamw, sgd with momentum 0.9, and its LARS."""

from __future__ import annotations

import pytest
import torch

from trainables.config import ConfigError, DINOConfig, make_config
from trainables.dino.optim import LARS
from trainables.dino.trainer import DINOTrainer

TINY = dict(dataset="synthetic", arch="test_vit", patch_size=4, global_crops_size=16,
            local_crops_size=8, local_crops_number=2, batch_size=32, out_dim=64, head_hidden_dim=32,
            head_bottleneck_dim=16, device="cpu", eval_every=0, warmup_epochs=0, epochs=2,
            freeze_last_layer=0)


def test_lars_step_matches_a_hand_computation():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))   # ||w|| = 5
    b = torch.nn.Parameter(torch.tensor([1.0, 2.0]))     # 1-D: no decay, no trust ratio
    w.grad, b.grad = torch.tensor([[0.6, 0.8]]), torch.tensor([0.5, -0.5])
    opt = LARS([{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}],
               lr=2.0, momentum=0.9, eta=0.001)
    opt.step()
    update = torch.tensor([[0.6 + 0.3, 0.8 + 0.4]])      # grad + wd * w
    trust = 0.001 * 5.0 / update.norm()
    torch.testing.assert_close(w.data, torch.tensor([[3.0, 4.0]]) - 2.0 * trust * update)
    torch.testing.assert_close(b.data, torch.tensor([1.0 - 1.0, 2.0 + 1.0]))
    w.grad, b.grad = torch.zeros(1, 2), torch.zeros(2)   # second step: momentum only (+ decay)
    before_b = b.data.clone()
    opt.step()
    torch.testing.assert_close(b.data, before_b - 2.0 * 0.9 * torch.tensor([0.5, -0.5]))


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("lars", LARS)])
def test_trainer_builds_and_steps_each_optimizer(name, cls):
    trainer = DINOTrainer(DINOConfig(**TINY, optimizer=name, lr=0.03))
    assert isinstance(trainer.optimizer, cls)
    assert trainer.optimizer.param_groups[0]["momentum"] == 0.9
    before = [p.detach().clone() for p in trainer.student_params]
    crops, _ = next(iter(trainer.loader))
    trainer.train_step([crops], it=1, epoch=0)
    moved = [not torch.equal(b, p) for b, p in zip(before, trainer.student_params)]
    assert sum(moved) > len(moved) // 2
    assert torch.isfinite(torch.stack([p.detach().abs().sum() for p in trainer.student_params])).all()


def test_unknown_optimizer_is_a_config_error():
    with pytest.raises(ConfigError, match=r"optimizer='adam'.*adamw.*sgd.*lars"):
        make_config({"optimizer": "adam"})


def test_sgd_steps_after_the_last_layer_unfreezes():
    # The last layer's momentum buffer is created an epoch after the others' (fused SGD failed).
    trainer = DINOTrainer(DINOConfig(**{**TINY, "freeze_last_layer": 1}, optimizer="sgd", lr=0.03))
    crops, _ = next(iter(trainer.loader))
    trainer.train_step([crops], it=0, epoch=0)
    last = [p.detach().clone() for p in trainer.last_layer_params]
    trainer.train_step([crops], it=trainer.niter_per_ep, epoch=1)
    assert any(not torch.equal(b, p) for b, p in zip(last, trainer.last_layer_params))
