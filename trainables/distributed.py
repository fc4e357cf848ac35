"""Data-parallel helpers: rank and world size of an initialised process group, per-rank data shards,
and gathering of per-rank rows. Plain ``torch.distributed``: who starts the processes (Ray Train,
``torchrun``, a test's ``torch.multiprocessing``) is not this module's business.

Without a process group every helper is the single-process identity: rank 0 of a world of 1.

Example::

    idx = shard_indices(len(train), seed=0, epoch=3, rank=rank(), world=world_size())
    feats = gather_rows(local_feats, n=len(test))  # every rank gets all rows, in index order
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of ``n`` training images in ``epoch``: a pure function of (seed, epoch)."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch + 1)
    return torch.randperm(n, generator=generator)


def shard_indices(n: int, seed: int, epoch: int, rank: int, world: int) -> list[int]:
    """Rank ``rank``'s images of ``epoch``: every ``world``-th entry of the epoch's permutation.

    All ranks get the same count (the ``n % world`` tail is dropped, as DistributedSampler with
    drop_last). Strided shards make step ``s`` of a ``world x b`` run see exactly the images that
    step ``s`` of a ``1 x world*b`` run sees (permutation entries ``s*world*b`` to
    ``(s+1)*world*b``), so N workers train on the same global batches as one big-batch process.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    usable = n // world * world
    return epoch_permutation(n, seed, epoch)[:usable][rank::world].tolist()


def eval_indices(n: int, rank: int, world: int) -> list[int]:
    """Rank ``rank``'s share of an evaluation set (``rank, rank + world, ...``; nothing dropped)."""
    return list(range(rank, n, world))


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over ranks (in place); ``x`` itself without a process group."""
    if is_distributed():
        dist.all_reduce(x)
        x /= dist.get_world_size()
    return x


def from_rank0(value: bool) -> bool:
    """Rank 0's ``value`` on every rank (a decision only rank 0 can make, which all must follow)."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank."""
    if is_distributed():
        for buf in module.buffers():
            dist.broadcast(buf, src=0)


def gather_rows(local: torch.Tensor, n: int) -> torch.Tensor:
    """All ``n`` rows on every rank, from each rank's ``eval_indices`` rows, in index order.

    Ranks hold ``ceil(n / world)`` or one fewer rows; the short ones are padded for the gather
    (``all_gather`` needs equal shapes) and the padding is cut off again.
    """
    if not is_distributed():
        return local
    world = dist.get_world_size()
    per_rank = -(-n // world)
    padded = local.new_zeros((per_rank, *local.shape[1:]))
    padded[:len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    # Row j of rank r is image j * world + r: stacking ranks as the second axis restores the order.
    return torch.stack(parts, dim=1).reshape(per_rank * world, *local.shape[1:])[:n]


class ShardSampler(torch.utils.data.Sampler[int]):
    """A DataLoader sampler over ``shard_indices``; call ``set_epoch`` before each epoch."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.rank, self.world, self.epoch = n, seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(shard_indices(self.n, self.seed, self.epoch, self.rank, self.world))

    def __len__(self) -> int:
        return self.n // self.world
