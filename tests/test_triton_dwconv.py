"""Triton depthwise convolution (unireplknet.ops): kernels under Triton's CPU interpreter, CPU fallback, bad input.

CI has no GPU: the kernels run with ``TRITON_INTERPRET=1`` in a subprocess (tests/dwconv_interp_cases.py), so the
interpreter setting never reaches the rest of the session.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from unireplknet.ops import depthwise_conv2d, depthwise_conv2d_nhwc, depthwise_conv2d_triton

HERE = Path(__file__).parent
SRC = HERE.parent / "src"
TOL = {"fp32": 1e-5, "bf16": 2e-2, "fp16": 3e-3}
CASE_NAMES = ["k3_nchw_bias", "k5_cl_nobias", "k13_nchw_taps", "k13_cl_rows", "k7x5_nchw_rows_lanes",
              "k7x5_cl_taps_tiles", "k3_bf16", "k5_fp16_cl"]


def _run_python(args: list, interpret: bool) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env.pop("TRITON_INTERPRET", None)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def interp_results() -> dict:
    out = _run_python([str(HERE / "dwconv_interp_cases.py"), *CASE_NAMES], interpret=True)
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("name", CASE_NAMES)
def test_triton_matches_conv2d(interp_results: dict, name: str) -> None:
    res = interp_results[name]
    tol = TOL[res["dtype"]]
    for what, err in res["err"].items():
        assert err <= tol, f"{name}: {what} relative error {err:.3g} > {tol}"
    assert "y" in res["err"] and "gw" in res["err"]
    assert res["same_layout"], f"{name}: output lost the input memory format"
    assert res["out_dtype"] == {"fp32": "torch.float32", "bf16": "torch.bfloat16", "fp16": "torch.float16"}[res["dtype"]]


def test_autograd_cases_check_all_grads(interp_results: dict) -> None:
    """The default-config cases go through the autograd Function: input, weight and bias grads are all compared."""
    assert interp_results["k3_nchw_bias"]["grads"] == ["gb", "gw", "gx", "y"]
    assert interp_results["k13_cl_rows"]["grads"] == ["gb", "gw", "gx", "y"]
    assert interp_results["k5_cl_nobias"]["grads"] == ["gw", "gx", "y"]


def test_cpu_fallback_equals_conv2d_without_triton_kernels() -> None:
    code = (
        "import sys, torch, torch.nn.functional as F\n"
        "from unireplknet.ops import depthwise_conv2d, depthwise_conv2d_nhwc\n"
        "g = torch.Generator().manual_seed(0)\n"
        "x = torch.randn(2, 5, 9, 7, generator=g); w = torch.randn(5, 1, 7, 3, generator=g); b = torch.randn(5)\n"
        "y = depthwise_conv2d(x, w, b)\n"
        "assert torch.equal(y, F.conv2d(x, w, b, padding=(3, 1), groups=5))\n"
        "xn = x.permute(0, 2, 3, 1).contiguous()\n"
        "yn = depthwise_conv2d_nhwc(xn, w, b)\n"
        "assert yn.shape == (2, 9, 7, 5)\n"
        "assert torch.equal(yn, F.conv2d(xn.permute(0, 3, 1, 2), w, b, padding=(3, 1), groups=5).permute(0, 2, 3, 1))\n"
        "assert torch.allclose(yn, y.permute(0, 2, 3, 1), atol=1e-5)\n"
        "assert 'unireplknet.ops._dwconv_kernels' not in sys.modules\n"
        "print('ok')\n"
    )
    assert _run_python(["-c", code], interpret=False).strip() == "ok"


def test_cpu_fallback_autograd_and_layout() -> None:
    x = torch.randn(2, 4, 6, 5, requires_grad=True)
    w = torch.randn(4, 1, 5, 5, requires_grad=True)
    y = depthwise_conv2d(x.contiguous(memory_format=torch.channels_last), w)
    y.sum().backward()
    xr, wr = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    F.conv2d(xr, wr, padding=2, groups=4).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(w.grad, wr.grad)


@pytest.mark.parametrize(
    "x_shape, w_shape, b_shape, match",
    [
        ((2, 4, 8, 8), (4, 1, 4, 4), None, "odd"),
        ((2, 4, 8, 8), (4, 1, 3, 6), None, "odd"),
        ((2, 4, 8, 8), (4, 2, 3, 3), None, "not a depthwise"),
        ((2, 4, 8, 8), (8, 1, 3, 3), None, "not a depthwise"),
        ((4, 8, 8), (4, 1, 3, 3), None, "4-D"),
        ((2, 4, 8, 8), (4, 3, 3), None, "4-D"),
        ((2, 4, 8, 8), (4, 1, 3, 3), (5,), "bias"),
    ],
)
def test_bad_shapes_raise(x_shape, w_shape, b_shape, match) -> None:
    b = torch.randn(*b_shape) if b_shape else None
    with pytest.raises(ValueError, match=match):
        depthwise_conv2d(torch.randn(*x_shape), torch.randn(*w_shape), b)


def test_bad_dtypes_devices_raise() -> None:
    x = torch.randn(1, 3, 5, 5)
    w = torch.randn(3, 1, 3, 3)
    with pytest.raises(ValueError, match="dtype"):
        depthwise_conv2d(x, w.double())
    with pytest.raises(ValueError, match="dtype"):
        depthwise_conv2d(x.long(), w.long())
    with pytest.raises(ValueError, match="dtype"):
        depthwise_conv2d_triton(x.double(), w.double())  # the kernels take fp32/bf16/fp16 only
    # ...while the public function falls back to F.conv2d for float64
    torch.testing.assert_close(depthwise_conv2d(x.double(), w.double()),
                               F.conv2d(x.double(), w.double(), padding=1, groups=3))
    with pytest.raises(ValueError, match="dtype"):
        depthwise_conv2d(x, w, torch.randn(3).half())
    with pytest.raises(ValueError, match="meta"):
        depthwise_conv2d(x, w.to("meta"))
    with pytest.raises(ValueError, match="up to 63"):
        depthwise_conv2d_triton(torch.randn(1, 2, 4, 4), torch.randn(2, 1, 65, 3))
    with pytest.raises(ValueError, match="B x H x W x C"):
        depthwise_conv2d_nhwc(torch.randn(3, 5, 5), w)
