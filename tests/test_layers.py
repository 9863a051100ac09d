"""Dilated Reparam Block, fusion math and the small layers."""
import pytest
import torch
import torch.nn.functional as F

from unireplknet.layers import (ORIGINAL_BRANCHES, GRN, DilatedReparamBlock, LayerNorm2d, default_branches,
                                dilate_kernel, pad_kernel)


def _randomize_bn(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            m.weight.data.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.bias.shape, generator=g))


def test_original_tables_are_used():
    assert default_branches(13) == ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5))
    assert default_branches(17) == ((5, 1), (9, 2), (3, 4), (3, 5), (3, 7))
    for k, table in ORIGINAL_BRANCHES.items():
        assert default_branches(k) == table


@pytest.mark.parametrize("k", [19, 21, 25, 31, 51])
def test_rule_for_other_kernels(k):
    branches = default_branches(k)
    sizes = [r * (b - 1) + 1 for b, r in branches]
    assert max(sizes) <= k and max(sizes) >= k - 2  # the widest branch spans (almost) the whole kernel
    assert (5, 1) in branches and all(b % 2 == 1 for b, _ in branches)


@pytest.mark.parametrize("k", [4, 3, 1, 0, -5, 12])
def test_invalid_kernel_sizes(k):
    with pytest.raises(ValueError, match="odd kernel_size >= 5"):
        DilatedReparamBlock(8, k)


def test_invalid_override_branch():
    with pytest.raises(ValueError, match="r\\(k-1\\)\\+1 <= K"):
        DilatedReparamBlock(8, 7, branches=[(5, 2)])


def test_dilate_and_pad_kernel():
    k = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    d = dilate_kernel(k, 2)
    assert d.shape == (1, 1, 5, 5)
    assert torch.equal(d[0, 0, ::2, ::2], k[0, 0]) and d[0, 0, 1::2].abs().sum() == 0
    # a dilated conv equals a dense conv with the dilated kernel
    x = torch.randn(1, 1, 9, 11)
    assert torch.allclose(F.conv2d(x, k, dilation=2, padding=2), F.conv2d(x, d, padding=2), atol=1e-5)
    assert pad_kernel(d, 9).shape == (1, 1, 9, 9)
    with pytest.raises(ValueError):
        pad_kernel(d, 4)


@pytest.mark.parametrize("kernel,shape", [
    (13, (2, 6, 19, 19)), (13, (1, 6, 7, 23)), (13, (1, 6, 3, 5)), (17, (1, 6, 11, 4)),
    (7, (2, 6, 5, 9)), (25, (1, 6, 30, 12)), (5, (1, 6, 2, 2)),
])
def test_reparam_equivalence_non_square_and_small(kernel, shape):
    torch.manual_seed(0)
    block = DilatedReparamBlock(6, kernel)
    for p in block.parameters():
        p.data.normal_()
    _randomize_bn(block)
    block.eval()
    x = torch.randn(shape)
    with torch.no_grad():
        before = block(x)
        block.reparameterize()
        after = block(x)
    assert before.shape == after.shape == x.shape
    assert block.deployed and len(block.branches) == 0
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("ndim", [1, 3])
def test_reparam_other_dimensions(ndim):
    torch.manual_seed(1)
    block = DilatedReparamBlock(4, 9, ndim=ndim)
    _randomize_bn(block)
    block.eval()
    x = torch.randn((2, 4) + (13,) * ndim if ndim == 1 else (1, 4, 10, 11, 12))
    with torch.no_grad():
        before = block(x)
        block.reparameterize()
        after = block(x)
    assert torch.allclose(before, after, atol=1e-5)


def test_custom_branches_are_used():
    block = DilatedReparamBlock(4, 9, branches=[(3, 4)])
    assert list(block.branches) == ["k3_4"]
    assert block.branches["k3_4"].conv.dilation == (4, 4)


def test_layernorm2d_matches_channel_layernorm():
    ln = LayerNorm2d(5)
    ln.weight.data.normal_()
    x = torch.randn(2, 5, 3, 4)
    u = x.mean(1, keepdim=True)
    s = (x - u).pow(2).mean(1, keepdim=True)
    ref = (x - u) / torch.sqrt(s + 1e-6) * ln.weight[:, None, None] + ln.bias[:, None, None]
    assert torch.allclose(ln(x), ref, atol=1e-5)


def test_grn_formula():
    grn = GRN(6)
    grn.gamma.data.normal_()
    grn.beta.data.normal_()
    x = torch.randn(2, 3, 4, 6)
    gx = x.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
    nx = gx / (gx.mean(-1, keepdim=True) + 1e-6)
    assert torch.allclose(grn(x), (grn.gamma * nx + 1) * x + grn.beta, atol=1e-5)
