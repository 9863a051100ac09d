"""Hugging Face data sets: a ``save_to_disk`` folder written here trains through the real command;
``hf:NAME`` offline and not cached is a one-line error."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")
from PIL import Image  # noqa: E402

from unireplknet.cli import main  # noqa: E402
from unireplknet.modalities.hf import is_hf_spec  # noqa: E402

from test_train_cli import base_args  # noqa: E402


def _images(n: int, seed: int) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:20, :20]
    imgs, labels = [], []
    for i in range(n):
        c = i % 2
        img = rng.integers(0, 60, (20, 20, 3)).astype(np.uint8)
        mask = ((yy - 10) ** 2 + (xx - 10) ** 2 < 36) if c == 0 else ((abs(yy - 10) < 7) & (abs(xx - 10) < 7))
        img[mask] = 220
        imgs.append(Image.fromarray(img))
        labels.append(c)
    return imgs, labels


def _split(n: int, seed: int, label_col: str = "label", image_col: str = "image"):
    imgs, labels = _images(n, seed)
    features = datasets.Features({image_col: datasets.Image(), label_col: datasets.ClassLabel(names=["circle", "square"])})
    return datasets.Dataset.from_dict({image_col: imgs, label_col: labels}, features=features)


def test_save_to_disk_folder_trains_through_the_real_command(tmp_path):
    data = tmp_path / "hfdata"
    datasets.DatasetDict({"train": _split(12, 0), "validation": _split(4, 1), "test": _split(4, 2)}).save_to_disk(data)
    assert is_hf_spec(str(data)) and not is_hf_spec(str(tmp_path))
    run = tmp_path / "run"
    assert main(base_args(data, run, "--no-deploy")) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["splits"] == {"train": 12, "val": 4, "test": 4}
    assert summary["evaluation"]["test"]["n"] == 4
    assert json.loads((run / "model.json").read_text())["class_names"] == ["circle", "square"]


def test_single_dataset_with_img_column_carves_validation(tmp_path):
    data = tmp_path / "single"
    _split(20, 0, image_col="img").save_to_disk(data)  # a Dataset, not a DatasetDict: the train split
    run = tmp_path / "run"
    assert main(base_args(data, run, "--no-deploy")) == 0
    assert json.loads((run / "summary.json").read_text())["splits"] == {"train": 18, "val": 2}


def test_hf_name_offline_and_not_cached_is_one_line_error(tmp_path):
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "unireplknet", *base_args("hf:nobody/no-such-dataset", tmp_path / "r")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: hf:nobody/no-such-dataset: cannot load"), proc.stderr


def test_streaming_save_to_disk_trains_above_chance_with_exact_counts(tmp_path):
    data = tmp_path / "hfdata"
    datasets.DatasetDict({"train": _split(64, 0), "validation": _split(16, 1), "test": _split(16, 2)}).save_to_disk(data)
    run = tmp_path / "run"
    args = base_args(f"stream:{data}", run, "--no-deploy", "--epochs", "8", "--batch-size", "8", "--lr", "0.004",
                     "--in-chans", "3", "--baselines")
    assert main(args) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["splits"] == {"train": 64, "val": 16, "test": 16}  # from the data set, not a scan
    assert summary["plan"][0].startswith("data layout: Hugging Face datasets (streaming")
    assert summary["evaluation"]["test"]["n"] == 16  # every test row once
    assert summary["evaluation"]["test"]["acc1"] >= 0.8, summary["evaluation"]  # chance: 0.5
    assert summary["baselines"]["results"]["test"]
    from unireplknet.modalities.hf import HFStreamDataset, stream_task_data
    import argparse

    task = stream_task_data(argparse.Namespace(data=f"stream:{data}", seed=0), None, None, in_chans=3,
                            input_size=(20, 20), rows_per_part=10)
    assert isinstance(task.train, HFStreamDataset) and len(task.train.shards) == 7  # 64 rows in parts of <= 10
    seen = []
    for rank in (0, 1):
        part = task.train.for_rank(rank, 2)
        part.set_epoch(3)
        seen += [name for w in (0, 1) for _, name, _ in part.iter_part(3, rank, 2, w, 2)]
    assert len(seen) == 64 == len(set(seen))  # every row exactly once per epoch over 2 ranks x 2 workers


def test_auto_reads_a_sample_of_a_saved_dataset(tmp_path):
    from unireplknet.modalities import get_modality

    data = tmp_path / "hfdata"
    datasets.DatasetDict({"train": _split(12, 0), "validation": _split(4, 1)}).save_to_disk(data)
    chosen = get_modality("image").auto({"data": str(data), "seed": 0})
    assert chosen["input_size"][0] == 32 and chosen["in_chans"][0] == 3  # 20 px colour images: 32 is the floor
    assert "sampled training samples" in chosen["input_size"][1]
