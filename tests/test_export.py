import logging

import numpy as np
import pytest
import torch

from deploy_helpers import tiny_model
from unireplknet.cli import main
from unireplknet.export import export_model, export_onnx, relative_error
from unireplknet.weights import save_weights


def test_onnx_train_model_is_reparameterized_and_matches_onnxruntime(tmp_path, caplog):
    import onnxruntime as ort

    model = tiny_model()
    path = tmp_path / "m.onnx"
    with caplog.at_level(logging.WARNING, logger="unireplknet.export"):
        result = export_onnx(model, path, input_size=(1, 64, 64), batch_size=2)
    assert "re-parameterized copy" in caplog.text
    assert not model.deployed
    assert result.max_rel_error is not None and result.max_rel_error <= 1e-4
    assert result.checked_sizes == [(2, 1, 64, 64), (3, 1, 96, 128), (1, 1, 129, 163)]
    # independent check at a third shape: dynamic batch and spatial size
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 1, 128, 64)
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        ref = model(x).numpy()
    assert out.shape == (1, 10)
    assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()


def test_exported_program_and_torchscript(tmp_path):
    model = tiny_model().reparameterize()
    r = export_model(model, tmp_path / "m.pt2", input_size=(1, 64, 64), batch_size=2)
    assert r.format == "exported-program" and r.max_rel_error <= 1e-5
    loaded = torch.export.load(str(tmp_path / "m.pt2")).module()
    x = torch.randn(4, 1, 96, 64)
    with torch.no_grad():
        assert relative_error(loaded(x), model(x)) <= 1e-5
    r = export_model(model, tmp_path / "m.pt", input_size=(1, 64, 64))
    assert r.format == "torchscript" and r.max_rel_error <= 1e-5


def test_export_bad_input(tmp_path):
    model = tiny_model()
    with pytest.raises(ValueError, match="unsupported export format 'tflite'"):
        export_model(model, tmp_path / "m.onnx", format="tflite")
    with pytest.raises(ValueError, match="cannot tell the export format"):
        export_model(model, tmp_path / "m.bin")
    with pytest.raises(ValueError, match="too small"):
        export_model(model, tmp_path / "m.pt", input_size=(1, 16, 64))
    with pytest.raises(ValueError, match="shape"):
        relative_error(torch.zeros(2), torch.zeros(3))


def test_cli_export_from_checkpoint(tmp_path, capsys):
    ckpt = save_weights(tiny_model(), tmp_path / "train.pth")
    out = tmp_path / "model.pt"
    code = main(["export", str(out), "--checkpoint", str(ckpt), "--input-size", "1", "64", "64"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert out.is_file() and "max relative error" in text
    out.unlink()
    assert main(["export", str(out), "--checkpoint", str(ckpt)]) == 0  # channels from the checkpoint's model
    assert out.is_file() and "max relative error" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "m.xyz"), "--checkpoint", str(ckpt)]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "m.onnx"), "--format", "tflite", "--checkpoint", str(ckpt)]) == 2
    assert main(["export", str(out), "--checkpoint", str(tmp_path / "missing.pth")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
