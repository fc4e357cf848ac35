"""DINOLoss: cross-entropy between a centered, sharpened teacher and the student (paper Eq. 1-4)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

CENTERINGS = ("center", "sinkhorn_knopp", "none")


def _all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(x)
    return x


def _all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(x, op=dist.ReduceOp.MAX)
    return x


def _row_logsumexp(x: torch.Tensor) -> torch.Tensor:
    """log(sum(exp(x), dim=1)) over every rank's columns (the samples of the global batch), K x 1."""
    m = _all_reduce_max(x.max(dim=1, keepdim=True).values)
    return m + torch.log(_all_reduce_sum((x - m).exp().sum(dim=1, keepdim=True)))


@torch.no_grad()
def sinkhorn_knopp(teacher_output: torch.Tensor, teacher_temp: float, n_iterations: int = 3) -> torch.Tensor:
    """DINOv2's teacher normalization: rows and columns of exp(t / tau) balanced (Sinkhorn-Knopp).

    DINOv2's ``sinkhorn_knopp_teacher`` divides Q = exp(t / tau) (K x B) by its sum, then, n times,
    each prototype's row by its sum and K, each sample's column by its sum and B; the rows span the
    global batch (all-reduced). The same steps here on log Q, as log-sum-exps: exp(t / tau) overflows
    float32 once a logit reaches about 88 tau (1.06 at tau 0.012) and made the batch's targets NaN.
    The first division drops out (the row step removes any constant)."""
    log_q = (teacher_output.float() / teacher_temp).t()  # K x B
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    n_samples, n_protos = log_q.shape[1] * world, log_q.shape[0]
    for _ in range(n_iterations):
        log_q -= _row_logsumexp(log_q) + math.log(n_protos)
        log_q -= torch.logsumexp(log_q, dim=0, keepdim=True) + math.log(n_samples)
    return (log_q + math.log(n_samples)).exp().t()


class LossOutput(NamedTuple):
    """What ``DINOLoss`` returns: the loss and the collapse diagnostics of paper Fig. 7 (means over
    the batch, in nats; 0-dim tensors)."""

    loss: torch.Tensor
    teacher_entropy: torch.Tensor
    kl_teacher_student: torch.Tensor


class DINOLoss(nn.Module):
    """The DINO loss of facebookresearch/dino ``main_dino.py``, numerically the same, kept pure as
    dinov2's ``DINOLoss``: the caller passes the step's teacher temperature (the schedule is the
    trainer's, ``schedules.teacher_temp_schedule``), the diagnostics are returned, and the center
    moves only when the caller says so (``update_center``).

    ``student_output`` holds all crops concatenated along the batch (``ncrops * B`` rows, the two
    global crops first), ``teacher_output`` the two global crops (``2 * B`` rows). Every pair of
    teacher view i and student view j with i != j contributes ``-sum(p_t * log p_s)`` averaged
    over the batch; the loss is the mean over pairs.

    Example::

        loss_fn = DINOLoss(out_dim=65536, ncrops=10, student_temp=0.1, center_momentum=0.9)
        out = loss_fn(student(crops), teacher(crops[:2]), teacher_temp=0.04)   # LossOutput
        out.loss.backward()
        loss_fn.update_center(teacher(crops[:2]))
    """

    center: torch.Tensor  # buffers, registered in __init__
    pair_weight: torch.Tensor

    def __init__(self, out_dim: int, ncrops: int, *, student_temp: float = 0.1, center_momentum: float = 0.9,
                 centering: str = "center") -> None:
        # Keyword-only from the temperature on: two swapped floats would still train, silently.
        super().__init__()
        if centering not in CENTERINGS:
            raise ValueError(f"centering must be one of {CENTERINGS}, got {centering!r}")
        self.out_dim, self.ncrops = out_dim, ncrops
        self.student_temp, self.center_momentum, self.centering = student_temp, center_momentum, centering
        self.register_buffer("center", torch.zeros(1, out_dim))
        # (teacher view i, student view j) pairs that count: every one but the same view (i == j),
        # as weights 1/n_pairs (a boolean-mask index would sync the host with the GPU every step).
        pair_weight = torch.ones(2, ncrops)
        pair_weight[[0, 1], [0, 1]] = 0.0
        self.register_buffer("pair_weight", pair_weight / pair_weight.sum(), persistent=False)

    def teacher_probs(self, teacher_output: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        """Centered (or Sinkhorn-Knopp balanced) and sharpened teacher distributions, (2B, K)."""
        t = teacher_output.detach().float()
        if self.centering == "sinkhorn_knopp":
            return sinkhorn_knopp(t, teacher_temp)
        if self.centering == "center":
            t = t - self.center
        return F.softmax(t / teacher_temp, dim=-1)

    def forward(self, student_output: torch.Tensor, teacher_output: torch.Tensor,
                teacher_temp: float) -> LossOutput:
        """The loss of (ncrops*B, K) student and (2B, K) teacher outputs at ``teacher_temp``."""
        # fp32 whatever the autocast around it: in bf16 the einsum below would round the loss
        # (15.3125 instead of 15.2735), and the official loop computes it in fp32.
        with torch.autocast(student_output.device.type, enabled=False):
            return self._forward_fp32(student_output.float(), teacher_output.float(), teacher_temp)

    def _forward_fp32(self, student_output: torch.Tensor, teacher_output: torch.Tensor,
                      teacher_temp: float) -> LossOutput:
        n_teacher = 2
        batch = teacher_output.shape[0] // n_teacher
        log_p = F.log_softmax(student_output.float() / self.student_temp, dim=-1)
        q = self.teacher_probs(teacher_output, teacher_temp)
        # cross[i, j] = mean over the batch of sum_k q_i * log p_j: one matmul instead of 18 terms.
        q3 = q.view(n_teacher, batch, -1)
        p3 = log_p.view(self.ncrops, batch, -1)
        cross = torch.einsum("ibk,jbk->ij", q3, p3) / batch
        loss = -(cross * self.pair_weight).sum()
        with torch.no_grad():
            # Each teacher view is paired with the same number of student views, so the mean
            # cross-entropy minus the mean teacher entropy is exactly the mean KL(teacher || student).
            entropy = -(q * torch.log(q.clamp_min(1e-30))).sum(-1).mean()
            kl = loss.detach() - entropy
        return LossOutput(loss, entropy, kl)

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        """The center's EMA step with the batch mean of the teacher's outputs (over all workers)."""
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        with torch.autocast(teacher_output.device.type, enabled=False):  # fp32, as the official code
            batch_center = _all_reduce_sum(teacher_output.float().sum(dim=0, keepdim=True))
            batch_center = batch_center / (len(teacher_output) * world)
            self.center.mul_(self.center_momentum).add_(batch_center * (1 - self.center_momentum))


class KoLeoLoss(nn.Module):
    """DINOv2's Kozachenko-Leonenko regularizer: -mean log distance to the nearest neighbour.

    Spreads L2-normalized features apart within a batch (Sablayrolles et al., 2019).

    Example::

        koleo = KoLeoLoss()
        reg = sum(koleo(chunk) for chunk in student_cls.chunk(2))  # one term per global crop
    """

    def forward(self, x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):  # fp32: a bf16 search picks wrong neighbours
            return self._forward_fp32(x.float(), eps)

    def _forward_fp32(self, x: torch.Tensor, eps: float) -> torch.Tensor:
        x = F.normalize(x, p=2, dim=-1, eps=eps)
        with torch.no_grad():
            dots = x @ x.t()
            dots.fill_diagonal_(-1)
            nn_idx = dots.argmax(dim=1)
        dist_nn = F.pairwise_distance(x, x[nn_idx], p=2, eps=eps)
        return -torch.log(dist_nn + eps).mean()
