"""bf16 on a CPU: the convolutions whose weight gradient oneDNN leaves unwritten run in fp32.

oneDNN's bf16 backward-weights kernel for AVX-512 bf16 CPUs (``jit_bf16:avx512_core_bf16``, in
torch 2.14's oneDNN 3.12) does not write the gradient of a kernel tap that meets only padding in
a strided convolution: a stride-2 3 x 3 convolution of a 1 x 1 map (a ResNet's last stages on
16 px crops) returns its 8 outer taps' gradients, exactly 0, as whatever the memory held: finite
noise or NaN, different from run to run. The same seed then trained to other figures, or
diverged in one run and not in the next. Measured on 465 geometries (maps 1-8 px, kernels 1-5,
strides 1-3, paddings 0-2, dilations 1-2): only weight gradients, and only those of convolutions
``dead_padding_tap`` names, were wrong; outputs and input gradients were right. Those run in
fp32 (they see maps of a few pixels: cheap); every other layer keeps bf16.

Example::

    if device.type == "cpu" and amp_dtype == torch.bfloat16:
        fp32_where_bf16_grads_fail(student)   # before training: a forward hook per such conv
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def dead_tap(size: int, kernel: int, stride: int, padding: int, dilation: int) -> bool:
    """Whether, along one dimension of ``size`` inputs, some kernel tap meets only padding at every
    output position."""
    outputs = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    return any(all(not 0 <= i * stride + j * dilation - padding < size for i in range(outputs))
               for j in range(kernel))


def dead_padding_tap(conv: nn.Conv2d, spatial: Sequence[int]) -> bool:
    """Whether oneDNN's bf16 weight gradient of ``conv`` on (H, W) maps may be left unwritten: a
    stride above 1 and a tap that meets only the zero padding along the same dimension. (Explicit
    padding, as ``padding_mode`` other than zeros or timm's "same" convolutions, is input to oneDNN.)"""
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):  # "valid": none; "same": stride 1
        return False
    return any(s > 1 and dead_tap(n, k, s, p, d) for n, k, s, p, d in zip(
        spatial, conv.kernel_size, conv.stride, conv.padding, conv.dilation, strict=True))


def _fp32_conv(conv: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor | None:
    """Forward hook: the convolution again in fp32 where its bf16 weight gradient would be wrong
    (the bf16 output is dropped with its graph: its backward never runs)."""
    x = args[0]
    if not (torch.is_grad_enabled() and torch.is_autocast_enabled("cpu") and x.device.type == "cpu"):
        return None
    if not dead_padding_tap(conv, x.shape[-2:]):  # type: ignore[arg-type]
        return None
    with torch.autocast("cpu", enabled=False):
        return conv.forward(x.float())  # forward, not __call__: this hook does not run again


def fp32_where_bf16_grads_fail(model: nn.Module) -> int:
    """Hook every 2-D convolution of ``model`` so that, under CPU bf16 autocast, those oneDNN would
    give a wrong weight gradient (``dead_padding_tap``, checked on each call's input) run in fp32;
    the number of convolutions hooked. fp32 runs are left alone: install it for bf16 on a CPU only."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        conv.register_forward_hook(_fp32_conv)
    return len(convs)
