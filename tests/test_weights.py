"""Checkpoint formats, safe loading, key mapping, adaptation and bad checkpoints."""
import argparse
import logging

import pytest
import torch

from unireplknet import UniRepLKNet, create_model, load_weights, save_weights
from unireplknet.weights import (CheckpointError, WeightsUnavailableError, adapt_input_conv, from_official,
                                 read_checkpoint, to_official)

TINY = dict(depths=(1, 1, 2, 1), dims=(16, 32, 48, 64), kernel_sizes=((3,), (7,), (13, 0), (5,)))


def trained_tiny(seed=0, **kw) -> UniRepLKNet:
    torch.manual_seed(seed)
    model = UniRepLKNet(num_classes=10, **TINY, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def assert_same_function(a, b, in_chans=3):
    x = torch.randn(1, in_chans, 48, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(a(x), b(x), atol=1e-4)


@pytest.mark.parametrize("wrap", ["bare", "model", "state_dict", "module", "backbone_ignored_head"])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_checkpoint_layouts_roundtrip(tmp_path, wrap, suffix):
    src = trained_tiny()
    sd = to_official(src.state_dict())  # original key names
    if wrap == "model":
        obj = {"model": sd, "epoch": 3, "args": argparse.Namespace(lr=1e-3)}
    elif wrap == "state_dict":
        obj = {"state_dict": sd}
    elif wrap == "module":
        obj = {f"module.{k}": v for k, v in sd.items()}
    elif wrap == "backbone_ignored_head":
        obj = {"state_dict": {**{f"backbone.{k}": v for k, v in sd.items()}, "decode_head.conv.weight": torch.ones(1)}}
    else:
        obj = sd
    path = tmp_path / f"ckpt{suffix}"
    if suffix == ".safetensors":
        if wrap not in ("bare", "module"):  # safetensors holds one flat tensor dict
            obj = {f"backbone.{k}": v for k, v in sd.items()} if wrap.startswith("backbone") else sd
        save_weights(obj, path)
    else:
        torch.save(obj, path)
    dst = UniRepLKNet(num_classes=10, **TINY).eval()
    report = load_weights(dst, path)
    assert not report.missing and not report.unexpected
    assert_same_function(src, dst)


def test_key_mapping_is_invertible():
    sd = UniRepLKNet(**TINY).state_dict()
    official = to_official(sd)
    assert any(".dil_conv_k5_1." in k for k in official) and not any(".branches." in k for k in official)
    assert list(from_official(official)) == list(sd)
    assert from_official(from_official(official)).keys() == sd.keys()


def test_deploy_checkpoint_into_train_model_and_back(tmp_path):
    src = trained_tiny()
    fused = trained_tiny().reparameterize()
    save_weights(fused, tmp_path / "deploy.safetensors")
    dst = UniRepLKNet(num_classes=10, **TINY).eval()
    load_weights(dst, tmp_path / "deploy.safetensors")
    assert dst.deployed
    assert_same_function(src, dst)
    # a train-structure checkpoint into a deploy=True model is fused on the fly
    torch.save(src.state_dict(), tmp_path / "train.pth")
    deploy_model = UniRepLKNet(num_classes=10, deploy=True, **TINY).eval()
    load_weights(deploy_model, tmp_path / "train.pth")
    assert_same_function(src, deploy_model)


def test_other_num_classes_drops_head_with_warning(tmp_path, caplog):
    src = trained_tiny()
    torch.save(src.state_dict(), tmp_path / "c.pth")
    dst = UniRepLKNet(num_classes=3, **TINY)
    before = dst.head.weight.clone()
    with caplog.at_level(logging.WARNING):
        report = load_weights(dst, tmp_path / "c.pth")
    assert report.dropped == ["head.weight", "head.bias"]
    assert "classifier" in caplog.text
    assert torch.equal(dst.head.weight, before)
    assert torch.equal(dst.stages[0][0].se.down.weight, src.stages[0][0].se.down.weight)


@pytest.mark.parametrize("in_chans", [1, 2, 5])
def test_in_chans_adaptation(tmp_path, in_chans):
    src = trained_tiny()
    torch.save(src.state_dict(), tmp_path / "c.pth")
    dst = UniRepLKNet(num_classes=10, in_chans=in_chans, **TINY).eval()
    report = load_weights(dst, tmp_path / "c.pth")
    assert report.adapted == ["downsample_layers.0.0.weight"]
    w = src.downsample_layers[0][0].weight
    assert torch.allclose(dst.downsample_layers[0][0].weight, adapt_input_conv(w, in_chans))
    if in_chans == 1:  # a grey image gives the same stem output as the RGB image with equal channels
        x = torch.rand(1, 1, 32, 32)
        with torch.no_grad():
            assert torch.allclose(dst.downsample_layers[0][0](x), src.downsample_layers[0][0](x.repeat(1, 3, 1, 1)),
                                  atol=1e-5)


def test_truncated_and_garbage_checkpoints_are_named(tmp_path):
    torch.save(trained_tiny().state_dict(), tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pth").write_bytes(b"this is not a checkpoint at all" * 10)
    for name in ("trunc.pth", "junk.pth"):
        with pytest.raises(CheckpointError, match=name):
            load_weights(UniRepLKNet(num_classes=10, **TINY), tmp_path / name)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_checkpoint(tmp_path / "missing.pth")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": {"x": torch.zeros(1)}, "payload": _Evil(str(marker))}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused"):
        load_weights(UniRepLKNet(**TINY), tmp_path / "evil.pth")
    assert not marker.exists()


def test_checkpoint_of_another_variant_names_keys_and_shapes(tmp_path):
    torch.save(create_model("unireplknet_a", num_classes=10).state_dict(), tmp_path / "a.pth")
    with pytest.raises(CheckpointError) as e:
        load_weights(create_model("unireplknet_f", num_classes=10), tmp_path / "a.pth")
    msg = str(e.value)
    assert "shape mismatches" in msg and "downsample_layers.0.0.weight" in msg and "(20, 3, 3, 3)" in msg


def test_missing_keys_strict_and_non_strict(tmp_path):
    sd = trained_tiny().state_dict()
    sd.pop("stages.0.0.se.up.weight")
    sd["bogus.weight"] = torch.ones(1)
    with pytest.raises(CheckpointError, match="missing keys.*se.up.weight.*unexpected keys.*bogus"):
        load_weights(UniRepLKNet(num_classes=10, **TINY), sd)
    report = load_weights(UniRepLKNet(num_classes=10, **TINY), sd, strict=False)
    assert report.missing == ["stages.0.0.se.up.weight"] and report.unexpected == ["bogus.weight"]


def test_create_model_with_local_path(tmp_path):
    src = create_model("unireplknet_a", num_classes=4).eval()
    save_weights(src, tmp_path / "a.safetensors", official_keys=True)
    dst = create_model("unireplknet_a", pretrained=tmp_path / "a.safetensors").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert dst.head.out_features == 1000  # num_classes defaults to 1000; the 4-class head is dropped
        assert torch.allclose(dst.forward_head(dst.forward_features(x), pre_logits=True),
                              src.forward_head(src.forward_features(x), pre_logits=True), atol=1e-5)
    feats = create_model("unireplknet_a", features_only=True, pretrained=str(tmp_path / "a.safetensors"))
    assert len(feats(x)) == 4


def test_released_tag_offline_gives_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(WeightsUnavailableError) as e:
        create_model("unireplknet_a", pretrained=True)
    msg = str(e.value)
    assert "unireplknet_a_in1k_224_acc77.03.pth" in msg and "pretrained='/path/to/" in msg


def test_save_weights_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    save_weights(trained_tiny(), path)
    good = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_weights(trained_tiny(seed=1), path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["w.pth"]
