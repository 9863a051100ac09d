"""The compiled AVX2 kernels (unireplknet.ops.native) and the Dilated Reparam Block's training step on them
(unireplknet.ops.drb_native): same outputs, gradients and BatchNorm statistics as PyTorch's kernels."""
from __future__ import annotations

import copy
import platform
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unireplknet.layers import DilatedReparamBlock
from unireplknet.model import UniRepLKNet, UniRepLKNetBlock
from unireplknet.ops import fast_training, native, set_native_kernels
from unireplknet.ops.drb_native import _kkc, native_drb_applicable

TOL = 1e-5
CAPABLE = (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
           and torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"))
needs_kernels = pytest.mark.skipif(not CAPABLE, reason="the compiled kernels target Linux x86-64 with AVX2")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-7)).item()


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 2, 3, 1)


@needs_kernels
def test_kernels_build_on_this_machine() -> None:
    """CI installs a C compiler: the kernels must build and load here (a fallback would hide a broken build)."""
    assert native.available(), native.unavailable_reason()
    assert native.library_path() is not None and native.library_path().is_file()


def _padded(x: torch.Tensor, pad: int) -> torch.Tensor:
    return _nhwc(F.pad(x, (pad,) * 4).contiguous(memory_format=torch.channels_last))


@needs_kernels
@pytest.mark.parametrize("k,r,h,w,c", [(13, 1, 14, 14, 16), (5, 1, 9, 13, 8), (7, 2, 7, 7, 24), (3, 5, 15, 12, 8),
                                       (3, 3, 1, 3, 8), (17, 1, 6, 21, 8), (9, 4, 11, 5, 16)])
def test_forward_and_weight_grad_match_conv2d(k: int, r: int, h: int, w: int, c: int) -> None:
    g = torch.Generator().manual_seed(k * 100 + r)
    n, pad = 3, r * (k - 1) // 2
    extra = 2  # the buffer's border may be wider than this conv's padding (the block pads for its largest branch)
    x = torch.randn(n, c, h, w, generator=g)
    weight = torch.randn(c, 1, k, k, generator=g)
    dy = torch.randn(n, c, h, w, generator=g)
    ref = F.conv2d(x.double(), weight.double(), padding=pad, dilation=r, groups=c)
    xb = _padded(x, pad + extra)[:, extra:, extra:]
    window = (pad, pad + h, pad, pad + w)
    out = torch.empty(n, h, w, c)
    stats = torch.empty(torch.get_num_threads(), 2, c, dtype=torch.float64)
    native.dw_forward(xb, window, out, _kkc(weight), r, stats=stats)
    assert _rel(out.permute(0, 3, 1, 2), ref) < TOL
    s = stats.sum(0)
    assert _rel(s[0], ref.sum(dim=(0, 2, 3))) < TOL
    assert _rel(s[1], (ref * ref).sum(dim=(0, 2, 3))) < TOL
    native.dw_forward(xb, window, out, _kkc(weight), r, accumulate=True)  # out += conv
    assert _rel(out.permute(0, 3, 1, 2), 2 * ref) < TOL
    # weight gradient = autograd's, from the same buffer
    wd = weight.double().requires_grad_()
    F.conv2d(x.double(), wd, padding=pad, dilation=r, groups=c).backward(dy.double())
    part = torch.empty(torch.get_num_threads(), k, k, c)
    gw = native.dw_weight_grad(xb, window, _nhwc(dy).contiguous(), k, r, part)
    assert _rel(gw.permute(2, 0, 1).unsqueeze(1), wd.grad) < TOL
    # the input gradient is the forward conv of the zero-bordered output gradient with the flipped kernel
    xd = x.double().requires_grad_()
    F.conv2d(xd, weight.double(), padding=pad, dilation=r, groups=c).backward(dy.double())
    gx = torch.empty(n, h, w, c)
    native.dw_forward(_padded(dy, pad), window, gx, _kkc(weight, flip=True), r)
    assert _rel(gx.permute(0, 3, 1, 2), xd.grad) < TOL


def _randomize(module: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def _step(module: nn.Module, x: torch.Tensor, fast: bool, use_native: bool, steps: int = 2, x_grad: bool = True):
    """``steps`` training steps; returns the last output, the input gradient and the module itself."""
    xi = x.clone().requires_grad_(x_grad)
    previous = native.native_kernels_enabled()
    set_native_kernels(use_native)
    try:
        with fast_training(fast):
            for _ in range(steps):
                y = module(xi)
                g = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(y.dtype)
                (y * g).sum().backward()
    finally:
        set_native_kernels(previous)
    return y, xi.grad, module


def _assert_matches_fp64(module: nn.Module, x: torch.Tensor, steps: int = 2, x_grad: bool = True,
                         strict: bool = False) -> str:
    """fp32 on the compiled kernels vs the plain path in fp64 (outputs, every gradient, every buffer).

    ``strict``: each tensor's max abs error is below 1e-5 of the fp64 tensor's max abs value. Otherwise (whole
    blocks and models, where fp32 itself cannot reach that) the error may instead be up to twice the error of
    PyTorch's plain fp32 path against the same reference, or 1e-6 of the largest gradient (gradients that are
    0 in theory, e.g. of a bias followed by a training-mode BatchNorm, are fp32 rounding noise either way).
    """
    plain_module = copy.deepcopy(module)
    ref_module = copy.deepcopy(module).double()
    y, gx, m = _step(module, x, True, True, steps, x_grad)
    y32, gx32, m32 = _step(plain_module, x, False, False, steps, x_grad)
    y_ref, gx_ref, m_ref = _step(ref_module, x.double(), False, False, steps, x_grad)
    grad_scale = max(p.grad.abs().max().item() for p in m_ref.parameters() if p.grad is not None)

    def check(name: str, a: torch.Tensor, a32: torch.Tensor, ref: torch.Tensor) -> None:
        ref = ref.double()
        err, err32 = (a.double() - ref).abs().max().item(), (a32.double() - ref).abs().max().item()
        allowed = TOL * ref.abs().max().item()
        if not strict:
            allowed = max(allowed, 2 * err32, 1e-6 * grad_scale)
        assert err <= allowed, f"{name}: max abs error {err:.2e} > {allowed:.2e} (PyTorch fp32: {err32:.2e})"

    check("output", y, y32, y_ref)
    if x_grad:
        check("input grad", gx, gx32, gx_ref)
    for (name, p), p32, p_ref in zip(m.named_parameters(), m32.parameters(), m_ref.parameters()):
        assert (p.grad is None) == (p_ref.grad is None), name
        if p.grad is not None:
            check(name, p.grad, p32.grad, p_ref.grad)
    for (name, b), b32, b_ref in zip(m.named_buffers(), m32.buffers(), m_ref.buffers()):
        if b.dtype == torch.long:
            assert torch.equal(b, b_ref), name
        else:
            check(name, b, b32, b_ref)
    return type(y.grad_fn).__name__ if y.grad_fn is not None else ""


@needs_kernels
@pytest.mark.parametrize("kernel", [5, 7, 9, 11, 13, 17])
@pytest.mark.parametrize("channels_last", [False, True])
def test_drb_matches_plain_fp64(kernel: int, channels_last: bool) -> None:
    torch.manual_seed(kernel)
    block = DilatedReparamBlock(16, kernel).train()
    _randomize(block)
    x = torch.randn(3, 16, 15, 12) * 2 + 0.5  # odd sizes, a non-zero mean
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert native_drb_applicable(x, [block.lk_origin.weight])
    assert _assert_matches_fp64(block, x, strict=True) == "_DilatedReparamNativeBackward"


@needs_kernels
def test_every_variant_block_configuration_fp32() -> None:
    """Each block kernel size any variant uses, whole blocks (DRB + BN/SE/FFN), fp32 native vs fp64 plain."""
    from unireplknet.model import VARIANTS, default_kernel_sizes

    sizes = {k for v in VARIANTS.values() for stage in default_kernel_sizes(v["depths"]) for k in stage}
    for k in sorted(sizes):
        torch.manual_seed(k)
        block = UniRepLKNetBlock(8, k, drop_path=0.0, layer_scale_init_value=1e-6).train()
        _randomize(block)
        _assert_matches_fp64(block, torch.randn(2, 8, 14, 14))


@needs_kernels
@pytest.mark.parametrize("checkpointing", [False, True])
def test_model_fp32_matches_plain_fp64(checkpointing: bool) -> None:
    torch.manual_seed(0)
    model = UniRepLKNet(num_classes=10, depths=(1, 1, 2, 1), dims=(8, 16, 16, 24),
                        kernel_sizes=((3,), (13,), (13, 3), (7,)), layer_scale_init_value=0.5).train()
    _randomize(model)
    if checkpointing:
        model.set_grad_checkpointing()
    _assert_matches_fp64(model, torch.randn(2, 3, 64, 48))


@needs_kernels
def test_drb_frozen_parts_no_input_grad_and_momentum_none() -> None:
    torch.manual_seed(3)
    block = DilatedReparamBlock(8, 13).train()
    _randomize(block)
    block.origin_bn.momentum = None  # cumulative average
    for p in list(block.branches.values())[1].parameters():
        p.requires_grad_(False)
    _assert_matches_fp64(block, torch.randn(2, 8, 9, 9), steps=3, x_grad=False, strict=True)


def test_fallbacks_keep_pytorch_kernels() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 12, 9, 9)
    block = DilatedReparamBlock(12, 13).train()  # 12 channels: not a multiple of 8
    assert not native_drb_applicable(x, [block.lk_origin.weight])
    assert not native_drb_applicable(x.double(), [block.lk_origin.weight.double()])
    y, _, _ = _step(block, x, True, True, steps=1)
    assert type(y.grad_fn).__name__ == "_DilatedReparamTrainBackward"
    block8 = DilatedReparamBlock(8, 13).train()
    y, _, _ = _step(block8, torch.randn(2, 8, 9, 9), True, False, steps=1)  # switched off
    assert type(y.grad_fn).__name__ == "_DilatedReparamTrainBackward"


def test_build_failures_fall_back_with_a_reason(monkeypatch, tmp_path, caplog) -> None:
    """No compiler or a failing build: unavailable with the reason logged once; the block trains on PyTorch's
    kernels and gives the same numbers."""
    monkeypatch.setenv("UNIREPLKNET_CACHE", str(tmp_path))
    try:
        monkeypatch.setattr(native, "_compiler", lambda: None)
        native._reset()
        with caplog.at_level("INFO", logger="unireplknet.ops.native"):
            assert not native.available()
            assert not native.available()
        if CAPABLE:
            assert "no C compiler" in native.unavailable_reason()
            assert sum("unavailable" in r.getMessage() for r in caplog.records) == 1
        torch.manual_seed(0)
        block = DilatedReparamBlock(8, 7).train()
        _randomize(block)
        assert _assert_matches_fp64(block, torch.randn(2, 8, 9, 9)) == "_DilatedReparamTrainBackward"
        if CAPABLE:
            monkeypatch.setattr(native, "_compiler", lambda: "/bin/false")
            native._reset()
            assert not native.available()
            assert "failed" in native.unavailable_reason()
            assert not list(tmp_path.rglob("*.so")) and not list(tmp_path.rglob("*.tmp"))  # nothing half-written
    finally:
        monkeypatch.undo()
        native._reset()


@needs_kernels
def test_build_goes_to_the_cache_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("UNIREPLKNET_CACHE", str(tmp_path))
    try:
        native._reset()
        assert native.available(), native.unavailable_reason()
        built = list((tmp_path / "kernels").glob("urlk_dwconv_*.so"))
        assert len(built) == 1 and native.library_path() == built[0]
        native._reset()
        assert native.available() and native.library_path() == built[0]  # reused, not rebuilt
    finally:
        monkeypatch.undo()
        native._reset()


@needs_kernels
def test_damaged_cache_entry_is_rebuilt(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("UNIREPLKNET_CACHE", str(tmp_path))
    try:
        path = native._build(native._compiler())  # built, never loaded
        path.unlink()
        path.write_bytes(b"not a shared library")  # e.g. a copy cut short by a full disk
        native._reset()
        assert native.available(), native.unavailable_reason()
        assert native.library_path() == path and path.stat().st_size > 1000
    finally:
        monkeypatch.undo()
        native._reset()


@needs_kernels
def test_gelu_grn_kernels_match_pytorch() -> None:
    """GELU recomputed inside the GRN passes: the GRN output, the dot products and the input gradient."""
    g = torch.Generator().manual_seed(5)
    n, hh, ww, d = 3, 5, 7, 24
    h = torch.randn(n, hh, ww, d, generator=g) * 2
    f = torch.rand(n, 1, 1, d, generator=g) + 0.5
    beta = torch.randn(1, 1, 1, d, generator=g)
    scale = torch.randn(n, 1, 1, d, generator=g)
    go = torch.randn(n, hh, ww, d, generator=g)
    a = F.gelu(h.double())
    out = torch.empty_like(h)
    native.gelu_grn_out(h, f, beta, out)
    assert _rel(out, a * f.double() + beta.double()) < TOL
    native.gelu_grn_out(h, f, None, out)
    assert _rel(out, a * f.double()) < TOL
    dots, sums = native.gelu_dots(go, h)
    assert _rel(dots, (go.double() * a).sum(dim=(1, 2))) < TOL
    assert _rel(sums, go.double().sum(dim=(1, 2))) < TOL
    sq, _ = native.gelu_dots(None, h)
    assert _rel(sq, (a * a).sum(dim=(1, 2))) < TOL
    gh = torch.empty_like(h)
    native.gelu_grn_backward(go, h, f, scale, gh)
    ref = torch.ops.aten.gelu_backward(go.double() * f.double() + a * scale.double(), h.double())
    assert _rel(gh, ref) < TOL


@needs_kernels
def test_per_sample_channel_kernels_match_pytorch() -> None:
    g = torch.Generator().manual_seed(6)
    n, c = 3, 16
    x = torch.randn(n, c, 5, 9, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randn(n, c, 5, 9, generator=g).contiguous(memory_format=torch.channels_last)
    assert native.nhwc_applicable(x, y) and not native.nhwc_applicable(x.contiguous())
    sums = native.nc_sums(x, y)
    xd, yd = x.double(), y.double()
    for got, want in zip(sums, (xd.sum(dim=(2, 3)), (xd * yd).sum(dim=(2, 3)), yd.sum(dim=(2, 3)))):
        assert _rel(got, want) < TOL
    kg, kx, k0 = torch.randn(n, c, generator=g), torch.randn(c, generator=g), torch.randn(n, c, generator=g)
    out = native.affine_nc(x, y, kg, kx, k0)
    want = kg.double()[:, :, None, None] * xd + kx.double()[None, :, None, None] * yd + k0.double()[:, :, None, None]
    assert out.is_contiguous(memory_format=torch.channels_last) and _rel(out, want) < TOL


@needs_kernels
def test_block_backward_runs_on_the_compiled_kernels(monkeypatch) -> None:
    """A fp32 channels-last block in training takes every compiled path (and matches fp64 while doing so)."""
    from unireplknet.ops import fast_block

    calls = {"bn_se": 0, "mlp": 0, "bn_scale": 0}
    for name, key in (("_bn_se_backward_native", "bn_se"), ("_mlp_tail_backward_native", "mlp"),
                      ("_bn_scale_backward_native", "bn_scale")):
        fn = getattr(fast_block, name)
        def counted(*a, _fn=fn, _k=key):
            calls[_k] += 1
            return _fn(*a)

        monkeypatch.setattr(fast_block, name, counted)
    torch.manual_seed(2)
    block = UniRepLKNetBlock(16, 13, drop_path=0.0, layer_scale_init_value=0.5).train()
    _randomize(block)
    name = _assert_matches_fp64(block, torch.randn(2, 16, 11, 9).contiguous(memory_format=torch.channels_last))
    assert calls == {"bn_se": 2, "mlp": 2, "bn_scale": 2}, calls
    assert name
