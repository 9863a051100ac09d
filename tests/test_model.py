"""Model construction, custom configurations, re-parameterization properties and bad input."""
import copy

import pytest
import torch

import unireplknet
from unireplknet import UniRepLKNet, create_model
from unireplknet.model import default_kernel_sizes

TINY = dict(depths=(1, 1, 2, 1), dims=(16, 32, 48, 64), kernel_sizes=((3,), (7,), (13, 0), (5,)))


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BN statistic non-trivial values so fusions are really exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g) + (1.0 if name.endswith("norm.weight") else 0.0))
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return model


def test_variant_table_and_kernel_layouts():
    assert unireplknet.list_models() == [f"unireplknet_{v}" for v in ("a", "f", "p", "n", "t", "s", "b", "l", "xl")]
    assert default_kernel_sizes((3, 3, 18, 3))[2] == (13, 3) * 9
    assert default_kernel_sizes((3, 3, 27, 3))[2] == (13, 3, 3) * 9
    with pytest.raises(ValueError, match="kernel_sizes"):
        UniRepLKNet(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))


def test_unknown_variant_lists_valid_names():
    with pytest.raises(ValueError, match="unireplknet_xl") as e:
        create_model("unireplknet_q")
    assert "unknown model" in str(e.value)


def test_unknown_tag_lists_valid_tags():
    with pytest.raises(ValueError, match="in1k_224"):
        create_model("unireplknet_a", pretrained="in99k")


def test_wrong_channel_count_names_expected_in_chans():
    model = UniRepLKNet(in_chans=1, **TINY)
    with pytest.raises(ValueError, match="in_chans=1"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="4-D"):
        model(torch.randn(1, 32, 32))


def test_custom_configuration_options():
    model = UniRepLKNet(in_chans=2, num_classes=7, drop_path_rate=0.3, layer_scale_init_value=0, head_init_scale=0.0,
                        use_sync_bn=True, **TINY)
    blocks = model.blocks()
    assert [b.kernel_size for b in blocks] == [3, 7, 13, 0, 5]
    assert all(b.gamma is None for b in blocks)
    rates = [b.drop_path.drop_prob if hasattr(b.drop_path, "drop_prob") else 0.0 for b in blocks]
    assert rates == pytest.approx([0.0, 0.075, 0.15, 0.225, 0.3])
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    assert model.head.weight.abs().sum() == 0  # head_init_scale multiplies the initial head
    assert isinstance(blocks[3].dwconv, torch.nn.Identity) and isinstance(blocks[3].norm, torch.nn.Identity)
    with pytest.raises(ValueError, match="kernel_size"):
        UniRepLKNet(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64), kernel_sizes=((3,), (4,), (3,), (3,)))


def test_num_classes_zero_and_no_pool():
    model = UniRepLKNet(num_classes=0, **TINY).eval()
    x = torch.randn(2, 3, 64, 48)
    assert model(x).shape == (2, 64)
    model.reset_classifier(0, global_pool="")
    assert model(x).shape == (2, 64, 2, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reparameterize_equal_idempotent_and_dtype_preserving(dtype):
    model = randomized(UniRepLKNet(num_classes=5, **TINY)).to(dtype).eval()
    x = torch.randn(2, 3, 40, 56, dtype=dtype)
    with torch.no_grad():
        ref = model(x)
        model.reparameterize()
        once = model(x)
        state = copy.deepcopy(model.state_dict())
        model.reparameterize()
        twice = model(x)
    assert model.deployed
    assert all(p.dtype == dtype for p in model.parameters())
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert torch.allclose(once, ref, atol=tol, rtol=tol)
    assert torch.equal(once, twice)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    deployed = UniRepLKNet(num_classes=5, deploy=True, **TINY).to(dtype)
    deployed.load_state_dict(model.state_dict(), strict=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deployed.modules())


def test_block_level_reparameterize():
    model = randomized(UniRepLKNet(num_classes=5, **TINY)).eval()
    x = torch.randn(1, 3, 64, 64)
    ref = model(x)
    for block in model.blocks()[:2]:
        block.reparameterize()
    assert not model.deployed and model.blocks()[0].deployed
    assert torch.allclose(model(x), ref, atol=1e-4)


def test_meta_device_construction_and_dtype():
    model = create_model("unireplknet_s", device="meta")
    assert all(p.device.type == "meta" for p in model.parameters())
    half = UniRepLKNet(dtype=torch.bfloat16, **TINY)
    assert all(p.dtype == torch.bfloat16 for p in half.parameters())


def test_gradient_checkpointing_same_gradients():
    torch.manual_seed(0)
    model = randomized(UniRepLKNet(num_classes=3, **TINY))
    x = torch.randn(2, 3, 32, 32)
    model(x).sum().backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, ref[n], atol=1e-5), n


def test_features_only_from_create_model():
    feats = create_model("unireplknet_a", features_only=True, out_indices=(-2, -1), in_chans=1)
    outs = feats(torch.randn(1, 1, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 160, 4, 6), (1, 320, 2, 3)]
    assert [k for k in feats.state_dict() if k.startswith("norm")] == \
        ["norm2.weight", "norm2.bias", "norm3.weight", "norm3.bias"]
    plain = create_model("unireplknet_a", features_only=True, feature_norm=False)
    assert not any(k.startswith("norm") for k in plain.state_dict())
