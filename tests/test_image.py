"""Image data: folders, CSV lists, the digits demo, transforms, and clear errors for bad input."""
from __future__ import annotations

import argparse
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from unireplknet.modalities.image import datasets as I
from unireplknet.modalities.image.transforms import build_transform


def _write_images(folder, n, size=(12, 10), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"img{i}.png")


def _args(data=None, **kw):
    cfg = dict(I.CONFIG_DEFAULTS, data=data, val_data=None, input_size=16, transform="light")
    cfg.update(kw)
    return argparse.Namespace(**cfg)


@pytest.fixture
def folder_data(tmp_path):
    for split, n in (("train", 3), ("val", 2)):
        for c in ("cat", "dog"):
            _write_images(tmp_path / "ds" / split / c, n)
    return tmp_path / "ds"


def test_image_folder_task(folder_data):
    task = I.build_task_data(_args(str(folder_data)))
    assert task.num_classes == 2 and list(task.class_names) == ["cat", "dog"]
    assert len(task.train) == 6 and len(task.val) == 4
    x, y = task.train[4]
    assert x.shape == (3, 16, 16) and y == 1
    x1 = I.load_for_predict(str(folder_data / "val" / "dog" / "img0.png"), _args(str(folder_data)))
    assert torch.equal(x1, task.val[2][0])


def test_csv_task(tmp_path, folder_data):
    rows = ["path,label"] + [f"{folder_data}/train/{c}/img{i}.png,{c}" for c in ("cat", "dog") for i in range(3)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "val.csv").write_text("path,label\nds/val/dog/img1.png,dog\n")  # relative to the CSV
    task = I.build_task_data(_args(str(tmp_path / "train.csv"), val_data=str(tmp_path / "val.csv")))
    assert len(task.train) == 6 and len(task.val) == 1 and task.val[0][1] == 1


def test_digits_demo_fixed_split():
    task = I.build_task_data(_args(None, in_chans=1, input_size=32))
    # 80/20 train/test (fixed), then 10% of train carved out per class for validation: test never selects
    assert (len(task.train), len(task.val), len(task.tests["test"]), task.num_classes, task.in_chans) == \
        (1293, 144, 360, 10, 1)
    x, y = task.val[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    again = I.build_task_data(_args(None, in_chans=1, input_size=32))
    assert torch.equal(again.val[0][0], x) and again.val[5][1] == task.val[5][1]


def test_imagenet_transforms_follow_the_recipe():
    img = Image.fromarray(np.zeros((300, 400, 3), dtype=np.uint8))
    train = build_transform(True, 224, "imagenet")
    text = repr(train)
    assert "RandomResizedCrop" in text and "bicubic" in text.lower() and "RandAugment" in text and "RandomErasing" in text
    assert train(img).shape == (3, 224, 224)
    small = build_transform(False, 224, "imagenet")
    assert "CenterCrop" in repr(small) and "256" in repr(small)  # 224 / 0.875
    big = build_transform(False, 384, "imagenet")
    assert "CenterCrop" not in repr(big) and big(img).shape == (3, 384, 384)
    with pytest.raises(ValueError, match="unknown transform preset"):
        build_transform(False, 32, "heavy")


def test_missing_and_empty_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        I.build_task_data(_args(str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        I.build_task_data(_args(str(tmp_path / "empty")))


def test_class_folder_without_images(folder_data):
    (folder_data / "train" / "bird").mkdir()
    (folder_data / "train" / "bird" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="class folder .*bird has no files with a known extension"):
        I.build_task_data(_args(str(folder_data)))


def test_val_class_not_in_train(folder_data):
    _write_images(folder_data / "val" / "fox", 1)
    with pytest.raises(ValueError, match=r"label\(s\) \['fox'\] that no training file has"):
        I.build_task_data(_args(str(folder_data)))


def test_corrupt_images_are_skipped_with_a_count(folder_data, caplog):
    (folder_data / "train" / "cat" / "broken.jpg").write_bytes(b"not an image at all")
    (folder_data / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with caplog.at_level(logging.WARNING, logger="unireplknet.modalities.base"):
        task = I.build_task_data(_args(str(folder_data)))
    assert len(task.train) == 6
    assert "skipped 2 unreadable file(s)" in caplog.text
    unchecked = I.build_task_data(_args(str(folder_data), verify_images=False))
    assert len(unchecked.train) == 8
    bad = [i for i, (p, _) in enumerate(unchecked.train.samples) if "broken" in p][0]
    with pytest.raises(ValueError, match="cannot read .*broken"):
        unchecked.train[bad]
