"""Memory-lean training path for the rest of a UniRepLKNet block (CPU, fp32/fp64).

The plain block keeps about 17 activation-sized tensors alive per block for the backward pass (every
element-wise op saves its input). Three autograd functions compute the same outputs and gradients while
saving less, recomputing cheap element-wise work in backward instead:

* :func:`bn_se_train`: training-mode BatchNorm followed by the squeeze-and-excitation block and (optionally)
  the first linear layer of the FFN; saves only the BN input plus per-channel statistics (the BN and SE
  outputs are recomputed element-wise in backward, where the linear layer's weight gradient needs them);
* :func:`mlp_tail_train`: ``Linear2(GRN(GELU(h)))`` without bias on an ``N x H x W x C`` tensor; saves only
  ``h`` and the GRN statistics, and recomputes ``GELU(h)`` and the GRN output in backward (the plain path
  saves three hidden-sized tensors here, this one);
* :func:`bn_scale_train`: training-mode BatchNorm followed by the layer scale ``gamma``; saves only the BN
  input.

With the compiled kernels of :mod:`unireplknet.ops.native` (fp32, channels-last, channel counts a multiple of
8) the backward passes of all three, and the GELU+GRN forward, run as a few fused passes over the activations
(GELU recomputed inside each pass that needs it; per-(sample, channel) sums shared by the SE gradient and the
BatchNorm backward) instead of PyTorch's element-wise ops: the same gradients, about half the memory traffic.

:func:`block_residual_train` chains them for a :class:`unireplknet.model.UniRepLKNetBlock` and says, via
:func:`block_fast_path_ok`, when it applies (BatchNorm2d layers tracking running statistics, no SyncBN).
BatchNorm statistics and running-statistic updates come from the native kernels, so they equal
``nn.BatchNorm2d``'s.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import native
from .fast_train import WORKSPACE, channel_sq_norm, fast_path_applicable, spatial_dot


__all__ = ["bn_se_train", "mlp_tail_train", "bn_scale_train", "block_fast_path_ok", "block_residual_train",
           "channel_sq_norm"]


def _bn_factor(bn: nn.modules.batchnorm._BatchNorm) -> float:
    """The running-average factor ``nn.BatchNorm2d.forward`` would use for this step (and the counter update)."""
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            factor = 1.0 / float(bn.num_batches_tracked)
    return factor


def _cvec(v: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, 1, 1)


def _sum_hw_prod(g: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``(g * d).sum(dim=(2, 3))`` (``N x C``) of two 4-D tensors, as a dot product when the layouts allow."""
    if g.is_contiguous() and d.is_contiguous():
        return torch.linalg.vecdot(g.flatten(2), d.flatten(2), dim=2)
    if g.is_contiguous(memory_format=torch.channels_last) and d.is_contiguous(memory_format=torch.channels_last):
        return spatial_dot(g.permute(0, 2, 3, 1), d.permute(0, 2, 3, 1))
    return (g * d).sum(dim=(2, 3))


# --------------------------------------------------------------------------- BN + SE (+ Linear)
class _BNSETrain(torch.autograd.Function):
    """``s = BN(d) * sigmoid(up(relu(down(mean_hw BN(d)))))``, optionally followed by ``h = Linear(s in NHWC)``,
    saving ``d`` and per-channel vectors only (``s`` is recomputed for the linear layer's weight gradient)."""

    @staticmethod
    def forward(ctx, d: torch.Tensor, w: torch.Tensor, b: torch.Tensor, rm: torch.Tensor, rv: torch.Tensor,
                factor: float, eps: float, wd: torch.Tensor, bd: torch.Tensor, wu: torch.Tensor,
                bu: torch.Tensor, lw: Optional[torch.Tensor], lb: Optional[torch.Tensor]):  # type: ignore[override]
        if lw is not None:  # the BN/SE output only feeds the linear layer: a workspace tensor
            c = d.shape[1]
            n, mean, invstd = torch.ops.aten.native_batch_norm.out(
                d, w, b, rm, rv, True, factor, eps, out=WORKSPACE.empty_like(d, "bnse_out"),
                save_mean=d.new_empty(c), save_invstd=d.new_empty(c))
        else:
            n, mean, invstd = torch.native_batch_norm(d, w, b, rm, rv, True, factor, eps)
        p = n.mean(dim=(2, 3))
        hidden = F.relu(F.linear(p, wd.flatten(1), bd))
        sig = torch.sigmoid(F.linear(hidden, wu.flatten(1), bu))
        out = n.mul_(sig.unsqueeze(-1).unsqueeze(-1))
        ctx.eps = eps
        ctx.has_linear = lw is not None
        ctx.has_lb = lb is not None
        if lw is not None:
            out = F.linear(out.permute(0, 2, 3, 1), lw, lb)
        ctx.save_for_backward(d, w, b, rm, rv, mean, invstd, p, wd, bd, wu, bu, lw if lw is not None else w)
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        d, w, b, rm, rv, mean, invstd, p, wd, bd, wu, bu, lw = ctx.saved_tensors
        nig = ctx.needs_input_grad
        hw = d.shape[2] * d.shape[3]
        a = w * invstd
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(True) for t in (p, wd, bd, wu, bu)]
            hidden = F.relu(F.linear(leaves[0], leaves[1].flatten(1), leaves[2]))
            sig = torch.sigmoid(F.linear(hidden, leaves[3].flatten(1), leaves[4]))
        sig4 = sig.detach().unsqueeze(-1).unsqueeze(-1)
        glw = glb = None
        if ctx.has_linear and native.nhwc_applicable(d):
            return _bn_se_backward_native(ctx, g, d, w, b, mean, invstd, sig, leaves, lw)
        if ctx.has_linear:
            gh = g.reshape(-1, g.shape[-1])
            nb, c, hh, ww = d.shape
            # the BN output, recomputed, and the linear layer's input grad: workspace tensors
            n = torch.addcmul(_cvec(b - mean * a), d, _cvec(a), out=WORKSPACE.empty_like(d, "bnse_out"))
            if ctx.has_lb and nig[12]:
                glb = gh.sum(0)
            g_out = torch.mm(gh, lw, out=WORKSPACE.empty((gh.shape[0], c), gh, "bnse_gout"))
            g = g_out.view(nb, hh, ww, c).permute(0, 3, 1, 2)
            gsig = _sum_hw_prod(g, n)
            if nig[11]:
                s = n.mul_(sig4)  # the SE output, in place
                glw = gh.t().mm(s.permute(0, 2, 3, 1).reshape(-1, c))
            del n
        else:
            # BN output n = (d - mean) * a + b: sum_hw(g * n) without materialising n.
            gsum = g.sum(dim=(2, 3))
            gsig = (_sum_hw_prod(g, d) - mean * gsum) * a + b * gsum
        want = [True, nig[7], nig[8], nig[9], nig[10]]
        grads = torch.autograd.grad(sig, [t for t, k in zip(leaves, want) if k], gsig)
        it = iter(grads)
        gp, gwd, gbd, gwu, gbu = (next(it) if k else None for k in want)
        gn = g.mul_(sig4) if ctx.has_linear else g * sig4  # in place on the linear layer's own input grad
        gn.add_((gp / hw).unsqueeze(-1).unsqueeze(-1))
        gx, gw, gb = torch.ops.aten.native_batch_norm_backward(
            gn, d, w, rm, rv, mean, invstd, True, ctx.eps, [nig[0], nig[1], nig[2]])
        return gx, gw, gb, None, None, None, None, gwd, gbd, gwu, gbu, glw, glb


def _bn_se_backward_native(ctx: Any, g: torch.Tensor, d: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                           mean: torch.Tensor, invstd: torch.Tensor, sig: torch.Tensor, leaves: list,
                           lw: torch.Tensor) -> tuple:
    """:class:`_BNSETrain`'s backward (with the linear layer) on the compiled kernels: one pass gives the
    per-(sample, channel) sums that the SE gradient and the BatchNorm backward both need, one pass the SE output
    for the linear layer's weight gradient, one pass the input gradient (7 activation passes instead of ~16)."""
    nig = ctx.needs_input_grad
    nb, c, hh, ww = d.shape
    hw, count = hh * ww, nb * hh * ww
    gh = g.reshape(-1, g.shape[-1])
    glw = glb = None
    if ctx.has_lb and nig[12]:
        glb = gh.sum(0)
    g_out = torch.mm(gh, lw, out=WORKSPACE.empty((gh.shape[0], c), gh, "bnse_gout"))
    gc = g_out.view(nb, hh, ww, c).permute(0, 3, 1, 2)  # channels-last N x C x H x W
    sums = native.nc_sums(gc, d)  # float64 3 x N x C: sum g, sum g*d, sum d
    a = (w.double() * invstd.double())
    shift = b.double() - mean.double() * a
    gsig = (a * sums[1] + shift * sums[0]).to(d.dtype)  # sum_hw g * BN(d)
    sig64 = sig.detach().double()
    if nig[11]:  # the SE output s = BN(d) * sig, for the linear layer's weight gradient
        s = native.affine_nc(d, d, a * sig64, torch.zeros_like(a), shift * sig64,
                             out=WORKSPACE.empty_like(d, "bnse_out"))
        glw = gh.t().mm(s.permute(0, 2, 3, 1).reshape(-1, c))
    want = [True, nig[7], nig[8], nig[9], nig[10]]
    grads = torch.autograd.grad(sig, [t for t, k in zip(leaves, want) if k], gsig)
    it = iter(grads)
    gp, gwd, gbd, gwu, gbu = (next(it) if k else None for k in want)
    # BatchNorm backward of gn = g * sig[n] + gp[n] / hw (never materialised)
    beta_n = gp.double() / hw
    sum_gn = (sig64 * sums[0]).sum(0) + beta_n.sum(0) * hw
    sum_gnd = (sig64 * sums[1] + beta_n * sums[2]).sum(0)
    m64, is64 = mean.double(), invstd.double()
    xhat_dot = (sum_gnd - m64 * sum_gn) * is64  # sum gn * xhat
    gx = gw = gb = None
    if nig[0]:
        kx = -a * is64 * xhat_dot / count
        k0 = a * beta_n - a * sum_gn / count - kx * m64
        gx = native.affine_nc(gc, d, a * sig64, kx, k0)
    if nig[1]:
        gw = xhat_dot.to(w.dtype)
    if nig[2]:
        gb = sum_gn.to(w.dtype)
    return gx, gw, gb, None, None, None, None, gwd, gbd, gwu, gbu, glw, glb


def bn_se_train(d: torch.Tensor, bn: nn.BatchNorm2d, se: nn.Module, linear: Optional[nn.Linear] = None) -> torch.Tensor:
    """``se(bn(d))`` for a training-mode ``nn.BatchNorm2d`` and a :class:`unireplknet.layers.SEBlock`; with
    ``linear``, ``linear(se(bn(d)).permute(0, 2, 3, 1))`` (an ``N x H x W x out`` tensor). Saves only ``d``."""
    factor = _bn_factor(bn)
    lw, lb = (linear.weight, linear.bias) if linear is not None else (None, None)
    return _BNSETrain.apply(d, bn.weight, bn.bias, bn.running_mean, bn.running_var, factor, float(bn.eps),
                            se.down.weight, se.down.bias, se.up.weight, se.up.bias, lw, lb)


# --------------------------------------------------------------------------- GELU + GRN + Linear
class _MLPTailTrain(torch.autograd.Function):
    """``z = GRN(GELU(h)) @ W^T`` on ``N x H x W x C`` input, saving ``h`` and the GRN statistics only."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, gamma: torch.Tensor, beta: Optional[torch.Tensor],
                weight: torch.Tensor, bias: Optional[torch.Tensor]):  # type: ignore[override]
        fused = native.gelu_grn_applicable(h)
        if fused:  # two passes over h, GELU computed in each: its squared norm, then the GRN output
            sq, _ = native.gelu_dots(None, h)
            gx = sq.to(h.dtype).sqrt_().unsqueeze(1).unsqueeze(1)
        else:
            a = torch.ops.aten.gelu.out(h, out=WORKSPACE.empty_like(h, "mlp_act"))  # transient: consumed below
            gx = channel_sq_norm(a)
        denom = gx.mean(dim=-1, keepdim=True) + 1e-6
        nx = gx / denom
        f = gamma * nx + 1
        if fused:
            o = WORKSPACE.empty_like(h, "mlp_act")
            native.gelu_grn_out(h, f, beta, o)
        else:
            o = a.mul_(f)  # in place: no second hidden-sized allocation
            if beta is not None:
                o.add_(beta)
            del a
        z = F.linear(o, weight, bias)
        ctx.has_beta = beta is not None
        ctx.has_bias = bias is not None
        ctx.save_for_backward(h, gamma, beta if beta is not None else gamma, weight, gx, denom, nx, f)
        return z

    @staticmethod
    def backward(ctx, gz: torch.Tensor):  # type: ignore[override]
        h, gamma, beta, weight, gx, denom, nx, f = ctx.saved_tensors
        if native.gelu_grn_applicable(h):
            return _mlp_tail_backward_native(ctx, gz, h, gamma, beta, weight, gx, denom, nx, f)
        nig = ctx.needs_input_grad
        gz2 = gz.reshape(-1, gz.shape[-1])
        a = F.gelu(h)
        gwt = gbias = None
        # hidden-sized buffers: a (GELU output) and one more, reused for o, the output grad and the input grad
        buf = WORKSPACE.empty_like(a, "mlp_grad")
        if nig[3]:
            torch.mul(a, f, out=buf)
            if ctx.has_beta:
                buf.add_(beta)
            gwt = gz2.t().mm(buf.view(-1, buf.shape[-1]))
        if ctx.has_bias and nig[4]:
            gbias = gz2.sum(0)
        go = torch.mm(gz2, weight, out=buf.view(-1, buf.shape[-1])).view(a.shape)
        gbeta = go.sum(dim=(0, 1, 2), keepdim=True) if ctx.has_beta and nig[2] else None
        df = spatial_dot(go, a).unsqueeze(1).unsqueeze(1)
        ggamma = (df * nx).sum(dim=0, keepdim=True) if nig[1] else None
        gh = None
        if nig[0]:
            scale = _grn_input_scale(df, gamma, gx, denom)
            ga = go.mul_(f).addcmul_(a, scale)
            gh = torch.ops.aten.gelu_backward.grad_input(ga, h, grad_input=a)  # into a's buffer
        return gh, ggamma, gbeta, gwt, gbias


def _grn_input_scale(df: torch.Tensor, gamma: torch.Tensor, gx: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
    """Per ``(n, c)`` factor of the GRN input in its input gradient (``N x 1 x 1 x C``), from ``df = sum_hw go*a``."""
    dnx = df * gamma
    dgx = dnx / denom - (dnx * gx).sum(dim=-1, keepdim=True) / (denom * denom) / gx.shape[-1]
    return torch.where(gx > 0, dgx / gx, torch.zeros_like(gx))


def _mlp_tail_backward_native(ctx: Any, gz: torch.Tensor, h: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                              weight: torch.Tensor, gx: torch.Tensor, denom: torch.Tensor, nx: torch.Tensor,
                              f: torch.Tensor) -> tuple:
    """:class:`_MLPTailTrain`'s backward on the compiled kernels: GELU(h) is recomputed inside each of three
    passes instead of stored (7 hidden-sized tensor passes instead of 16, and no hidden-sized allocation
    besides the returned gradient)."""
    nig = ctx.needs_input_grad
    gz2 = gz.reshape(-1, gz.shape[-1])
    gwt = gbias = gbeta = ggamma = gh = None
    buf = WORKSPACE.empty_like(h, "mlp_grad")
    if nig[3]:
        native.gelu_grn_out(h, f, beta if ctx.has_beta else None, buf)  # the GRN output, for the weight gradient
        gwt = gz2.t().mm(buf.view(-1, buf.shape[-1]))
    if ctx.has_bias and nig[4]:
        gbias = gz2.sum(0)
    go = torch.mm(gz2, weight, out=buf.view(-1, buf.shape[-1])).view(h.shape)
    dots, sums = native.gelu_dots(go, h)
    df = dots.to(h.dtype).unsqueeze(1).unsqueeze(1)
    if ctx.has_beta and nig[2]:
        gbeta = sums.sum(0).to(h.dtype).view(1, 1, 1, -1)
    if nig[1]:
        ggamma = (df * nx).sum(dim=0, keepdim=True)
    if nig[0]:
        gh = torch.empty_like(h)
        native.gelu_grn_backward(go, h, f, _grn_input_scale(df, gamma, gx, denom), gh)
    return gh, ggamma, gbeta, gwt, gbias


def mlp_tail_train(h: torch.Tensor, gamma: torch.Tensor, beta: Optional[torch.Tensor], weight: torch.Tensor,
                   bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(GRN(F.gelu(h)), weight, bias)`` for ``N x H x W x C`` ``h`` with GRN ``gamma``/``beta`` of shape
    ``(1, 1, 1, C)``; keeps only ``h`` (not the GELU and GRN outputs) for the backward pass."""
    return _MLPTailTrain.apply(h.contiguous(), gamma, beta, weight, bias)


# --------------------------------------------------------------------------- BN + layer scale
class _BNScaleTrain(torch.autograd.Function):
    """``y = BN(z) * scale`` (per channel) saving ``z`` and the batch statistics only."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, w: torch.Tensor, b: torch.Tensor, rm: torch.Tensor, rv: torch.Tensor,
                factor: float, eps: float, scale: torch.Tensor):  # type: ignore[override]
        y, mean, invstd = torch.native_batch_norm(z, w, b, rm, rv, True, factor, eps)
        y.mul_(_cvec(scale))
        ctx.eps = eps
        ctx.save_for_backward(z, w, b, rm, rv, mean, invstd, scale)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        z, w, b, rm, rv, mean, invstd, scale = ctx.saved_tensors
        nig = ctx.needs_input_grad
        if g.dim() == 4 and native.nhwc_applicable(z):
            g = g.contiguous(memory_format=torch.channels_last)
            return _bn_scale_backward_native(nig, g, z, w, b, mean, invstd, scale)
        gz = gw = gb = gs = None
        if nig[1] or nig[2] or nig[7]:
            s1 = g.sum(dim=(0, 2, 3))
            s2 = (_sum_hw_prod(g, z).sum(0) - mean * s1) * invstd  # sum(g * xhat)
            if nig[1]:
                gw = s2 * scale
            if nig[2]:
                gb = s1 * scale
            if nig[7]:
                gs = s2 * w + s1 * b
        if nig[0]:
            gz = torch.ops.aten.native_batch_norm_backward(
                g * _cvec(scale), z, w, rm, rv, mean, invstd, True, ctx.eps, [True, False, False])[0]
        return gz, gw, gb, None, None, None, None, gs


def _bn_scale_backward_native(nig: tuple, g: torch.Tensor, z: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                              mean: torch.Tensor, invstd: torch.Tensor, scale: torch.Tensor) -> tuple:
    """:class:`_BNScaleTrain`'s backward on the compiled kernels: one pass for the sums, one for the input
    gradient (5 activation passes instead of 10)."""
    n, c = z.shape[0], z.shape[1]
    count = z.numel() // c
    sums = native.nc_sums(g, z).sum(1)  # float64 3 x C: sum g, sum g*z, sum z
    m64, is64, s64, w64 = mean.double(), invstd.double(), scale.double(), w.double()
    s1 = sums[0]
    xhat_dot = (sums[1] - m64 * s1) * is64  # sum g * xhat
    gz = gw = gb = gs = None
    if nig[1]:
        gw = (xhat_dot * s64).to(w.dtype)
    if nig[2]:
        gb = (s1 * s64).to(w.dtype)
    if nig[7]:
        gs = (xhat_dot * w64 + s1 * b.double()).to(scale.dtype)
    if nig[0]:  # BN backward of gn = g * scale
        a = w64 * is64 * s64
        kx = -a * is64 * xhat_dot / count
        gz = native.affine_nc(g, z, a, kx, -a * s1 / count - kx * m64)
    return gz, gw, gb, None, None, None, None, gs


def bn_scale_train(z: torch.Tensor, bn: nn.BatchNorm2d, scale: torch.Tensor) -> torch.Tensor:
    """``bn(z) * scale.view(1, -1, 1, 1)`` for a training-mode ``nn.BatchNorm2d``, saving only ``z``."""
    factor = _bn_factor(bn)
    return _BNScaleTrain.apply(z, bn.weight, bn.bias, bn.running_mean, bn.running_var, factor, float(bn.eps), scale)


# --------------------------------------------------------------------------- the block
def _plain_bn(m: Any) -> bool:
    return (type(m) is nn.BatchNorm2d and m.training and m.affine and m.track_running_stats
            and m.running_mean is not None)


def block_fast_path_ok(block: Any, x: torch.Tensor) -> bool:
    """Whether :func:`block_residual_train` computes ``block.residual(x)`` (training structure, plain
    ``nn.BatchNorm2d`` layers, fast path applicable to ``x``)."""
    if not (block.training and fast_path_applicable(x)):
        return False
    pw2 = block.pwconv2
    return (
        _plain_bn(block.norm)
        and len(pw2) == 3 and _plain_bn(pw2[2]) and type(pw2[0]) is nn.Linear
        and len(block.pwconv1) == 2 and type(block.pwconv1[1]) is nn.Linear
        and isinstance(block.act[0], nn.GELU) and block.act[0].approximate == "none"
    )


def block_residual_train(block: Any, x: torch.Tensor) -> torch.Tensor:
    """``block.residual(x)`` of a :class:`unireplknet.model.UniRepLKNetBlock` in training mode, memory-lean.

    Call only when :func:`block_fast_path_ok` holds. The depthwise conv (a Dilated Reparam Block takes its own
    fast path) runs as a module; BN+SE+linear, GELU+GRN+linear and BN+layer scale run as the fused functions
    of this module. Saved per block: the conv input, the BN input, the hidden pre-activation and the last BN
    input (7 activation-sized tensors, the hidden one 4x wide) instead of the plain path's ~17.
    """
    d = block.dwconv(x)
    h = bn_se_train(d, block.norm, block.se, block.pwconv1[1])
    grn = block.act[1]
    lin2 = block.pwconv2[0]
    z = mlp_tail_train(h, grn.gamma, grn.beta, lin2.weight, lin2.bias).permute(0, 3, 1, 2)
    bn2 = block.pwconv2[2]
    if block.gamma is None:
        return bn2(z)
    return bn_scale_train(z, bn2, block.gamma)
