import pytest
import torch
from torch import nn

from trainables.dino.cpu_bf16 import dead_padding_tap, fp32_where_bf16_grads_fail


def conv(**kw) -> nn.Conv2d:
    return nn.Conv2d(**{"in_channels": 48, "out_channels": 48, "kernel_size": 3, "stride": 2, "padding": 1,
                        "bias": False, **kw})


@pytest.mark.parametrize(("spatial", "kw", "dead"), [
    ((1, 1), {}, True),  # test_resnet's layer3/4 on 16 px crops: 8 of 9 taps meet only padding
    ((4, 1), {}, True),  # one dimension is enough
    ((3, 3), {}, False),  # every tap meets an input somewhere
    ((2, 2), {}, True),  # the left taps meet only padding (oneDNN wrote these, but with stride 3 not)
    ((1, 1), {"stride": 1}, False),  # stride 1: oneDNN writes them
    ((1, 1), {"kernel_size": 1, "padding": 0}, False),
    ((1, 1), {"padding_mode": "reflect"}, False),  # padded before oneDNN: its input
    ((3, 3), {"stride": 4}, True),
    ((5, 5), {"stride": 4}, False),
])
def test_the_convolutions_whose_bf16_weight_gradient_onednn_leaves_unwritten(spatial, kw, dead):
    assert dead_padding_tap(conv(**kw), spatial) is dead


def weight_grads(layer: nn.Conv2d, x: torch.Tensor, runs: int) -> list[torch.Tensor]:
    grads = []
    for _ in range(runs):
        layer.weight.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x)
        y.float().square().sum().backward()
        grads.append(layer.weight.grad.clone())
    return grads


def test_a_strided_convolution_of_a_1x1_map_gets_the_same_weight_gradient_every_call():
    """oneDNN's bf16 kernel (AVX-512 bf16 CPUs) left the 8 outer taps' gradients unwritten: noise or
    NaN, other at every call (here 2 to 7 calls of 10 non-finite); the same seed trained to other
    figures, or diverged, run to run (O06). Elsewhere this passes without the hook too."""
    torch.manual_seed(0)
    layer = conv(in_channels=192, out_channels=96)
    x = torch.randn(32, 192, 1, 1).to(memory_format=torch.channels_last)  # the trainer's layout
    assert fp32_where_bf16_grads_fail(layer) == 1
    grads = weight_grads(layer, x, runs=10)
    outer = torch.ones(3, 3, dtype=torch.bool)
    outer[1, 1] = False
    for grad in grads:
        assert torch.equal(grad, grads[0])
        assert grad[:, :, outer].eq(0).all()  # they meet only zeros: exactly 0
    want = torch.func.grad(lambda w: nn.functional.conv2d(x, w, stride=2, padding=1).square().sum())(
        layer.weight.detach())
    torch.testing.assert_close(grads[0], want)  # computed in fp32


def test_only_the_convolutions_it_names_leave_bf16():
    layer = conv()
    fp32_where_bf16_grads_fail(layer)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.randn(2, 48, 1, 1)).dtype == torch.float32
        assert layer(torch.randn(2, 48, 3, 3)).dtype == torch.bfloat16  # its bf16 gradient is right
        with torch.no_grad():  # no weight gradient: the kNN features stay bf16
            assert layer(torch.randn(2, 48, 1, 1)).dtype == torch.bfloat16
