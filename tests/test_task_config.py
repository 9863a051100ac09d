"""One config resolver for every task: defaults < task/demo defaults < auto < YAML < flags; resume as the base."""
from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from unireplknet.cli import main
from unireplknet.errors import ConfigError


def _train_args(argv: list[str]) -> argparse.Namespace:
    """The parsed ``train`` command line, with the task's flags wired as the CLI does."""
    from unireplknet.cli import train

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    train.register(sub)
    train.prepare(sub.choices["train"], argv)
    return parser.parse_args(["train", *argv])


def _yaml(path, text: str) -> str:
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------------------------- segmentation
def test_segmentation_layers_yaml_under_flags_and_cpu_auto(tmp_path, caplog):
    from unireplknet.tasks.segmentation_train import resolve_segmentation_config

    cfg_file = _yaml(tmp_path / "seg.yaml", "crop_size: 96\nepochs: 3\nlr: 0.002\nmetric: loss\n")
    with caplog.at_level(logging.INFO, logger="unireplknet.engine.resolve"):
        cfg = resolve_segmentation_config(_train_args(
            ["--task", "segmentation", "--data", "d", "--device", "cpu", "--config", cfg_file, "--epochs", "5"]))
    assert cfg["crop_size"] == 96 and cfg["lr"] == 0.002  # YAML over auto and defaults
    assert cfg["epochs"] == 5  # the flag over the YAML
    assert cfg["model"] == "unireplknet_a" and cfg["batch_size"] == 4  # CPU auto, logged with its reason
    assert "auto: model = unireplknet_a (a CPU run" in caplog.text
    assert cfg["metric"] == "loss" and cfg["metric_mode"] == "min"  # the mode follows the YAML's metric
    no_auto = resolve_segmentation_config(_train_args(["--task", "segmentation", "--data", "d", "--device", "cpu",
                                                       "--no-auto"]))
    assert no_auto["model"] == "unireplknet_t" and no_auto["crop_size"] == 512  # the original's ADE20K recipe


def test_segmentation_rejects_flags_of_other_tasks_and_unknown_yaml_keys(tmp_path):
    from unireplknet.tasks.segmentation_train import resolve_segmentation_config

    with pytest.raises(ConfigError, match="--mixup does not apply to --task segmentation"):
        resolve_segmentation_config(_train_args(["--task", "segmentation", "--mixup", "0.8"]))
    with pytest.raises(ConfigError, match="--recipe is not available for --task segmentation"):
        resolve_segmentation_config(_train_args(["--task", "segmentation", "--recipe", "in1k_t"]))
    bad = _yaml(tmp_path / "bad.yaml", "crop_sise: 64\n")
    with pytest.raises(ConfigError, match="unknown config key.*crop_sise"):
        resolve_segmentation_config(_train_args(["--task", "segmentation", "--config", bad]))


def test_segmentation_resume_takes_the_checkpoint_config_as_base(tmp_path, caplog):
    from unireplknet.tasks.segmentation_train import resolve_segmentation_config

    ckpt = tmp_path / "last.pt"
    torch.save({"format": "unireplknet-train-1",
                "config": {"crop_size": 80, "epochs": 2, "model": "custom", "lr": 0.01, "task": "segmentation"}},
               ckpt)
    with caplog.at_level(logging.INFO, logger="unireplknet.engine.resolve"):
        cfg = resolve_segmentation_config(_train_args(["--task", "segmentation", "--resume", str(ckpt),
                                                       "--epochs", "4"]))
    assert cfg["crop_size"] == 80 and cfg["model"] == "custom" and cfg["lr"] == 0.01  # from the checkpoint
    assert cfg["epochs"] == 4 and "epochs=2->4" in caplog.text  # the override is logged


# ------------------------------------------------------------------------------------------------ detection
def test_detection_layers_yaml_auto_and_data_root(tmp_path):
    from unireplknet.tasks.detection_train import DEMO_MODEL_ARGS, resolve_detection_config

    cfg_file = _yaml(tmp_path / "det.yaml", "min_size: 320\nepochs: 6\n")
    cfg = resolve_detection_config(_train_args(["--task", "detection", "--data", "d", "--device", "cpu",
                                                "--config", cfg_file, "--max-size", "400", "--data-root", "imgs"]))
    assert cfg["min_size"] == 320 and cfg["epochs"] == 6 and cfg["max_size"] == 400
    assert cfg["model"] == "unireplknet_a" and cfg["fpn_channels"] == 128  # CPU auto
    assert cfg["image_root"] == "imgs" and cfg["metric_mode"] == "max"
    demo = resolve_detection_config(_train_args(["--task", "detection", "--model", "unireplknet_a"]))
    assert demo["model_args"] is None  # the demo's tiny architecture only goes with its own custom model
    assert resolve_detection_config(_train_args(["--task", "detection"]))["model_args"] == DEMO_MODEL_ARGS
    with pytest.raises(ConfigError, match="--smoothing does not apply to --task detection"):
        resolve_detection_config(_train_args(["--task", "detection", "--smoothing", "0.2"]))


# ---------------------------------------------------------------------------------------------- forecasting
TINY = ["--num-threads", "1", "--depths", "1", "1", "1", "1", "--dims", "8", "16", "24", "32",
        "--kernel-sizes", "3", "3", "3", "3", "--d-model", "8", "--batch-size", "16", "--max-train-steps", "2",
        "--device", "cpu", "--plot-windows", "0", "--seq-len", "24", "--pred-len", "8"]


def _series(tmp_path, n=240):
    t = np.arange(n)
    frame = pd.DataFrame({"date": pd.date_range("2022-01-01", periods=n, freq="h").astype(str),
                          "load": np.sin(2 * np.pi * t / 24) + 0.01 * t})
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    return path


def test_forecasting_config_layers(tmp_path):
    from unireplknet.runner.forecast import resolve_forecast_config

    cfg_file = _yaml(tmp_path / "fc.yaml", "seq_len: 48\npred_len: 12\nlr: 0.003\n")
    ns = resolve_forecast_config(_train_args(["--task", "forecasting", "--data", "x.csv", "--config", cfg_file,
                                              "--pred-len", "6"]))
    assert ns.seq_len == 48 and ns.pred_len == 6 and ns.lr == 0.003 and ns.patience == 3 and ns.head == "pooled"
    with pytest.raises(ConfigError, match="unknown config key.*seq_length"):
        resolve_forecast_config(_train_args(["--task", "forecasting", "--data", "x.csv",
                                             "--config", _yaml(tmp_path / "b.yaml", "seq_length: 3\n")]))
    with pytest.raises(ConfigError, match="--mixup does not apply to --task forecasting"):
        resolve_forecast_config(_train_args(["--task", "forecasting", "--data", "x.csv", "--mixup", "0.2"]))


def test_train_task_forecasting_is_the_forecast_run(tmp_path, capsys):
    torch.set_num_threads(1)
    path = _series(tmp_path)
    out = tmp_path / "run"
    cfg_file = _yaml(tmp_path / "fc.yaml", "epochs: 1\nseed: 3\n")
    assert main(["train", "--task", "forecasting", "--data", str(path), "--config", cfg_file, "-o", str(out),
                 *TINY]) == 0
    printed = capsys.readouterr().out
    assert "UniRepLKNet" in printed and "Naive (last value)" in printed and "lowest test MSE" in printed
    report = json.loads((out / "metrics.json").read_text())
    assert report["config"]["seed"] == 3 and report["training"]["epochs_run"] == 1
    # resume: the checkpoint's config is the base, the flag overrides its epochs
    assert main(["train", "--task", "forecasting", "--resume", str(out / "unireplknet" / "last.pt"),
                 "--epochs", "2", "-o", str(out)]) == 0
    history = (out / "unireplknet" / "metrics.csv").read_text().strip().splitlines()
    assert len(history) == 3  # header + epoch 1 + resumed epoch 2
    assert json.loads((out / "metrics.json").read_text())["config"]["seq_len"] == 24  # from the checkpoint
    assert main(["train", "--task", "forecasting"]) == 2
    assert "forecasting needs --data" in capsys.readouterr().err
