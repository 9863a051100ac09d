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
    bias or of GRN's beta followed by a linear layer and a training-mode BN, come out as 1e-15..1e-13 fp64
    rounding noise: compared against 1e-7, still far below any gradient that is not 0 in theory)."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-7)).item()


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


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (5, 1), (3, 3), (5, 2), (7, 2), (3, 5)])
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


# --------------------------------------------------------------------------- memory-lean block (ops.fast_block)
from unireplknet.model import UniRepLKNetBlock  # noqa: E402
from unireplknet.ops import fast_block as fb  # noqa: E402


def _randomize_block(block: nn.Module) -> None:
    _randomize_bn(block)
    g = torch.Generator().manual_seed(2)
    for m in block.modules():
        if isinstance(m, GRN):
            with torch.no_grad():
                m.gamma.copy_(torch.randn(m.gamma.shape, generator=g, dtype=m.gamma.dtype))
                if m.beta is not None:
                    m.beta.copy_(torch.randn(m.beta.shape, generator=g, dtype=m.beta.dtype))
    if getattr(block, "gamma", None) is not None:
        with torch.no_grad():
            block.gamma.copy_(torch.randn(block.gamma.shape, generator=g, dtype=block.gamma.dtype))


@pytest.mark.parametrize("kernel", [3, 5, 7, 13])
@pytest.mark.parametrize("layer_scale", [0.5, 0.0])
def test_block_matches_plain(kernel: int, layer_scale: float) -> None:
    torch.manual_seed(kernel)
    block = UniRepLKNetBlock(8, kernel, layer_scale_init_value=layer_scale).double().train()
    _randomize_block(block)
    plain = copy.deepcopy(block)
    x = torch.randn(3, 8, 11, 9, dtype=torch.float64)
    assert fb.block_fast_path_ok(block, x.requires_grad_())
    _compare(block, plain, x.detach(), steps=2)


@pytest.mark.parametrize("channels_last", [False, True])
def test_block_fp32_odd_size(channels_last: bool) -> None:
    torch.manual_seed(0)
    block = UniRepLKNetBlock(16, 13, layer_scale_init_value=0.3).train()
    _randomize_block(block)
    plain = copy.deepcopy(block)
    x = torch.randn(2, 16, 17, 23)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y1, g1 = _run(block, x, True)
    y2, g2 = _run(plain, x, False)
    assert _rel(y1, y2) < 1e-4 and _rel(g1, g2) < 1e-4
    # fp32: gradients that are 0 in theory (BN biases before a training-mode BN) are rounding noise, so each
    # gradient is compared against the largest of its own scale and 1e-3 of the largest gradient in the block
    floor = 1e-3 * max(p.grad.abs().max().item() for p in plain.parameters())
    for (n, p1), p2 in zip(block.named_parameters(), plain.parameters()):
        assert (p1.grad - p2.grad).abs().max() < 1e-4 * max(p2.grad.abs().max().item(), floor), n


def test_block_frozen_parts_and_fallbacks() -> None:
    torch.manual_seed(0)
    block = UniRepLKNetBlock(8, 7).double().train()
    _randomize_block(block)
    for p in [block.se.down.weight, block.act[1].gamma, block.pwconv2[0].weight, block.gamma, block.norm.bias]:
        p.requires_grad_(False)
    plain = copy.deepcopy(block)
    _compare(block, plain, torch.randn(2, 8, 9, 10, dtype=torch.float64))
    x = torch.randn(2, 8, 9, 10, requires_grad=True)
    assert "BNScaleTrain" in type(block.float().residual(x).grad_fn).__name__
    block.eval()
    assert not fb.block_fast_path_ok(block, x)
    block.train()
    with torch.no_grad():
        assert not fb.block_fast_path_ok(block, x)
    with fast_training(False):
        assert not fb.block_fast_path_ok(block, x)
    assert not fb.block_fast_path_ok(UniRepLKNetBlock(8, 0).train(), x)  # no token mixer: plain path
    sync = UniRepLKNetBlock(8, 3, use_sync_bn=True).train()
    assert not fb.block_fast_path_ok(sync, x)


def test_mlp_tail_without_beta_and_with_bias() -> None:
    torch.manual_seed(0)
    h = torch.randn(2, 5, 4, 12, dtype=torch.float64)
    h[0, :, :, 3] = -30.0  # GELU ~ 0 there: a zero-norm GRN channel
    gamma, w, b = (torch.randn(1, 1, 1, 12, dtype=torch.float64), torch.randn(6, 12, dtype=torch.float64),
                   torch.randn(6, dtype=torch.float64))
    for beta in (None, torch.randn(1, 1, 1, 12, dtype=torch.float64)):
        args = [t if t is None else t.clone().requires_grad_() for t in (h, gamma, beta, w, b)]
        ref = [t if t is None else t.clone().requires_grad_() for t in (h, gamma, beta, w, b)]
        y1 = fb.mlp_tail_train(*args)
        grn = GRN(12, use_bias=beta is not None).double()
        grn.gamma = nn.Parameter(ref[1])
        if beta is not None:
            grn.beta = nn.Parameter(ref[2])
        with fast_training(False):
            y2 = torch.nn.functional.linear(grn(torch.nn.functional.gelu(ref[0])), ref[3], ref[4])
        g = torch.randn_like(y2)
        (y1 * g).sum().backward()
        (y2 * g).sum().backward()
        assert _rel(y1, y2) < TOL
        for a, r in zip(args, [ref[0], grn.gamma, grn.beta, ref[3], ref[4]]):
            if a is not None:
                assert _rel(a.grad, r.grad) < TOL


def test_channel_sq_norm() -> None:
    x = torch.randn(3, 7, 5, 9, dtype=torch.float64)
    assert _rel(fb.channel_sq_norm(x), torch.linalg.vector_norm(x, 2, dim=(1, 2), keepdim=True)) < 1e-12


def test_engine_optimizer_fused_only_with_fast_train() -> None:
    pytest.importorskip("timm")
    from unireplknet.engine.config import EngineConfig
    from unireplknet.engine.optim import build_optimizer, fused_optimizer_ok

    torch.manual_seed(0)
    model = _tiny_model()
    assert fused_optimizer_ok("adamw", list(model.parameters()))
    assert not fused_optimizer_ok("sgd", list(model.parameters()))
    assert not fused_optimizer_ok("adamw", [torch.zeros(2, dtype=torch.long)])
    steps = {}
    for fast in (True, False):
        m = copy.deepcopy(model)
        opt = build_optimizer(m, EngineConfig(fast_train=fast), lr=1e-2)
        assert bool(opt.defaults.get("fused")) == fast
        for i in range(3):
            g = torch.Generator().manual_seed(i)
            for p in m.parameters():
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        steps[fast] = [p.detach().clone() for p in m.parameters()]
    moved = [(a - p0).abs().max().item() for a, p0 in zip(steps[False], model.parameters())]
    assert min(moved) > 1e-3  # the optimizer really stepped every parameter
    for a, b in zip(steps[True], steps[False]):
        assert _rel(a, b) < 1e-5


@pytest.mark.parametrize("channels_last", [False, True])
def test_bn_se_without_linear(channels_last: bool) -> None:
    from unireplknet.layers import SEBlock

    torch.manual_seed(0)
    bn, se = nn.BatchNorm2d(8).double(), SEBlock(8, 2).double()
    _randomize_bn(bn)
    bn2, se2 = copy.deepcopy(bn), copy.deepcopy(se)
    x = torch.randn(3, 8, 7, 5, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1 = fb.bn_se_train(x1, bn, se)
    y2 = se2(bn2(x2))
    g = torch.randn_like(y2)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    assert _rel(y1, y2) < TOL and _rel(x1.grad, x2.grad) < TOL
    for p1, p2 in zip([*bn.parameters(), *se.parameters()], [*bn2.parameters(), *se2.parameters()]):
        assert _rel(p1.grad, p2.grad) < TOL
    assert _rel(bn.running_var, bn2.running_var) < TOL and torch.equal(bn.num_batches_tracked, bn2.num_batches_tracked)


@pytest.mark.parametrize("policy", [False, True, "large", "dilated"])
def test_drb_recompute_policies(policy) -> None:
    torch.manual_seed(0)
    block = DilatedReparamBlock(3, 13).double().train()
    _randomize_bn(block)
    plain = copy.deepcopy(block)
    ft.set_drb_recompute(policy)
    try:
        _compare(block, plain, torch.randn(2, 3, 15, 12, dtype=torch.float64), steps=2)
    finally:
        ft.set_drb_recompute("dilated")
    with pytest.raises(ValueError):
        ft.set_drb_recompute("some")


def test_every_variant_block_configuration() -> None:
    """Each (kernel size, layer scale) block configuration any variant uses: fast == plain (fp64, 2 steps)."""
    from unireplknet.model import VARIANTS, default_kernel_sizes

    configs = {k for v in VARIANTS.values() for stage in default_kernel_sizes(v["depths"]) for k in stage}
    assert configs >= {3, 13}
    for k in sorted(configs):
        torch.manual_seed(k)
        block = UniRepLKNetBlock(8, k, drop_path=0.0, layer_scale_init_value=1e-6).double().train()
        _randomize_block(block)
        _compare(block, copy.deepcopy(block), torch.randn(2, 8, 14, 14, dtype=torch.float64), steps=2)


def _fp32_tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = _tiny_model().train()
    _randomize_bn(model)
    for m in model.modules():
        if isinstance(m, GRN):
            with torch.no_grad():
                m.gamma.normal_()
                m.beta.normal_()
    return model


def test_fp32_model_matches_plain_channels_last_stem() -> None:
    """In fp32 the fast path runs the stem on channels-last input; outputs and gradients stay the plain path's."""
    model = _fp32_tiny()
    plain = copy.deepcopy(model)
    x = torch.randn(2, 3, 64, 48)
    y1, g1 = _run(model, x, True, steps=2)
    y2, g2 = _run(plain, x, False, steps=2)
    assert _rel(y1, y2) < 1e-4 and _rel(g1, g2) < 1e-4
    floor = 1e-3 * max(p.grad.abs().max().item() for p in plain.parameters())  # as in test_block_fp32_odd_size
    for (n, p1), p2 in zip(model.named_parameters(), plain.parameters()):
        assert (p1.grad - p2.grad).abs().max() < 1e-4 * max(p2.grad.abs().max().item(), floor), n


def test_workspace_reuse_is_exact_and_never_aliases_saved_tensors() -> None:
    """Reused scratch buffers give bit-identical results to fresh ones, also with two forward passes recorded
    before one backward (the second forward reuses every buffer the first one used)."""
    x = torch.randn(2, 3, 64, 48)
    results = []
    for limit in (0, ft.WORKSPACE.limit):
        model = _fp32_tiny(seed=3)
        saved, ft.WORKSPACE.limit = ft.WORKSPACE.limit, limit
        ft.WORKSPACE.buffers.clear()
        try:
            xi = x.clone().requires_grad_()
            with fast_training(True):
                y1 = model(xi)
                y2 = model(xi.flip(-1))
                (y1.square().sum() + (y2 * y1.detach()).sum()).backward()
        finally:
            ft.WORKSPACE.limit = saved
        results.append((y1.detach(), y2.detach(), xi.grad, [p.grad for p in model.parameters()]))
        if limit:
            assert ft.WORKSPACE.buffers, "the fast path should have used the workspace"
    (a1, a2, agx, agp), (b1, b2, bgx, bgp) = results
    assert torch.equal(a1, b1) and torch.equal(a2, b2) and torch.equal(agx, bgx)
    assert all(torch.equal(p, q) for p, q in zip(agp, bgp) if p is not None)


def test_workspace_is_bounded_and_pads_with_zeros() -> None:
    ws = ft._Workspace()
    ws.limit = 3 * 4 * 2 * 5 * 10 * 10  # room for about three 2x5x10x10 fp32 buffers
    for h in range(4, 12):
        x = torch.randn(2, 5, h, 6)
        xp = ws.padded(x, 2, torch.contiguous_format)
        assert torch.equal(xp, torch.nn.functional.pad(x, (2, 2, 2, 2)))
        total = sum(b.numel() * b.element_size() for b in ws.buffers.values())
        assert total <= max(ws.limit, xp.numel() * xp.element_size())
    assert len(ws.buffers) < 8  # old shapes were evicted
    x = torch.randn(2, 5, 11, 6)  # the same key again: the border is still zero after reuse
    assert torch.equal(ws.padded(x, 2, torch.contiguous_format), torch.nn.functional.pad(x, (2, 2, 2, 2)))
    xr = torch.randn(1, 2, 3, 3, requires_grad=True)
    with torch.enable_grad():
        assert ws.padded(xr, 1, torch.contiguous_format).requires_grad  # never a workspace buffer for autograd


def test_workspace_limit_and_release() -> None:
    x = torch.randn(2, 4, 6, 6)
    try:
        ft.set_workspace_limit(0)
        ft.WORKSPACE.padded(x, 2, torch.contiguous_format)
        assert not ft.WORKSPACE.buffers  # limit 0: nothing kept
        ft.set_workspace_limit(2 ** 20)
        ft.WORKSPACE.padded(x, 2, torch.contiguous_format)
        assert ft.WORKSPACE.buffers
        ft.release_workspace()
        assert not ft.WORKSPACE.buffers
        with pytest.raises(ValueError, match="workspace limit"):
            ft.set_workspace_limit(-1)
    finally:
        ft.set_workspace_limit(512 * 2 ** 20)


def test_fp32_feature_backbone_matches_plain() -> None:
    """The dense-task backbone (UniRepLKNetFeatures) takes the same channels-last stem in fp32 training."""
    from unireplknet.model import UniRepLKNetFeatures

    feats = UniRepLKNetFeatures(_fp32_tiny(seed=5)).train()
    plain = copy.deepcopy(feats)
    x = torch.randn(2, 3, 64, 48)
    outs = []
    for module, fast in ((feats, True), (plain, False)):
        xi = x.clone().requires_grad_()
        with fast_training(fast):
            ys = module(xi)
            sum((y * torch.randn(y.shape, generator=torch.Generator().manual_seed(i))).sum()
                for i, y in enumerate(ys)).backward()
        outs.append((ys, xi.grad))
    (ys1, g1), (ys2, g2) = outs
    assert all(_rel(a, b) < 1e-4 for a, b in zip(ys1, ys2)) and _rel(g1, g2) < 1e-4
    floor = 1e-3 * max(p.grad.abs().max().item() for p in plain.parameters())
    for (n, p1), p2 in zip(feats.named_parameters(), plain.parameters()):
        assert (p1.grad - p2.grad).abs().max() < 1e-4 * max(p2.grad.abs().max().item(), floor), n


@pytest.mark.slow
def test_torch_compile_training_records_the_plain_path() -> None:
    """``torch.compile(model)`` in training traces the plain path (the fast path's autograd functions and
    compiled kernels cannot be traced): it runs, and its output and gradients are as close to a float64 run of
    the plain path as eager fp32 is (fp32 is ill-conditioned here: ~1e-4 relative either way)."""
    model = _fp32_tiny()
    plain = copy.deepcopy(model)
    ref = copy.deepcopy(model).double()
    x = torch.randn(2, 3, 64, 48)
    y1 = torch.compile(model)(x)
    y1.sum().backward()
    with fast_training(False):
        y2 = plain(x)
        y2.sum().backward()
        y3 = ref(x.double())
        y3.sum().backward()
    assert _rel(y1.double(), y3) < 1e-4
    scale = max(p.grad.abs().max().item() for p in ref.parameters())
    for (n, p1), p2, p3 in zip(model.named_parameters(), plain.parameters(), ref.parameters()):
        err, err_eager = ((p.grad.double() - p3.grad).abs().max().item() for p in (p1, p2))
        assert err <= max(2 * err_eager, 1e-5 * p3.grad.abs().max().item(), 1e-6 * scale), n
