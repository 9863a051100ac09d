"""Point-cloud data fixes: split sources of the packed layouts, deterministic mesh sampling, bad clouds
(degenerate, NaN; in files and inside HDF5 sets) found by the pre-scan, text headers."""
from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import trimesh

from unireplknet.errors import BadFileError, DataError
from unireplknet.modalities.base import NamedFileErrors
from unireplknet.modalities.point import datasets as point_data
from unireplknet.modalities.point.auto import auto_config, upright_share
from unireplknet.modalities.point.datasets import (
    CONFIG_DEFAULTS,
    PointCloudDataset,
    PointPipeline,
    build_task_data,
    load_for_predict,
    point_splits,
)
from unireplknet.modalities.point.io import PointSplit, read_points, read_scanobjectnn_h5

VARIANT = "objectdataset_augmentedrot_scale75"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIREPLKNET_CACHE", str(tmp_path / "cache"))


def _args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    point_data.add_train_args(parser)
    ns = parser.parse_args([])
    for key, value in {**CONFIG_DEFAULTS, "num_points": 64, "input_size": 16, **kw}.items():
        setattr(ns, key, value)
    ns.data = str(kw["data"])
    ns.val_data = kw.get("val_data")
    ns.seed = 0
    return ns


def _clouds(labels: np.ndarray, n: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(len(labels), n, 3)) * (1 + labels[:, None, None])).astype(np.float32)


def _h5(path: Path, data: np.ndarray, labels: np.ndarray) -> None:
    with h5py.File(path, "w") as h:
        h["data"] = data
        h["label"] = labels


# ----------------------------------------------------------------------------- 1: one ScanObjectNN file
def test_one_scanobjectnn_file_is_training_data_only(tmp_path):
    labels = np.repeat(np.arange(3), 10)
    f = tmp_path / f"training_{VARIANT}.h5"
    _h5(f, _clouds(labels), labels)
    parts, splits = point_splits(_args(data=f))
    assert set(parts) == {"train", "val"} and not splits.tests
    assert len(parts["train"]) + len(parts["val"]) == 30
    assert not set(parts["train"].ids) & set(parts["val"].ids)
    assert str(f) in splits.sources["train"]
    with pytest.raises(ValueError, match="training data only"):
        read_scanobjectnn_h5(f, "test")


def test_scanobjectnn_folder_without_the_variant_lists_its_files(tmp_path):
    labels = np.arange(3)
    _h5(tmp_path / "training_objectdataset.h5", _clouds(labels), labels)
    with pytest.raises(FileNotFoundError, match=r"training_objectdataset\.h5.*--scanobjectnn-variant"):
        read_scanobjectnn_h5(tmp_path, "train")


# ----------------------------------------------------------------------------- 2: meshes sampled the same way
def test_mesh_surface_sample_is_the_same_on_every_read(tmp_path):
    (tmp_path / "a").mkdir()
    mesh = trimesh.creation.icosphere(1)
    mesh.export(str(tmp_path / "a" / "ball.off"))
    mesh.export(str(tmp_path / "a" / "ball.ply"))
    for name in ("ball.off", "ball.ply"):
        first = read_points(tmp_path / "a" / name, mesh_points=256)
        assert np.array_equal(first, read_points(tmp_path / "a" / name, mesh_points=256))
    shutil.copytree(tmp_path / "a", tmp_path / "moved")  # the seed is the file's name, not its folder
    assert np.array_equal(read_points(tmp_path / "a" / "ball.off"), read_points(tmp_path / "moved" / "ball.off"))
    args = _args(data=tmp_path, vote_views=1)
    assert torch.equal(load_for_predict(str(tmp_path / "a" / "ball.off"), args),
                       load_for_predict(str(tmp_path / "a" / "ball.off"), args))
    gen = torch.Generator().manual_seed(5)  # an explicit generator is still used
    assert not np.array_equal(read_points(tmp_path / "a" / "ball.off", generator=gen), first)


# ----------------------------------------------------------------------------- 3: degenerate clouds
def _class_folders(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            np.save(root / c / f"{i}.npy", rng.normal(size=(80, 3)).astype(np.float32) * (1 + (c == "b")))
    np.save(root / "a" / "same.npy", np.ones((80, 3), np.float32))
    np.save(root / "b" / "single.npy", np.ones((1, 3), np.float32))
    return root


def test_degenerate_cloud_is_a_bad_file_for_the_prescan(tmp_path, caplog):
    data = _class_folders(tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        parts, splits = point_splits(_args(data=data))
    files = {str(f) for split in parts.values() for f in split.clouds}
    assert str(data / "a" / "same.npy") not in files and str(data / "b" / "single.npy") not in files
    assert "skipped 2 unreadable file(s)" in caplog.text and "degenerate" in caplog.text
    with pytest.raises(BadFileError, match=r"same\.npy.*degenerate"):
        point_splits(_args(data=data, skip_bad_files=False))


def test_a_cloud_failing_the_batched_sampling_is_named(tmp_path):
    data = _class_folders(tmp_path / "data")
    paths = [data / "a" / "0.npy", data / "a" / "same.npy", data / "b" / "0.npy"]
    split = PointSplit(paths, np.array([0, 0, 1]), ["a", "b"], lambda p: np.load(p))  # a loader with no checks
    ds = NamedFileErrors(PointCloudDataset(split, PointPipeline(num_points=32, resolution=16, augment=None),
                                           train=False), lambda i: paths[i])
    assert ds[0][0].shape == (3, 16, 16) and ds[2][1] == 1  # the other clouds of the batch are fine
    with pytest.raises(BadFileError, match=r"same\.npy"):
        ds[1]


# ----------------------------------------------------------------------------- 4, 5: HDF5 sets
def _modelnet(root: Path, train_classes: int = 3, test_classes: int = 3, names: bool = True) -> Path:
    root.mkdir()
    for split, k in (("train", train_classes), ("test", test_classes)):
        labels = np.repeat(np.arange(k), 6)
        clouds = _clouds(labels, seed=k)
        if split == "train":
            clouds[1, 5, 0] = np.nan
        else:
            clouds[2] = 0.5
        _h5(root / f"ply_data_{split}0.h5", clouds, labels[:, None])
    if names:
        (root / "shape_names.txt").write_text("a\nb\nc\n")
    return root


def test_bad_clouds_inside_hdf5_are_skipped_by_name_and_index(tmp_path, caplog):
    root = _modelnet(tmp_path / "mn")
    with caplog.at_level(logging.WARNING):
        parts, splits = point_splits(_args(data=root))
    assert "ply_data_train0.h5#1" in caplog.text and "ply_data_test0.h5#2" in caplog.text
    assert len(parts["train"]) + len(parts["val"]) == 17 and len(parts["test"]) == 17
    assert all(np.isfinite(parts[k].clouds).all() for k in parts)
    assert splits.skipped == {"train": [str(root / "ply_data_train0.h5#1")],
                              "test": [str(root / "ply_data_test0.h5#2")]}
    assert str(root / "ply_data_test0.h5") == splits.sources["test"]
    with pytest.raises(BadFileError, match=r"ply_data_t\w+0\.h5#\d"):
        point_splits(_args(data=root, skip_bad_files=False))
    task = build_task_data(_args(data=root))  # the plan and the per-sample errors name FILE.h5#INDEX
    assert task.splits is not None and task.tests["test"].path_of(0) == str(root / "ply_data_test0.h5#0")


def test_auto_measures_hdf5_data_with_bad_clouds(tmp_path):
    root = _modelnet(tmp_path / "mn")
    cfg = {**CONFIG_DEFAULTS, "data": str(root), "seed": 0, "num_points": 64}
    assert "input_size" in auto_config(cfg)  # no traceback from the NaN cloud
    good = torch.randn(50, 3)
    assert upright_share([torch.full((50, 3), float("nan")), torch.ones(50, 3), good]) == upright_share([good])
    assert upright_share([torch.ones(5, 3)]) == 1.0


def test_hdf5_test_label_unknown_to_training_fails_at_plan_time(tmp_path):
    root = _modelnet(tmp_path / "mn", train_classes=2, test_classes=3, names=False)
    with pytest.raises(DataError, match="no training file has"):
        point_splits(_args(data=root))


def test_hdf5_classes_keep_the_data_set_order(tmp_path):
    labels = np.array([14, 14, 14, 0, 0, 0, 3, 3, 3])
    root = tmp_path / "sonn"
    root.mkdir()
    _h5(root / f"training_{VARIANT}.h5", _clouds(labels), labels)
    _h5(root / f"test_{VARIANT}.h5", _clouds(labels[:3], seed=1), labels[:3])
    parts, _ = point_splits(_args(data=root))
    assert parts["train"].class_names == ["bag", "cabinet", "toilet"]  # ScanObjectNN order, trained classes only
    assert parts["test"].labels.tolist() == [2, 2, 2]


# ----------------------------------------------------------------------------- 6: resampled ModelNet
def test_resampled_modelnet_files_get_the_prescan(tmp_path, caplog):
    root = tmp_path / "res"
    rng = np.random.default_rng(0)
    ids = {"train": [], "test": []}
    for k, c in enumerate(("bowl", "cup")):
        (root / c).mkdir(parents=True)
        for i in range(1, 8):
            sid = f"{c}_{i:04d}"
            np.savetxt(root / c / f"{sid}.txt", rng.normal(size=(40, 6)) * (1 + k), delimiter=",", fmt="%.5f")
            ids["train" if i <= 5 else "test"].append(sid)
    for split, names in ids.items():
        (root / f"modelnet10_{split}.txt").write_text("\n".join(names) + "\n")
    (root / "modelnet10_shape_names.txt").write_text("bowl\ncup\n")
    bad = root / "bowl" / "bowl_0002.txt"
    bad.write_text(bad.read_text().replace(bad.read_text().splitlines()[3], "nan,0,0,0,0,1"))
    with caplog.at_level(logging.WARNING):
        parts, splits = point_splits(_args(data=root))
    assert "bowl_0002.txt" in caplog.text and splits.skipped == {"train": [str(bad)]}
    assert "modelnet10_train.txt" in splits.sources["train"]
    with pytest.raises(BadFileError, match="bowl_0002"):
        point_splits(_args(data=root, skip_bad_files=False))


# ----------------------------------------------------------------------------- 7: text headers
def test_text_header_and_point_count_lines_are_skipped(tmp_path):
    pts = np.random.default_rng(0).normal(size=(20, 3))
    body = "\n".join(",".join(f"{v:.5f}" for v in p) for p in pts) + "\n"
    (tmp_path / "a.csv").write_text("x,y,z\n" + body)
    (tmp_path / "b.txt").write_text("//X,Y,Z\n" + body)
    (tmp_path / "c.pts").write_text("20\n" + "\n".join(" ".join(f"{v:.5f}" for v in p) + " 7" for p in pts) + "\n")
    for name in ("a.csv", "b.txt", "c.pts"):
        assert np.allclose(read_points(tmp_path / name), pts, atol=1e-4), name
    (tmp_path / "d.csv").write_text("x,y,z\nu,v,w\n" + body)  # only one header line is skipped
    with pytest.raises(ValueError, match="not a numeric table"):
        read_points(tmp_path / "d.csv")
