import torch

from trainables.dino.head import DINOHead


def test_head_shapes_bottleneck_and_frozen_weight_g():
    head = DINOHead(in_dim=24, out_dim=100, nlayers=3, hidden_dim=32, bottleneck_dim=16)
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(24, 32), (32, 32), (32, 16)]
    assert head(torch.randn(7, 24)).shape == (7, 100)
    assert torch.all(head.weight_g == 1) and not head.weight_g.requires_grad
    assert head.last_layer.bias is None
    # The last layer sees an L2-normalized bottleneck: with |w_k| = 1 every logit is a cosine in [-1, 1].
    assert head(torch.randn(50, 24) * 100).abs().max() <= 1 + 1e-5


def test_weight_g_trains_when_not_norm_last_layer():
    head = DINOHead(8, 10, norm_last_layer=False, hidden_dim=16, bottleneck_dim=4)
    assert head.weight_g.requires_grad


def test_seed_variant_and_batchnorm_reachable():
    seed = DINOHead(32, 1000, nlayers=5, hidden_dim=64, bottleneck_dim=16, use_ln=True)
    assert sum(isinstance(m, torch.nn.Linear) for m in seed.mlp) == 5
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in seed.mlp) == 4
    assert seed(torch.randn(3, 32)).shape == (3, 1000)
    bn = DINOHead(32, 10, use_bn=True, hidden_dim=64, bottleneck_dim=16)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in bn.mlp) == 2


def test_init_truncated_normal_and_zero_bias():
    torch.manual_seed(0)
    head = DINOHead(512, 10, hidden_dim=512, bottleneck_dim=256)
    first = head.mlp[0]
    assert first.weight.std().item() < 0.025 and first.weight.abs().max().item() <= 2.0
    assert torch.all(first.bias == 0)
