"""Depthwise "same" convolution (stride 1, dilation 1, zero padding K//2) with a Triton GPU path.

``depthwise_conv2d(x, weight, bias)`` computes ``F.conv2d(x, weight, bias, padding=(KH//2, KW//2), groups=C)``.
On CUDA, when triton imports, it runs the Triton kernels of :mod:`unireplknet.ops._dwconv_kernels` (forward,
input gradient and weight gradient); everywhere else it calls ``F.conv2d``. Triton is imported lazily, only for
CUDA tensors (or when :func:`depthwise_conv2d_triton` is called explicitly), so CPU code never depends on it.

Layouts: NCHW-contiguous and channels-last (NHWC) inputs are both handled natively (strides are passed to the
kernels); the output keeps the input's memory format. ``depthwise_conv2d_nhwc`` takes ``B x H x W x C`` tensors.
Dtypes: float32, bfloat16, float16; accumulation is fp32 everywhere. The weight gradient is a deterministic
two-stage reduction (per-chunk partial sums, then one ``sum``), no atomics.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["depthwise_conv2d", "depthwise_conv2d_nhwc", "depthwise_conv2d_triton", "triton_available"]

logger = logging.getLogger(__name__)

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
MAX_TRITON_KERNEL = 63  # largest kernel side the Triton path accepts (taps padded to 64)


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """True when the ``triton`` package imports (the kernels then run on CUDA tensors)."""
    try:
        import triton  # noqa: F401
    except Exception as e:  # ImportError, or a broken install raising something else
        logger.debug("triton unavailable: %s", e)
        return False
    return True


def _kernels() -> Any:
    """The Triton kernel module (imports triton)."""
    from . import _dwconv_kernels

    return _dwconv_kernels


def _check_args(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> Tuple[int, int]:
    """Validate a depthwise call; return the kernel size (KH, KW)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a 4-D tensor B x C x H x W, got shape {tuple(getattr(x, 'shape', ()))}")
    c = x.shape[1]
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise ValueError(f"weight must be a 4-D tensor C x 1 x KH x KW, got shape {tuple(getattr(weight, 'shape', ()))}")
    if weight.shape[0] != c or weight.shape[1] != 1:
        raise ValueError(
            f"not a depthwise convolution: weight shape {tuple(weight.shape)} must be ({c}, 1, KH, KW) "
            f"for input with {c} channels"
        )
    kh, kw = int(weight.shape[2]), int(weight.shape[3])
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel size must be odd on both sides for 'same' padding, got {kh}x{kw}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"unsupported dtype {x.dtype}: a floating-point input is required")
    if weight.dtype != x.dtype:
        raise ValueError(f"weight dtype {weight.dtype} does not match input dtype {x.dtype}")
    if weight.device != x.device:
        raise ValueError(f"weight is on {weight.device} but input is on {x.device}")
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (c,):
            raise ValueError(f"bias must have shape ({c},), got {tuple(getattr(bias, 'shape', ()))}")
        if bias.dtype != x.dtype:
            raise ValueError(f"bias dtype {bias.dtype} does not match input dtype {x.dtype}")
        if bias.device != x.device:
            raise ValueError(f"bias is on {bias.device} but input is on {x.device}")
    return kh, kw


def _is_channels_last(x: torch.Tensor) -> bool:
    """True when ``x`` is stored NHWC (and not also NCHW-contiguous, e.g. C == 1)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _dense(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``x`` densely stored in the requested layout (no copy when it already is)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)


def _pow2(n: int) -> int:
    """Smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


def forward_config(channels_last: bool, c: int, h: int, w: int, kh: int, kw: int) -> Dict[str, int]:
    """Heuristic tile configuration for the forward kernels (``kernel`` is "rows" or "taps")."""
    r = min(4, kh)
    if channels_last:
        bc = min(32, _pow2(c))
        bw = max(1, min(16, _pow2(w), 512 // bc))
        return dict(kernel="rows", R=r, BS=1, BW=bw, BC=bc, num_warps=2)
    bw = min(64, _pow2(w))
    bs = max(1, min(_pow2(-(-h // r)), 128 // bw))
    if kw >= 7:
        return dict(kernel="taps", R=r, BS=bs, BW=bw, BC=1, num_warps=4)
    return dict(kernel="rows", R=r, BS=bs, BW=bw, BC=1, num_warps=2)


def grad_weight_config(channels_last: bool, c: int, h: int, w: int, kh: int, kw: int) -> Dict[str, int]:
    """Heuristic tile configuration for the weight-gradient kernel."""
    r = min(4, kh)
    if channels_last:
        bc = min(16, _pow2(c))
        bw = max(1, min(8, _pow2(w)))
        return dict(R=r, SUB=max(8, min(32, h)), BS=1, BW=bw, BC=bc, num_warps=4)
    bw = min(64, _pow2(w))
    bs = max(1, min(8, 128 // bw))
    return dict(R=r, SUB=max(4, -(-h // bs)), BS=bs, BW=bw, BC=1, num_warps=4)


def _weight_taps(weight: torch.Tensor) -> torch.Tensor:
    """C x 1 x KH x KW -> contiguous fp32 KH x KW x C (per-tap channel vectors)."""
    c, _, kh, kw = weight.shape
    return weight.detach().reshape(c, kh * kw).t().to(torch.float32).contiguous().view(kh, kw, c)


def _launch_forward(x: torch.Tensor, w_taps: torch.Tensor, bias: Optional[torch.Tensor],
                    config: Optional[Dict[str, int]] = None) -> torch.Tensor:
    """Run a forward kernel: ``x`` (dense NCHW or NHWC), ``w_taps`` fp32 KH x KW x C. Output keeps x's layout."""
    k = _kernels()
    kh, kw, c = w_taps.shape
    b, _, h, w = x.shape
    cl = _is_channels_last(x)
    cfg = dict(config) if config else forward_config(cl, c, h, w, kh, kw)
    if not 1 <= cfg["R"] <= min(kh, k.MAX_R):
        raise ValueError(f"config R={cfg['R']} must be in [1, min(KH={kh}, {k.MAX_R})]")
    y = torch.empty_like(x, memory_format=torch.channels_last if cl else torch.contiguous_format)
    if y.numel() == 0:
        return y
    rows = cfg["BS"] * cfg["R"]
    n_hb = -(-h // rows)
    grid = (b * n_hb, -(-w // cfg["BW"]), -(-c // cfg["BC"]))
    common = dict(KH=kh, KW=kw, HAS_BIAS=bias is not None, R=cfg["R"], BS=cfg["BS"], BW=cfg["BW"], BC=cfg["BC"],
                  num_warps=cfg.get("num_warps", 4))
    bias_arg = bias.detach() if bias is not None else w_taps
    args = (x, w_taps, bias_arg, y, c, h, w, *x.stride(), *y.stride(), n_hb)
    if cfg.get("kernel", "rows") == "taps":
        k.dw_fwd_taps_kernel[grid](*args, KWP=_pow2(kw), **common)
    else:
        k.dw_fwd_rows_kernel[grid](*args, **common)
    return y


def _launch_grad_weight(x: torch.Tensor, gy: torch.Tensor, kh: int, kw: int,
                        config: Optional[Dict[str, int]] = None) -> torch.Tensor:
    """Weight gradient (fp32, shape C x 1 x KH x KW) of the depthwise conv for input ``x`` and output grad ``gy``."""
    k = _kernels()
    b, c, h, w = x.shape
    cl = _is_channels_last(x)
    cfg = dict(config) if config else grad_weight_config(cl, c, h, w, kh, kw)
    if not 1 <= cfg["R"] <= min(kh, k.MAX_R):
        raise ValueError(f"config R={cfg['R']} must be in [1, min(KH={kh}, {k.MAX_R})]")
    rows = cfg["BS"] * cfg["SUB"]
    n_hb, n_wb = -(-h // rows), -(-w // cfg["BW"])
    n_chunks = b * n_hb * n_wb
    if x.numel() == 0:
        return torch.zeros((c, 1, kh, kw), device=x.device, dtype=torch.float32)
    part = torch.empty((n_chunks, kh, kw, c), device=x.device, dtype=torch.float32)
    grid = (n_chunks, -(-kh // cfg["R"]), -(-c // cfg["BC"]))
    k.dw_grad_weight_kernel[grid](
        x, gy, part, c, h, w, *x.stride(), *gy.stride(), n_hb, n_wb,
        KH=kh, KW=kw, KWP=_pow2(kw), R=cfg["R"], SUB=cfg["SUB"], BS=cfg["BS"], BW=cfg["BW"], BC=cfg["BC"],
        num_warps=cfg.get("num_warps", 4),
    )
    return part.sum(0).permute(2, 0, 1).unsqueeze(1)


class _DepthwiseConv2dFn(torch.autograd.Function):
    """Autograd wrapper: forward, grad_input (same conv, flipped kernel), grad_weight, grad_bias."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        cl = _is_channels_last(x)
        x = _dense(x, cl)
        ctx.save_for_backward(x, weight)
        ctx.channels_last = cl
        ctx.has_bias = bias is not None
        return _launch_forward(x, _weight_taps(weight), bias)

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        x, weight = ctx.saved_tensors
        gy = _dense(gy.to(x.dtype), ctx.channels_last)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _launch_forward(gy, _weight_taps(weight.flip(2, 3)), None)
        if ctx.needs_input_grad[1]:
            gw = _launch_grad_weight(x, gy, weight.shape[2], weight.shape[3]).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gy.sum(dim=(0, 2, 3), dtype=torch.float32).to(weight.dtype)
        return gx, gw, gb


def depthwise_conv2d_triton(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Always the Triton path (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``); differentiable."""
    kh, kw = _check_args(x, weight, bias)
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"the Triton path supports dtypes {[str(d) for d in SUPPORTED_DTYPES]}, got {x.dtype}")
    if max(kh, kw) > MAX_TRITON_KERNEL:
        raise ValueError(f"the Triton path supports kernels up to {MAX_TRITON_KERNEL}, got {kh}x{kw}")
    return _DepthwiseConv2dFn.apply(x, weight, bias)


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=(KH//2, KW//2), groups=C)``, through Triton on CUDA when available.

    Args:
        x: B x C x H x W, NCHW or channels-last memory; the Triton path takes float32/bfloat16/float16
            (other floating dtypes, kernels over 63 and non-CUDA tensors use ``F.conv2d``).
        weight: C x 1 x KH x KW with odd KH, KW (same dtype and device as ``x``).
        bias: optional (C,).
    Returns:
        B x C x H x W in the memory format of ``x``.
    """
    kh, kw = _check_args(x, weight, bias)
    if x.is_cuda and x.dtype in SUPPORTED_DTYPES and max(kh, kw) <= MAX_TRITON_KERNEL and triton_available():
        return _DepthwiseConv2dFn.apply(x, weight, bias)
    return F.conv2d(x, weight, bias, stride=1, padding=(kh // 2, kw // 2), groups=x.shape[1])


def depthwise_conv2d_nhwc(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`depthwise_conv2d` for ``B x H x W x C`` tensors (returns ``B x H x W x C``; no layout copies when
    ``x`` is contiguous)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a 4-D tensor B x H x W x C, got shape {tuple(getattr(x, 'shape', ()))}")
    return depthwise_conv2d(x.permute(0, 3, 1, 2), weight, bias).permute(0, 2, 3, 1)
