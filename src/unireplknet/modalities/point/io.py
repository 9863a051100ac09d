"""Readers for point-cloud and mesh files, and for the public point-cloud dataset layouts.

Single files (:func:`read_points`): ``.npy``/``.npz`` arrays, ``.txt``/``.xyz``/``.pts``/``.csv``
text (xyz[+normals], comma or whitespace separated), ``.ply`` (plyfile; a PLY with
faces is treated as a mesh), and ``.off``/``.obj``/``.stl`` meshes (trimesh) whose
surface is sampled area-weighted.

Dataset layouts (each returns a :class:`PointSplit` per split):

* :func:`read_modelnet_h5` — ``modelnet40_ply_hdf5_2048`` (``ply_data_*.h5``,
  ``{train,test}_files.txt``, ``shape_names.txt``);
* :func:`read_scanobjectnn_h5` — ScanObjectNN ``training_*.h5`` / ``test_*.h5``;
* :func:`read_modelnet_resampled` — ``modelnet40_normal_resampled`` text layout
  with ``modelnet{40,10}_{shape_names,train,test}.txt``;
* :func:`read_class_folders` — ``ROOT/[train|test/]CLASS/*.{npy,ply,off,...}``.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from unireplknet._extras import require
from unireplknet.modalities.point.transforms import check_points, normalize, sample_surface

__all__ = [
    "POINT_SUFFIXES",
    "MESH_SUFFIXES",
    "SCANOBJECTNN_CLASSES",
    "PointSplit",
    "check_cloud",
    "mesh_seed",
    "read_points",
    "decode_points",
    "encode_points",
    "read_mesh",
    "read_modelnet_h5",
    "read_scanobjectnn_h5",
    "read_modelnet_resampled",
    "read_class_folders",
    "detect_layout",
]

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
POINT_SUFFIXES = (".npy", ".npz", ".txt", ".xyz", ".pts", ".csv", ".ply")
MESH_SUFFIXES = (".off", ".obj", ".stl")
# Class order of ScanObjectNN's integer labels (h5 files carry no names).
SCANOBJECTNN_CLASSES = (
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door",
    "shelf", "table", "bed", "pillow", "sink", "sofa", "toilet",
)  # fmt: skip
DEFAULT_MESH_POINTS = 8192


@dataclass
class PointSplit:
    """One split of a labelled point-cloud set.

    ``clouds`` is either an ``S × N × C`` array (HDF5 sets, all in memory) or a
    list of file paths read on demand with ``loader``. ``ids`` names where each
    in-memory cloud came from (``FILE.h5#INDEX``), for messages and split lists.
    """

    clouds: Union[np.ndarray, list[Path]]
    labels: np.ndarray
    class_names: list[str]
    loader: Optional[Callable[[Path], np.ndarray]] = None
    ids: Optional[list[str]] = None

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, i: int) -> np.ndarray:
        """The ``N × C`` cloud of item ``i`` as float32."""
        item = self.clouds[i]
        if isinstance(item, Path):
            return (self.loader or read_points)(item)
        return np.asarray(item, dtype=np.float32)


def _exists(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file or directory: {p}")
    return p


def _as_cloud(arr: np.ndarray, path: Path) -> np.ndarray:
    """Validate an ``N × C`` array read from ``path``; errors name the file."""
    arr = np.asarray(arr)
    if arr.ndim == 1 and arr.size in (3, 6):  # a one-line text file
        arr = arr[None]
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected one cloud of shape (N, C), got {arr.shape}")
    if arr.shape[0] in (3, 6) and arr.shape[1] > arr.shape[0]:
        raise ValueError(f"{path}: shape {arr.shape} looks like a transposed cloud ({arr.shape[0]} rows of "
                         f"{arr.shape[1]} values); points go in rows: save it as an (N, {arr.shape[0]}) array")
    check_cloud(arr, str(path))
    return np.ascontiguousarray(arr, dtype=np.float32)


def check_cloud(cloud: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` for a cloud no pipeline can use: a wrong shape, no points,
    NaN/inf coordinates, or a degenerate cloud (one point, or all points equal: it cannot be scaled)."""
    pts = check_points(cloud, name=name)
    try:
        normalize(pts[..., :3])
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from e


def mesh_seed(path: PathLike) -> int:
    """The seed of a mesh file's surface sample: a stable hash of its file name, so training, evaluation,
    ``predict`` and resumed runs sample the same points from it (wherever the folder is)."""
    return int.from_bytes(hashlib.sha1(Path(path).name.encode("utf-8")).digest()[:8], "little") >> 1


def _read_numpy(path: Path) -> np.ndarray:
    """A ``.npy`` array or the ``points``/``xyz``/``data``/``pos`` (else first) array of a ``.npz``."""
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            keys = [k for k in ("points", "xyz", "data", "pos") if k in z.files] or list(z.files)
            if not keys:
                raise ValueError(".npz file holds no arrays")
            return z[keys[0]]
    except (ValueError, OSError, EOFError) as e:  # corrupt file or pickled object array
        raise ValueError(f"{path}: cannot read the array ({e})") from e


def decode_points(data: bytes, ext: str = "npy", name: str = "<bytes>") -> np.ndarray:
    """The ``N × C`` float32 cloud held by the bytes of a ``.npy`` or ``.npz`` file (a shard member),
    checked as :func:`read_points` checks files; errors name ``name``."""
    import io

    try:
        if ext.lower().endswith("npz"):
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                keys = [k for k in ("points", "xyz", "data", "pos") if k in z.files] or list(z.files)
                if not keys:
                    raise ValueError(".npz file holds no arrays")
                arr = z[keys[0]]
        else:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # corrupt bytes or a pickled object array
        raise ValueError(f"{name}: cannot read the array ({e})") from e
    return _as_cloud(arr, Path(name))


def encode_points(cloud: np.ndarray) -> bytes:
    """A cloud as the bytes of a ``.npy`` file (float32), as ``unireplknet shard`` stores point samples."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(cloud, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _numbers(line: str) -> Optional[list[float]]:
    """The values of a text line (comma or whitespace separated), or None if one is not a number."""
    try:
        return [float(t) for t in line.replace(",", " ").split()]
    except ValueError:
        return None


def _read_text(path: Path) -> np.ndarray:
    """A text table of points; one non-numeric header line (``x,y,z``, CloudCompare's ``//X,Y,Z``) and a
    leading line holding only the point count (Leica ``.pts``) are skipped."""
    lines: list[tuple[int, str]] = []  # (line number, text) of the first three data lines
    with open(path, errors="replace") as fh:
        for number, line in enumerate(fh):
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append((number, line))
                if len(lines) == 3:
                    break
    if len(lines) >= 2 and _numbers(lines[0][1]) is None:  # a header row above data
        lines = lines[1:]
    if len(lines) >= 2:
        count, nxt = _numbers(lines[0][1]), _numbers(lines[1][1])
        if count is not None and len(count) == 1 and float(count[0]).is_integer() and nxt and len(nxt) >= 3:
            lines = lines[1:]  # a point count before the points
    if not lines:
        raise ValueError(f"{path}: the point cloud is empty (no data lines)")
    start, first = lines[0]
    delimiter = "," if "," in first else None
    try:
        arr = np.loadtxt(path, delimiter=delimiter, dtype=np.float32, comments="#", ndmin=2, skiprows=start)
    except ValueError as e:
        raise ValueError(f"{path}: not a numeric table of points ({e})") from e
    return arr


def _read_ply(path: Path, num_points: int, generator: Optional[torch.Generator]) -> np.ndarray:
    plyfile = require("plyfile", "point", "reading .ply files")
    try:
        ply = plyfile.PlyData.read(str(path))
    except Exception as e:  # plyfile raises its own exception types
        raise ValueError(f"{path}: not a readable PLY file ({e})") from e
    names = [el.name for el in ply.elements]
    if "vertex" not in names:
        raise ValueError(f"{path}: PLY file has no 'vertex' element")
    vert = ply["vertex"].data
    fields = vert.dtype.names or ()
    if not {"x", "y", "z"} <= set(fields):
        raise ValueError(f"{path}: PLY vertices lack x/y/z properties (have {fields})")
    cols = ["x", "y", "z"] + (["nx", "ny", "nz"] if {"nx", "ny", "nz"} <= set(fields) else [])
    xyz = np.stack([np.asarray(vert[c], dtype=np.float32) for c in cols], axis=-1)
    if "face" in names and len(ply["face"].data) > 0:
        faces = ply["face"].data
        key = "vertex_indices" if "vertex_indices" in faces.dtype.names else faces.dtype.names[0]
        polys = [np.asarray(f, dtype=np.int64) for f in faces[key]]
        tris = [p[[0, i, i + 1]] for p in polys for i in range(1, len(p) - 1)]
        if not tris:
            raise ValueError(f"{path}: PLY faces have fewer than 3 vertices")
        return _sample_mesh(xyz[:, :3], np.stack(tris), num_points, generator, path)
    return xyz


def _sample_mesh(
    vertices: np.ndarray, faces: np.ndarray, num_points: int, generator: Optional[torch.Generator], path: Path
) -> np.ndarray:
    """Area-weighted surface sample (xyz + normals); logs a warning for non-manifold edges.

    Without ``generator`` the sample is seeded by :func:`mesh_seed` (the same points on every read)."""
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3) if np.size(faces) else np.zeros((0, 3), np.int64)
    if len(faces) == 0 or len(vertices) == 0:
        raise ValueError(f"{path}: mesh is empty (no faces), cannot sample its surface")
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    if (counts > 2).any():
        log.warning("%s: mesh is non-manifold (%d edges shared by more than two faces); "
                    "sampling its surface anyway", path, int((counts > 2).sum()))
    if generator is None:
        generator = torch.Generator().manual_seed(mesh_seed(path))
    try:
        return sample_surface(vertices, faces, num_points, generator=generator).numpy()
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def read_mesh(
    path: PathLike, num_points: int = DEFAULT_MESH_POINTS, *, generator: Optional[torch.Generator] = None
) -> np.ndarray:
    """Sample ``num_points × 6`` (xyz + normal) from the surface of an .off/.obj/.stl (or .ply) mesh."""
    p = _exists(path)
    if p.suffix.lower() == ".ply":
        return _read_ply(p, num_points, generator)
    trimesh = require("trimesh", "point", "reading meshes")
    try:
        mesh = trimesh.load(str(p), force="mesh", process=False)
    except Exception as e:  # trimesh raises many types for malformed files
        raise ValueError(f"{p}: not a readable mesh ({type(e).__name__}: {e})") from e
    vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), dtype=np.int64)
    return _sample_mesh(vertices, faces, num_points, generator, p)


def read_points(
    path: PathLike,
    *,
    normals: Optional[bool] = None,
    mesh_points: int = DEFAULT_MESH_POINTS,
    generator: Optional[torch.Generator] = None,
) -> np.ndarray:
    """Read one point cloud as a float32 ``N × C`` array (xyz, then normals when the file has them).

    ``normals=True`` requires 6 columns, ``False`` keeps xyz only, ``None`` keeps
    what the file has (3 or 6 columns; extra columns are dropped). Meshes are
    surface-sampled to ``mesh_points`` points.
    """
    p = _exists(path)
    suffix = p.suffix.lower()
    if suffix in (".npy", ".npz"):
        arr = _read_numpy(p)
    elif suffix in (".txt", ".xyz", ".pts", ".csv"):
        arr = _read_text(p)
    elif suffix == ".ply":
        arr = _read_ply(p, mesh_points, generator)
    elif suffix in MESH_SUFFIXES:
        arr = read_mesh(p, mesh_points, generator=generator)
    else:
        raise ValueError(
            f"{p}: unsupported point-cloud format {suffix!r}; use one of {', '.join(POINT_SUFFIXES + MESH_SUFFIXES)}"
        )
    arr = _as_cloud(arr, p)
    has_normals = arr.shape[1] >= 6
    if normals is True and not has_normals:
        raise ValueError(f"{p}: normals requested but the file has only {arr.shape[1]} columns")
    if normals is False or not has_normals:
        return arr[:, :3]
    return arr[:, :6]


def _read_lines(path: Path) -> list[str]:
    return [ln.strip() for ln in _exists(path).read_text().splitlines() if ln.strip()]


def _h5_arrays(files: Sequence[Path], normals: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Clouds, labels and ids (``FILE.h5#INDEX``) of HDF5 files with ``data`` and ``label`` datasets."""
    h5py = require("h5py", "point", "reading HDF5 point-cloud sets")
    data, labels, ids = [], [], []
    for f in files:
        with h5py.File(_exists(f), "r") as h:
            if "data" not in h or "label" not in h:
                raise ValueError(f"{f}: expected HDF5 datasets 'data' and 'label', found {sorted(h.keys())}")
            d = np.asarray(h["data"], dtype=np.float32)
            if d.ndim != 3 or d.shape[-1] < 3:
                raise ValueError(f"{f}: 'data' must have shape (S, N, 3+), got {d.shape}")
            if normals:
                if "normal" not in h:
                    raise ValueError(f"{f}: normals requested but the file has no 'normal' dataset")
                d = np.concatenate([d[..., :3], np.asarray(h["normal"], dtype=np.float32)], axis=-1)
            else:
                d = d[..., :3]
            lab = np.asarray(h["label"]).reshape(-1).astype(np.int64)
            if len(lab) != len(d):
                raise ValueError(f"{f}: 'label' holds {len(lab)} labels for {len(d)} clouds")
            data.append(d)
            labels.append(lab)
            ids += [f"{f}#{i}" for i in range(len(d))]
    return np.concatenate(data), np.concatenate(labels), ids


def read_modelnet_h5(root: PathLike, split: str = "train", *, normals: bool = False) -> PointSplit:
    """ModelNet40 ``modelnet40_ply_hdf5_2048``: ``{split}_files.txt`` lists ``ply_data_{split}*.h5``."""
    r = _exists(root)
    listing = r / f"{split}_files.txt"
    if listing.exists():
        files = [r / Path(line).name for line in _read_lines(listing)]
    else:
        files = sorted(r.glob(f"ply_data_{split}*.h5"))
    if not files:
        raise FileNotFoundError(f"{r}: no ply_data_{split}*.h5 files (ModelNet40 HDF5 layout)")
    names = _read_lines(r / "shape_names.txt") if (r / "shape_names.txt").exists() else []
    data, labels, ids = _h5_arrays(files, normals)
    names = names or [str(i) for i in range(int(labels.max()) + 1)]
    _check_labels(labels, names, r)
    return PointSplit(data, labels, names, ids=ids)


def read_scanobjectnn_h5(
    root: PathLike, split: str = "train", *, variant: str = "objectdataset_augmentedrot_scale75"
) -> PointSplit:
    """ScanObjectNN HDF5: ``training_{variant}.h5`` / ``test_{variant}.h5`` (default: PB_T50_RS).

    ``root`` is the folder holding the files (e.g. ``h5_files/main_split``) or one ``.h5`` file, which is
    training data only (split ``train``): a test split never comes from the file that is trained on.
    """
    r = _exists(root)
    if r.is_file():
        if split != "train":
            raise ValueError(f"{r}: one .h5 file is training data only and has no {split} split; pass the folder "
                             f"holding training_<variant>.h5 and test_<variant>.h5 for a test split")
        files = [r]
    else:
        prefix = "training" if split == "train" else "test"
        files = [r / f"{prefix}_{variant}.h5"]
        if not files[0].exists():
            present = sorted(p.name for p in r.glob("*.h5"))
            raise FileNotFoundError(
                f"{files[0]}: ScanObjectNN file not found (variant {variant!r}); the folder holds "
                f"{', '.join(present) if present else 'no .h5 files'}: pick the variant with --scanobjectnn-variant "
                f"(the file name after training_/test_, e.g. objectdataset for training_objectdataset.h5)")
    data, labels, ids = _h5_arrays(files, normals=False)
    names = list(SCANOBJECTNN_CLASSES)
    _check_labels(labels, names, r)
    return PointSplit(data, labels, names, ids=ids)


def read_modelnet_resampled(root: PathLike, split: str = "train", *, classes: int = 40,
                            normals: bool = False) -> PointSplit:
    """``modelnet40_normal_resampled``: ``modelnet{40,10}_{shape_names,train,test}.txt`` + ``CLASS/ID.txt``."""
    r = _exists(root)
    names = _read_lines(r / f"modelnet{classes}_shape_names.txt")
    ids = _read_lines(r / f"modelnet{classes}_{split}.txt")
    index = {n: i for i, n in enumerate(names)}
    paths, labels = [], []
    for shape_id in ids:
        cls = shape_id.rsplit("_", 1)[0]
        if cls not in index:
            raise ValueError(f"{r}: shape {shape_id!r} in modelnet{classes}_{split}.txt has unknown class {cls!r}")
        paths.append(r / cls / f"{shape_id}.txt")
        labels.append(index[cls])
    if not paths:
        raise ValueError(f"{r}: modelnet{classes}_{split}.txt lists no shapes")

    def loader(path: Path) -> np.ndarray:
        return read_points(path, normals=normals)

    return PointSplit(paths, np.asarray(labels, dtype=np.int64), names, loader)


def read_class_folders(root: PathLike, *, normals: bool = False,
                       mesh_points: int = DEFAULT_MESH_POINTS,
                       class_names: Optional[Sequence[str]] = None) -> PointSplit:
    """``ROOT/CLASS/*`` with any readable point-cloud or mesh file; classes sorted by name."""
    r = _exists(root)
    names = list(class_names) if class_names else sorted(d.name for d in r.iterdir() if d.is_dir())
    if not names:
        raise ValueError(f"{r}: no class folders found (expected ROOT/CLASS/files)")
    suffixes = POINT_SUFFIXES + MESH_SUFFIXES
    paths, labels = [], []
    for i, name in enumerate(names):
        folder = r / name
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in suffixes) if folder.is_dir() else []
        paths += files
        labels += [i] * len(files)
    if not paths:
        raise ValueError(f"{r}: class folders hold no point-cloud files ({', '.join(suffixes)})")

    def loader(path: Path) -> np.ndarray:
        return read_points(path, normals=normals, mesh_points=mesh_points)

    return PointSplit(paths, np.asarray(labels, dtype=np.int64), names, loader)


def _check_labels(labels: np.ndarray, names: Sequence[str], where: Path) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise ValueError(f"{where}: labels span [{labels.min()}, {labels.max()}] but there are {len(names)} classes")


def detect_layout(root: PathLike) -> str:
    """Name the layout of a dataset folder: 'modelnet_h5', 'scanobjectnn_h5', 'modelnet_resampled',
    'class_folders_split' (``train/`` and ``test/`` class folders) or 'class_folders'."""
    r = _exists(root)
    if r.is_file():
        if r.suffix == ".h5":
            return "scanobjectnn_h5"
        raise ValueError(f"{r}: expected a dataset folder (or a ScanObjectNN .h5 file)")
    if list(r.glob("ply_data_*.h5")):
        return "modelnet_h5"
    if list(r.glob("training_*.h5")) or list(r.glob("test_*.h5")):
        return "scanobjectnn_h5"
    if list(r.glob("modelnet*_shape_names.txt")):
        return "modelnet_resampled"
    if (r / "train").is_dir():
        return "class_folders_split"
    return "class_folders"
