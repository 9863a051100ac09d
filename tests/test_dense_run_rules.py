"""Dense-task runs meet the classification commands with a clear message; COCO paths with Windows separators."""
from __future__ import annotations

import json

import pytest

from unireplknet.cli import main
from unireplknet.errors import CheckpointError
from unireplknet.tasks.classification import load_trained
from unireplknet.tasks.detection_train import _resolve_image


def test_eval_and_predict_name_a_dense_run_instead_of_failing_obscurely(tmp_path, capsys):
    det = tmp_path / "det"
    det.mkdir()
    (det / "model.json").write_text(json.dumps({"config": {"task": "detection"}, "num_classes": 3}))
    (det / "best.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is a detection run"):
        load_trained(det)
    seg = tmp_path / "seg"  # a segmentation run records its task through its metrics only
    seg.mkdir()
    (seg / "summary.json").write_text(json.dumps({"evaluation": {"val": {"mIoU": 40.0}}}))
    assert main(["eval", "-r", str(seg)]) == 2
    assert "is a segmentation run" in capsys.readouterr().err
    (tmp_path / "x.png").write_bytes(b"")
    assert main(["predict", "-r", str(det), str(tmp_path / "x.png")]) == 2
    assert "is a detection run" in capsys.readouterr().err


def test_coco_file_names_with_windows_separators_resolve(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "im0.JPG").write_bytes(b"x")
    assert _resolve_image("sub\\im0.JPG", [tmp_path]) == tmp_path / "sub" / "im0.JPG"
    assert _resolve_image("sub/im0.JPG", [tmp_path]) == tmp_path / "sub" / "im0.JPG"


def test_a_forecasting_run_is_named_too(tmp_path, capsys):
    run = tmp_path / "fc"
    (run / "unireplknet").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"data": {}, "seasonal_periods": [7], "test": {}}))
    for target in (run, run / "unireplknet"):
        assert main(["eval", "-r", str(target)]) == 2
        err = capsys.readouterr().err
        assert "is a forecasting run" in err and str(run / "metrics.json") in err
