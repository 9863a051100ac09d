"""The project computes the same function as the original implementation (golden logits, counts)."""
import pytest
import torch

from reference_weights import golden, manifest, reference_input, rel_err, rule_state_dict
from unireplknet import UniRepLKNet, create_model, load_weights
from unireplknet.complexity import count_macs, count_params
from unireplknet.weights import to_official

VARIANTS = ["unireplknet_a", "unireplknet_f", "unireplknet_p", "unireplknet_n", "unireplknet_t",
            "unireplknet_s", "unireplknet_b", "unireplknet_l", "unireplknet_xl"]
TOL = 1e-4


def _build(name: str, **kw) -> torch.nn.Module:
    cfg = manifest()[name]
    if name == "tiny":
        return UniRepLKNet(in_chans=cfg["in_chans"], num_classes=cfg["num_classes"], depths=cfg["depths"],
                           dims=cfg["dims"], kernel_sizes=cfg["kernel_sizes"], **kw)
    return create_model(name, num_classes=cfg["num_classes"], **kw)


def _inputs(name: str):
    if name == "tiny":
        return {"64": ((2, 3, 64, 64), 0), "33x47": ((1, 3, 33, 47), 1)}
    return {"224": ((2, 3, 224, 224), 0), "97x131": ((1, 3, 97, 131), 1)}


@pytest.mark.parametrize("name", ["tiny"] + VARIANTS)
def test_golden_logits_train_and_deploy(name):
    torch.manual_seed(0)
    cfg = manifest()[name]
    model = _build(name).eval()
    report = load_weights(model, rule_state_dict(cfg["train_state_dict"]))  # official keys, strict
    assert not report.missing and not report.unexpected
    ref = golden(name)
    errors = {}
    with torch.no_grad():
        for tag, (shape, seed) in _inputs(name).items():
            errors[f"train_{tag}"] = rel_err(model(reference_input(shape, seed)), ref[f"logits_{tag}"])
        model.reparameterize()
        assert model.deployed
        for tag, (shape, seed) in _inputs(name).items():
            errors[f"deploy_{tag}"] = rel_err(model(reference_input(shape, seed)), ref[f"deploy_logits_{tag}"])
    print(name, errors)
    assert max(errors.values()) <= TOL, errors
    # the fused weights have exactly the original's deploy keys and shapes, and load strictly into deploy=True
    sd = to_official(model.state_dict())
    assert {k: list(v.shape) for k, v in sd.items()} == cfg["deploy_state_dict"]
    deployed = _build(name, deploy=True).eval()
    deployed.load_state_dict(model.state_dict(), strict=True)


@pytest.mark.parametrize("name", ["tiny"] + VARIANTS)
def test_keys_params_and_macs(name):
    cfg = manifest()[name]
    train = _build(name, device="meta")
    deploy = _build(name, deploy=True, device="meta")
    assert {k: list(v.shape) for k, v in to_official(train.state_dict()).items()} == cfg["train_state_dict"]
    assert count_params(train) == cfg["params_train"]
    assert count_params(deploy) == cfg["params_deploy"]
    if cfg["macs_224_deploy"] is not None:
        macs = count_macs(deploy, (3, 224, 224))
        assert abs(macs - cfg["macs_224_deploy"]) <= 0.01 * cfg["macs_224_deploy"]


@pytest.mark.parametrize("name,shape,seed", [("tiny", (2, 3, 64, 64), 0), ("unireplknet_a", (1, 3, 97, 131), 1)])
def test_golden_features(name, shape, seed):
    cfg = manifest()[name]
    keys = {k: s for k, s in cfg["train_state_dict"].items() if not k.startswith(("norm.", "head."))}
    for i, d in enumerate(cfg["dims"]):
        keys[f"norm{i}.weight"] = [d]
        keys[f"norm{i}.bias"] = [d]
    if name == "tiny":
        model = UniRepLKNet(depths=cfg["depths"], dims=cfg["dims"], kernel_sizes=cfg["kernel_sizes"], num_classes=0)
        from unireplknet import UniRepLKNetFeatures
        model = UniRepLKNetFeatures(model)
    else:
        model = create_model(name, features_only=True)
    model.eval()
    load_weights(model, {"state_dict": {f"backbone.{k}": v for k, v in rule_state_dict(keys).items()}})
    ref = golden(f"{name}_features")
    x = reference_input(shape, seed)
    with torch.no_grad():
        feats = model(x)
        model.reparameterize()
        fused = model(x)
    for i in range(4):
        assert feats[i].shape == ref[f"features_{i}"].shape
        assert rel_err(feats[i], ref[f"features_{i}"]) <= TOL
        assert rel_err(fused[i], ref[f"features_{i}"]) <= TOL
