"""Point-cloud readers: single files and the public dataset layouts (all written at test time)."""
from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import trimesh
from plyfile import PlyData, PlyElement

from unireplknet.modalities.point.io import (
    SCANOBJECTNN_CLASSES,
    detect_layout,
    read_class_folders,
    read_mesh,
    read_modelnet_h5,
    read_modelnet_resampled,
    read_points,
    read_scanobjectnn_h5,
)


@pytest.fixture
def cloud() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 6)).astype(np.float32)


def _write_ply(path: Path, pts: np.ndarray, faces: np.ndarray | None = None, normals: bool = True) -> None:
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals else [])
    vert = np.empty(len(pts), dtype=[(n, "f4") for n in names])
    for i, n in enumerate(names):
        vert[n] = pts[:, i]
    elements = [PlyElement.describe(vert, "vertex")]
    if faces is not None:
        face = np.empty(len(faces), dtype=[("vertex_indices", "i4", (3,))])
        face["vertex_indices"] = faces
        elements.append(PlyElement.describe(face, "face"))
    PlyData(elements).write(str(path))


# ----------------------------------------------------------------------------- single files
def test_array_and_text_formats_round_trip(tmp_path, cloud):
    np.save(tmp_path / "a.npy", cloud)
    np.savez(tmp_path / "b.npz", points=cloud[:, :3])
    np.savetxt(tmp_path / "c.txt", cloud, delimiter=",")  # ModelNet resampled style
    np.savetxt(tmp_path / "d.xyz", cloud[:, :3])  # whitespace separated
    assert np.allclose(read_points(tmp_path / "a.npy"), cloud)
    assert np.allclose(read_points(tmp_path / "a.npy", normals=False), cloud[:, :3])
    assert np.allclose(read_points(tmp_path / "b.npz"), cloud[:, :3])
    assert np.allclose(read_points(tmp_path / "c.txt"), cloud, atol=1e-6)
    assert np.allclose(read_points(tmp_path / "d.xyz"), cloud[:, :3], atol=1e-6)
    assert read_points(tmp_path / "a.npy").dtype == np.float32
    with pytest.raises(ValueError, match="normals requested"):
        read_points(tmp_path / "d.xyz", normals=True)


def test_ply_point_cloud_and_ply_mesh(tmp_path, cloud):
    _write_ply(tmp_path / "p.ply", cloud)
    assert np.allclose(read_points(tmp_path / "p.ply"), cloud)
    _write_ply(tmp_path / "q.ply", cloud[:, :3], normals=False)
    assert read_points(tmp_path / "q.ply").shape == (40, 3)
    square = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    _write_ply(tmp_path / "m.ply", square, faces=np.array([[0, 1, 2], [0, 2, 3]]), normals=False)
    pts = read_points(tmp_path / "m.ply", mesh_points=500)
    assert pts.shape == (500, 6)  # a PLY with faces is surface-sampled
    assert np.allclose(pts[:, 2], 0) and pts[:, :2].min() >= 0 and pts[:, :2].max() <= 1


@pytest.mark.parametrize("suffix", [".off", ".obj", ".stl"])
def test_meshes_are_sampled_on_their_surface(tmp_path, suffix):
    mesh = trimesh.creation.box(extents=[2.0, 1.0, 0.5])
    path = tmp_path / f"box{suffix}"
    mesh.export(str(path))
    pts = read_mesh(path, 3000, generator=torch.Generator().manual_seed(0))
    assert pts.shape == (3000, 6)
    half = np.array([1.0, 0.5, 0.25])
    # every point lies on one of the box's faces
    on_face = (np.abs(np.abs(pts[:, :3]) - half) < 1e-4).any(-1)
    assert on_face.all() and (np.abs(pts[:, :3]) <= half + 1e-4).all()
    # area weighting: the two 2x1 faces hold 2 / (2 + 1 + 0.5) of the area
    top = (np.abs(np.abs(pts[:, 2]) - 0.25) < 1e-4).mean()
    assert abs(top - 2 / 3.5) < 0.04
    assert read_points(path, mesh_points=100, normals=False).shape == (100, 3)


def test_bad_files_give_clear_errors(tmp_path, caplog):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        read_points(tmp_path / "missing.npy")
    (tmp_path / "x.foo").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="unsupported point-cloud format '.foo'"):
        read_points(tmp_path / "x.foo")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        read_points(tmp_path / "empty.npy")
    np.save(tmp_path / "wrong.npy", np.zeros((4, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"wrong.npy: expected one cloud of shape \(N, C\)"):
        read_points(tmp_path / "wrong.npy")
    np.save(tmp_path / "objects.npy", np.array([None, 1], dtype=object))
    with pytest.raises(ValueError, match="objects.npy: cannot read"):
        read_points(tmp_path / "objects.npy")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz: cannot read"):
        read_points(tmp_path / "broken.npz")
    np.save(tmp_path / "two.npy", np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="C >= 3"):
        read_points(tmp_path / "two.npy")
    (tmp_path / "nan.txt").write_text("0 0 0\n1 nan 2\n")
    with pytest.raises(ValueError, match="NaN"):
        read_points(tmp_path / "nan.txt")
    (tmp_path / "blank.xyz").write_text("\n# only a comment\n")
    with pytest.raises(ValueError, match="empty"):
        read_points(tmp_path / "blank.xyz")
    (tmp_path / "words.txt").write_text("a b c\n")
    with pytest.raises(ValueError, match="not a numeric table"):
        read_points(tmp_path / "words.txt")
    (tmp_path / "empty.off").write_text("OFF\n0 0 0\n")
    with pytest.raises(ValueError, match="empty.off: mesh is empty"):
        read_points(tmp_path / "empty.off")
    (tmp_path / "flat.off").write_text("OFF\n3 1 0\n0 0 0\n1 1 1\n2 2 2\n3 0 1 2\n")
    with pytest.raises(ValueError, match="flat.off: mesh is degenerate"):
        read_points(tmp_path / "flat.off")
    # non-manifold (three triangles share one edge): sampled anyway, with a warning naming the file
    nm = tmp_path / "fin.off"
    nm.write_text("OFF\n5 3 0\n0 0 0\n1 0 0\n0 1 0\n0 -1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n3 0 1 4\n")
    with caplog.at_level(logging.WARNING, logger="unireplknet.modalities.point.io"):
        pts = read_points(nm, mesh_points=64)
    assert pts.shape == (64, 6)
    assert "non-manifold" in caplog.text and "fin.off" in caplog.text


# ----------------------------------------------------------------------------- dataset layouts
def _h5(path: Path, data: np.ndarray, labels: np.ndarray, **extra: np.ndarray) -> None:
    with h5py.File(path, "w") as h:
        h["data"] = data
        h["label"] = labels
        for k, v in extra.items():
            h[k] = v


def test_modelnet_h5_layout(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "modelnet40_ply_hdf5_2048"
    root.mkdir()
    (root / "shape_names.txt").write_text("airplane\nbathtub\nbed\n")
    tr0, tr1 = rng.normal(size=(4, 32, 3)), rng.normal(size=(2, 32, 3))
    _h5(root / "ply_data_train0.h5", tr0.astype("f4"), np.array([[0], [1], [2], [0]], "u1"),
        normal=rng.normal(size=(4, 32, 3)).astype("f4"))
    _h5(root / "ply_data_train1.h5", tr1.astype("f4"), np.array([[2], [2]], "u1"),
        normal=rng.normal(size=(2, 32, 3)).astype("f4"))
    _h5(root / "ply_data_test0.h5", tr1.astype("f4"), np.array([[1], [0]], "u1"))
    (root / "train_files.txt").write_text(
        "data/modelnet40_ply_hdf5_2048/ply_data_train0.h5\ndata/modelnet40_ply_hdf5_2048/ply_data_train1.h5\n")
    (root / "test_files.txt").write_text("data/modelnet40_ply_hdf5_2048/ply_data_test0.h5\n")
    assert detect_layout(root) == "modelnet_h5"
    tr = read_modelnet_h5(root, "train")
    assert len(tr) == 6 and tr.class_names == ["airplane", "bathtub", "bed"]
    assert tr.labels.tolist() == [0, 1, 2, 0, 2, 2]
    assert np.allclose(tr.get(5), tr1[1], atol=1e-6)
    assert read_modelnet_h5(root, "train", normals=True).get(0).shape == (32, 6)
    te = read_modelnet_h5(root, "test")
    assert te.labels.tolist() == [1, 0]
    with pytest.raises(ValueError, match="no 'normal'"):
        read_modelnet_h5(root, "test", normals=True)


def test_scanobjectnn_layout(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "main_split"
    root.mkdir()
    v = "objectdataset_augmentedrot_scale75"
    _h5(root / f"training_{v}.h5", rng.normal(size=(3, 16, 3)).astype("f4"), np.array([0, 14, 3]),
        mask=np.zeros((3, 16)))
    _h5(root / f"test_{v}.h5", rng.normal(size=(2, 16, 3)).astype("f4"), np.array([5, 6]))
    assert detect_layout(root) == "scanobjectnn_h5"
    tr = read_scanobjectnn_h5(root, "train")
    assert tr.labels.tolist() == [0, 14, 3] and tr.class_names == list(SCANOBJECTNN_CLASSES)
    assert tr.class_names[14] == "toilet"
    assert read_scanobjectnn_h5(root / f"test_{v}.h5").labels.tolist() == [5, 6]
    with pytest.raises(FileNotFoundError, match="training_objectdataset.h5"):
        read_scanobjectnn_h5(root, "train", variant="objectdataset")
    _h5(root / "bad.h5", rng.normal(size=(2, 16, 3)).astype("f4"), np.array([0, 99]))
    with pytest.raises(ValueError, match="15 classes"):
        read_scanobjectnn_h5(root / "bad.h5")


def test_modelnet_resampled_layout(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "modelnet40_normal_resampled"
    for cls in ("chair", "night_stand"):
        (root / cls).mkdir(parents=True)
        for i in (1, 2):
            np.savetxt(root / cls / f"{cls}_{i:04d}.txt", rng.normal(size=(20, 6)), delimiter=",", fmt="%.6f")
    (root / "modelnet40_shape_names.txt").write_text("chair\nnight_stand\n")
    (root / "modelnet40_train.txt").write_text("chair_0001\nnight_stand_0001\nnight_stand_0002\n")
    (root / "modelnet40_test.txt").write_text("chair_0002\n")
    assert detect_layout(root) == "modelnet_resampled"
    tr = read_modelnet_resampled(root, "train")
    assert tr.labels.tolist() == [0, 1, 1]  # "night_stand_0001" → class "night_stand"
    assert tr.get(2).shape == (20, 3)
    assert read_modelnet_resampled(root, "train", normals=True).get(0).shape == (20, 6)
    (root / "modelnet40_test.txt").write_text("sofa_0001\n")
    with pytest.raises(ValueError, match="unknown class 'sofa'"):
        read_modelnet_resampled(root, "test")


def test_class_folders_layout(tmp_path):
    rng = np.random.default_rng(4)
    for cls in ("b_cls", "a_cls"):
        (tmp_path / "set" / cls).mkdir(parents=True)
        np.save(tmp_path / "set" / cls / "one.npy", rng.normal(size=(10, 3)).astype("f4"))
    trimesh.creation.icosphere(1).export(str(tmp_path / "set" / "a_cls" / "two.off"))
    (tmp_path / "set" / "a_cls" / "notes.md").write_text("ignored")
    s = read_class_folders(tmp_path / "set", mesh_points=50)
    assert s.class_names == ["a_cls", "b_cls"] and s.labels.tolist() == [0, 0, 1]
    assert s.get(1).shape == (50, 3)
    assert detect_layout(tmp_path / "set") == "class_folders"
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        read_class_folders(tmp_path / "none")
