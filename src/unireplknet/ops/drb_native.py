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
        rmeans, rvars = tensors[3 * nb:4 * nb], tensors[4 * nb:5 * nb]
        xc = x.contiguous(memory_format=_CL)
        n, c, h, w = xc.shape
        count = n * h * w
        if count <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
        pads = [r * (int(wt.shape[-1]) - 1) // 2 for wt, r in zip(weights, dilations)]
        pmax = max(pads)
        xb = _padded_input(xc, pmax)
        nt = torch.get_num_threads()
        stats = torch.empty(nt, 2, c, dtype=torch.float64)
        ys: List[torch.Tensor] = []
        a = torch.empty(nb, c, dtype=torch.float32)
        b = torch.zeros(c, dtype=torch.float64)
        means, invstds = [], []
        for i in range(nb):
            k, r, off = int(weights[i].shape[-1]), dilations[i], pmax - pads[i]
            y = torch.empty(n, h, w, c) if keep[i] else WORKSPACE.empty((n, h, w, c), xc, f"drb_y{i}")
            native.dw_forward(xb[:, off:, off:], (pads[i], pads[i] + h, pads[i], pads[i] + w), y,
                              _kkc(weights[i]), r, stats=stats)
            s = stats.sum(0)
            mean = s[0] / count
            var = (s[1] / count - mean * mean).clamp_(min=0.0)
            invstd = (var + eps[i]).rsqrt()
            with torch.no_grad():
                f = factors[i]
                rmeans[i].mul_(1.0 - f).add_(mean.to(rmeans[i].dtype), alpha=f)
                rvars[i].mul_(1.0 - f).add_((var * (count / (count - 1))).to(rvars[i].dtype), alpha=f)
            ai = gammas[i].detach().double() * invstd
            a[i] = ai
            b += betas[i].detach().double() - mean * ai
            means.append(mean.float())
            invstds.append(invstd.float())
            ys.append(y)
        out = torch.empty(n, h, w, c)
        native.combine(out, ys, a, b.float())
        ctx.dilations, ctx.eps, ctx.keep, ctx.nb, ctx.pads = dilations, eps, keep, nb, pads
        saved_y = [y for y, kp in zip(ys, keep) if kp]
        ctx.save_for_backward(xc, *weights, *gammas, *means, *invstds, *saved_y)
        return out.permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        nb, pads = ctx.nb, ctx.pads
        saved = ctx.saved_tensors
        xc = saved[0]
        weights, gammas = saved[1:1 + nb], saved[1 + nb:1 + 2 * nb]
        means, invstds = saved[1 + 2 * nb:1 + 3 * nb], saved[1 + 3 * nb:1 + 4 * nb]
        kept = iter(saved[1 + 4 * nb:])
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
        gx: Optional[torch.Tensor] = torch.empty(n, h, w, c) if need_x else None
        dyb: Optional[torch.Tensor] = None
        gws: List[Optional[torch.Tensor]] = [None] * nb
        ggs: List[Optional[torch.Tensor]] = [None] * nb
        gbs: List[Optional[torch.Tensor]] = [None] * nb
        first = True
        for i in range(nb):
            mean, invstd = means[i].double(), invstds[i].double()
            gamma = gammas[i].detach().double()
            ggamma = invstd * (sums[i + 1] - mean * sum_g)
            if need_g[i]:
                ggs[i] = ggamma.to(gammas[i].dtype)
            if need_b[i]:
                gbs[i] = sum_g.to(gammas[i].dtype)
            if not (need_x or need_w[i]):
                continue
            ai = gamma * invstd
            ki = -ai * invstd * ggamma / count
            ci = -ai * sum_g / count - ki * mean
            if dyb is None:
                dyb = _zero_bordered(n, h, w, c, pmax)
            interior = dyb[:, pmax:pmax + h, pmax:pmax + w]
            native.affine2(interior, g, ys[i], ai.float(), ki.float(), ci.float())
            k, r, o = int(weights[i].shape[-1]), ctx.dilations[i], pmax - pads[i]
            if need_x:
                assert gx is not None
                native.dw_forward(dyb[:, o:, o:], (pads[i], pads[i] + h, pads[i], pads[i] + w), gx,
                                  _kkc(weights[i], flip=True), r, accumulate=not first)
                first = False
            if need_w[i]:
                assert xb is not None
                part = WORKSPACE.empty((torch.get_num_threads(), k, k, c), xc, "drb_wgrad")
                gkkc = native.dw_weight_grad(xb[:, o:, o:], (pads[i], pads[i] + h, pads[i], pads[i] + w),
                                             interior, k, r, part)
                gws[i] = gkkc.permute(2, 0, 1).unsqueeze(1).contiguous().to(weights[i].dtype)
        gx_out = gx.permute(0, 3, 1, 2) if gx is not None else None
        return (gx_out, None, None, None, None, *gws, *ggs, *gbs, *([None] * (2 * nb)))


def _zero_bordered(n: int, h: int, w: int, c: int, pad: int) -> torch.Tensor:
    """A reused ``N x (H+2p) x (W+2p) x C`` fp32 buffer whose border is zero (the interior is overwritten)."""
    if WORKSPACE.limit <= 0:
        return torch.zeros(n, h + 2 * pad, w + 2 * pad, c)
    key = ("drb_dy_pad", n, h, w, c, pad)
    return WORKSPACE._get(key, lambda: torch.zeros(n, h + 2 * pad, w + 2 * pad, c))


def dilated_reparam_native(x: torch.Tensor, dilations: Tuple[int, ...], eps: Tuple[float, ...],
                           factors: Tuple[float, ...], keep: Tuple[bool, ...],
                           tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Apply :class:`_DilatedReparamNative` (arguments as built by ``dilated_reparam_train``)."""
    return _DilatedReparamNative.apply(x, dilations, eps, factors, keep, *tensors)
