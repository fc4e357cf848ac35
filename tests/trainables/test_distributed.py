"""Data-parallel DINO: 2 gloo workers x B/2 train and evaluate like 1 process x B."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.helpers import TINY_TRAINER
from trainables.config import DINOConfig
from trainables.dino.trainer import DINOTrainer
from trainables.distributed import all_reduce_mean, epoch_permutation, shard_indices

GLOBAL_BATCH, STEPS = 16, 3
# No drop path and no KoLeo (its nearest neighbours are per-rank, as in DINOv2): everything else
# of a step must reduce to the single-process value.
EQUIVALENT = dict(TINY_TRAINER, drop_path_rate=0.0, koleo_weight=0.0, warmup_epochs=0, freeze_last_layer=0,
                  momentum_teacher=0.9, lr=0.02, eval_every=0, seed=5)
# float32 with different reduction orders (DDP's all-reduce, per-rank batch means): observed
# differences after 3 steps are at most 2.4e-7 (loss), 3e-8 (center), 4e-7 (weights); 1e-5
# absolute still catches a missed all-reduce, a wrong lr scale or rank-local gradients, which
# change values by 1e-3 and more.
TOL = dict(rtol=1e-4, atol=1e-5)


def comparable(key: str, value: torch.Tensor) -> torch.Tensor:
    """The entries whose value is defined by the arithmetic, not by float noise.

    Attention is invariant to the key bias (softmax ignores a shift per query), so its exact
    gradient is 0 and AdamW turns the ~1e-9 float residue into steps of up to ~0.1 lr in
    either direction: those entries differ between any two reduction orders.
    """
    if key.endswith("attn.qkv.bias"):
        dim = value.shape[0] // 3
        return torch.cat([value[:dim], value[2 * dim:]])
    return value


def test_shards_cover_each_global_batch_of_one_process():
    n, seed, epoch, world, per_rank = 103, 7, 2, 4, 5
    shards = [shard_indices(n, seed, epoch, r, world) for r in range(world)]
    assert all(len(s) == n // world for s in shards)
    flat = [i for s in shards for i in s]
    assert len(set(flat)) == len(flat)  # disjoint
    single = epoch_permutation(n, seed, epoch).tolist()
    for step in range(n // (world * per_rank)):  # step s of N workers = step s of one process
        global_batch = {i for s in shards for i in s[step * per_rank:(step + 1) * per_rank]}
        assert global_batch == set(single[step * world * per_rank:(step + 1) * world * per_rank])
    assert shard_indices(n, seed, epoch, 1, world) == shards[1]  # a pure function
    assert shard_indices(n, seed, epoch + 1, 1, world) != shards[1]  # reshuffled every epoch
    assert shard_indices(n, seed, epoch, 0, 1) == single
    with pytest.raises(ValueError):
        shard_indices(n, seed, epoch, 4, world)


def fixed_crops(step: int) -> list[torch.Tensor]:
    """A global batch of crops that does not depend on any augmentation randomness."""
    g = torch.Generator().manual_seed(1000 + step)
    g_size, l_size = EQUIVALENT["global_crops_size"], EQUIVALENT["local_crops_size"]
    sizes = [g_size] * 2 + [l_size] * EQUIVALENT["local_crops_number"]
    return [torch.randn(GLOBAL_BATCH, 3, s, s, generator=g) for s in sizes]


def run_steps(rank: int, world: int) -> dict:
    """STEPS optimizer steps on this rank's rows of the fixed global batches, then kNN."""
    trainer = DINOTrainer(DINOConfig(**dict(EQUIVALENT, batch_size=GLOBAL_BATCH // world)))
    per = GLOBAL_BATCH // world
    losses = []
    for step in range(STEPS):
        local = [c[rank * per:(rank + 1) * per] for c in fixed_crops(step)]
        losses.append(all_reduce_mean(trainer.train_step([local], it=step, epoch=0)))
    top1, top5 = trainer.evaluate()
    features, labels = trainer._features(trainer.test_data, trainer.test_set)  # gathered from every rank
    return {"features": features, "labels": labels,
            "loss": torch.stack(losses), "center": trainer.loss_fn.center.clone(),
            "student": trainer.student.state_dict(), "teacher": trainer.teacher.state_dict(),
            "knn": (top1, top5), "lr": trainer.lr_schedule[0]}


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        result = run_steps(rank, world)
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, str(folder / "init"), str(folder)), nprocs=2, join=True)
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def one_process() -> dict:
    return run_steps(rank=0, world=1)


def test_two_workers_train_like_one_process_with_the_global_batch(two_workers: list[dict], one_process: dict):
    single = one_process
    for worker in two_workers:  # both ranks hold the same result ...
        assert worker["lr"] == pytest.approx(single["lr"])  # lr * (B/2) * 2 / 256
        torch.testing.assert_close(worker["loss"], single["loss"], **TOL)  # ... and it is one process's
        torch.testing.assert_close(worker["center"], single["center"], **TOL)
        for name in ("student", "teacher"):
            for key, value in single[name].items():
                torch.testing.assert_close(comparable(key, worker[name][key]), comparable(key, value), **TOL,
                                           msg=lambda m, k=f"{name}.{key}": f"{k}: {m}")
    moved = max((a - b).abs().max().item() for a, b in zip(two_workers[0]["student"].values(),
                                                          DINOTrainer(DINOConfig(**EQUIVALENT)).student
                                                          .state_dict().values()))
    assert moved > 1e-3  # the steps changed the weights far beyond the tolerance


def test_two_workers_gather_knn_features_to_the_single_process_top1(two_workers: list[dict],
                                                                   one_process: dict):
    for worker in two_workers:  # every rank holds all test features, in the dataset's order
        assert torch.equal(worker["labels"], one_process["labels"])
        # kNN features are stored in fp16: the same image embedded in another batch may round one
        # fp16 step (2^-11 relative) apart.
        assert worker["features"].dtype == torch.float16
        torch.testing.assert_close(worker["features"].float(), one_process["features"].float(),
                                   rtol=2e-3, atol=2e-4)
    assert two_workers[0]["knn"] == two_workers[1]["knn"] == one_process["knn"]
