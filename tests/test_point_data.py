"""Point-cloud pipeline, datasets, the engine plug-in and the ``project`` command."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
import trimesh

from unireplknet.cli import main
from unireplknet.modalities.point import datasets as point_data
from unireplknet.modalities.point.datasets import (
    CONFIG_DEFAULTS,
    RECIPES,
    PointCloudDataset,
    PointPipeline,
    build_task_data,
    load_for_predict,
    point_splits,
)
from unireplknet.modalities.point.demo import SHAPE_CLASSES, make_shape, make_shapes
from unireplknet.modalities.point.transforms import PointAugment


def _args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    point_data.add_train_args(parser)
    ns = parser.parse_args([])
    for key, value in {**CONFIG_DEFAULTS, **kw}.items():
        setattr(ns, key, value)
    ns.data = kw.get("data")
    ns.val_data = kw.get("val_data")
    ns.seed = 0
    return ns


def test_add_train_args_uses_none_defaults_and_config_keys():
    parser = argparse.ArgumentParser()
    point_data.add_train_args(parser)
    ns = parser.parse_args(["--num-points", "64", "--scale", "0.5", "2", "--rotation", "so3"])
    assert ns.num_points == 64 and ns.scale == [0.5, 2.0] and ns.rotation == "so3"
    empty = vars(parser.parse_args([]))
    assert all(v is None for v in empty.values())
    assert set(empty) <= set(CONFIG_DEFAULTS)


def test_recipe_follows_the_original():
    r = RECIPES["modelnet40"]
    assert (r["opt"], r["lr"], r["weight_decay"], r["smoothing"]) == ("adamw", 5e-4, 0.05, 0.2)
    assert r["model"] == "unireplknet_s" and r["drop_path"] == 0.4 and r["warmup_epochs"] == 0


def test_demo_shapes_are_deterministic_normalised_and_distinct():
    a = make_shape("torus", 256, seed=3)
    assert np.array_equal(a, make_shape("torus", 256, seed=3))
    assert not np.array_equal(a, make_shape("torus", 256, seed=4))
    assert np.allclose(np.linalg.norm(a, axis=1).max(), 1.0, atol=1e-5)
    s = make_shapes(2, 128, seed=0)
    assert s.clouds.shape == (12, 128, 3) and s.labels.tolist() == sorted(list(range(6)) * 2)
    assert s.class_names == list(SHAPE_CLASSES)
    with pytest.raises(ValueError, match="unknown shape"):
        make_shape("pyramid")


def test_pipeline_train_eval_and_voting_views():
    cloud = make_shape("cone", 600, seed=1)
    pipe = PointPipeline(num_points=128, resolution=32, augment=PointAugment(rotation="so3"), views=4)
    torch.manual_seed(0)
    tr1 = pipe(cloud, train=True)
    tr2 = pipe(cloud, train=True)
    assert tr1.shape == (3, 32, 32) and not torch.equal(tr1, tr2)  # random augmentation
    ev = pipe(cloud, train=False)
    assert ev.shape == (4, 3, 32, 32) and torch.equal(ev, pipe(cloud, train=False))  # deterministic
    single = PointPipeline(num_points=128, resolution=32, views=1)(cloud, train=False)
    assert torch.equal(single, ev[0])  # view 0 is the unrotated cloud
    # a half turn about y (up) mirrors the view along y left-right... and keeps its occupancy count
    assert int((ev[2, 1] > 0).sum()) == int((ev[0, 1] > 0).sum())
    assert torch.equal(ev[2, 1] > 0, torch.flip(ev[0, 1] > 0, dims=(0, 1)))
    rnd = PointPipeline(num_points=100, sampling="random", resolution=16, views=1)
    assert torch.equal(rnd(cloud, train=False, seed=5), rnd(cloud, train=False, seed=5))
    with pytest.raises(ValueError, match="degenerate"):
        pipe(np.ones((30, 3), np.float32), train=False)
    with pytest.raises(ValueError, match="sampling"):
        PointPipeline(sampling="grid")


def test_build_task_data_demo_and_folders(tmp_path):
    td = build_task_data(_args(demo_per_class=2, demo_val_per_class=1, num_points=64, input_size=32,
                               vote_views=2))
    assert td.num_classes == 6 and td.in_chans == 3 and td.input_size == (32, 32) and td.eval_views == 2
    x, y = td.train[0]
    assert x.shape == (3, 32, 32) and isinstance(y, int)
    xv, _ = td.val[0]
    assert xv.shape == (2, 3, 32, 32)
    assert len(td.train) == 12 and len(td.val) == 6
    # a class-folder tree without a test split is held out per class
    for cls in ("cube", "ball"):
        (tmp_path / "set" / cls).mkdir(parents=True)
    for i in range(5):
        trimesh.creation.box(extents=[1, 1 + i / 10, 1]).export(str(tmp_path / "set" / "cube" / f"{i}.stl"))
        np.save(tmp_path / "set" / "ball" / f"{i}.npy", make_shape("ellipsoid", 200, seed=i))
    parts, _ = point_splits(_args(data=str(tmp_path / "set"), val_fraction=0.4))
    tr, va = parts["train"], parts["val"]
    assert len(tr) == 6 and len(va) == 4 and sorted(va.labels.tolist()) == [0, 0, 1, 1]
    assert not set(map(str, tr.clouds)) & set(map(str, va.clouds)) and set(parts) == {"train", "val"}
    td = build_task_data(_args(data=str(tmp_path / "set"), num_points=64, input_size=16))
    assert td.class_names == ["ball", "cube"]
    assert td.val[0][0].shape == (3, 16, 16)
    with pytest.raises(FileNotFoundError):
        build_task_data(_args(data=str(tmp_path / "nope")))


def test_dataset_items_follow_labels():
    split = make_shapes(1, 256, seed=7)
    pipe = PointPipeline(num_points=64, resolution=16, views=1)
    ds = PointCloudDataset(split, pipe, train=False)
    assert [ds[i][1] for i in range(len(ds))] == list(range(6))
    # the batched, cached base gives the same items as the one-cloud pipeline
    for i in (0, 5):
        assert torch.allclose(ds[i][0], pipe(split.get(i), train=False, seed=i), atol=1e-6)
    lazy = PointCloudDataset(split, pipe, train=False, cache=False)
    assert torch.equal(lazy[3][0], ds[3][0])


def test_load_for_predict_matches_validation(tmp_path):
    cloud = make_shape("capsule", 500, seed=2)
    np.save(tmp_path / "c.npy", cloud)
    args = _args(num_points=128, input_size=24, vote_views=3)
    x = load_for_predict(str(tmp_path / "c.npy"), args)
    assert x.shape == (3, 3, 24, 24)
    assert torch.equal(x, point_data.pipeline_from_args(args, train=False)(cloud, train=False))


def test_project_command_writes_three_views(tmp_path, capsys):
    mesh = tmp_path / "torus.off"
    trimesh.creation.torus(0.6, 0.2).export(str(mesh))
    out = tmp_path / "views.png"
    assert main(["project", str(mesh), "--out", str(out), "--resolution", "48", "--num-points", "512"]) == 0
    from PIL import Image

    img = np.asarray(Image.open(out).convert("L"))
    assert img.shape[1] > 2 * img.shape[0]  # three panels side by side
    assert img.std() > 10
    assert "wrote" in capsys.readouterr().out
    assert main(["project", str(tmp_path / "missing.ply"), "--out", str(out)]) == 2
    assert main(["project", str(mesh), "--out", str(tmp_path / "v.txt")]) == 2
    np.save(tmp_path / "flat.npy", np.zeros((10, 3), np.float32))
    assert main(["project", str(tmp_path / "flat.npy"), "--out", str(out)]) == 2
    assert "degenerate" in capsys.readouterr().err
