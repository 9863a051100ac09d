import pytest
import torch

from deploy_helpers import tiny_model
import unireplknet.inference as inference_mod
from unireplknet.inference import (
    FastBlock,
    FastUniRepLKNet,
    NHWCConv,
    conv_layout_choices,
    linear_add,
    linear_gelu,
    optimize_for_inference,
)


@pytest.mark.parametrize("layout", ["auto", "nchw", "channels_last", "triton"])  # triton: CPU falls back
def test_optimized_matches_train_model(layout):
    model = tiny_model()
    x = torch.randn(3, 1, 64, 96)
    with torch.no_grad():
        ref = model(x)
    fast = optimize_for_inference(model, x, conv_layout=layout)
    assert isinstance(fast, FastUniRepLKNet)
    assert not model.deployed  # a copy was re-parameterized, not the user's model
    with torch.inference_mode():
        out = fast(x)
    assert out.shape == (3, 10)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5), (out - ref).abs().max()
    with torch.inference_mode():  # another shape after the first one
        y = torch.randn(1, 1, 32, 32)
        assert torch.allclose(fast(y), model(y), rtol=1e-4, atol=1e-5)


def test_features_pooled_and_layout_cache():
    model = tiny_model(in_chans=3, num_classes=0)
    x = torch.randn(2, 3, 64, 64)
    fast = optimize_for_inference(model, x)
    with torch.inference_mode():
        feats = fast.forward_features(x)
        pooled = fast(x)
        ref_feats = model.forward_features(x)
    assert feats.shape == ref_feats.shape == (2, 64, 2, 2)
    assert torch.allclose(feats, ref_feats, rtol=1e-4, atol=1e-5)
    assert pooled.shape == (2, 64)
    choices = conv_layout_choices()
    assert choices and set(choices.values()) <= {"nchw", "channels_last"}


def test_inplace_and_fix_layout():
    model = tiny_model()
    fast = optimize_for_inference(model, torch.randn(1, 1, 32, 32), inplace=True)
    assert model.deployed
    convs = [m for m in fast.modules() if isinstance(m, NHWCConv)]
    assert len(convs) == 2 + 3 + 4  # stem (2) + downsamples (3) + blocks with a mixer (4)
    assert all(c.fix_layout() in ("nchw", "channels_last") for c in convs)


def test_bad_input():
    with pytest.raises(TypeError, match="UniRepLKNet"):
        optimize_for_inference(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="conv layout"):
        optimize_for_inference(tiny_model(), conv_layout="nhwc")
    with pytest.raises(ValueError, match="needs compile=True"):
        optimize_for_inference(tiny_model(), cuda_graphs=True)
    with pytest.raises(ValueError, match="CUDA example_input"):
        optimize_for_inference(tiny_model(), torch.randn(1, 1, 32, 32), compile=True, cuda_graphs=True)
    fast = optimize_for_inference(tiny_model())
    with pytest.raises(ValueError, match="expected input"):
        fast(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("group_bytes", [1, 1 << 30])
def test_sample_groups_give_the_same_output(monkeypatch, group_bytes):
    """One sample per group and the whole batch at once both equal the reference model."""
    model = tiny_model()
    x = torch.randn(5, 1, 48, 64)
    with torch.no_grad():
        ref = model(x)
    fast = optimize_for_inference(model, x)
    monkeypatch.setattr(FastBlock, "group_bytes", group_bytes)
    with torch.inference_mode():
        out = fast(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5), (out - ref).abs().max()


def test_fused_linear_ops_match_their_plain_definition(monkeypatch):
    x, other = torch.randn(37, 24), torch.randn(37, 16)
    w1, b1 = torch.randn(16, 24), torch.randn(16)
    want_gelu = torch.nn.functional.gelu(x @ w1.t() + b1)
    w2, b2 = torch.randn(16, 24), torch.randn(16)
    want_add = x @ w2.t() + b2 + other
    with torch.inference_mode():
        assert inference_mod._onednn_linear_ok(x)  # this CPU build has the fused oneDNN ops: both paths are tested
        fused = (linear_gelu(x, w1, b1), linear_add(x, other, w2, b2))
        monkeypatch.setattr(inference_mod, "_onednn_linear_ok", lambda t: False)
        plain = (linear_gelu(x, w1, b1), linear_add(x, other, w2, b2))
    for got in (fused, plain):
        assert torch.allclose(got[0], want_gelu, rtol=1e-5, atol=1e-5)
        assert torch.allclose(got[1], want_add, rtol=1e-5, atol=1e-5)


def test_plain_op_fallback_model(monkeypatch):
    """Where oneDNN is unavailable (or on another device) the same model runs on plain ops."""
    monkeypatch.setattr(inference_mod, "_onednn_linear_ok", lambda t: False)
    model = tiny_model()
    x = torch.randn(2, 1, 32, 48)
    fast = optimize_for_inference(model, x)
    with torch.inference_mode():
        assert torch.allclose(fast(x), model(x), rtol=1e-4, atol=1e-5)


def test_bfloat16_path_close_to_fp32():
    model = tiny_model()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        ref = model(x)
    fast = optimize_for_inference(model.to(torch.bfloat16), x.to(torch.bfloat16))
    with torch.inference_mode():
        out = fast(x.to(torch.bfloat16)).float()
    assert ((out - ref).norm() / ref.norm()).item() < 0.05


def test_traced_graph_path_matches():
    """While tracing (TorchScript, torch.compile) the blocks emit one graph of plain ops; same outputs."""
    model = tiny_model()
    x = torch.randn(2, 1, 32, 48)
    fast = optimize_for_inference(model, x)
    with torch.inference_mode():
        traced = torch.jit.trace(fast, x, check_trace=False)
        ref = model(x)
        assert torch.allclose(traced(x), ref, rtol=1e-4, atol=1e-5)
        assert torch.allclose(traced(x[:1]), ref[:1], rtol=1e-4, atol=1e-5)
