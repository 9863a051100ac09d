"""End to end: the point-shapes example (reduced) trains through the engine; ``predict`` reads its run."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from unireplknet.cli import main
from unireplknet.modalities.point.datasets import CONFIG_DEFAULTS, DEMO_DEFAULTS, RECIPES
from unireplknet.modalities.point.demo import SHAPE_CLASSES, make_shape
from unireplknet.engine import DEFAULTS

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "point_shapes.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("point_shapes_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_recipe_and_demo_keys_are_known_config_keys():
    from unireplknet.modalities import get_modality
    from unireplknet.runner.train import known_keys

    known = known_keys(get_modality("point"))
    assert set(DEFAULTS) | set(CONFIG_DEFAULTS) <= known
    for name, recipe in {**RECIPES, "demo": DEMO_DEFAULTS}.items():
        assert set(recipe) <= known, (name, set(recipe) - known)


def test_example_reduced_then_predict(tmp_path, capsys):
    example = _load_example()
    out = tmp_path / "run"
    results = example.main(["--per-class", "2", "--val-per-class", "1", "--test-per-class", "1", "--epochs", "1",
                            "--batch-size", "6", "--num-points", "64", "--input-size", "32", "--workers", "0",
                            "--out", str(out), "--views-png", str(tmp_path / "views.png")])
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    for key in ("unireplknet", "pointnet"):
        acc = saved[key]["test_acc1"]
        assert 0.0 <= acc <= 1.0 and abs(acc * 6 - round(acc * 6)) < 1e-5  # 6 test shapes
    assert saved["train"] == 12 and saved["val"] == 6 and saved["test"] == 6
    assert 0.0 <= saved["d2_logreg"] <= 1.0  # the runner's D2-histogram baseline, from the point modality
    assert saved["unireplknet"]["auto"].get("canonical_pose") is True  # auto: SO(3)-rotated data
    assert (tmp_path / "views.png").stat().st_size > 1000
    record = json.loads((out / "unireplknet" / "model.json").read_text())
    assert record["in_chans"] == 3 and record["input_size"] == [32, 32]
    assert record["class_names"] == sorted(SHAPE_CLASSES)  # class folders, sorted by name
    printed = capsys.readouterr().out
    assert "UniRepLKNet (depth views" in printed and "PointNet baseline" in printed
    assert "logreg[d2_histogram]" in printed and "D2 histogram + logistic regression" in printed

    cloud = tmp_path / "cone.npy"
    np.save(cloud, make_shape("cone", 300, seed=11))
    assert main(["predict", str(cloud), "-r", str(out / "unireplknet"), "-k", "3", "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["file"] == str(cloud) and len(line["top"]) == 3
    assert {t["label"] for t in line["top"]} <= set(SHAPE_CLASSES)
    probs = [t["prob"] for t in line["top"]]
    assert probs == sorted(probs, reverse=True) and 0.0 < sum(probs) <= 1.0 + 1e-5
