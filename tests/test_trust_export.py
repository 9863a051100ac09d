"""Exports you can trust: NaN never passes, 32x32 exports stay dynamic, failures leave no file."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from deploy_helpers import tiny_model
from unireplknet.cli import main
from unireplknet.errors import ExportError, NonFiniteError
from unireplknet.export import export_onnx, export_program, export_torchscript, relative_error, trace_size, verify_sizes
from unireplknet.weights import save_weights


def nan_model():
    model = tiny_model()
    with torch.no_grad():
        model.stages[1][0].pwconv1[1].weight[0, 0] = float("nan")
    return model


def test_relative_error_is_nan_when_either_side_is_not_finite():
    ok = torch.ones(3)
    assert np.isnan(relative_error(torch.tensor([1.0, float("nan"), 1.0]), ok))
    assert np.isnan(relative_error(ok, torch.tensor([1.0, float("inf"), 1.0])))
    assert relative_error(ok, ok) == 0.0


def test_verify_and_trace_sizes_cover_dynamic_shapes():
    assert trace_size((3, 32, 32)) == (64, 64)  # a 1x1 stride-32 map would be specialised by the tracer
    assert trace_size((3, 32, 32), dynamic_size=False) == (32, 32)
    assert trace_size((3, 224, 97)) == (224, 97)
    sizes = verify_sizes((3, 32, 32), batch_size=1)
    assert sizes == [(1, 3, 32, 32), (2, 3, 64, 96), (1, 3, 97, 131)]
    assert any(h % 32 and w % 32 for _, _, h, w in sizes)
    odd = verify_sizes((3, 97, 131), batch_size=2)[-1]
    assert odd[2] % 32 == 0 and odd[3] % 32 == 0  # a non-multiple request is also checked at a multiple
    assert verify_sizes((3, 64, 64), 2, dynamic_size=False) == [(2, 3, 64, 64), (3, 3, 64, 64)]


def test_nan_weights_are_refused_before_writing(tmp_path):
    for export, name in ((export_onnx, "m.onnx"), (export_torchscript, "m.pt")):
        path = tmp_path / name
        with pytest.raises(NonFiniteError, match=r"NaN/inf in \d+ weight tensor\(s\): stages\.1\.0\.pwconv1\.1\.weight"):
            export(nan_model(), path, input_size=(1, 64, 64))
        assert not path.exists()


def test_nan_in_verification_fails_and_removes_the_file(tmp_path, monkeypatch):
    model = tiny_model().reparameterize()
    real_load = torch.export.load

    class NaNProgram:
        def __init__(self, program):
            self.program = program

        def module(self):
            inner = self.program.module()
            return lambda x: inner(x) * float("nan")

    monkeypatch.setattr(torch.export, "load", lambda *a, **k: NaNProgram(real_load(*a, **k)))
    path = tmp_path / "m.pt2"
    with pytest.raises(ExportError, match=r"NaN/inf at input 1x1x64x64.*removed"):
        export_program(model, path, input_size=(1, 64, 64))
    assert not path.exists()


def test_cli_export_nan_checkpoint_is_one_line_and_no_file(tmp_path, capsys):
    ckpt = save_weights(nan_model(), tmp_path / "nan.pth")
    out = tmp_path / "m.onnx"
    for extra in ([], ["--no-verify"]):  # --no-verify does not let it through
        assert main(["export", str(out), "--checkpoint", str(ckpt), "--input-size", "1", "32", "32", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "NaN/inf" in err and "Traceback" not in err
        assert not out.exists()


@pytest.mark.slow
def test_onnx_32x32_export_runs_at_other_sizes_and_logs_are_quiet(tmp_path, caplog):
    import onnx
    import onnxruntime as ort

    model = tiny_model(in_chans=3).reparameterize()
    path = tmp_path / "m.onnx"
    levels = {n: logging.getLogger(n).level for n in ("onnxscript", "onnx_ir")}
    with caplog.at_level(logging.INFO):
        result = export_onnx(model, path, input_size=(3, 32, 32))
    assert not [r for r in caplog.records if r.name.startswith(("onnxscript", "onnx_ir")) and r.levelno < logging.WARNING]
    assert {n: logging.getLogger(n).level for n in levels} == levels  # restored afterwards
    assert result.checked_sizes == [(1, 3, 32, 32), (2, 3, 64, 96), (1, 3, 97, 131)]
    assert result.max_rel_error is not None and result.max_rel_error <= 1e-4
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert all(dims[i].dim_param for i in (0, 2, 3))  # batch, H and W are symbolic
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for h, w in ((64, 64), (224, 224), (97, 131)):
        x = torch.randn(1, 3, h, w)
        out = session.run(None, {name: x.numpy()})[0]
        with torch.no_grad():
            ref = model(x)
        assert relative_error(torch.from_numpy(out), ref) <= 1e-4, (h, w)


@pytest.mark.slow
def test_cli_onnx_failed_verification_exit_2_and_no_file(tmp_path, capsys, monkeypatch):
    import onnxruntime as ort

    real_run = ort.InferenceSession.run

    def nan_run(self, *a, **k):
        return [o * np.nan for o in real_run(self, *a, **k)]

    monkeypatch.setattr(ort.InferenceSession, "run", nan_run)
    ckpt = save_weights(tiny_model(), tmp_path / "train.pth")
    out = tmp_path / "m.onnx"
    code = main(["export", str(out), "--checkpoint", str(ckpt), "--input-size", "1", "32", "32"])
    captured = capsys.readouterr()
    assert code == 2, captured.out
    err = captured.err.strip()
    assert err.startswith("error: verification failed") and "NaN/inf" in err and "\n" not in err
    assert "max relative error" not in captured.out  # no "error 0" reported for a NaN
    assert not out.exists()
