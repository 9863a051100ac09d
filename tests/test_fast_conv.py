"""The strided-conv training path (unireplknet.ops.fast_conv) computes F.conv2d's outputs and gradients."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unireplknet import create_model
from unireplknet.ops import fast_training
from unireplknet.ops.fast_conv import StridedConv2d, strided_conv_train


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


@pytest.mark.parametrize("cin,cout,size,k,stride,pad", [
    (5, 7, (13, 11), 3, 2, 1), (4, 6, (9, 9), 3, 2, 1), (3, 8, (10, 7), 4, 4, 0), (6, 5, (12, 12), 3, 3, 1),
    (2, 3, (5, 6), 5, 2, 2)])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_conv2d_fp64(cin: int, cout: int, size: tuple, k: int, stride: int, pad: int, bias: bool) -> None:
    torch.manual_seed(cin * 10 + k)
    x = torch.randn(2, cin, *size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(cout, cin, k, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(cout, dtype=torch.float64, requires_grad=True) if bias else None
    y = strided_conv_train(x, w, b, stride, pad)
    ref = F.conv2d(x, w, b, stride=stride, padding=pad)
    assert y.shape == ref.shape and _rel(y, ref) < 1e-12
    g = torch.randn_like(ref)
    inputs = (x, w) + ((b,) if bias else ())
    for got, want in zip(torch.autograd.grad(y, inputs, g), torch.autograd.grad(ref, inputs, g)):
        assert _rel(got, want) < 1e-12


def test_fp32_channels_last_and_frozen_input() -> None:
    """fp32 gradients within 1e-5 of F.conv2d's; an input that needs no gradient gets none."""
    torch.manual_seed(0)
    x = torch.randn(3, 16, 30, 26).contiguous(memory_format=torch.channels_last)
    w = torch.randn(24, 16, 3, 3, requires_grad=True)
    b = torch.randn(24, requires_grad=True)
    y = strided_conv_train(x, w, b)
    ref = F.conv2d(x, w, b, stride=2, padding=1)
    g = torch.randn_like(ref)
    assert _rel(y, ref) < 1e-5
    for got, want in zip(torch.autograd.grad(y, (w, b), g), torch.autograd.grad(ref, (w, b), g)):
        assert _rel(got, want) < 1e-5
    xg = x.clone().requires_grad_()
    gx = torch.autograd.grad(strided_conv_train(xg, w, b), xg, g)[0]
    xr = x.clone().requires_grad_()
    assert _rel(gx, torch.autograd.grad(F.conv2d(xr, w, b, stride=2, padding=1), xr, g)[0]) < 1e-5


def test_module_takes_fast_path_only_when_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    conv = StridedConv2d(4, 6, 3, stride=2, padding=1)
    assert isinstance(conv, nn.Conv2d)
    assert list(conv.state_dict()) == list(nn.Conv2d(4, 6, 3, stride=2, padding=1).state_dict())
    calls = []
    monkeypatch.setattr(StridedConv2d, "_fast_forward", lambda self, x: calls.append(1) or nn.Conv2d.forward(self, x))
    x = torch.randn(2, 4, 9, 9)
    conv.train()(x)
    assert calls == [1]
    with torch.no_grad():
        conv(x)
    conv.eval()(x)
    conv.train()
    with fast_training(False):
        conv(x)
    copy.deepcopy(conv).double()(x.double())  # fp64 runs nn.Conv2d.forward
    stride1 = StridedConv2d(4, 6, 3, stride=1, padding=1).train()
    stride1(x)
    frozen = StridedConv2d(4, 6, 3, stride=2, padding=1).train().requires_grad_(False)
    frozen(x)
    assert calls == [1]


def test_model_uses_it_for_stem_and_downsampling() -> None:
    """The stem's second conv and the three downsampling convs; the stem's first conv stays nn.Conv2d."""
    model = create_model("unireplknet_a", num_classes=3)
    convs = [type(layer[0]) for layer in model.downsample_layers]
    assert convs == [nn.Conv2d, StridedConv2d, StridedConv2d, StridedConv2d]
    assert type(model.downsample_layers[0][3]) is StridedConv2d


def test_weight_gradient_over_batch_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A patch-matrix budget smaller than the batch: the weight gradient is summed over chunks (2 + 2 + 1)."""
    from unireplknet.ops import fast_conv

    monkeypatch.setattr(fast_conv, "IM2COL_CHUNK", 2 * 9 * 3 * 5 * 4)  # two samples' (5 x 4) x (9 x 3) patches
    torch.manual_seed(3)
    x = torch.randn(5, 3, 9, 8, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    y = strided_conv_train(x, w, b)
    ref = F.conv2d(x, w, b, stride=2, padding=1)
    assert y.shape == (5, 4, 5, 4)
    g = torch.randn_like(ref)
    for got, want in zip(torch.autograd.grad(y, (w, b), g), torch.autograd.grad(ref, (w, b), g)):
        assert _rel(got, want) < 1e-12
