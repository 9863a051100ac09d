"""The video plug-in: config keys, recipes, TaskData, and `unireplknet train/predict --modality video`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unireplknet.cli import build_parser, main as cli_main
from unireplknet.modalities.video import datasets as video_data
from unireplknet.modalities.video.datasets import build_task_data, load_for_predict, write_video

TINY = {"depths": [1, 1, 1, 1], "dims": [8, 16, 24, 32], "kernel_sizes": [[7], [5], [3], [3]]}


def plugin_args(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    video_data.add_train_args(parser)
    args = parser.parse_args([])
    args.data, args.val_data, args.seed = None, None, 0
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def make_videos(root: Path, per_class: int = 3) -> Path:
    """Two classes told apart by the direction a bar moves (up or down); 12 frames of 24 x 32."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(["down", "up"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            frames = np.full((12, 24, 32, 3), 40, np.uint8) + rng.integers(0, 20, (1, 24, 32, 3), dtype=np.uint8)
            for t in range(12):
                y = 2 + 2 * t if c == 0 else 22 - 2 * t
                frames[t, max(y - 2, 0) : y + 2] = 230
            write_video(root / name / f"{i}.mp4", frames, fps=12)
    return root


SMALL = dict(num_frames=4, frame_stride=2, frame_size=16, aa="none", eval_clips=2, eval_crops=1)


def train_argv(root: Path, run: Path, *extra: str) -> list[str]:
    """``unireplknet train`` on the test clips with the tiny model, one epoch of 4-frame 16 px clips, plus ``extra``."""
    return ["train", "--modality", "video", "--data", str(root), "--val-fraction", "0.34", "-o", str(run),
            "--model", "custom", "--model-args", json.dumps(TINY), "--epochs", "1", "--batch-size", "2",
            "--warmup-epochs", "0", "--num-workers", "0", "--num-frames", "4", "--frame-stride", "2",
            "--frame-size", "16", "--aa", "none", *extra]


def test_plugin_contract_and_recipes(tmp_path: Path) -> None:
    assert set(video_data.CONFIG_DEFAULTS) == set(vars(plugin_args())) - {"seed", "val_data", "data"}
    orig = video_data.RECIPES["kinetics400_original"]
    assert orig["layout"] == "reshape" and orig["model"] == "unireplknet_b" and orig["drop_path"] == 0.4
    assert orig["model_args"]["kernel_sizes"][3] == [11, 11, 11]  # stage-4 kernels 11 instead of 13
    assert orig["lr"] * 64 / orig["lr_base_batch"] == pytest.approx(1e-3)
    assert (orig["eval_clips"], orig["eval_crops"], orig["num_frames"], orig["frame_stride"]) == (5, 3, 16, 4)
    assert video_data.RECIPES["kinetics400"]["layout"] == "grid"

    root = make_videos(tmp_path / "clips")
    task = build_task_data(plugin_args(data=str(root), val_fraction=0.34, **SMALL))
    assert (task.num_classes, list(task.class_names)) == (2, ["down", "up"])
    assert (task.in_chans, task.input_size) == (3, (32, 32))
    assert len(task.train) == 4 and len(task.val) == 2 and task.eval_views == 2
    x, y = task.train[0]
    assert x.shape == (3, 32, 32) and isinstance(y, int)
    v, _ = task.val[0]
    assert v.shape == (2, 3, 32, 32)
    grid = build_task_data(plugin_args(data=str(root), val_fraction=0.34, grid="1x4", layout="grid", **SMALL))
    assert grid.input_size == (16, 64) and grid.train[0][0].shape == (3, 16, 64)
    with pytest.raises(Exception, match="--data"):
        build_task_data(plugin_args())
    with pytest.raises(FileNotFoundError):
        build_task_data(plugin_args(data=str(tmp_path / "absent")))
    with pytest.raises(ValueError, match="ROWSxCOLS"):
        build_task_data(plugin_args(data=str(root), grid="four", **SMALL))


def test_csv_data_with_val_csv(tmp_path: Path) -> None:
    root = make_videos(tmp_path / "clips", per_class=2)
    (tmp_path / "train.csv").write_text("path,label\nclips/down/0.mp4,down\nclips/up/0.mp4,up\n")
    (tmp_path / "val.csv").write_text("clips/up/1.mp4,up,0.0,0.5\n")  # a segment of another video
    task = build_task_data(plugin_args(data=str(tmp_path / "train.csv"), val_data=str(tmp_path / "val.csv"), **SMALL))
    assert len(task.train) == 2 and len(task.val) == 1 and task.val[0][1] == 1
    assert root.is_dir()


def test_recipe_resolves_through_the_train_command(tmp_path: Path) -> None:
    args = build_parser().parse_args(["train", "--modality", "video", "--data", str(tmp_path), "--recipe",
                                      "kinetics400_original", "--eval-clips", "2", "--grid", "2x8"])
    from unireplknet.modalities import get_modality
    from unireplknet.runner.train import _resolve

    cfg = _resolve(args, get_modality("video")).config
    assert (cfg["model"], cfg["layout"], cfg["layer_decay"], cfg["mixup"], cfg["cutmix"]) == (
        "unireplknet_b", "reshape", 0.75, 0.8, 1.0)
    assert (cfg["eval_clips"], cfg["eval_crops"], cfg["grid"], cfg["reprob"]) == (2, 3, "2x8", 0.25)


def test_train_and_predict_commands(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_videos(tmp_path / "clips")
    run = tmp_path / "run"
    argv = train_argv(root, run, "--reprob", "0.5", "--eval-clips", "2", "--eval-crops", "2",
                      "--frame-cache", str(tmp_path / "cache"), "--layout", "grid")
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "selected epoch" in out and "by val acc1" in out
    record = json.loads((run / "model.json").read_text())
    assert record["eval_views"] == 4 and record["input_size"] == [32, 32] and record["class_names"] == ["down", "up"]
    assert list((tmp_path / "cache").glob("*.npz"))  # the frame cache was used

    views = load_for_predict(str(root / "up" / "0.mp4"), argparse.Namespace(**record["config"]))
    assert views.shape == (4, 3, 32, 32) and torch.isfinite(views).all()
    assert cli_main(["predict", "-r", str(run), str(root / "up" / "1.mp4"), "--json", "-k", "2"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {t["label"] for t in line["top"]} == {"down", "up"}
    assert sum(t["prob"] for t in line["top"]) == pytest.approx(1.0, abs=1e-4)
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    assert cli_main(["predict", "-r", str(run), str(tmp_path / "bad.mp4")]) == 2
    assert "bad.mp4" in capsys.readouterr().err
