"""Run the Triton depthwise kernels under Triton's CPU interpreter and print their errors as JSON.

Used by tests/test_triton_dwconv.py in a subprocess, because ``TRITON_INTERPRET=1`` must be set before triton
is imported and must not leak into the rest of the test session. Each case compares the forward output and the
input / weight / bias gradients with float64 ``F.conv2d`` autograd; errors are relative to max(1, max |ref|).
"""
from __future__ import annotations

import json
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from unireplknet.ops import triton_dwconv as T  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# name: (B, C, H, W, KH, KW, channels_last, bias, dtype, forward config or None, weight-grad config or None)
CASES = {
    "k3_nchw_bias": (2, 3, 9, 11, 3, 3, False, True, "fp32", None, None),
    "k5_cl_nobias": (2, 5, 7, 6, 5, 5, True, False, "fp32", None, None),
    "k13_nchw_taps": (2, 3, 10, 7, 13, 13, False, True, "fp32", None, None),
    "k13_cl_rows": (1, 3, 6, 5, 13, 13, True, True, "fp32", None, None),
    "k7x5_nchw_rows_lanes": (2, 4, 9, 8, 7, 5, False, True, "fp32",
                             dict(kernel="rows", R=3, BS=2, BW=4, BC=2, num_warps=1),
                             dict(R=2, SUB=3, BS=2, BW=4, BC=2, num_warps=1)),
    "k7x5_cl_taps_tiles": (2, 6, 7, 9, 7, 5, True, True, "fp32",
                           dict(kernel="taps", R=4, BS=1, BW=4, BC=4, num_warps=1),
                           dict(R=4, SUB=4, BS=1, BW=4, BC=4, num_warps=1)),
    "k3_bf16": (2, 3, 6, 7, 3, 3, False, True, "bf16", None, None),
    "k5_fp16_cl": (1, 4, 5, 6, 5, 5, True, True, "fp16", None, None),
}


def _grads(conv, x, w, b, gy):
    xs, ws = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    bs = b.detach().clone().requires_grad_() if b is not None else None
    y = conv(xs, ws, bs)
    y.backward(gy)
    return y.detach(), xs.grad, ws.grad, (bs.grad if bs is not None else None)


def _ref_conv(x, w, b):
    return F.conv2d(x, w, b, padding=(w.shape[2] // 2, w.shape[3] // 2), groups=x.shape[1])


def run_case(spec) -> dict:
    bsz, c, h, w_, kh, kw, cl, has_bias, dname, fcfg, gcfg = spec
    g = torch.Generator().manual_seed(0)
    dtype = DTYPES[dname]
    x = torch.randn(bsz, c, h, w_, generator=g).to(dtype)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    wt = torch.randn(c, 1, kh, kw, generator=g).to(dtype)
    bias = torch.randn(c, generator=g).to(dtype) if has_bias else None
    gy = torch.randn(bsz, c, h, w_, generator=g).to(dtype)
    ref = _grads(_ref_conv, x.double(), wt.double(), bias.double() if has_bias else None, gy.double())
    if fcfg is None:
        got = _grads(T.depthwise_conv2d_triton, x, wt, bias, gy)
    else:  # explicit tile configurations: forward and weight-gradient kernels only
        y = T._launch_forward(T._dense(x, cl), T._weight_taps(wt), bias, fcfg)
        gw = T._launch_grad_weight(T._dense(x, cl), T._dense(gy, cl), kh, kw, gcfg)
        got = (y, None, gw, None)
    err = {}
    for name, a, r in zip(("y", "gx", "gw", "gb"), got, ref):
        if a is not None and r is not None:
            err[name] = float((a.double() - r).abs().max()) / max(1.0, float(r.abs().max()))
    fmt = torch.channels_last if cl else torch.contiguous_format
    return dict(err=err, dtype=dname, same_layout=bool(got[0].is_contiguous(memory_format=fmt)),
                out_dtype=str(got[0].dtype), grads=sorted(err))


def main() -> int:
    names = sys.argv[1:] or list(CASES)
    print(json.dumps({name: run_case(CASES[name]) for name in names}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
