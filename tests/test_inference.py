import pytest
import torch

from deploy_helpers import tiny_model
from unireplknet.inference import FastUniRepLKNet, NHWCConv, conv_layout_choices, optimize_for_inference


@pytest.mark.parametrize("layout", ["auto", "nchw", "channels_last"])
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
    fast = optimize_for_inference(tiny_model())
    with pytest.raises(ValueError, match="expected input"):
        fast(torch.randn(1, 3, 32, 32))
