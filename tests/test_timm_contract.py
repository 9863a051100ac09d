"""The properties timm's own tests/test_models.py checks, for `tiny` and unireplknet_a (own code).

Covered: forward, backward (every parameter gets a gradient), default/pretrained cfg fields, reset_classifier,
features_only (default, getter and FX feature classes), forward_intermediates and pruning, FX trace (train
and eval graphs), TorchScript of the FX graph module, TorchScript of the model, set_grad_checkpointing.
timm's own suite can also be run against these models: see docs/deploy.md.
"""
import copy
import math

import pytest
import timm
import torch
from timm.layers import create_feature_extractor, get_graph_node_names
from timm.models._features_fx import get_notrace_functions, get_notrace_modules
from timm.utils import reparameterize_model

import unireplknet  # noqa: F401  (registers the models)
from unireplknet import UniRepLKNet

TINY = dict(depths=(1, 1, 2, 1), dims=(16, 32, 48, 64), kernel_sizes=((3,), (7,), (13, 0), (5,)))


def make(name: str, **kw) -> torch.nn.Module:
    if name == "tiny":
        return UniRepLKNet(**TINY, **kw)
    return timm.create_model(name, **kw)


def size(name: str) -> int:
    return 64 if name == "tiny" else 96


MODELS = ["tiny", "unireplknet_a"]


def test_registered():
    assert set(timm.list_models("unireplknet*")) == set(unireplknet.list_models())
    assert "unireplknet_s.in22k_ft_in1k_384" in timm.list_pretrained("unireplknet_s*")


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_grad_checkpointing(name):
    torch.manual_seed(0)
    model = make(name).eval()
    x = torch.randn(2, 3, size(name), size(name))
    out = model(x)
    assert out.shape == (2, 1000) and not torch.isnan(out).any()
    model.set_grad_checkpointing()
    assert torch.allclose(model(x), out, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_backward_every_parameter_gets_grad(name):
    torch.manual_seed(0)
    model = make(name, num_classes=42)
    for p in model.parameters():  # zero-initialised GRN gamma would hide the path through GRN otherwise
        if p.abs().sum() == 0:
            p.data.normal_(std=0.02)
    x = torch.randn(2, 3, size(name), size(name))
    out = model(x)
    assert out.shape[-1] == 42
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize("name", MODELS)
def test_default_cfg_contract(name):
    model = make(name).eval()
    cfg = getattr(model, "pretrained_cfg", None) or {"input_size": (3, 224, 224), "pool_size": (7, 7),
                                                      "classifier": "head", "first_conv": "downsample_layers.0.0"}
    assert model.num_classes >= 0 and model.num_features > 0 and model.head_hidden_size > 0
    x = torch.randn(1, *cfg["input_size"])
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape[1] == model.num_features and tuple(feats.shape[-2:]) == tuple(cfg["pool_size"])
        assert model.forward_head(feats, pre_logits=True).shape == (1, model.head_hidden_size)
        model.reset_classifier(0)
        assert model(x).ndim == 2
        model.reset_classifier(0, "")
        assert model(x).shape[1:] == feats.shape[1:]
    sd = model.state_dict()
    assert cfg["classifier"] + ".weight" in make(name).state_dict()
    assert cfg["first_conv"] + ".weight" in sd
    if name != "tiny":
        m = timm.create_model(name, num_classes=0, global_pool="")
        assert m(x).ndim == 4


@pytest.mark.parametrize("name", MODELS)
def test_torchscript(name):
    model = make(name).eval()
    x = torch.randn(1, 3, size(name), size(name))
    scripted = torch.jit.script(model)
    assert torch.allclose(scripted(x), model(x), atol=1e-5)
    model.reparameterize()
    assert torch.allclose(torch.jit.script(model)(x), model(x), atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_features_only(name):
    model = timm.create_model(name, features_only=True) if name != "tiny" else \
        unireplknet.UniRepLKNetFeatures(UniRepLKNet(**TINY))
    h, w = size(name), size(name) + 16
    outs = model(torch.randn(1, 3, h, w))
    assert len(outs) >= 3
    assert [o.shape[1] for o in outs] == model.feature_info.channels()
    for o, r in zip(outs, model.feature_info.reduction()):
        assert o.shape[-2] <= math.ceil(h / r) + 1 and o.shape[-1] <= math.ceil(w / r) + 1
    sub = timm.create_model("unireplknet_a", features_only=True, out_indices=(1, 3))
    assert sub.feature_info.reduction() == [8, 32] and len(sub(torch.randn(1, 3, 64, 64))) == 2


@pytest.mark.parametrize("name", MODELS)
def test_forward_intermediates(name):
    torch.manual_seed(0)
    model = make(name).eval()
    x = torch.randn(1, 3, size(name), size(name))
    final, inter = model.forward_intermediates(x)
    assert torch.allclose(final, model.forward_features(x))
    assert [t.shape[1] for t in inter] == model.feature_info.channels()
    for t, r in zip(inter, model.feature_info.reduction()):
        assert t.shape[-1] == math.ceil(size(name) / r)
    only = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert len(only) == 2 and torch.allclose(only[-1], inter[-1])
    model.set_grad_checkpointing()
    final2, _ = model.forward_intermediates(x)
    assert torch.allclose(final, final2)
    kept = model.prune_intermediate_layers((0, 1))
    assert kept == [0, 1] and len(model.stages) == 2


@pytest.mark.parametrize("name", MODELS)
def test_fx_forward_and_backward(name):
    torch.manual_seed(0)
    model = make(name).eval()
    x = torch.randn(1, 3, size(name), size(name))
    _, eval_nodes = get_graph_node_names(model)
    fx_model = create_feature_extractor(model, return_nodes=[eval_nodes[-1]])
    out = next(iter(fx_model(x).values()))
    assert torch.allclose(out, model(x), atol=1e-6)
    model.train()
    _, train_nodes = get_graph_node_names(model)
    fx_train = create_feature_extractor(model, return_nodes=[train_nodes[-1]])
    next(iter(fx_train(x).values())).mean().backward()
    assert all(p.grad is not None for p in fx_train.parameters() if p.requires_grad and p.abs().sum() > 0)


def test_timm_reparameterize_model_and_idempotence():
    torch.manual_seed(0)
    model = make("tiny").eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(std=0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, 64, 64)
    fused = reparameterize_model(model)  # walks nested modules, calling reparameterize() on each
    assert fused.deployed and not model.deployed
    assert torch.allclose(fused(x), model(x), atol=1e-5)
    fused.reparameterize()  # idempotent
    assert torch.allclose(fused(x), model(x), atol=1e-5)


def test_pretrained_offline_error_in_timm():
    with pytest.raises(Exception):
        timm.create_model("unireplknet_a", pretrained=True)


def _fx_graph_module(model: torch.nn.Module) -> torch.nn.Module:
    """timm's recipe: trace train and eval graphs with timm's leaf modules/functions, return the last node."""
    from torchvision.models.feature_extraction import create_feature_extractor as tv_extractor
    from torchvision.models.feature_extraction import get_graph_node_names as tv_nodes

    kw = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions(),
              param_shapes_constant=True)
    train_nodes, eval_nodes = tv_nodes(model, tracer_kwargs=kw)
    return tv_extractor(model, train_return_nodes=[train_nodes[-1]], eval_return_nodes=[eval_nodes[-1]],
                        tracer_kwargs=kw)


def test_forward_annotations_are_not_strings():
    # a string annotation on the root forward becomes `x: _torch_Tensor_` in FX code, which TorchScript rejects
    for cls in (UniRepLKNet, unireplknet.UniRepLKNetFeatures):
        hints = cls.forward.__annotations__
        assert hints and all(not isinstance(v, str) for v in hints.values()), (cls, hints)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n != "tiny" else n for n in MODELS])
def test_fx_graph_module_scripts(name):
    torch.manual_seed(0)
    with timm.set_scriptable(True):
        model = make(name).eval()
    x = torch.randn(1, 3, size(name), size(name))
    scripted = torch.jit.script(_fx_graph_module(model))
    with torch.inference_mode():
        out = torch.cat(tuple(scripted(x).values()))
        ref = model(x)
    assert out.shape == (1, 1000) and not torch.isnan(out).any()
    assert torch.allclose(out, ref, atol=1e-5)
    traced = torch.fx.symbolic_trace(model)  # plain FX as well
    with torch.inference_mode():
        assert torch.allclose(torch.jit.script(traced)(x), ref, atol=1e-5)


def test_fx_train_graph_backward_every_parameter():
    torch.manual_seed(0)
    model = make("tiny", num_classes=42).train()
    for p in model.parameters():
        if p.abs().sum() == 0:
            p.data.normal_(std=0.02)
    fx = _fx_graph_module(model).train()
    out = torch.cat(tuple(fx(torch.randn(2, 3, 64, 64)).values()))
    out.mean().backward()
    assert out.shape[-1] == 42
    assert [n for n, p in fx.named_parameters() if p.grad is None] == []


def test_pretrained_cfg_matches_the_weights_table():
    from unireplknet.weights import PRETRAINED

    model = timm.create_model("unireplknet_a")
    cfg = model.pretrained_cfg
    for key in ("input_size", "pool_size", "crop_pct", "interpolation", "mean", "std", "first_conv", "classifier",
                "num_classes", "hf_hub_id", "hf_hub_filename", "license"):
        assert key in cfg, key
    assert cfg["hf_hub_filename"] == PRETRAINED["unireplknet_a.in1k_224"].filename
    for tag in timm.list_pretrained("unireplknet*"):
        w = PRETRAINED[tag]
        c = timm.models.get_pretrained_cfg(tag)
        assert c.num_classes == w.num_classes and c.input_size == (3, w.input_size, w.input_size)
        assert tuple(c.pool_size) == (w.input_size // 32, w.input_size // 32)


def test_features_only_grad_checkpointing_gives_the_same_gradients():
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = timm.create_model("unireplknet_a", features_only=True, **TINY).train()
        model.set_grad_checkpointing(ckpt)
        sum(f.pow(2).mean() for f in model(x)).backward()
        grads.append([p.grad for p in model.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for g0, g1 in zip(*grads):
        assert torch.allclose(g0, g1, atol=1e-6)


def test_feature_classes_getter_and_fx():
    x = torch.randn(1, 3, 64, 96)
    for feature_cls in ("getter", "fx"):
        model = timm.create_model("unireplknet_a", features_only=True, feature_cls=feature_cls, **TINY).eval()
        with torch.no_grad():
            outs = model(x)
        assert [o.shape[1] for o in outs] == list(TINY["dims"])
        assert [o.shape[-1] for o in outs] == [24, 12, 6, 3]
    fx = timm.create_model("unireplknet_a", features_only=True, feature_cfg={"feature_cls": "fx"}, **TINY).eval()
    with torch.no_grad():
        assert [o.shape[1] for o in torch.jit.script(fx)(x)] == list(TINY["dims"])


def test_reset_classifier_follows_device_dtype_and_mode():
    model = make("tiny").to(dtype=torch.float64).eval()
    model.reset_classifier(0)
    model.reset_classifier(2)
    head = model.get_classifier()
    assert head.weight.dtype == torch.float64 and not head.training
    assert all(not m.training for m in model.modules())
    model.requires_grad_(False)
    model.reset_classifier(0, "")
    assert not [n for n, p in model.named_parameters() if p.requires_grad]


def test_prune_intermediate_layers_contract():
    torch.manual_seed(0)
    model = make("tiny").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        taps = model.forward_intermediates(x, intermediates_only=True)
        pruned = copy.deepcopy(model)
        pruned.prune_intermediate_layers([3], prune_head=False)
        assert torch.allclose(pruned(x), expected)
    for i in range(4):
        with torch.no_grad():
            early = model.forward_intermediates(x, indices=[i], stop_early=True, intermediates_only=True)
            assert torch.equal(early[0], taps[i])
            pruned = copy.deepcopy(model)
            take = pruned.prune_intermediate_layers([i])
            assert torch.equal(pruned.forward_intermediates(x, indices=take, intermediates_only=True)[0], taps[i])
            assert torch.equal(pruned.forward_features(x), taps[i])
            assert torch.allclose(pruned(x), taps[i].mean((2, 3)))  # head and its norm are gone
            assert pruned.num_features == taps[i].shape[1]
        pruned.train()
        feats = pruned.forward_intermediates(x, indices=take, intermediates_only=True)
        (sum(f.sum() for f in feats) + pruned.forward_features(x).sum()).backward()
        unused = [n for n, p in pruned.named_parameters() if p.requires_grad and p.grad is None]
        assert not unused, (i, unused)
