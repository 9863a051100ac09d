"""The fast training path (unireplknet.ops.fast_train) computes the plain path's outputs, gradients and BN statistics."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from unireplknet.layers import GRN, DilatedReparamBlock, default_branches
from unireplknet.model import UniRepLKNet
from unireplknet.ops import fast_train as ft
from unireplknet.ops import fast_training, fast_training_enabled, set_fast_training

TOL = 1e-5


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max abs difference relative to the reference's scale (gradients that are exactly 0 in theory, e.g. of a
    bias followed by a training-mode BN, come out as ~1e-15 rounding noise: compared against 1e-9)."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-9)).item()


def _randomize_bn(module: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g, dtype=m.weight.dtype) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=m.bias.dtype))
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g, dtype=m.running_mean.dtype))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g, dtype=m.running_var.dtype) + 0.5)


def _run(module: nn.Module, x: torch.Tensor, fast: bool, steps: int = 1):
    xi = x.clone().requires_grad_()
    with fast_training(fast):
        for _ in range(steps):
            y = module(xi)
            g = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=y.dtype)
            (y * g).sum().backward()
    return y, xi.grad


def _compare(m_fast: nn.Module, m_plain: nn.Module, x: torch.Tensor, steps: int = 1) -> None:
    y1, gx1 = _run(m_fast, x, True, steps)
    y2, gx2 = _run(m_plain, x, False, steps)
    assert _rel(y1, y2) < TOL
    assert _rel(gx1, gx2) < TOL
    for (n1, p1), (_, p2) in zip(m_fast.named_parameters(), m_plain.named_parameters()):
        assert (p1.grad is None) == (p2.grad is None), n1
        if p1.grad is not None:
            assert _rel(p1.grad, p2.grad) < TOL, n1
    for (n1, b1), (_, b2) in zip(m_fast.named_buffers(), m_plain.named_buffers()):
        if b1.dtype == torch.long:
            assert torch.equal(b1, b2), n1
        else:
            assert _rel(b1, b2) < TOL, n1


def test_switch_default_and_context() -> None:
    assert fast_training_enabled()
    with fast_training(False):
        assert not fast_training_enabled()
        with fast_training(True):
            assert fast_training_enabled()
        assert not fast_training_enabled()
    assert fast_training_enabled()
    set_fast_training(False)
    try:
        assert not fast_training_enabled()
    finally:
        set_fast_training(True)


@pytest.mark.parametrize("kernel,batch", [(5, 2), (7, 1), (9, 2), (11, 1), (13, 1), (13, 3), (15, 2), (17, 1), (21, 2)])
def test_drb_matches_plain(kernel: int, batch: int) -> None:
    torch.manual_seed(kernel)
    block = DilatedReparamBlock(3, kernel).double().train()
    assert block.branch_spec == default_branches(kernel)
    _randomize_bn(block)
    plain = copy.deepcopy(block)
    x = torch.randn(batch, 3, 13, 11, dtype=torch.float64)
    _compare(block, plain, x, steps=2)


@pytest.mark.parametrize("channels_last", [False, True])
def test_drb_odd_size_fp32(channels_last: bool) -> None:
    torch.manual_seed(0)
    block = DilatedReparamBlock(2, 13).train()
    _randomize_bn(block)
    plain = copy.deepcopy(block)
    x = torch.randn(2, 2, 97, 131)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    block64, plain64 = block.double(), plain.double()
    _compare(block64, plain64, x.double())
    # fp32: the same within fp32 rounding
    block32, plain32 = copy.deepcopy(block64).float(), copy.deepcopy(plain64).float()
    y1, g1 = _run(block32, x, True)
    y2, g2 = _run(plain32, x, False)
    assert _rel(y1, y2) < 1e-4 and _rel(g1, g2) < 1e-4


def test_drb_custom_branches_and_momentum_none() -> None:
    torch.manual_seed(0)
    block = DilatedReparamBlock(3, 11, branches=[(3, 1), (5, 2), (3, 5), (1, 1)]).double().train()
    _randomize_bn(block)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    plain = copy.deepcopy(block)
    _compare(block, plain, torch.randn(2, 3, 16, 12, dtype=torch.float64), steps=3)


def test_drb_no_input_grad() -> None:
    block = DilatedReparamBlock(4, 7).double().train()
    plain = copy.deepcopy(block)
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    g = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    with fast_training(True):
        (block(x) * g).sum().backward()
    with fast_training(False):
        (plain(x) * g).sum().backward()
    for p1, p2 in zip(block.parameters(), plain.parameters()):
        assert _rel(p1.grad, p2.grad) < TOL


def test_fast_path_used_only_in_training_with_grad() -> None:
    block = DilatedReparamBlock(4, 7).train()
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    assert "DilatedReparamTrain" in type(block(x).grad_fn).__name__
    with fast_training(False):
        assert "DilatedReparamTrain" not in type(block(x).grad_fn).__name__
    with torch.no_grad():
        block(x)
    block.eval()
    assert "DilatedReparamTrain" not in type(block(x).grad_fn).__name__
    block.reparameterize()
    assert "DilatedReparamTrain" not in type(block(x).grad_fn).__name__


def test_sync_bn_and_1d_keep_plain_path() -> None:
    block = DilatedReparamBlock(4, 7, ndim=1).train()
    out = block(torch.randn(2, 4, 20, requires_grad=True))
    assert "DilatedReparamTrain" not in type(out.grad_fn).__name__


def test_grn_matches_plain() -> None:
    torch.manual_seed(0)
    grn = GRN(12).double()
    with torch.no_grad():
        grn.gamma.normal_()
        grn.beta.normal_()
    plain = copy.deepcopy(grn)
    x = torch.randn(3, 5, 7, 12, dtype=torch.float64)
    x[1, :, :, 2] = 0  # a zero-norm channel: the gradient there is 0 as in torch.norm's backward
    _compare(grn, plain, x)
    nobias = GRN(12, use_bias=False).double()
    with torch.no_grad():
        nobias.gamma.normal_()
    _compare(nobias, copy.deepcopy(nobias), x)


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (5, 1), (7, 2), (3, 5)])
def test_depthwise_conv2d_train(kernel: int, dilation: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 6, 11, 17, dtype=torch.float64)
    w = torch.randn(6, 1, kernel, kernel, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    args = [t.clone().requires_grad_() for t in (x, w, b)]
    ref = [t.clone().requires_grad_() for t in (x, w, b)]
    y1 = ft.depthwise_conv2d_train(*args, dilation=dilation)
    y2 = torch.nn.functional.conv2d(ref[0], ref[1], ref[2], padding=dilation * (kernel - 1) // 2,
                                    dilation=dilation, groups=6)
    g = torch.randn_like(y2)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    assert _rel(y1, y2) < TOL
    for a, r in zip(args, ref):
        assert _rel(a.grad, r.grad) < TOL


def _tiny_model(**kw) -> UniRepLKNet:
    return UniRepLKNet(num_classes=10, depths=(1, 1, 2, 1), dims=(4, 8, 8, 8),
                       kernel_sizes=((3,), (13,), (13, 3), (7,)), layer_scale_init_value=0.5, **kw)


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_model_matches_plain(checkpointing: bool, channels_last: bool) -> None:
    torch.manual_seed(0)
    model = _tiny_model().double().train()
    _randomize_bn(model)
    for m in model.modules():  # non-trivial GRN so its gradient path is exercised
        if isinstance(m, GRN):
            with torch.no_grad():
                m.gamma.normal_()
                m.beta.normal_()
    if checkpointing:
        model.set_grad_checkpointing()
    plain = copy.deepcopy(model)
    x = torch.randn(2, 3, 64, 48, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    _compare(model, plain, x)


@pytest.mark.slow
def test_create_model_grad_checkpointing() -> None:
    from unireplknet import create_model

    torch.manual_seed(0)
    model = create_model("unireplknet_a", num_classes=10).double().train()
    _randomize_bn(model)
    model.set_grad_checkpointing()
    plain = copy.deepcopy(model)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    _compare(model, plain, x)
    model.eval()
    plain.eval()
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))  # eval: the plain path in both, with the same running stats
