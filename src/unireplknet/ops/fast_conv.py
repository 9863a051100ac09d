"""Fast training path for the dense strided convolutions of the stem and the downsampling layers (CPU, fp32).

oneDNN's weight gradient of a dense 3x3 stride-2 convolution costs about twice its forward on CPU. The same
gradient is a GEMM over the unfolded input: ``grad_weight = grad_out^T @ im2col(x)``, with ``im2col(x)`` an
``(N*Ho*Wo) x (k*k*C)`` matrix gathered from a zero-bordered channels-last copy of ``x`` into reused scratch
tensors (:data:`unireplknet.ops.fast_train.WORKSPACE`), a few samples at a time (:data:`IM2COL_CHUNK`). The
forward and the input gradient stay with oneDNN, which is fast for both. Measured by
``python benchmarks/conv_train_paths.py``: forward + backward of the four strided convs of UniRepLKNet-T
12-17% cheaper at 1 thread, 8-19% at 2 threads (BENCHMARKS.md).

:func:`strided_conv_train` computes ``F.conv2d(x, weight, bias, stride, padding)`` with that backward;
:class:`StridedConv2d` is an ``nn.Conv2d`` (same parameters and state-dict keys) that takes it in training.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .fast_train import WORKSPACE, fast_path_applicable

__all__ = ["strided_conv_train", "StridedConv2d"]

_CL = torch.channels_last


#: Elements of the largest im2col block (16 MiB in fp32): the weight gradient sums GEMMs over batch chunks whose
#: patch matrix stays below it, so the scratch memory does not grow with the batch.
IM2COL_CHUNK = 1 << 22


def _im2col(x: torch.Tensor, k: int, stride: int, pad: int, ho: int, wo: int) -> torch.Tensor:
    """``(N*ho*wo, k*k*C)`` patch matrix of a channels-last ``x`` (taps major, channels minor), in the workspace."""
    n, c = x.shape[0], x.shape[1]
    xp = WORKSPACE.padded(x, pad, _CL).permute(0, 2, 3, 1)  # N x H+2p x W+2p x C, contiguous
    cols = WORKSPACE.empty((n, ho, wo, k * k, c), x, "im2col")
    hs, ws = stride * (ho - 1) + 1, stride * (wo - 1) + 1  # input span of one tap's outputs
    for i in range(k):
        for j in range(k):
            cols[:, :, :, i * k + j].copy_(xp[:, i:i + hs:stride, j:j + ws:stride])
    return cols.view(n * ho * wo, k * k * c)


def _weight_grad(xc: torch.Tensor, g2: torch.Tensor, k: int, stride: int, pad: int, ho: int, wo: int) -> torch.Tensor:
    """``(O, k*k*C)`` weight gradient: ``g2^T @ im2col(xc)`` summed over batch chunks (``g2``: ``N*ho*wo x O``)."""
    n, c = xc.shape[0], xc.shape[1]
    rows = ho * wo
    per = max(1, IM2COL_CHUNK // max(1, k * k * c * rows))
    gw: Optional[torch.Tensor] = None
    for i in range(0, n, per):
        j = min(n, i + per)
        cols = _im2col(xc[i:j], k, stride, pad, ho, wo)
        gi = g2[i * rows:j * rows].t()
        gw = gi.mm(cols) if gw is None else gw.addmm_(gi, cols)
    assert gw is not None
    return gw


class _StridedConvTrain(torch.autograd.Function):
    """``F.conv2d(x, weight, bias, stride, padding)``; the weight gradient is one GEMM over ``im2col(x)``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: int,
                padding: int):  # type: ignore[override]
        xc = x.contiguous(memory_format=_CL)
        ctx.save_for_backward(xc, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv2d(xc, weight, bias, stride=stride, padding=padding)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        xc, weight = ctx.saved_tensors
        s, p = ctx.stride, ctx.padding
        nig = ctx.needs_input_grad
        o, c, k = weight.shape[0], weight.shape[1], weight.shape[-1]
        grad = grad.contiguous(memory_format=_CL)
        ho, wo = grad.shape[2], grad.shape[3]
        gx = gw = gb = None
        if nig[0]:
            gx = torch.ops.aten.convolution_backward(
                grad, xc, weight, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, [True, False, False])[0]
        g2 = grad.permute(0, 2, 3, 1).reshape(-1, o)  # a view: grad is channels-last
        if nig[1]:
            gw = _weight_grad(xc, g2, k, s, p, ho, wo).view(o, k, k, c).permute(0, 3, 1, 2).contiguous()
        if ctx.has_bias and nig[2]:
            gb = g2.sum(0)
        return gx, gw, gb, None, None


def strided_conv_train(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                       stride: int = 2, padding: int = 1) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride=stride, padding=padding)`` (dense, square kernel, dilation 1) with the
    weight gradient computed as one GEMM over the unfolded input. The output is channels-last."""
    return _StridedConvTrain.apply(x, weight, bias, int(stride), int(padding))


class StridedConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose training forward on CPU fp32 uses :func:`strided_conv_train` (same function and
    gradients; parameters and state-dict keys of ``nn.Conv2d``). Every other case runs ``nn.Conv2d.forward``."""

    def _fast_ok(self, x: torch.Tensor) -> bool:
        ks, st, pd, dl = self.kernel_size, self.stride, self.padding, self.dilation
        return (  # fast_path_applicable first: it is False while FX traces (attributes are proxies then)
            self.training and fast_path_applicable(x) and x.dtype == torch.float32 and self.weight.requires_grad
            and self.groups == 1 and self.padding_mode == "zeros" and isinstance(pd, tuple)
            and ks[0] == ks[1] and st[0] == st[1] > 1 and pd[0] == pd[1] and dl == (1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if self._fast_ok(x):
                return self._fast_forward(x)
        return self._conv_forward(x, self.weight, self.bias)

    @torch.jit.unused
    def _fast_forward(self, x: torch.Tensor) -> torch.Tensor:
        return strided_conv_train(x, self.weight, self.bias, self.stride[0], self.padding[0])
