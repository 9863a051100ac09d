"""Checkpoints and export: foreign run weights, .pt2 minimum size, run directories for convert/export,
corrupt files vs pickled objects."""
from __future__ import annotations

import json
import os

import pytest
import torch

from unireplknet import UniRepLKNet
from unireplknet.cli import main
from unireplknet.engine.checkpoint import FORMAT, atomic_save, load_checkpoint
from unireplknet.errors import CheckpointError
from unireplknet.export import PROGRAM_MIN_SIDE, export_program
from unireplknet.tasks.classification import load_trained, resolve_run_weights
from unireplknet.weights import read_checkpoint

ARGS = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [5], [5], [5]]}
OTHER = {"depths": [1, 1, 1, 1], "dims": [4, 8, 16, 32], "kernel_sizes": [[3], [3], [3], [3]]}


def make_run(run, model_args=ARGS, num_classes=3, in_chans=1, weights_args=None, weights_classes=None):
    """A run directory as ``unireplknet train`` leaves it: model.json and best.pt (no training)."""
    run.mkdir(parents=True, exist_ok=True)
    record = {"config": {"model": "custom", "model_args": model_args}, "num_classes": num_classes, "in_chans": in_chans}
    (run / "model.json").write_text(json.dumps(record))
    wa = weights_args or model_args
    torch.manual_seed(0)
    model = UniRepLKNet(in_chans=in_chans, num_classes=weights_classes or num_classes, depths=wa["depths"],
                        dims=wa["dims"], kernel_sizes=tuple(tuple(k) for k in wa["kernel_sizes"]))
    atomic_save({"format": FORMAT, "model": model.state_dict(), "epoch": 1}, run / "best.pt")
    return model


def test_run_weights_of_another_model_give_one_checkpoint_error(tmp_path, capsys):
    make_run(tmp_path / "run", weights_args=OTHER)
    with pytest.raises(CheckpointError, match=r"best\.pt does not fit the model of run .*shape mismatches"):
        load_trained(tmp_path / "run")
    make_run(tmp_path / "run2", weights_classes=5)  # same architecture, another class count
    with pytest.raises(CheckpointError, match=r"best\.pt does not fit the model of run"):
        load_trained(tmp_path / "run2" / "best.pt")
    assert main(["export", str(tmp_path / "x.onnx"), "--checkpoint", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "best.pt does not fit the model of run" in err and "\n" not in err


def test_matching_run_weights_load(tmp_path):
    model = make_run(tmp_path / "run")
    loaded, record = load_trained(tmp_path / "run")
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.eval()(x))
    assert record["num_classes"] == 3


def test_dynamic_program_below_33_is_refused_with_the_real_minimum(tmp_path):
    model = UniRepLKNet(in_chans=1, num_classes=3, depths=(1, 1, 1, 1), dims=(8, 16, 32, 64),
                        kernel_sizes=((3,), (5,), (5,), (5,)))
    assert PROGRAM_MIN_SIDE == 33
    with pytest.raises(ValueError, match=r"only accepts H, W >= 33.*static"):
        export_program(model, tmp_path / "m.pt2", input_size=(1, 32, 32), verify=False)
    assert not (tmp_path / "m.pt2").exists()


def test_convert_and_export_accept_a_run_directory(tmp_path, capsys):
    make_run(tmp_path / "run")
    assert resolve_run_weights(tmp_path / "run") == tmp_path / "run" / "best.pt"
    out = tmp_path / "d.safetensors"
    assert main(["convert", str(tmp_path / "run"), str(out), "--probe-size", "32", "--no-pth"]) == 0
    assert out.is_file() and "is a run directory: converting" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "m.pt"), "--checkpoint", str(tmp_path / "run"),
                 "--input-size", "1", "32", "32", "--no-verify"]) == 0
    assert (tmp_path / "m.pt").is_file()
    (tmp_path / "empty").mkdir()
    assert main(["convert", str(tmp_path / "empty"), str(out)]) == 2
    assert "no deploy.safetensors / best.pt / last.pt in" in capsys.readouterr().err


class _Evil:
    def __reduce__(self):
        return (os.system, ("true",))


def test_random_bytes_are_corrupt_and_pickled_objects_refused(tmp_path):
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 80)  # not a zip, not a pickle
    torch.save({"format": FORMAT, "model": {}, "x": _Evil()}, tmp_path / "evil.pt")
    for load in (read_checkpoint, load_checkpoint):
        with pytest.raises(CheckpointError) as e:
            load(tmp_path / "random.pt")
        msg = str(e.value)
        assert "corrupt, truncated or not a PyTorch checkpoint" in msg and "random.pt" in msg
        assert "weights_only" not in msg and "pickled objects" not in msg
        with pytest.raises(CheckpointError, match=r"refused to load .*evil\.pt.*pickled objects.*system") as e:
            load(tmp_path / "evil.pt")
        assert "weights_only" not in str(e.value)
