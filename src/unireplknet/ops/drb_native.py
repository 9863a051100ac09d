"""The Dilated Reparam Block's training step on the compiled kernels of :mod:`unireplknet.ops.native`.

Same function, gradients and running-statistic updates as :func:`unireplknet.ops.fast_train.dilated_reparam_train`
(which dispatches here for fp32 input with a multiple of 8 channels when the kernels are available), with
fewer passes over memory:

* forward: every branch convolves one zero-bordered copy of the input (padded for the largest branch), and
  its kernel sums the branch output and its square per channel while writing it, so the BatchNorm statistics
  need no extra pass; the normalised branches are summed in one pass
  (``out = sum_i a_i * y_i + b`` with ``a_i = gamma_i / sqrt(var_i + eps)``);
* backward: one pass gives ``sum g`` and every ``sum g * y_i``; then per branch one pass writes the BatchNorm
  input gradient ``dy_i = a_i * g + k_i * y_i + c_i`` into a zero-bordered buffer, the input gradient is
  accumulated as the forward convolution of that buffer with the flipped kernel, and the weight gradient is
  read from the padded input and ``dy_i`` directly (channels-last, no NCHW copies).

Branch outputs are kept or recomputed as the ``keep`` flags say (the recompute policy of
:func:`unireplknet.ops.fast_train.set_drb_recompute`).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch

from . import native
from .fast_train import WORKSPACE

__all__ = ["native_drb_applicable", "dilated_reparam_native"]

_CL = torch.channels_last


def native_drb_applicable(x: torch.Tensor, weights: Sequence[torch.Tensor]) -> bool:
    """Whether :func:`dilated_reparam_native` can run this block (fp32, channels a multiple of 8, odd square
    kernels, the compiled kernels available)."""
    return (x.dtype == torch.float32 and x.shape[1] % 8 == 0 and x.shape[1] > 0
            and all(w.dtype == torch.float32 and w.shape[-1] == w.shape[-2] and w.shape[-1] % 2 == 1
                    for w in weights)
            and native.available())


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    """``N x H x W x C`` view of a channels-last ``N x C x H x W`` tensor."""
    return t.permute(0, 2, 3, 1)


def _padded_input(xc: torch.Tensor, pmax: int) -> torch.Tensor:
    """The input with a zero border of ``pmax`` as an ``N x Hp x Wp x C`` view (a reused workspace buffer)."""
    return _nhwc(WORKSPACE.padded(xc, pmax, _CL))


def _kkc(w: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """``C x 1 x k x k`` depthwise weight as a contiguous ``k x k x C`` fp32 tensor (optionally flipped)."""
    w = w.detach()
    if flip:
        w = w.flip(-1, -2)
    return w[:, 0].permute(1, 2, 0).contiguous()


class _DilatedReparamNative(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, dilations: Tuple[int, ...], eps: Tuple[float, ...],
                factors: Tuple[float, ...], keep: Tuple[bool, ...], *tensors: torch.Tensor):  # type: ignore[override]
        nb = len(dilations)
        weights, gammas, betas = tensors[0:nb], tensors[nb:2 * nb], tensors[2 * nb:3 * nb]
        rmeans, rvars = list(tensors[3 * nb:4 * nb]), list(tensors[4 * nb:5 * nb])
        xc = x.contiguous(memory_format=_CL)
        n, c, h, w = xc.shape
        count = n * h * w
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
        pads = [r * (int(wt.shape[-1]) - 1) // 2 for wt, r in zip(weights, dilations)]
        pmax = max(pads)
        xb = _padded_input(xc, pmax)
        stats = torch.empty(nb, torch.get_num_threads(), 2, c, dtype=torch.float64)  # per-thread sums of y, y^2
        ys: List[torch.Tensor] = []
        for i in range(nb):
            off = pmax - pads[i]
            y = torch.empty(n, h, w, c) if keep[i] else WORKSPACE.empty((n, h, w, c), xc, f"drb_y{i}")
            native.dw_forward(xb[:, off:, off:], (pads[i], pads[i] + h, pads[i], pads[i] + w), y,
                              _kkc(weights[i]), dilations[i], stats=stats[i])
            ys.append(y)
        # BatchNorm statistics of every branch at once, in float64
        s = stats.sum(1)  # nb x 2 x C
        mean = s[:, 0] / count
        var = (s[:, 1] / count - mean * mean).clamp_(min=0.0)
        invstd = (var + torch.tensor(eps, dtype=torch.float64).unsqueeze(1)).rsqrt_()
        with torch.no_grad():
            f = torch.tensor(factors, dtype=torch.float64).unsqueeze(1)
            torch._foreach_mul_(rmeans, [1.0 - v for v in factors])
            torch._foreach_add_(rmeans, list((mean * f).to(rmeans[0].dtype).unbind(0)))
            torch._foreach_mul_(rvars, [1.0 - v for v in factors])
            torch._foreach_add_(rvars, list((var * (f * (count / (count - 1)))).to(rvars[0].dtype).unbind(0)))
        a = torch.stack([g.detach() for g in gammas]).double() * invstd
        b = (torch.stack([v.detach() for v in betas]).double() - mean * a).sum(0)
        out = torch.empty(n, h, w, c)
        native.combine(out, ys, a.float(), b.float())
        ctx.dilations, ctx.keep, ctx.nb, ctx.pads = dilations, keep, nb, pads
        saved_y = [y for y, kp in zip(ys, keep) if kp]
        ctx.save_for_backward(xc, mean, invstd, *weights, *gammas, *saved_y)
        return out.permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        nb, pads = ctx.nb, ctx.pads
        xc, mean, invstd, *rest = ctx.saved_tensors
        weights, gammas = rest[:nb], rest[nb:2 * nb]
        kept = iter(rest[2 * nb:])
        n, c, h, w = xc.shape
        count = n * h * w
        pmax = max(pads)
        off = 5
        need_x = ctx.needs_input_grad[0]
        need_w = [ctx.needs_input_grad[off + i] for i in range(nb)]
        need_g = [ctx.needs_input_grad[off + nb + i] for i in range(nb)]
        need_b = [ctx.needs_input_grad[off + 2 * nb + i] for i in range(nb)]
        g = _nhwc(grad.contiguous(memory_format=_CL))
        xb = _padded_input(xc, pmax) if any(need_w) or not all(ctx.keep) else None
        ys: List[torch.Tensor] = []
        for i in range(nb):
            if ctx.keep[i]:
                ys.append(next(kept))
                continue
            assert xb is not None
            y = WORKSPACE.empty((n, h, w, c), xc, f"drb_y{i}")
            o = pmax - pads[i]
            native.dw_forward(xb[:, o:, o:], (pads[i], pads[i] + h, pads[i], pads[i] + w), y,
                              _kkc(weights[i]), ctx.dilations[i])
            ys.append(y)
        sums = native.grad_dots(g, ys)  # float64: [sum g, sum g*y_0, ...]
        sum_g = sums[0]
        # BatchNorm backward per branch: d(loss)/d(y_i) = a_i g + k_i y_i + c_i (per channel, all in float64)
        ggamma = invstd * (sums[1:] - mean * sum_g)
        a = torch.stack([v.detach() for v in gammas]).double() * invstd
        k_ = -a * invstd * ggamma / count
        c_ = -a * sum_g / count - k_ * mean
        a32, k32, c32 = a.float(), k_.float(), c_.float()
        ggs: List[Optional[torch.Tensor]] = [
            ggamma[i].to(gammas[i].dtype) if need_g[i] else None for i in range(nb)]
        gbs: List[Optional[torch.Tensor]] = [sum_g.to(gammas[i].dtype) if need_b[i] else None for i in range(nb)]
        gx: Optional[torch.Tensor] = torch.empty(n, h, w, c) if need_x else None
        gws: List[Optional[torch.Tensor]] = [None] * nb
        dyb: Optional[torch.Tensor] = None
        first = True
        for i in range(nb):
            if not (need_x or need_w[i]):
                continue
            if dyb is None:
                dyb = WORKSPACE.zero_bordered(n, h, w, c, pmax, xc, "drb_dy")
            interior = dyb[:, pmax:pmax + h, pmax:pmax + w]
            native.affine2(interior, g, ys[i], a32[i], k32[i], c32[i])
            k, r, o = int(weights[i].shape[-1]), ctx.dilations[i], pmax - pads[i]
            window = (pads[i], pads[i] + h, pads[i], pads[i] + w)
            if gx is not None:
                native.dw_forward(dyb[:, o:, o:], window, gx, _kkc(weights[i], flip=True), r, accumulate=not first)
                first = False
            if need_w[i]:
                assert xb is not None
                part = WORKSPACE.empty((torch.get_num_threads(), k, k, c), xc, "drb_wgrad")
                gkkc = native.dw_weight_grad(xb[:, o:, o:], window, interior, k, r, part)
                gws[i] = gkkc.permute(2, 0, 1).unsqueeze(1).contiguous().to(weights[i].dtype)
        gx_out = gx.permute(0, 3, 1, 2) if gx is not None else None
        return (gx_out, None, None, None, None, *gws, *ggs, *gbs, *([None] * (2 * nb)))


def dilated_reparam_native(x: torch.Tensor, dilations: Tuple[int, ...], eps: Tuple[float, ...],
                           factors: Tuple[float, ...], keep: Tuple[bool, ...],
                           tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Apply :class:`_DilatedReparamNative` (arguments as built by ``dilated_reparam_train``)."""
    return _DilatedReparamNative.apply(x, dilations, eps, factors, keep, *tensors)
