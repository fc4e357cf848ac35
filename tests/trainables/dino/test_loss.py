import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn import functional as F

from trainables.dino.loss import DINOLoss, KoLeoLoss, sinkhorn_knopp

FIXED_TEMP: dict = {}  # the teacher temperature is the caller's (0.04 below)


def official_dino_loss(student_output, teacher_output, center, student_temp, temp, ncrops):
    """facebookresearch/dino DINOLoss.forward, written out with its loops."""
    student_out = (student_output / student_temp).chunk(ncrops)
    teacher_out = F.softmax((teacher_output - center) / temp, dim=-1).detach().chunk(2)
    total, n_terms = 0, 0
    for iq, q in enumerate(teacher_out):
        for v in range(len(student_out)):
            if v == iq:
                continue
            loss = torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1)
            total += loss.mean()
            n_terms += 1
    return total / n_terms, n_terms


@pytest.mark.parametrize("ncrops", [2, 4, 10])
def test_loss_matches_official_loops_and_center_update(ncrops):
    torch.manual_seed(0)
    B, K = 5, 32
    loss_fn = DINOLoss(K, ncrops, student_temp=0.1, center_momentum=0.9)
    loss_fn.center.normal_()  # a non-trivial center
    center = loss_fn.center.clone()
    s, t = torch.randn(ncrops * B, K), torch.randn(2 * B, K)
    got = loss_fn(s, t, teacher_temp=0.055).loss
    want, n_terms = official_dino_loss(s, t, center, 0.1, temp=0.055, ncrops=ncrops)
    assert n_terms == 2 * ncrops - 2
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss_fn.center, center)  # pure: the center moves when the caller says so
    loss_fn.update_center(t)
    torch.testing.assert_close(loss_fn.center, center * 0.9 + t.mean(0, keepdim=True) * 0.1)


def test_teacher_temperature_warmup_then_constant():
    from trainables.dino.schedules import teacher_temp_schedule

    schedule = teacher_temp_schedule(warmup_teacher_temp=0.04, teacher_temp=0.07,
                                     warmup_teacher_temp_epochs=30, nepochs=100)
    assert schedule[0] == pytest.approx(0.04)
    assert schedule[29] == pytest.approx(0.07)
    assert schedule[99] == pytest.approx(0.07)
    # the official code crashes on a warmup longer than the run
    short = teacher_temp_schedule(warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_epochs=30,
                                  nepochs=5)
    assert short[4] == pytest.approx(0.04 + 4 * 0.03 / 29)


def test_diagnostics_are_entropy_and_kl():
    torch.manual_seed(1)
    B, K, ncrops = 4, 16, 3
    loss_fn = DINOLoss(K, ncrops, **FIXED_TEMP)
    s, t = torch.randn(ncrops * B, K), torch.randn(2 * B, K)
    loss, entropy_out, kl_out = loss_fn(s, t, 0.04)
    q = F.softmax(t / 0.04, dim=-1)
    entropy = -torch.special.xlogy(q, q).sum(-1).mean()
    logp = F.log_softmax(s / 0.1, dim=-1).view(ncrops, B, K)
    qs = q.view(2, B, K)
    kls = [(torch.special.xlogy(qs[i], qs[i]) - qs[i] * logp[j]).sum(-1).mean()
           for i in range(2) for j in range(ncrops) if i != j]
    torch.testing.assert_close(entropy_out, entropy)
    torch.testing.assert_close(kl_out, torch.stack(kls).mean(), rtol=1e-4, atol=1e-5)
    assert loss.item() > 0


def test_uniform_teacher_and_student_give_ln_k():
    K = 64
    loss_fn = DINOLoss(K, 4, **FIXED_TEMP)
    out = loss_fn(torch.zeros(4 * 3, K), torch.zeros(2 * 3, K), 0.04)
    assert out.loss.item() == pytest.approx(math.log(K), rel=1e-6)
    assert out.teacher_entropy.item() == pytest.approx(math.log(K), rel=1e-6)


def test_sinkhorn_knopp_balances_prototypes_and_samples():
    torch.manual_seed(2)
    q = sinkhorn_knopp(torch.randn(12, 6), teacher_temp=0.5, n_iterations=50)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(12), rtol=1e-4, atol=1e-4)  # rows: distributions
    torch.testing.assert_close(q.sum(dim=0), torch.full((6,), 2.0), rtol=1e-3, atol=1e-3)  # equal mass


def dinov2_sinkhorn(t: torch.Tensor, tau: float, iterations: int = 3) -> torch.Tensor:
    """facebookresearch/dinov2 ``SinkhornKnopp.sinkhorn_knopp_teacher``, one process, in float64."""
    q = torch.exp(t.double() / tau).t()
    n_protos, n_samples = q.shape
    q /= q.sum()
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True)
        q /= n_protos
        q /= q.sum(dim=0, keepdim=True)
        q /= n_samples
    q *= n_samples
    return q.t()


@pytest.mark.parametrize(("scale", "tau"), [(1.0, 0.5), (1.0, 0.04), (8.0, 0.04)])
def test_sinkhorn_knopp_is_dinov2s_also_past_float32s_exponent_range(scale: float, tau: float):
    """exp(t / tau) overflowed float32 at t >= 88 tau (scale 8 at tau 0.04 reaches t / tau of 600):
    the targets were NaN. They are DINOv2's, computed in float64 where nothing overflows."""
    torch.manual_seed(3)
    t = torch.randn(16, 10) * scale
    torch.testing.assert_close(sinkhorn_knopp(t, tau), dinov2_sinkhorn(t, tau).float(), rtol=1e-5, atol=1e-6)


def _sinkhorn_rank(rank: int, init_file: str, t: torch.Tensor, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.save(sinkhorn_knopp(t.chunk(2)[rank], 0.04), f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_sinkhorn_knopp_over_two_ranks_is_one_process_over_the_global_batch(tmp_path):
    """The prototypes' sums and the largest logit span every rank's samples (all-reduced)."""
    torch.manual_seed(4)
    t = torch.randn(16, 10) * 8
    mp.spawn(_sinkhorn_rank, args=(str(tmp_path / "init"), t, str(tmp_path)), nprocs=2, join=True)
    halves = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    torch.testing.assert_close(torch.cat(halves), sinkhorn_knopp(t, 0.04), rtol=1e-5, atol=1e-6)


def test_centering_none_leaves_the_teacher_uncentered():
    loss_fn = DINOLoss(8, 2, **FIXED_TEMP, centering="none")
    loss_fn.center.fill_(5.0)
    t = torch.randn(4, 8)
    torch.testing.assert_close(loss_fn.teacher_probs(t, 0.04), F.softmax(t / 0.04, dim=-1))
    with pytest.raises(ValueError, match="centering"):
        DINOLoss(8, 2, **FIXED_TEMP, centering="bogus")


def test_koleo_is_lower_for_spread_features():
    spread = torch.eye(4)
    clumped = torch.eye(4) * 0.01 + torch.tensor([1.0, 0, 0, 0])
    koleo = KoLeoLoss()
    assert koleo(spread) < koleo(clumped)
    assert koleo(spread).item() == pytest.approx(-math.log(math.sqrt(2)), rel=1e-5)


def test_temperature_and_momentum_are_keyword_only():
    with pytest.raises(TypeError, match="positional"):
        DINOLoss(8, 4, 0.1, 0.9)  # which float is which? the constructor will not guess


def test_loss_and_koleo_stay_fp32_under_bf16_autocast():
    # In bf16 the einsum would round the loss (15.3125 vs 15.2735 on the example).
    torch.manual_seed(3)
    B, K, ncrops = 8, 256, 6
    s, t = torch.randn(ncrops * B, K) * 3, torch.randn(2 * B, K) * 3
    loss_fn = DINOLoss(out_dim=K, ncrops=ncrops)
    feats = torch.randn(16, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss_fn(s.bfloat16().float(), t.bfloat16().float(), 0.04).loss
        koleo = KoLeoLoss()(feats)
    ref = DINOLoss(out_dim=K, ncrops=ncrops)(s.bfloat16().float(), t.bfloat16().float(), 0.04).loss
    assert got.dtype == torch.float32 and koleo.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)  # the fp32 loss of the same inputs
    torch.testing.assert_close(koleo, KoLeoLoss()(feats), rtol=1e-6, atol=1e-6)
