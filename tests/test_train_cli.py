"""The train / eval / predict commands end to end on a tiny image folder, and their user errors."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from unireplknet.cli import main
from unireplknet.engine.checkpoint import load_checkpoint

TINY_ARGS = json.dumps({"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [3], [7], [3]]})


def make_dataset(root, n_train=8, n_val=3, classes=("circle", "square")):
    """Two easy classes of 20x20 RGB images (a bright disc vs. a bright square)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:20, :20]
    for split, n in (("train", n_train), ("val", n_val)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (20, 20, 3)).astype(np.uint8)
                mask = ((yy - 10) ** 2 + (xx - 10) ** 2 < 36) if c == "circle" else ((abs(yy - 10) < 7) & (abs(xx - 10) < 7))
                img[mask] = 220
                Image.fromarray(img).save(d / f"{i}.png")
    return root


def base_args(data, out, *extra):
    return ["train", "--data", str(data), "--model", "custom", "--model-args", TINY_ARGS, "--input-size", "32",
            "--transform", "light", "--epochs", "1", "--batch-size", "4", "--num-workers", "0", "--num-threads", "1",
            "--warmup-epochs", "0", "-o", str(out), *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    data = make_dataset(tmp / "data")
    (tmp / "cfg.yaml").write_text("epochs: 2\nlr: 0.01\nsmoothing: 0.0\n")
    out = tmp / "run"
    rc = main(base_args(data, out, "--config", str(tmp / "cfg.yaml"), "--lr", "0.002", "--epochs", "2"))
    assert rc == 0
    return data, out


def test_train_writes_a_complete_run(trained, capsys):
    _, out = trained
    for f in ("config.yaml", "model.json", "last.pt", "best.pt", "deploy.safetensors", "metrics.csv",
              "metrics.jsonl", "curves.png", "summary.json"):
        assert (out / f).is_file(), f
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["lr"] == 0.002 and cfg["smoothing"] == 0.0 and cfg["epochs"] == 2  # flags > YAML > defaults
    assert cfg["model"] == "custom" and cfg["input_size"] == 32
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and 0.0 <= rows[-1]["val_acc1"] <= 1.0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 8 and ckpt["config"]["lr"] == 0.002


def test_eval_and_predict(trained, capsys):
    data, out = trained
    assert main(["eval", str(out)]) == 0
    text = capsys.readouterr().out
    assert "top-1" in text and "n=6" in text
    result = json.loads((out / "eval" / "eval-val.json").read_text())
    assert result["n"] == 6 and np.array(result["confusion_matrix"]).sum() == 6
    assert (out / "eval" / "confusion-val.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert result["acc1"] == pytest.approx(max(r["val_acc1"] for r in rows), abs=1e-6)  # deploy == best
    img = data / "val" / "circle" / "0.png"
    assert main(["predict", str(img), "--run", str(out), "-k", "2", "--json"]) == 0
    pred = json.loads(capsys.readouterr().out.strip())
    assert pred["file"] == str(img) and {p["label"] for p in pred["top"]} == {"circle", "square"}
    assert sum(p["prob"] for p in pred["top"]) == pytest.approx(1.0, abs=1e-4)
    assert summary["best"]["metric"] == "acc1"




def test_predict_takes_folders_and_skips_unreadable_files(trained, tmp_path, capsys, caplog):
    data, out = trained
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    for i, src in enumerate(sorted((data / "val" / "circle").glob("*.png"))[:2]):
        (folder / "sub" / f"{i}.PNG").write_bytes(src.read_bytes())
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / ".DS_Store").write_bytes(b"junk")
    assert main(["predict", str(folder), "--run", str(out), "-k", "1", "--json"]) == 0
    captured = capsys.readouterr()
    preds = [json.loads(line) for line in captured.out.strip().splitlines()]
    assert [Path(p["file"]).name for p in preds] == ["0.PNG", "1.PNG"]
    assert "skipped 1 unreadable file(s)" in caplog.text and "broken.png" in caplog.text
    assert main(["predict", str(folder / "broken.png"), "--run", str(out), "--no-skip-bad-files"]) == 2
    assert "broken.png" in capsys.readouterr().err
    assert main(["predict", str(folder / "broken.png"), "--run", str(out)]) == 2  # nothing readable at all
    assert main(["predict", str(folder / "sub" / "0.PNG"), str(folder / "typo.png"), "--run", str(out)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "--run", str(out)]) == 2
    assert "folder without input files" in capsys.readouterr().err


def test_a_new_run_sets_an_earlier_run_in_its_directory_aside(trained, tmp_path, caplog):
    data, _ = trained
    out = tmp_path / "run"
    assert main(base_args(data, out, "--no-baselines")) == 0
    first = (out / "best.pt").read_bytes()
    (out / "eval").mkdir()
    (out / "eval" / "eval-test.json").write_text("{}")
    assert main(base_args(data, out, "--no-baselines", "--seed", "1")) == 0
    old = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(old) == 1 and (old[0] / "best.pt").read_bytes() == first and (old[0] / "eval").is_dir()
    assert not (out / "eval").exists() and "held an earlier run" in caplog.text


def test_run_stores_absolute_data_paths(trained, monkeypatch):
    data, out = trained
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert Path(cfg["data"]).is_absolute() and Path(cfg["data"]) == Path(data).absolute()


def test_unknown_config_key(trained, tmp_path, capsys):
    data, _ = trained
    (tmp_path / "bad.yaml").write_text("epochs: 1\nlearning_rate: 0.1\n")
    assert main(base_args(data, tmp_path / "r", "--config", str(tmp_path / "bad.yaml"))) == 2
    err = capsys.readouterr().err
    assert "unknown config key(s)" in err and "learning_rate" in err


def test_missing_data_dir(tmp_path, capsys):
    assert main(base_args(tmp_path / "nowhere", tmp_path / "r")) == 2
    assert "data not found" in capsys.readouterr().err


def test_resume_from_another_model_is_refused(trained, tmp_path, capsys):
    data, out = trained
    other = json.dumps({"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 48], "kernel_sizes": [[3], [3], [7], [3]]})
    args = base_args(data, tmp_path / "r", "--resume", str(out / "last.pt"), "--model-args", other)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "different model" in err and "Traceback" not in err


def test_python_dash_m_entry_point(monkeypatch, capsys):
    import runpy

    monkeypatch.setattr(sys, "argv", ["unireplknet", "train", "--help"])
    with pytest.raises(SystemExit) as exit_info:  # what `python -m unireplknet train --help` runs
        runpy.run_module("unireplknet", run_name="__main__", alter_sys=True)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--recipe" in out and "--modality audio --help" in " ".join(out.split())  # how to see modality flags
    monkeypatch.setattr(sys, "argv", ["unireplknet", "train", "--modality", "image", "--help"])
    with pytest.raises(SystemExit):
        runpy.run_module("unireplknet", run_name="__main__", alter_sys=True)
    assert "--input-size" in capsys.readouterr().out


def test_recipes_match_the_original_tables():
    from unireplknet.modalities.image.datasets import RECIPES

    assert RECIPES["in1k_t"]["drop_path"] == 0.2 and RECIPES["in1k_t"]["mixup"] == 0.8
    assert RECIPES["in1k_a"]["cutmix"] == 0.3 and RECIPES["in1k_s"]["drop_path"] == 0.4
    ft = RECIPES["in22k_ft_in1k_l"]
    assert (ft["lr"], ft["layer_decay"], ft["input_size"], ft["epochs"], ft["smoothing"], ft["ema"]) == (
        5e-5, 0.8, 384, 20, 0.3, True)
    assert ft["batch_size"] * ft["accum"] * 4 == ft["lr_base_batch"] == 512


def test_unknown_recipe(trained, tmp_path, capsys):
    data, _ = trained
    assert main(base_args(data, tmp_path / "r", "--recipe", "in1k_zz")) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'in1k_zz'" in err and "in1k_t" in err and "Traceback" not in err


def test_pretrained_path_keeps_the_backbone_and_resets_the_head(tmp_path):
    import torch

    import unireplknet
    from unireplknet.tasks.classification import build_model

    cfg = {"model": "custom", "model_args": json.loads(TINY_ARGS), "pretrained": None}
    source = build_model(cfg, num_classes=5, in_chans=3)
    unireplknet.save_weights(source, tmp_path / "src.safetensors")
    model = build_model(dict(cfg, pretrained=str(tmp_path / "src.safetensors")), num_classes=2, in_chans=3)
    assert model.head.weight.shape[0] == 2
    key = "stages.2.0.dwconv.lk_origin.weight"
    assert torch.equal(model.state_dict()[key], source.state_dict()[key])
    with pytest.raises(ValueError, match="unknown model"):
        build_model(dict(cfg, model="unireplknet_zz"), 2, 3)


def test_demo_config_layering():
    from unireplknet.cli import build_parser
    from unireplknet.modalities import get_modality
    from unireplknet.modalities.image.datasets import DEMO_DEFAULTS
    from unireplknet.runner.train import _resolve

    def resolve_config(args, modality):
        return _resolve(args, modality).config

    _modality = get_modality
    args = build_parser().parse_args(["train", "--epochs", "3", "--hflip", "0.25"])
    cfg = resolve_config(args, _modality("image"))
    assert cfg["data"] is None and cfg["model"] == "custom" and cfg["model_args"] == DEMO_DEFAULTS["model_args"]
    assert (cfg["epochs"], cfg["hflip"], cfg["input_size"], cfg["in_chans"]) == (3, 0.25, 32, 1)
    recipe = resolve_config(build_parser().parse_args(["train", "--data", "x", "--recipe", "in1k_t"]), _modality("image"))
    assert (recipe["model"], recipe["drop_path"], recipe["input_size"], recipe["lr_base_batch"]) == (
        "unireplknet_t", 0.2, 224, 4096)
