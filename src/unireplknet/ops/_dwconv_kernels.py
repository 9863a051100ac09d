"""Triton kernels for the stride-1 "same" depthwise convolution (imported lazily; needs triton).

Tensors are addressed through explicit (batch, channel, row, column) strides, so one kernel serves NCHW and
channels-last (NHWC) memory; the host code picks a tile shape that matches the layout. All arithmetic is fp32.

Weights are passed pre-transposed as a contiguous fp32 ``[KH, KW, C]`` array so that a tap's per-channel values are
contiguous (vector loads in the channels-last case).

Register reuse comes from ``R`` (<= 4) accumulators for ``R`` consecutive output rows (forward) or ``R``
consecutive tap rows (weight gradient): one input row that is loaded serves all of them. In the forward kernels the
first and last R-1 input rows are unrolled (static loops) so that they skip the accumulators that have nothing
to add instead of multiplying by zero.
"""
from __future__ import annotations

import triton
import triton.language as tl

MAX_R = 4

@triton.jit
def _rows_step(acc0, acc1, acc2, acc3, x_row, mrow, w3, sxw, wc, jh, C, W,
               KW: tl.constexpr, R: tl.constexpr, LO: tl.constexpr, HI: tl.constexpr):
    """One input row (relative index ``jh``) of the row kernel: accumulators ``LO <= r < HI`` take tap row jh-r."""
    PW: tl.constexpr = KW // 2
    for kw in tl.static_range(KW):
        iw = w3 + (kw - PW)
        xv = tl.load(x_row + iw * sxw, mask=mrow & (iw >= 0) & (iw < W), other=0.0).to(tl.float32)
        wk = wc + kw * C
        if LO <= 0:
            acc0 += xv * tl.load(wk + jh * (KW * C))
        if R > 1 and LO <= 1 and HI > 1:
            acc1 += xv * tl.load(wk + (jh - 1) * (KW * C))
        if R > 2 and LO <= 2 and HI > 2:
            acc2 += xv * tl.load(wk + (jh - 2) * (KW * C))
        if R > 3 and LO <= 3 and HI > 3:
            acc3 += xv * tl.load(wk + (jh - 3) * (KW * C))
    return acc0, acc1, acc2, acc3


@triton.jit
def dw_fwd_rows_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    C, H, W,
    sxb, sxc, sxh, sxw,
    syb, syc, syh, syw,
    n_hb,
    KH: tl.constexpr, KW: tl.constexpr, HAS_BIAS: tl.constexpr,
    R: tl.constexpr, BS: tl.constexpr, BW: tl.constexpr, BC: tl.constexpr,
):
    """Forward, taps along a row unrolled: tile [BS lanes, BW columns, BC channels] x R rows per lane (R <= KH).

    Lane ``s`` owns output rows ``hb*BS*R + s*R + r`` (r < R). Input row ``jh`` (relative) feeds accumulator r
    through the tap row ``kh = jh - r``.
    """
    pid0 = tl.program_id(0)
    pid_w = tl.program_id(1)
    pid_c = tl.program_id(2)
    b = pid0 // n_hb
    hb = pid0 % n_hb
    PH: tl.constexpr = KH // 2
    s3 = tl.arange(0, BS)[:, None, None]
    w3 = (pid_w * BW + tl.arange(0, BW))[None, :, None]
    c3 = (pid_c * BC + tl.arange(0, BC))[None, None, :]
    mc = c3 < C
    # clamp channel indices so the unmasked weight loads stay in bounds (those lanes are never stored)
    wc = w_ptr + tl.minimum(c3, C - 1)
    h_lane = hb * (BS * R) + s3 * R
    x_img = x_ptr + b.to(tl.int64) * sxb + c3 * sxc
    acc0 = tl.zeros([BS, BW, BC], dtype=tl.float32)
    acc1 = tl.zeros([BS, BW, BC], dtype=tl.float32)
    acc2 = tl.zeros([BS, BW, BC], dtype=tl.float32)
    acc3 = tl.zeros([BS, BW, BC], dtype=tl.float32)
    for jh in tl.static_range(R - 1):  # first rows: only accumulators r <= jh
        ih = h_lane + (jh - PH)
        acc0, acc1, acc2, acc3 = _rows_step(
            acc0, acc1, acc2, acc3, x_img + ih * sxh, (ih >= 0) & (ih < H) & mc, w3, sxw, wc, jh, C, W, KW, R, 0, jh + 1)
    for jh in range(R - 1, KH):
        ih = h_lane + (jh - PH)
        acc0, acc1, acc2, acc3 = _rows_step(
            acc0, acc1, acc2, acc3, x_img + ih * sxh, (ih >= 0) & (ih < H) & mc, w3, sxw, wc, jh, C, W, KW, R, 0, R)
    for jh in tl.static_range(KH, KH + R - 1):  # last rows: only accumulators r > jh - KH
        ih = h_lane + (jh - PH)
        acc0, acc1, acc2, acc3 = _rows_step(
            acc0, acc1, acc2, acc3, x_img + ih * sxh, (ih >= 0) & (ih < H) & mc, w3, sxw, wc, jh, C, W, KW, R, jh - KH + 1, R)
    y_img = y_ptr + b.to(tl.int64) * syb + c3 * syc + w3 * syw
    _store_rows(y_img, syh, h_lane, H, mc & (w3 < W), b_ptr, c3, mc, HAS_BIAS, acc0, acc1, acc2, acc3, R)


@triton.jit
def _store_rows(y_img, syh, h_lane, H, mst, b_ptr, c3, mc, HAS_BIAS: tl.constexpr, acc0, acc1, acc2, acc3, R: tl.constexpr):
    """Add the bias and store the R per-row accumulators of a lane (rows h_lane + r) in the output's dtype."""
    ty = y_img.dtype.element_ty
    bias = tl.zeros([1, 1, 1], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(b_ptr + c3, mask=mc, other=0.0).to(tl.float32)
    tl.store(y_img + h_lane * syh, (acc0 + bias).to(ty), mask=mst & (h_lane < H))
    if R > 1:
        tl.store(y_img + (h_lane + 1) * syh, (acc1 + bias).to(ty), mask=mst & (h_lane + 1 < H))
    if R > 2:
        tl.store(y_img + (h_lane + 2) * syh, (acc2 + bias).to(ty), mask=mst & (h_lane + 2 < H))
    if R > 3:
        tl.store(y_img + (h_lane + 3) * syh, (acc3 + bias).to(ty), mask=mst & (h_lane + 3 < H))


@triton.jit
def _taps_step(acc0, acc1, acc2, acc3, wt0, wt1, wt2, wt3, xv, w_row, mwt,
               R: tl.constexpr, LO: tl.constexpr, HI: tl.constexpr, LOAD_W: tl.constexpr):
    """One input row window ``xv`` of the taps kernel: rotate the weight rows (loading the new one from ``w_row``
    unless past the last tap row) and update accumulators ``LO <= r < HI``."""
    wt3 = wt2
    wt2 = wt1
    wt1 = wt0
    if LOAD_W:
        wt0 = tl.load(w_row, mask=mwt, other=0.0)
    if LO <= 0:
        acc0 += xv * wt0
    if R > 1 and LO <= 1 and HI > 1:
        acc1 += xv * wt1
    if R > 2 and LO <= 2 and HI > 2:
        acc2 += xv * wt2
    if R > 3 and LO <= 3 and HI > 3:
        acc3 += xv * wt3
    return acc0, acc1, acc2, acc3, wt0, wt1, wt2, wt3


@triton.jit
def dw_fwd_taps_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    C, H, W,
    sxb, sxc, sxh, sxw,
    syb, syc, syh, syw,
    n_hb,
    KH: tl.constexpr, KW: tl.constexpr, HAS_BIAS: tl.constexpr,
    R: tl.constexpr, BS: tl.constexpr, BW: tl.constexpr, BC: tl.constexpr, KWP: tl.constexpr,
):
    """Forward, taps along a row as a tensor dimension: tile [BS*BW positions, KWP taps, BC channels].

    Each step loads one input row window (all KW taps at once) and one weight row; the weight rows of the
    previous R-1 steps stay in registers (rotated), so accumulator r sees tap row ``jh - r``.
    The tap axis is summed once at the end.
    """
    pid0 = tl.program_id(0)
    pid_w = tl.program_id(1)
    pid_c = tl.program_id(2)
    b = pid0 // n_hb
    hb = pid0 % n_hb
    PH: tl.constexpr = KH // 2
    PW: tl.constexpr = KW // 2
    BP: tl.constexpr = BS * BW
    p = tl.arange(0, BP)
    s3 = (p // BW)[:, None, None]
    w3 = (pid_w * BW + p % BW)[:, None, None]
    k3 = tl.arange(0, KWP)[None, :, None]
    c3 = (pid_c * BC + tl.arange(0, BC))[None, None, :]
    mc = c3 < C
    mk = k3 < KW
    h_lane = hb * (BS * R) + s3 * R
    iw = w3 + k3 - PW
    mwin = (iw >= 0) & (iw < W) & mk & mc
    x_win = x_ptr + b.to(tl.int64) * sxb + c3 * sxc + iw * sxw
    w_tap = w_ptr + k3 * C + c3
    mwt = mk & mc
    acc0 = tl.zeros([BP, KWP, BC], dtype=tl.float32)
    acc1 = tl.zeros([BP, KWP, BC], dtype=tl.float32)
    acc2 = tl.zeros([BP, KWP, BC], dtype=tl.float32)
    acc3 = tl.zeros([BP, KWP, BC], dtype=tl.float32)
    wt0 = tl.zeros([1, KWP, BC], dtype=tl.float32)
    wt1 = tl.zeros([1, KWP, BC], dtype=tl.float32)
    wt2 = tl.zeros([1, KWP, BC], dtype=tl.float32)
    wt3 = tl.zeros([1, KWP, BC], dtype=tl.float32)
    for jh in tl.static_range(R - 1):
        ih = h_lane + (jh - PH)
        xv = tl.load(x_win + ih * sxh, mask=mwin & (ih >= 0) & (ih < H), other=0.0).to(tl.float32)
        acc0, acc1, acc2, acc3, wt0, wt1, wt2, wt3 = _taps_step(
            acc0, acc1, acc2, acc3, wt0, wt1, wt2, wt3, xv, w_tap + jh * (KW * C), mwt, R, 0, jh + 1, True)
    for jh in range(R - 1, KH):
        ih = h_lane + (jh - PH)
        xv = tl.load(x_win + ih * sxh, mask=mwin & (ih >= 0) & (ih < H), other=0.0).to(tl.float32)
        acc0, acc1, acc2, acc3, wt0, wt1, wt2, wt3 = _taps_step(
            acc0, acc1, acc2, acc3, wt0, wt1, wt2, wt3, xv, w_tap + jh * (KW * C), mwt, R, 0, R, True)
    for jh in tl.static_range(KH, KH + R - 1):
        ih = h_lane + (jh - PH)
        xv = tl.load(x_win + ih * sxh, mask=mwin & (ih >= 0) & (ih < H), other=0.0).to(tl.float32)
        acc0, acc1, acc2, acc3, wt0, wt1, wt2, wt3 = _taps_step(
            acc0, acc1, acc2, acc3, wt0, wt1, wt2, wt3, xv, w_tap, mwt, R, jh - KH + 1, R, False)
    y_img = y_ptr + b.to(tl.int64) * syb + c3 * syc + w3 * syw
    # the tap axis is summed here; [BP, 1, BC] matches the store helper's shapes
    _store_rows(y_img, syh, h_lane, H, mc & (w3 < W), b_ptr, c3, mc, HAS_BIAS,
                tl.sum(acc0, axis=1)[:, None, :], tl.sum(acc1, axis=1)[:, None, :],
                tl.sum(acc2, axis=1)[:, None, :], tl.sum(acc3, axis=1)[:, None, :], R)


@triton.jit
def dw_grad_weight_kernel(
    x_ptr, g_ptr, part_ptr,
    C, H, W,
    sxb, sxc, sxh, sxw,
    sgb, sgc, sgh, sgw,
    n_hb, n_wb,
    KH: tl.constexpr, KW: tl.constexpr, KWP: tl.constexpr,
    R: tl.constexpr, SUB: tl.constexpr, BS: tl.constexpr, BW: tl.constexpr, BC: tl.constexpr,
):
    """Weight gradient, first stage: per-chunk partial sums ``part[chunk, kh, kw, c]`` (fp32).

    A chunk is BS lanes of SUB output rows (one image, one BW column block). The program handles tap rows
    ``kh0 .. kh0+R-1``: each step loads one input row window [BP, KWP, BC] and one output-gradient row; the
    gradient rows of the previous R-1 steps stay in registers (rotated), so one input row serves R tap rows.
    """
    chunk = tl.program_id(0)
    pid_k = tl.program_id(1)
    pid_c = tl.program_id(2)
    b = chunk // (n_hb * n_wb)
    rem = chunk % (n_hb * n_wb)
    hb = rem // n_wb
    wb = rem % n_wb
    kh0 = pid_k * R
    PH: tl.constexpr = KH // 2
    PW: tl.constexpr = KW // 2
    BP: tl.constexpr = BS * BW
    p = tl.arange(0, BP)
    s3 = (p // BW)[:, None, None]
    w3 = (wb * BW + p % BW)[:, None, None]
    k3 = tl.arange(0, KWP)[None, :, None]
    c3 = (pid_c * BC + tl.arange(0, BC))[None, None, :]
    mc = c3 < C
    mk = k3 < KW
    h_lane = hb * (BS * SUB) + s3 * SUB
    iw = w3 + k3 - PW
    mwin = (iw >= 0) & (iw < W) & mk & mc
    mg = (w3 < W) & mc
    x_win = x_ptr + b.to(tl.int64) * sxb + c3 * sxc + iw * sxw
    g_col = g_ptr + b.to(tl.int64) * sgb + c3 * sgc + w3 * sgw
    acc0 = tl.zeros([BP, KWP, BC], dtype=tl.float32)
    acc1 = tl.zeros([BP, KWP, BC], dtype=tl.float32)
    acc2 = tl.zeros([BP, KWP, BC], dtype=tl.float32)
    acc3 = tl.zeros([BP, KWP, BC], dtype=tl.float32)
    g0 = tl.zeros([BP, 1, BC], dtype=tl.float32)
    g1 = tl.zeros([BP, 1, BC], dtype=tl.float32)
    g2 = tl.zeros([BP, 1, BC], dtype=tl.float32)
    g3 = tl.zeros([BP, 1, BC], dtype=tl.float32)
    # step t: output-gradient row h_lane + t (t < SUB) and input row h_lane + t + kh0 - PH;
    # g_r holds the gradient row loaded r steps ago, i.e. the one that meets this input row at tap row kh0 + r
    for t in range(0, SUB + R - 1):
        g3 = g2
        g2 = g1
        g1 = g0
        h = h_lane + t
        g0 = tl.load(g_col + h * sgh, mask=mg & (h < H) & (t < SUB), other=0.0).to(tl.float32)
        ih = h + (kh0 - PH)
        xv = tl.load(x_win + ih * sxh, mask=mwin & (ih >= 0) & (ih < H), other=0.0).to(tl.float32)
        acc0 += xv * g0
        if R > 1:
            acc1 += xv * g1
        if R > 2:
            acc2 += xv * g2
        if R > 3:
            acc3 += xv * g3
    k2 = tl.arange(0, KWP)[:, None]
    c2 = (pid_c * BC + tl.arange(0, BC))[None, :]
    m2 = (k2 < KW) & (c2 < C)
    out = part_ptr + chunk.to(tl.int64) * (KH * KW * C) + k2 * C + c2
    tl.store(out + kh0 * (KW * C), tl.sum(acc0, axis=0), mask=m2 & (kh0 < KH))
    if R > 1:
        tl.store(out + (kh0 + 1) * (KW * C), tl.sum(acc1, axis=0), mask=m2 & (kh0 + 1 < KH))
    if R > 2:
        tl.store(out + (kh0 + 2) * (KW * C), tl.sum(acc2, axis=0), mask=m2 & (kh0 + 2 < KH))
    if R > 3:
        tl.store(out + (kh0 + 3) * (KW * C), tl.sum(acc3, axis=0), mask=m2 & (kh0 + 3 < KH))
