"""Dense-task helpers: layer-wise lr decay mapping, frozen stages, official backbone keys, re-parameterization."""
import math

import pytest
import torch

from unireplknet import UniRepLKNet, UniRepLKNetFeatures
from unireplknet.engine.optim import param_groups
from unireplknet.model import layer_decay_id as layer_id
from unireplknet.model import reparameterize_blocks
from unireplknet.tasks.dense_utils import (
    build_dense_optimizer, create_dense_backbone, freeze_stages,
)
from unireplknet.tasks.segmentation import create_upernet
from unireplknet.weights import to_official

TINY = dict(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), kernel_sizes=((3,), (7,), (7, 3), (7,)))


def _randomize_bn(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def test_layer_id_follows_the_original_mapping():
    assert layer_id("backbone.downsample_layers.0.0.weight") == 0
    assert layer_id("backbone.stages.0.0.dwconv.weight") == 1
    assert layer_id("backbone.downsample_layers.1.0.weight") == 2
    assert layer_id("backbone.stages.1.2.pwconv1.1.weight") == 2
    assert layer_id("backbone.downsample_layers.2.1.bias") == 3
    assert layer_id("backbone.stages.2.0.norm.weight") == 3
    assert layer_id("backbone.stages.2.17.norm.weight") == 8  # T: 18 blocks -> 3..8
    assert layer_id("backbone.stages.2.26.norm.weight") == 11  # S: 27 blocks -> 3..11
    assert layer_id("backbone.downsample_layers.3.0.weight") == 12
    assert layer_id("backbone.stages.3.1.gamma") == 12
    assert layer_id("backbone.stages.3.1.gamma", num_layers=9) == 9
    assert layer_id("backbone.norm2.weight") == 13
    assert layer_id("decode_head.classifier.weight", num_layers=9) == 10
    assert layer_id("encoder.model.stages.2.4.dwconv.lk_origin.weight") == 4  # smp naming
    # prefixes (detector, smp, DDP) do not change the group
    for name in ["downsample_layers.0.0.weight", "stages.0.0.dwconv.weight", "stages.2.13.se.down.weight",
                 "downsample_layers.3.1.weight", "stages.3.0.gamma", "head.weight"]:
        assert layer_id("backbone." + name) == layer_id(name) == layer_id("module." + name)


def test_param_groups_scale_and_weight_decay():
    model = create_upernet("custom", num_classes=3, channels=16, aux_channels=8, model_args=TINY)
    groups = param_groups(model, weight_decay=0.05, layer_decay=0.9, num_layers=12)
    by_name = {n: g for g in groups for n in g["names"]}
    assert len(by_name) == sum(1 for _ in model.parameters())
    stem = by_name["backbone.downsample_layers.0.0.weight"]
    assert math.isclose(stem["lr_scale"], 0.9 ** 13) and stem["weight_decay"] == 0.05
    assert by_name["backbone.downsample_layers.0.0.bias"]["weight_decay"] == 0.0
    assert by_name["backbone.downsample_layers.0.1.weight"]["weight_decay"] == 0.0  # LayerNorm
    head = by_name["decode_head.classifier.weight"]
    assert head["lr_scale"] == 1.0 and head["weight_decay"] == 0.05
    assert math.isclose(by_name["backbone.stages.3.0.pwconv1.1.weight"]["lr_scale"], 0.9)
    opt = build_dense_optimizer(model, lr=1e-3, layer_decay=0.9)
    assert isinstance(opt, torch.optim.AdamW)
    for g in opt.param_groups:
        assert math.isclose(g["lr"], 1e-3 * g["lr_scale"])
    with pytest.raises(ValueError, match="layer_decay"):
        param_groups(model, 0.05, layer_decay=1.5)


def test_freeze_stages_keeps_parameters_and_statistics():
    backbone = create_dense_backbone("custom", model_args=TINY)
    frozen = freeze_stages(backbone, 2)
    assert frozen == ["downsample_layers.0", "stages.0", "downsample_layers.1", "stages.1"]
    groups = param_groups(backbone, 0.05, layer_decay=0.9)
    names = {n for g in groups for n in g["names"]}
    assert not any(n.startswith(("stages.0", "stages.1", "downsample_layers.0", "downsample_layers.1")) for n in names)
    assert any(n.startswith("stages.2") for n in names)
    before1 = backbone.stages[1][0].norm.running_mean.clone()
    before2 = backbone.stages[2][0].norm.running_mean.clone()
    backbone.train()
    backbone(torch.randn(2, 3, 64, 64)).__getitem__(-1).sum().backward()
    assert torch.equal(backbone.stages[1][0].norm.running_mean, before1)
    assert not torch.equal(backbone.stages[2][0].norm.running_mean, before2)
    assert backbone.stages[0][0].pwconv1[1].weight.grad is None
    assert backbone.stages[2][0].pwconv1[1].weight.grad is not None
    with pytest.raises(ValueError, match="num_stages"):
        freeze_stages(backbone, 5)


def test_official_mm_checkpoint_backbone_keys_load(tmp_path):
    torch.manual_seed(0)
    src = create_upernet("custom", num_classes=3, channels=16, aux_channels=8, model_args=TINY)
    _randomize_bn(src)
    official = to_official(src.backbone.state_dict())
    assert any(".dil_conv_k" in k for k in official)  # the original's branch names
    ckpt = {"meta": {"epoch": 1}, "state_dict": {**{f"backbone.{k}": v for k, v in official.items()},
                                                 "decode_head.conv_seg.weight": torch.zeros(3, 16, 1, 1)}}
    path = tmp_path / "upernet_tiny_mm.pth"
    torch.save(ckpt, path)
    torch.manual_seed(1)
    dst = create_upernet("custom", num_classes=3, channels=16, aux_channels=8, model_args=TINY, pretrained=str(path))
    src_sd, dst_sd = src.backbone.state_dict(), dst.backbone.state_dict()
    assert set(src_sd) == set(dst_sd)
    for k in src_sd:
        assert torch.equal(src_sd[k], dst_sd[k]), k


def test_imagenet_checkpoint_loads_into_feature_backbone(tmp_path):
    torch.manual_seed(0)
    cls = UniRepLKNet(num_classes=10, **TINY)
    path = tmp_path / "in1k_tiny.pth"
    torch.save({"model": to_official(cls.state_dict())}, path)
    feats = create_dense_backbone("custom", pretrained=str(path), model_args=TINY)
    assert isinstance(feats, UniRepLKNetFeatures)
    assert torch.equal(feats.stages[2][0].dwconv.lk_origin.weight, cls.stages[2][0].dwconv.lk_origin.weight)
    assert torch.equal(feats.norm3.weight, torch.ones(128))  # feature norms keep their init


def test_reparameterize_dense_model_equal_outputs_heads_untouched():
    torch.manual_seed(0)
    model = create_upernet("custom", num_classes=3, channels=16, aux_channels=8,
                           model_args=dict(TINY, layer_scale_init_value=1.0))
    _randomize_bn(model)
    model.eval()
    x = torch.randn(2, 3, 64, 96)
    heads_before = {k: v.clone() for k, v in model.decode_head.state_dict().items()}
    ref = model(x)
    assert reparameterize_blocks(model) == 5
    out = model(x)
    assert model.backbone.stages[2][0].deployed
    assert heads_before.keys() == model.decode_head.state_dict().keys()
    assert all(torch.equal(v, model.decode_head.state_dict()[k]) for k, v in heads_before.items())
    assert (out - ref).abs().max().item() < 1e-4 * (1 + ref.abs().max().item())
    assert not torch.equal(out, torch.zeros_like(out))


def test_gradient_checkpointing_and_sync_bn_options():
    torch.manual_seed(0)
    model = create_upernet("custom", num_classes=3, channels=16, aux_channels=0, model_args=TINY).train()
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    ref = model.backbone.stages[2][0].pwconv1[1].weight.grad.clone()
    model.zero_grad()
    model.set_grad_checkpointing(True)
    assert all(b.grad_checkpointing for b in model.backbone.stages[2])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert torch.allclose(model.backbone.stages[2][0].pwconv1[1].weight.grad, ref, atol=1e-6)
    sync = create_upernet("custom", num_classes=3, channels=16, aux_channels=8, model_args=TINY, use_sync_bn=True)
    bns = [m for m in sync.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(isinstance(m, torch.nn.SyncBatchNorm) for m in bns)
    assert sync.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)
