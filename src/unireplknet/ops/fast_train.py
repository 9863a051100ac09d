"""Fast training path for depthwise convolutions and the Dilated Reparam Block (CPU).

PyTorch's CPU (oneDNN) depthwise convolution is fast in the forward direction for channels-last
input, but its backward is 4-50x slower than its forward, and dilated kernels whose padding
exceeds a few taps fall off the fast forward path as well. This module computes the same
function and the same gradients with forward convolutions only:

* ``grad_input`` of a depthwise (dilated) convolution is the forward convolution of
  ``grad_output`` with the spatially flipped kernel (same padding and dilation);
* ``grad_weight`` is a depthwise convolution of the zero-padded input (batch folded into the
  channels, ``N*C`` groups) with ``grad_output`` as kernel and stride = dilation, summed over
  the batch;
* dilated convolutions whose padding exceeds :data:`NATIVE_DILATED_PAD` run on an explicitly zero-padded
  channels-last input (``padding=0``), which keeps them on oneDNN's fast kernel.

:func:`dilated_reparam_train` runs all branches of a Dilated Reparam Block and their training-mode
BatchNorms in one autograd node. It saves the block input, the per-branch batch statistics and (by
default, ``recompute="dilated"``) the outputs of the branches that are large (7 taps and more) or dilated;
only the small undilated kernel (5x5 in the 13x13 block) is recomputed in the backward pass, where it needs
no padded copy. A 13x13 block then keeps six activations alive, the plain path seven (``"large"``: three,
``recompute=True``: one; :func:`set_drb_recompute`): the default trades memory for speed (T's step ~2%
cheaper than with ``"large"``, its peak memory at batch 32 ~400-600 MiB higher; BENCHMARKS.md). BatchNorm uses
the native kernels (``native_batch_norm`` and its backward), so outputs and running-statistic updates
are those of ``nn.BatchNorm2d``.

For fp32 input with a multiple of 8 channels, :func:`dilated_reparam_train` runs on the compiled kernels of
:mod:`unireplknet.ops.native` when they build (:mod:`unireplknet.ops.drb_native`: the convolutions compute the
BatchNorm statistics as they write, and the BatchNorm backward is fused into the convolution inputs); otherwise
on the PyTorch kernels described above.

The switch: :func:`set_fast_training` / :func:`fast_training_enabled` / :func:`fast_training`
(context manager). The fast path is ON by default and only used for CPU tensors in fp32/fp64
when autograd records and no autocast is active; everything else (and the deployed block) runs
the plain PyTorch path.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.fx
import torch.nn.functional as F

__all__ = [
    "set_fast_training", "set_drb_recompute", "set_workspace_limit", "release_workspace", "fast_training_enabled",
    "fast_training", "fast_path_applicable",
    "depthwise_conv2d_train", "dilated_reparam_train", "grn_train", "channel_sq_norm", "spatial_dot",
]

_STATE: dict = {"enabled": True, "recompute": "dilated"}
_POLICIES = (True, False, "large", "dilated")
_LOCK = threading.Lock()
_CL = torch.channels_last


def set_fast_training(enabled: bool) -> None:
    """Globally switch the fast training path (default ``True``)."""
    with _LOCK:
        _STATE["enabled"] = bool(enabled)


def set_drb_recompute(policy: Union[bool, str]) -> None:
    """Default ``recompute`` policy of :func:`dilated_reparam_train`: ``True``, ``False``, ``"large"`` or
    ``"dilated"`` (the initial default)."""
    if policy not in _POLICIES:
        raise ValueError(f"policy must be True, False, 'large' or 'dilated', got {policy!r}")
    with _LOCK:
        _STATE["recompute"] = policy


def fast_training_enabled() -> bool:
    """Whether the fast training path is switched on."""
    return _STATE["enabled"]


@contextlib.contextmanager
def fast_training(enabled: bool = True) -> Iterator[None]:
    """Context manager that sets the fast training switch and restores the previous value on exit."""
    previous = fast_training_enabled()
    set_fast_training(enabled)
    try:
        yield
    finally:
        set_fast_training(previous)


def _fx_tracing() -> bool:
    """Whether ``torch.fx`` is symbolically tracing (without the deprecation warning of ``is_fx_tracing``)."""
    trace = torch.fx._symbolic_trace
    check = getattr(trace, "is_fx_symbolic_tracing", None) or getattr(trace, "_get_is_fx_tracing", None)
    return bool(check()) if check is not None else False


def fast_path_applicable(x: torch.Tensor) -> bool:
    """True when the fast path is on and applies to ``x`` (CPU fp32/fp64 4-D, autograd recording, no autocast;
    never while FX, TorchScript or ``torch.compile`` traces the model, which then records the plain path)."""
    if isinstance(x, torch.fx.Proxy) or _fx_tracing() or torch.compiler.is_compiling():
        return False  # tracers and torch.compile record the plain path (they cannot trace these functions)
    return (
        _STATE["enabled"]
        and torch.is_grad_enabled()
        and x.dim() == 4
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not torch.is_autocast_enabled("cpu")
        and not torch.jit.is_scripting()
        and not torch.jit.is_tracing()
    )


# --------------------------------------------------------------------------- conv primitives
def _fmt(t: torch.Tensor) -> torch.memory_format:
    """Working layout: channels-last for fp32 (oneDNN's fast depthwise kernels), NCHW otherwise (fp64 slow path)."""
    return _CL if t.dtype == torch.float32 else torch.contiguous_format


class _Workspace(threading.local):
    """Scratch tensors reused across calls of the fast training path (one set per thread).

    A fresh tensor costs a first-touch page fault per 4 KiB page, which on hidden-sized activations costs more
    than the element-wise arithmetic written into it; a padded copy made by ``F.pad`` also zero-fills its whole
    border every call (a 14x14 map padded by 6 is 71% border). Workspace tensors keep their pages (and a padded
    buffer its zero border) between calls. A workspace tensor is valid until the next request with the same key,
    so callers consume it at once and never return it or save it for backward. Bounded to ``limit`` bytes,
    least recently used out; ``limit = 0`` turns reuse off (every request is a fresh tensor).
    """

    limit = 512 * 2 ** 20

    def __init__(self) -> None:
        self.buffers: "dict[tuple, torch.Tensor]" = {}

    def _get(self, key: tuple, make: "Callable[[], torch.Tensor]") -> torch.Tensor:
        buf = self.buffers.pop(key, None)
        if buf is None:
            buf = make()
            total = buf.nbytes + sum(b.nbytes for b in self.buffers.values())
            for old in list(self.buffers):  # oldest first: dicts keep insertion order
                if total <= self.limit:
                    break
                total -= self.buffers.pop(old).nbytes
        self.buffers[key] = buf  # most recently used last
        return buf

    def empty(self, shape: Sequence[int], like: torch.Tensor, tag: str,
              memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device (contents undefined)."""
        shape = tuple(int(v) for v in shape)

        def make() -> torch.Tensor:
            return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=memory_format)

        if self.limit <= 0:
            return make()
        return self._get((tag, shape, like.dtype, like.device, memory_format), make)

    def empty_like(self, x: torch.Tensor, tag: str) -> torch.Tensor:
        """:meth:`empty` shaped like ``x``, channels-last when ``x`` is (else contiguous)."""
        cl = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=_CL)
        return self.empty(x.shape, x, tag, _CL if cl else torch.contiguous_format)

    def zero_bordered(self, n: int, h: int, w: int, c: int, pad: int, like: torch.Tensor, tag: str) -> torch.Tensor:
        """A reused ``N x (H+2p) x (W+2p) x C`` buffer whose border is zero; callers write only its interior."""
        shape = (n, h + 2 * pad, w + 2 * pad, c)

        def make() -> torch.Tensor:
            return torch.zeros(shape, dtype=like.dtype, device=like.device)

        if self.limit <= 0:
            return make()
        return self._get(("zero_bordered", tag, shape, like.dtype, like.device), make)

    def padded(self, x: torch.Tensor, pad: int, memory_format: torch.memory_format) -> torch.Tensor:
        """``F.pad(x, (pad,) * 4)`` in ``memory_format``, written into a reused zero-bordered buffer."""
        if self.limit <= 0 or (x.requires_grad and torch.is_grad_enabled()):  # never hand a reused buffer to autograd
            return F.pad(x, (pad, pad, pad, pad)).contiguous(memory_format=memory_format)
        n, c, h, w = x.shape
        key = ("pad", n, c, h, w, pad, x.dtype, x.device, memory_format)
        buf = self._get(key, lambda: torch.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype,
                                                 device=x.device).contiguous(memory_format=memory_format))
        buf[:, :, pad:pad + h, pad:pad + w].copy_(x)
        return buf


WORKSPACE = _Workspace()


def set_workspace_limit(nbytes: int) -> None:
    """Bound the scratch tensors the fast path keeps between calls (per thread; default 512 MiB; 0: keep none)."""
    if nbytes < 0:
        raise ValueError(f"workspace limit must be >= 0 bytes, got {nbytes}")
    _Workspace.limit = int(nbytes)
    WORKSPACE.__dict__.pop("limit", None)  # this thread follows the class-wide value again
    release_workspace()


def release_workspace() -> None:
    """Free this thread's fast-path scratch tensors (the trainer calls it when training ends)."""
    WORKSPACE.buffers.clear()


#: Largest padding at which oneDNN's depthwise kernel still takes a dilated conv with built-in padding on its
#: fast path (measured on AVX2, ``benchmarks/conv_train_paths.py``: 3x3 at rates 2-4 and 5x5 at rate 2 run 1.3-3.4x
#: faster than on a padded copy; at padding 5 and more, 7-19x slower). Larger paddings use a zero-bordered copy.
NATIVE_DILATED_PAD = 4


def _conv_fwd(x: torch.Tensor, weight: torch.Tensor, dilation: int) -> torch.Tensor:
    """Stride-1 'same' depthwise conv of a channels-last ``x`` (output channels-last)."""
    k = weight.shape[-1]
    pad = dilation * (k - 1) // 2
    channels = x.shape[1]
    if dilation == 1 or pad <= NATIVE_DILATED_PAD:
        return F.conv2d(x, weight, padding=pad, dilation=dilation, groups=channels)
    xp = WORKSPACE.padded(x, pad, _fmt(x))
    return F.conv2d(xp, weight, dilation=dilation, groups=channels)


def _conv_grad_input(grad: torch.Tensor, weight: torch.Tensor, dilation: int) -> torch.Tensor:
    """Input gradient of :func:`_conv_fwd`: the forward conv of ``grad`` with the flipped kernel."""
    return _conv_fwd(grad, weight.flip(-1, -2), dilation)


def _conv_grad_weight(x_nchw: torch.Tensor, grad: torch.Tensor, k: int, dilation: int) -> torch.Tensor:
    """Weight gradient ``(C, 1, k, k)`` of :func:`_conv_fwd` from an NCHW-contiguous input and its output grad."""
    n, c, h, w = x_nchw.shape
    pad = dilation * (k - 1) // 2
    xp = WORKSPACE.padded(x_nchw, pad, torch.contiguous_format).view(1, n * c, h + 2 * pad, w + 2 * pad)
    g = grad.contiguous().reshape(n * c, 1, h, w)
    gw = F.conv2d(xp, g, stride=dilation, groups=n * c)  # (1, N*C, k, k)
    return gw.reshape(n, c, k, k).sum(0).unsqueeze(1)


# --------------------------------------------------------------------------- plain depthwise conv
class _DepthwiseConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], dilation: int):  # type: ignore[override]
        xc = x.contiguous(memory_format=_fmt(x))
        ctx.save_for_backward(xc, weight)
        ctx.dilation = dilation
        ctx.has_bias = bias is not None
        out = _conv_fwd(xc, weight, dilation)
        if bias is not None:
            out = out + bias.view(1, -1, 1, 1)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        xc, weight = ctx.saved_tensors
        grad = grad.contiguous(memory_format=_fmt(grad))
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _conv_grad_input(grad, weight, ctx.dilation)
        if ctx.needs_input_grad[1]:
            gw = _conv_grad_weight(xc.contiguous(), grad, weight.shape[-1], ctx.dilation)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum(dim=(0, 2, 3))
        return gx, gw, gb, None


def depthwise_conv2d_train(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, dilation: int = 1
) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=dilation*(k-1)//2, dilation=dilation, groups=C)`` with a fast backward.

    ``weight`` is ``C x 1 x k x k`` with odd square ``k``; the output is channels-last.
    """
    return _DepthwiseConv2d.apply(x, weight, bias, int(dilation))


# --------------------------------------------------------------------------- Dilated Reparam Block
class _DilatedReparamTrain(torch.autograd.Function):
    """``sum_i BN_i(dwconv(x, W_i, dilation r_i))`` with training-mode BatchNorms, in one node."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dilations: Tuple[int, ...], eps: Tuple[float, ...],
                factors: Tuple[float, ...], keep: Tuple[bool, ...], *tensors: torch.Tensor):  # type: ignore[override]
        nb = len(dilations)
        weights = tensors[0:nb]
        gammas = tensors[nb:2 * nb]
        betas = tensors[2 * nb:3 * nb]
        rmeans = tensors[3 * nb:4 * nb]
        rvars = tensors[4 * nb:5 * nb]
        xc = x.contiguous(memory_format=_fmt(x))
        out: Optional[torch.Tensor] = None
        saved_y: List[torch.Tensor] = []
        stats: List[torch.Tensor] = []
        for i in range(nb):
            y = _conv_fwd(xc, weights[i], dilations[i])
            if out is None:
                o, mean, invstd = torch.native_batch_norm(
                    y, gammas[i], betas[i], rmeans[i], rvars[i], True, factors[i], eps[i])
            else:  # summed into the first branch's output at once: a workspace tensor
                o, mean, invstd = torch.ops.aten.native_batch_norm.out(
                    y, gammas[i], betas[i], rmeans[i], rvars[i], True, factors[i], eps[i],
                    out=WORKSPACE.empty_like(y, "drb_branch"), save_mean=y.new_empty(y.shape[1]),
                    save_invstd=y.new_empty(y.shape[1]))
            stats += [mean, invstd]
            if keep[i]:
                saved_y.append(y)
            out = o if out is None else out.add_(o)
        ctx.dilations, ctx.eps, ctx.keep, ctx.nb = dilations, eps, keep, nb
        ctx.save_for_backward(xc, *weights, *gammas, *rmeans, *rvars, *stats, *saved_y)
        assert out is not None
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        nb = ctx.nb
        saved = ctx.saved_tensors
        xc = saved[0]
        weights = saved[1:1 + nb]
        gammas = saved[1 + nb:1 + 2 * nb]
        rmeans = saved[1 + 2 * nb:1 + 3 * nb]
        rvars = saved[1 + 3 * nb:1 + 4 * nb]
        stats = saved[1 + 4 * nb:1 + 6 * nb]
        kept = iter(saved[1 + 6 * nb:])
        need_x = ctx.needs_input_grad[0]
        off = 5
        need_w = any(ctx.needs_input_grad[off:off + nb])
        need_aff = [ctx.needs_input_grad[off + nb + i] or ctx.needs_input_grad[off + 2 * nb + i] for i in range(nb)]
        grad = grad.contiguous(memory_format=_fmt(grad))
        x_nchw = xc.contiguous() if need_w else None
        gx: Optional[torch.Tensor] = None
        gws: List[Optional[torch.Tensor]] = [None] * nb
        ggs: List[Optional[torch.Tensor]] = [None] * nb
        gbs: List[Optional[torch.Tensor]] = [None] * nb
        for i in range(nb):
            r = ctx.dilations[i]
            y = next(kept) if ctx.keep[i] else _conv_fwd(xc, weights[i], r)
            c = y.shape[1]
            dy, gg, gb = torch.ops.aten.native_batch_norm_backward.out(
                grad, y, gammas[i], rmeans[i], rvars[i], stats[2 * i], stats[2 * i + 1], True, ctx.eps[i],
                [need_x or need_w, need_aff[i], need_aff[i]],
                out0=WORKSPACE.empty_like(y, "drb_branch"), out1=y.new_empty(c), out2=y.new_empty(c))
            if not need_aff[i]:
                gg = gb = None
            del y
            ggs[i], gbs[i] = gg, gb
            if need_x:
                gxi = _conv_grad_input(dy, weights[i], r)
                gx = gxi if gx is None else gx.add_(gxi)
            if ctx.needs_input_grad[off + i]:
                gws[i] = _conv_grad_weight(x_nchw, dy, weights[i].shape[-1], r)
        return (gx, None, None, None, None, *gws, *ggs, *gbs, *([None] * (2 * nb)))


def dilated_reparam_train(
    x: torch.Tensor,
    weights: Sequence[torch.Tensor],
    dilations: Sequence[int],
    bns: Sequence[torch.nn.modules.batchnorm._BatchNorm],
    recompute: Union[None, bool, str] = None,
) -> torch.Tensor:
    """Training forward of a Dilated Reparam Block: ``sum_i bns[i](dwconv(x, weights[i], dilations[i]))``.

    Each BatchNorm must be an affine ``nn.BatchNorm2d`` in training mode tracking running statistics;
    its ``num_batches_tracked`` and running statistics are updated exactly as its own forward would.
    ``recompute``: ``True`` recomputes every branch output in backward instead of keeping it (memory vs
    ~1/3 more conv time), ``False`` keeps them all, ``"large"`` keeps the outputs of the branches with
    kernels of 7 taps and more (the costly ones to recompute) and recomputes the small ones, ``"dilated"``
    also keeps the small dilated ones (their recompute needs a padded copy of the input) and recomputes
    only small undilated kernels; ``None`` uses the module default (:func:`set_drb_recompute`, initially
    ``"dilated"``).
    """
    if recompute is None:
        recompute = _STATE["recompute"]
    if recompute == "large":
        keep = tuple(int(w.shape[-1]) >= 7 for w in weights)
    elif recompute == "dilated":
        keep = tuple(int(w.shape[-1]) >= 7 or int(d) > 1 for w, d in zip(weights, dilations))
    elif isinstance(recompute, bool):
        keep = (not recompute,) * len(weights)
    else:
        raise ValueError(f"recompute must be True, False, 'large' or 'dilated', got {recompute!r}")
    factors = []
    for bn in bns:
        factor = 0.0 if bn.momentum is None else bn.momentum
        if bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            if bn.momentum is None:
                factor = 1.0 / float(bn.num_batches_tracked)
        factors.append(factor)
    tensors = [*weights, *(bn.weight for bn in bns), *(bn.bias for bn in bns),
               *(bn.running_mean for bn in bns), *(bn.running_var for bn in bns)]
    from .drb_native import dilated_reparam_native, native_drb_applicable  # imports this module

    if native_drb_applicable(x, weights):
        return dilated_reparam_native(
            x, tuple(int(d) for d in dilations), tuple(float(bn.eps) for bn in bns), tuple(factors), keep, tensors)
    return _DilatedReparamTrain.apply(
        x, tuple(int(d) for d in dilations), tuple(float(bn.eps) for bn in bns), tuple(factors), keep,
        *tensors)


# --------------------------------------------------------------------------- GRN
def spatial_dot(x: torch.Tensor, y: torch.Tensor, chunk: int = 1 << 20) -> torch.Tensor:
    """``(x * y).sum(dim=(1, 2))`` of two ``N x H x W x C`` tensors, shape ``N x C``.

    Dot products over groups of samples whose ``H*W x C`` product temporary holds at most ``chunk`` elements
    (4 MiB in fp32): small enough for the allocator to reuse it (a whole-batch product is a fresh mapping of
    up to hundreds of MB per call, and its page faults cost more than the arithmetic), few enough calls for
    small maps not to pay per-call overhead 16 times.
    """
    xf, yf = x.flatten(1, 2), y.flatten(1, 2)
    n = xf.shape[0]
    per = max(1, chunk // max(1, xf[0].numel())) if n else 1
    if per >= n:
        return torch.linalg.vecdot(xf, yf, dim=1)
    out = xf.new_empty(n, xf.shape[2])
    for i in range(0, n, per):
        torch.linalg.vecdot(xf[i:i + per], yf[i:i + per], dim=1, out=out[i:i + per])
    return out


def channel_sq_norm(x: torch.Tensor) -> torch.Tensor:
    """Per ``(n, c)`` spatial L2 norm of an ``N x H x W x C`` tensor, shape ``N x 1 x 1 x C``.

    Equals ``torch.linalg.vector_norm(x, 2, dim=(1, 2), keepdim=True)``, 3-5x faster on CPU (per-sample dot
    products over the flattened spatial axis instead of a strided reduction).
    """
    return spatial_dot(x, x).sqrt_().unsqueeze(1).unsqueeze(1)


class _GRNTrain(torch.autograd.Function):
    """``(gamma * Nx + 1) * x + beta`` (GRN on ``N x H x W x C``) with a hand-written, allocation-lean backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, gamma: torch.Tensor, beta: Optional[torch.Tensor]):  # type: ignore[override]
        gx = channel_sq_norm(x)
        denom = gx.mean(dim=-1, keepdim=True) + 1e-6
        nx = gx / denom
        f = gamma * nx + 1
        out = torch.addcmul(beta, x, f) if beta is not None else x * f
        ctx.has_beta = beta is not None
        ctx.save_for_backward(x, gamma, gx, denom, nx, f)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, gamma, gx, denom, nx, f = ctx.saved_tensors
        gb = grad.sum(dim=(0, 1, 2), keepdim=True) if ctx.has_beta and ctx.needs_input_grad[2] else None
        df = spatial_dot(grad, x).unsqueeze(1).unsqueeze(1)
        gg = (df * nx).sum(dim=0, keepdim=True) if ctx.needs_input_grad[1] else None
        gx_in = None
        if ctx.needs_input_grad[0]:
            dnx = df * gamma
            dgx = dnx / denom - (dnx * gx).sum(dim=-1, keepdim=True) / (denom * denom) / gx.shape[-1]
            scale = torch.where(gx > 0, dgx / gx, torch.zeros_like(gx))
            gx_in = grad * f
            gx_in.addcmul_(x, scale)
        return gx_in, gg, gb


def grn_train(x: torch.Tensor, gamma: torch.Tensor, beta: Optional[torch.Tensor]) -> torch.Tensor:
    """GRN forward (``N x H x W x C`` input, ``(1, 1, 1, C)`` parameters) with a fused backward for training."""
    return _GRNTrain.apply(x, gamma, beta)
