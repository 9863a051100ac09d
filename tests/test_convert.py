import pytest
import torch

import unireplknet
from deploy_helpers import tiny_model
from unireplknet.cli import main
from unireplknet.export import convert_checkpoint
from unireplknet.weights import infer_architecture
from unireplknet.weights import read_checkpoint, save_weights, to_official


def test_infer_architecture_roundtrip():
    model = tiny_model(in_chans=2, num_classes=5, kernel_sizes=((0,), (3,), (9, 5), (7,)))
    cfg = infer_architecture(to_official(model.state_dict()))
    assert cfg["in_chans"] == 2 and cfg["num_classes"] == 5
    assert cfg["depths"] == (1, 1, 2, 1) and cfg["dims"] == (8, 16, 32, 64)
    assert cfg["kernel_sizes"] == ((0,), (3,), (9, 5), (7,)) and cfg["deploy"] is False
    assert infer_architecture(model.reparameterize().state_dict())["deploy"] is True
    with pytest.raises(ValueError, match="stem"):
        infer_architecture({"head.weight": torch.zeros(2, 2)})


def test_cli_convert_train_to_deploy(tmp_path, capsys):
    model = tiny_model()
    src = save_weights(model, tmp_path / "train.pth", official_keys=True)
    out = tmp_path / "deploy.safetensors"
    assert main(["convert", str(src), str(out), "--probe-size", "64"]) == 0
    text = capsys.readouterr().out
    assert "max abs difference on probe (2, 1, 64, 64)" in text
    diff = float(text.strip().splitlines()[-1].split(":")[-1])
    assert diff < 1e-4
    deploy = unireplknet.UniRepLKNet(in_chans=1, num_classes=10, depths=(1, 1, 2, 1), dims=(8, 16, 32, 64),
                                     kernel_sizes=((3,), (7,), (5, 0), (7,)), deploy=True)
    for path in (out, tmp_path / "deploy.pth"):
        sd = read_checkpoint(path)
        assert not any("branches" in k or "running_mean" in k for k in sd)
        deploy.load_state_dict(sd)
        x = torch.randn(2, 1, 64, 64)
        with torch.no_grad():
            assert torch.allclose(deploy.eval()(x), model(x), rtol=1e-4, atol=1e-5)


def test_convert_deployed_input_and_no_pth(tmp_path):
    src = save_weights(tiny_model().reparameterize(), tmp_path / "d.safetensors")
    r = convert_checkpoint(src, tmp_path / "again.safetensors", probe_size=32, write_pth=False)
    assert r.was_deployed and r.max_abs_diff == 0.0
    assert [p.name for p in r.paths] == ["again.safetensors"]


def test_cli_convert_bad_input(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "o.safetensors")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    src = save_weights(tiny_model(), tmp_path / "train.pth")
    assert main(["convert", str(src), str(tmp_path / "o.onnx")]) == 2
    assert "unsupported output format '.onnx'" in capsys.readouterr().err
    bad = tmp_path / "junk.pth"
    torch.save({"foo": torch.zeros(1)}, bad)
    assert main(["convert", str(bad), str(tmp_path / "o.safetensors")]) == 2
    assert "stem" in capsys.readouterr().err
