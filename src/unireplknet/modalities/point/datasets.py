"""Point-cloud classification data: the dataset and the ``--modality point`` plug-in of the engine.

A cloud goes through one pipeline (:class:`PointPipeline`), shared by training,
evaluation and ``predict``: sample a fixed number of points (FPS or random) →
centre and scale into the unit sphere → (training) augment and shrink back into
the sphere → (``canonical_pose``) rotate into the PCA frame → project to depth
views (``K × H × W``: three along the axes, six cube faces or a ring of K).
Evaluation by rotation voting returns ``V × K × H × W`` (the cloud turned about
the up axis by ``2πk/V``, or by the first V cube rotations with
``vote_rotation="so3"``: after the canonical pose these are its sign flips);
the engine averages the V scores.

``--data`` accepts every layout of :mod:`unireplknet.modalities.point.io` (detected
automatically, or named with ``--layout``); without ``--data`` the built-in
demo set of primitive shapes (:mod:`unireplknet.modalities.point.demo`) is used.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from unireplknet.modalities.point.io import (
    MESH_SUFFIXES,
    POINT_SUFFIXES,
    PointSplit,
    check_cloud,
    detect_layout,
    read_modelnet_h5,
    read_modelnet_resampled,
    read_points,
    read_scanobjectnn_h5,
)
from unireplknet.modalities.point.transforms import (
    PointAugment,
    canonical_pose,
    check_points,
    fit_unit_sphere,
    normalize,
    project_views,
    projection_channels,
    rotate,
    sample_points,
    voting_rotations,
)
from unireplknet.errors import DataError
from unireplknet.modalities.base import (
    Item,
    NamedFileErrors,
    Splits,
    TaskData,
    carve_val,
    finalize_splits,
    prescan,
    scan_splits,
)

__all__ = [
    "LAYOUTS",
    "PointPipeline",
    "PointCloudDataset",
    "point_splits",
    "demo_splits",
    "pipeline_from_args",
    "add_train_args",
    "build_task_data",
    "load_for_predict",
    "views_for_file",
    "baseline_features",
    "CONFIG_DEFAULTS",
    "DEMO_DEFAULTS",
    "RECIPES",
]

log = logging.getLogger(__name__)

POINT_EXTENSIONS = POINT_SUFFIXES + MESH_SUFFIXES
#: names the pre-scan's cache of ``read_points`` results; a new version when what ``read_points`` accepts changes
PRESCAN_NAME = "point-read-2"
#: file lists up to this size are read and sampled once, up front (see ``PointCloudDataset``).
EAGER_FILES = 20000
LAYOUTS = ("auto", "modelnet_h5", "scanobjectnn_h5", "modelnet_resampled", "class_folders", "class_folders_split")


@dataclass
class PointPipeline:
    """Cloud (``N × C`` array/tensor) → backbone-ready depth views.

    Two stages: :meth:`base` is deterministic and can be cached (FPS from the
    first point, then unit-sphere normalisation); :meth:`views_of` draws the rest.
    For training with FPS the base keeps ``oversample × num_points`` points and
    each epoch takes a random ``num_points`` of them (the original's 4800 → 4096),
    then applies ``augment``. Evaluation is deterministic, and ``views > 1``
    gives ``views × K × H × W`` rotation-voting stacks (``vote_rotation``: ``up`` or ``so3``).
    ``canonical`` rotates every cloud into its PCA frame (:func:`canonical_pose`) after the
    augmentation and before projection; ``projection`` picks the cameras (``axes``, ``faces``,
    ``ringK``; ``K`` = :attr:`channels`).
    """

    num_points: int = 1024
    sampling: str = "fps"
    resolution: int = 224
    splat: int = 1
    augment: Optional[PointAugment] = field(default_factory=PointAugment)
    views: int = 1
    up_axis: str = "y"
    oversample: float = 1.2
    canonical: bool = False
    projection: str = "axes"
    vote_rotation: str = "up"

    def __post_init__(self) -> None:
        if self.num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {self.num_points}")
        if self.sampling not in ("fps", "random"):
            raise ValueError(f"sampling must be 'fps' or 'random', got {self.sampling!r}")
        if self.views < 1:
            raise ValueError(f"views must be >= 1, got {self.views}")
        if self.oversample < 1:
            raise ValueError(f"oversample must be >= 1, got {self.oversample}")
        projection_channels(self.projection)  # raises for an unknown projection
        if self.vote_rotation not in ("up", "so3"):
            raise ValueError(f"vote_rotation must be 'up' or 'so3', got {self.vote_rotation!r}")

    @property
    def channels(self) -> int:
        """Depth views per input (the backbone's ``in_chans``)."""
        return projection_channels(self.projection)

    def _project(self, pts: torch.Tensor) -> torch.Tensor:
        return project_views(pts, self.resolution, self.projection, splat=self.splat, up_axis=self.up_axis)

    def base(self, cloud: Any, *, train: bool) -> torch.Tensor:
        """Deterministic part: validated xyz, FPS-reduced (``sampling='fps'``), unit-sphere normalised.

        Also takes a batch ``B × N × C`` of equal-size clouds (FPS runs batched).
        """
        pts = check_points(torch.as_tensor(np.asarray(cloud)) if not isinstance(cloud, torch.Tensor) else cloud)
        pts = pts[..., :3].float()
        if self.sampling == "fps":
            keep = int(np.ceil(self.num_points * self.oversample)) if train else self.num_points
            if pts.shape[-2] > keep:
                pts = sample_points(pts, keep, "fps", random_start=False)
        return normalize(pts)

    def views_of(self, base: torch.Tensor, *, train: bool, seed: int = 0) -> torch.Tensor:
        """``3 × H × W`` (training, or evaluation with one view) or ``V × 3 × H × W`` from a :meth:`base` cloud."""
        if base.dim() != 2:
            raise ValueError(f"expected one cloud of shape (N, 3), got {tuple(base.shape)}")
        pts = self._subset(base, train=train, seed=seed)
        if train:
            if self.augment is not None:
                pts = self.augment(pts)
            if self.canonical:
                pts = canonical_pose(pts)
            return self._project(fit_unit_sphere(pts))
        if self.canonical:
            pts = canonical_pose(pts)
        if self.views == 1:
            return self._project(pts)
        turned = rotate(pts.unsqueeze(0), voting_rotations(self.views, up_axis=self.up_axis, mode=self.vote_rotation))
        return self._project(turned)

    def prepare(self, cloud: Any, *, train: bool = False, seed: int = 0) -> torch.Tensor:
        """The ``num_points × 3`` normalised cloud that is projected (without augmentation)."""
        return self._subset(self.base(cloud, train=train), train=train, seed=seed)

    def _subset(self, base: torch.Tensor, *, train: bool, seed: int) -> torch.Tensor:
        """Exactly ``num_points`` of a base cloud: random (seeded by ``seed`` unless training), renormalised."""
        if base.shape[0] == self.num_points:
            return base
        gen = None if train else torch.Generator().manual_seed(seed)
        return normalize(sample_points(base, self.num_points, "random", generator=gen))

    def __call__(self, cloud: Any, *, train: bool, seed: int = 0) -> torch.Tensor:
        """Both stages at once (``predict`` and one-off use)."""
        return self.views_of(self.base(cloud, train=train), train=train, seed=seed)


class PointCloudDataset(Dataset):
    """Map-style dataset of ``(views, label)`` from a :class:`PointSplit` through a :class:`PointPipeline`.

    With ``cache`` the deterministic :meth:`PointPipeline.base` of each cloud
    (FPS + normalisation) is computed once: up front and batched for in-memory
    sets (HDF5, demo), lazily per worker process for file lists.
    Training randomness comes from torch's global generator (seeded per sample
    by the engine); evaluation items are deterministic.
    """

    def __init__(self, split: PointSplit, pipeline: PointPipeline, *, train: bool, cache: bool = True,
                 chunk: int = 256) -> None:
        self.split = split
        self.pipeline = pipeline
        self.train = train
        self.cache = cache
        self._bases: dict[int, torch.Tensor] = {}
        #: the last item returned and its (sampled, normalised, un-augmented) cloud, for the D2 baseline
        self.last_item: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        if cache and isinstance(split.clouds, np.ndarray) and len(split):
            log.info("sampling %d clouds (%s)", len(split), pipeline.sampling)
            for lo in range(0, len(split), chunk):
                self._cache_block([(lo + i, c) for i, c in enumerate(
                    np.asarray(split.clouds[lo:lo + chunk], dtype=np.float32))])
        elif cache and isinstance(split.clouds, list) and 0 < len(split) <= EAGER_FILES:
            self._eager_file_bases(chunk)

    def _eager_file_bases(self, chunk: int) -> None:
        """Read a small file list once and sample every cloud up front, batched by cloud shape.

        DataLoader workers are new processes every epoch; a base computed lazily in a worker is lost
        with it, so without this every epoch would repeat farthest-point sampling per file. A file
        that fails here (read or sampled) is left to the lazy path, which reports it by name.
        """
        groups: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
        for i in range(len(self.split)):
            try:
                cloud = np.asarray(self.split.get(i), dtype=np.float32)
                check_points(cloud)
            except Exception:  # reported when the item is read
                continue
            groups.setdefault(cloud.shape, []).append((i, cloud))
        log.info("sampling %d clouds from files (%s)", sum(len(g) for g in groups.values()), self.pipeline.sampling)
        for items in groups.values():
            for lo in range(0, len(items), chunk):
                self._cache_block(items[lo:lo + chunk])

    def _cache_block(self, part: list[tuple[int, np.ndarray]]) -> None:
        """Cache the bases of equal-shape clouds ``[(index, cloud)]``, batched; when the batch fails, one by one,
        leaving a cloud that fails alone to the lazy path (which raises naming its file)."""
        try:
            block = self.pipeline.base(np.stack([c for _, c in part]), train=self.train)
            self._bases.update({i: b for (i, _), b in zip(part, block)})
            return
        except (ValueError, RuntimeError):
            pass
        for i, cloud in part:
            try:
                self._bases[i] = self.pipeline.base(cloud, train=self.train)
            except (ValueError, RuntimeError):
                continue

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        base = self._bases.get(index)
        if base is None:
            base = self.pipeline.base(self.split.get(index), train=self.train)
            if self.cache:
                self._bases[index] = base
        views = self.pipeline.views_of(base, train=self.train, seed=index)
        self.last_item = (views, base)
        return views, int(self.split.labels[index])


def demo_splits(per_class: int, val_per_class: int, *, seed: int = 0,
                num_points: int = 1024) -> tuple[PointSplit, PointSplit]:
    """Train and validation splits of the built-in demo (primitive shapes, disjoint random streams)."""
    from unireplknet.modalities.point.demo import make_shapes

    return (make_shapes(per_class, num_points, seed=seed * 2 + 1),
            make_shapes(val_per_class, num_points, seed=seed * 2 + 2))


# ----------------------------------------------------------------------------- engine plug-in
CONFIG_DEFAULTS: dict[str, Any] = {
    "layout": "auto",
    "num_points": 1024,
    "sampling": "fps",
    "input_size": 224,
    "splat": 1,
    "rotation": "up",
    "up_axis": "y",
    "scale": [2 / 3, 3 / 2],
    "translate": 0.2,
    "jitter": 0.0,
    "point_dropout": 0.0,
    "vote_views": 1,
    "vote_rotation": "up",
    "canonical_pose": False,
    "projection": "axes",
    "scanobjectnn_variant": "objectdataset_augmentedrot_scale75",
    "demo_per_class": 40,
    "demo_val_per_class": 10,
}

# The built-in demo: six primitive shapes, randomly rotated, and a tiny backbone.
DEMO_DEFAULTS: dict[str, Any] = {
    "model": "custom",
    "model_args": {"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128],
                   "kernel_sizes": [[3], [7], [7, 3], [7]]},
    "epochs": 20,
    "batch_size": 16,
    "lr": 2e-3,
    "warmup_epochs": 1,
    "smoothing": 0.1,
    "num_points": 512,
    "input_size": 64,
    "splat": 3,
    "rotation": "so3",
    "translate": 0.0,
    "vote_views": 1,
    "canonical_pose": True,
}

# Preset following the original (P2P-based) ModelNet40 recipe: UniRepLKNet-S, AdamW 5e-4,
# wd 0.05, batch 16, 300 epochs, per-epoch cosine to 1e-6 without warm-up, label smoothing 0.2,
# drop path 0.4, 4096 points, up-axis rotation + per-axis scale U(2/3, 3/2) + shift U(-0.2, 0.2).
RECIPES: dict[str, dict[str, Any]] = {
    "modelnet40": {
        "model": "unireplknet_s",
        "drop_path": 0.4,
        "opt": "adamw",
        "lr": 5e-4,
        "weight_decay": 0.05,
        "batch_size": 16,
        "epochs": 300,
        "warmup_epochs": 0,
        "min_lr": 1e-6,
        "smoothing": 0.2,
        "num_points": 4096,
        "sampling": "fps",
        "input_size": 224,
        "splat": 3,
        "rotation": "up",
        "scale": [2 / 3, 3 / 2],
        "translate": 0.2,
        "vote_views": 8,
    },
}


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """Flags of the point modality (defaults live in ``CONFIG_DEFAULTS``)."""
    g = parser.add_argument_group("point clouds")
    g.add_argument("--layout", choices=LAYOUTS, default=None, help="dataset layout (default: detect)")
    g.add_argument("--num-points", type=int, default=None, help="points per cloud after sampling (1024)")
    g.add_argument("--sampling", choices=("fps", "random"), default=None, help="point sampling (fps)")
    g.add_argument("--input-size", type=int, default=None, help="depth-image resolution (224)")
    g.add_argument("--splat", type=int, default=None, help="odd splat size in pixels (1)")
    g.add_argument("--rotation", choices=("up", "so3", "none"), default=None,
                   help="training rotation: about the up axis, any (SO(3)) or none (up)")
    g.add_argument("--up-axis", choices=("x", "y", "z"), default=None, help="up axis of the data (y)")
    g.add_argument("--scale", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="per-axis scale range (2/3 3/2)")
    g.add_argument("--translate", type=float, default=None, help="max shift per axis (0.2)")
    g.add_argument("--jitter", type=float, default=None, help="Gaussian jitter sigma (0)")
    g.add_argument("--point-dropout", type=float, default=None, help="max fraction of points dropped (0)")
    g.add_argument("--vote-views", type=int, default=None, help="evaluation rotations averaged (1)")
    g.add_argument("--vote-rotation", choices=("up", "so3"), default=None,
                   help="voting rotations: about the up axis, or the first V of the 24 cube rotations (so3; "
                        "after --canonical-pose the first 4 are its sign flips) (up)")
    g.add_argument("--canonical-pose", action=argparse.BooleanOptionalAction, default=None,
                   help="rotate each cloud into its PCA frame before projecting (signs: positive third moment "
                        "along the first two axes, third = their cross product) (off; auto: on for data "
                        "that is not upright)")
    g.add_argument("--projection", default=None,
                   help="depth views: axes (3, along x/y/z), faces (6, cube faces), ringK (K around the up axis) "
                        "(axes)")
    g.add_argument("--scanobjectnn-variant", default=None,
                   help="ScanObjectNN file suffix (objectdataset_augmentedrot_scale75 = PB_T50_RS)")
    g.add_argument("--demo-per-class", type=int, default=None, help="demo shapes per class for training (40)")
    g.add_argument("--demo-val-per-class", type=int, default=None, help="demo shapes per class for validation (10)")


def _get(args: argparse.Namespace, key: str) -> Any:
    value = getattr(args, key, None)
    return CONFIG_DEFAULTS.get(key) if value is None else value


def pipeline_from_args(args: argparse.Namespace, *, train: bool) -> PointPipeline:
    """The :class:`PointPipeline` described by a (resolved) config namespace."""
    augment = None
    if train:
        augment = PointAugment(
            rotation=_get(args, "rotation"), up_axis=_get(args, "up_axis"), scale=tuple(_get(args, "scale")),
            translate=float(_get(args, "translate")), jitter=float(_get(args, "jitter")),
            dropout=float(_get(args, "point_dropout")),
        )
    return PointPipeline(
        num_points=int(_get(args, "num_points")), sampling=_get(args, "sampling"),
        resolution=int(_get(args, "input_size")), splat=int(_get(args, "splat")),
        augment=augment, views=1 if train else int(_get(args, "vote_views")), up_axis=_get(args, "up_axis"),
        canonical=bool(_get(args, "canonical_pose")), projection=str(_get(args, "projection")),
        vote_rotation=str(_get(args, "vote_rotation")),
    )


def point_splits(args: argparse.Namespace, *, check_files: bool = True) -> tuple[dict[str, PointSplit], Splits]:
    """``{"train", "val", <test splits>}`` of ``args.data`` by the shared split rules, and their plan.

    File layouts (split folders, class folders, CSV lists) go through
    :func:`~unireplknet.modalities.base.scan_splits`; the packed benchmark layouts (ModelNet/ScanObjectNN
    HDF5, resampled ModelNet) give their ``test`` split as a test split (one ScanObjectNN ``.h5`` file: none)
    and validation is carved from training. Every layout then gets the shared checks
    (:func:`~unireplknet.modalities.base.finalize_splits`) and the bad-file pre-scan, which checks each
    cloud of an HDF5 file as it checks a file (named ``FILE.h5#INDEX``); ``check_files=False`` leaves the
    pre-scan out (``auto`` measuring a sample, which the run then checks).
    """
    data = str(args.data)
    seed = int(getattr(args, "seed", 0) or 0)
    fraction = float(getattr(args, "val_fraction", None) or 0.1)
    skip_bad = getattr(args, "skip_bad_files", None)
    layout = _get(args, "layout")
    if layout not in LAYOUTS:
        raise DataError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    kind = "csv" if Path(data).suffix.lower() == ".csv" else detect_layout(data) if layout == "auto" else layout
    val_data = getattr(args, "val_data", None)
    if kind in ("modelnet_h5", "scanobjectnn_h5", "modelnet_resampled"):
        return _packed_splits(kind, data, args, fraction=fraction, seed=seed, skip_bad=skip_bad,
                              check_files=check_files)
    splits = scan_splits(data, POINT_SUFFIXES + MESH_SUFFIXES, val_data=val_data, val_fraction=fraction, seed=seed,
                         data_root=getattr(args, "data_root", None),
                         allow_outside_root=bool(getattr(args, "allow_outside_root", False)))
    if check_files:
        prescan(splits, read_points, name=PRESCAN_NAME, skip_bad=skip_bad)
    index = splits.class_index()
    return {name: PointSplit([Path(f) for f, _ in items], np.asarray([index[lab[0]] for _, lab in items], np.int64),
                             list(splits.classes), read_points)
            for name, items in splits.named()}, splits


def _packed_splits(kind: str, data: str, args: argparse.Namespace, *, fraction: float, seed: int,
                   skip_bad: Optional[bool], check_files: bool = True) -> tuple[dict[str, PointSplit], Splits]:
    """The splits of a benchmark layout (HDF5 or resampled ModelNet), checked as file layouts are."""
    root = Path(data)
    classes = 40
    if kind == "modelnet_h5":
        read = lambda split: read_modelnet_h5(data, split)  # noqa: E731
    elif kind == "scanobjectnn_h5":
        variant = _get(args, "scanobjectnn_variant")
        read = lambda split: read_scanobjectnn_h5(data, split, variant=variant)  # noqa: E731
    else:
        classes = 10 if (root / "modelnet10_shape_names.txt").exists() and not (
            root / "modelnet40_shape_names.txt").exists() else 40
        read = lambda split: read_modelnet_resampled(data, split, classes=classes)  # noqa: E731
    parts = {"train": read("train")}
    if not (kind == "scanobjectnn_h5" and root.is_file()):  # one .h5 file is training data only
        parts["test"] = read("test")

    def items(split: PointSplit) -> list[Item]:
        names = split.ids if split.ids is not None else [str(c) for c in split.clouds]
        return [(Path(n), (split.class_names[int(k)],)) for n, k in zip(names, split.labels)]

    def source(name: str) -> str:
        split = parts[name]
        if split.ids is None:  # resampled ModelNet: the list of shapes
            return f"the shapes listed in {root / f'modelnet{classes}_{name}.txt'}"
        return ", ".join(dict.fromkeys(i.rsplit("#", 1)[0] for i in split.ids))

    train, val = carve_val(items(parts["train"]), fraction, seed)
    sources = {"train": f"{source('train')} minus validation",
               "val": f"{fraction:g} of the training clouds per class (seed {seed})"}
    tests = {}
    if "test" in parts:
        tests["test"], sources["test"] = items(parts["test"]), source("test")
    splits = finalize_splits(Splits(kind, train, val, tests, sources), data)
    trained = set(splits.classes)
    splits.classes = [c for c in parts["train"].class_names if c in trained]  # the data set's own class order
    rows = {str(path): (split, i) for split in parts.values() for i, (path, _) in enumerate(items(split))}
    if check_files and parts["train"].ids is None:  # files: read and checked as every file layout is
        prescan(splits, parts["train"].loader or read_points, name=f"{PRESCAN_NAME}-{kind}",
                skip_bad=skip_bad)
    elif check_files:  # clouds in memory: each checked like a file, named FILE.h5#INDEX

        def cloud_at(path: Path) -> None:
            split, i = rows[str(path)]
            check_cloud(np.asarray(split.clouds[i]), str(path))

        prescan(splits, cloud_at, name=f"point-{kind}", skip_bad=skip_bad, cache=False, key=str)
    index = splits.class_index()
    out: dict[str, PointSplit] = {}
    for name, its in splits.named():
        labels = np.asarray([index[lab[0]] for _, lab in its], np.int64)
        source_split = rows[str(its[0][0])][0]  # train and val come from the training split, test from test
        if source_split.ids is None:
            out[name] = PointSplit([Path(f) for f, _ in its], labels, list(splits.classes), source_split.loader)
        else:
            at = np.asarray([rows[str(f)][1] for f, _ in its], np.int64)
            out[name] = PointSplit(source_split.clouds[at], labels, list(splits.classes), ids=[str(f) for f, _ in its])
    log.info("point-cloud data %s (%s): %s", data, kind,
             ", ".join(f"{len(v)} {k}" for k, v in out.items()))
    return out, splits


def build_task_data(args: argparse.Namespace) -> TaskData:
    """Datasets for ``unireplknet train --modality point`` (demo shapes when ``args.data`` is None)."""
    data = getattr(args, "data", None)
    seed = int(getattr(args, "seed", 0) or 0)
    splits: Optional[Splits] = None
    if data is None:
        train_split, val_split = demo_splits(int(_get(args, "demo_per_class")),
                                             int(_get(args, "demo_val_per_class")), seed=seed)
        test_split = demo_splits(1, int(_get(args, "demo_val_per_class")), seed=seed + 1000)[1]
        parts = {"train": train_split, "val": val_split, "test": test_split}
    else:
        parts, splits = point_splits(args)
    names = list(parts["train"].class_names)
    if len(names) < 2:
        raise DataError(f"{data}: the training data has {len(names)} class; classification needs at least 2")
    size = int(_get(args, "input_size"))
    views = int(_get(args, "vote_views"))
    evaluation = pipeline_from_args(args, train=False)

    def dataset(split: PointSplit, train: bool) -> Dataset:
        ds = PointCloudDataset(split, pipeline_from_args(args, train=True) if train else evaluation, train=train)
        if isinstance(split.clouds, list):
            return NamedFileErrors(ds, lambda i, c=split.clouds: c[i])
        if split.ids is not None:
            return NamedFileErrors(ds, lambda i, c=split.ids: c[i])
        return ds

    tests = {k: dataset(v, False) for k, v in parts.items() if k not in ("train", "val")}
    return TaskData(
        train=dataset(parts["train"], True), val=dataset(parts["val"], False), tests=tests,
        num_classes=len(names), class_names=names, in_chans=evaluation.channels, input_size=(size, size),
        eval_views=views,
        splits=splits,
        meta={"modality": "point", "train_size": len(parts["train"]), "val_size": len(parts["val"]),
              **({"plan": ["data: built-in demo shapes (three disjoint random streams)",
                           f"  train {len(parts['train']):>7} clouds  training",
                           f"  val   {len(parts['val']):>7} clouds  validation (selection)",
                           f"  test  {len(parts['test']):>7} clouds  test (final, once)"]} if data is None else {})},
    )


def baseline_features(task: TaskData) -> dict[str, Any]:
    """Point baselines for the runner (``Modality.baseline_features``): ``{"d2_histogram": fn}``.

    Osada's D2 shape distribution (:func:`unireplknet.tasks.baselines.d2_histogram`, rotation-,
    translation- and scale-invariant) of the raw cloud behind each input, i.e. the sampled and
    normalised cloud before augmentation, rotation voting or projection. ``fn`` takes an input
    just returned by one of the task's datasets (or a view of it) and looks its cloud up there;
    any other tensor raises ``ValueError`` (the runner then skips the baselines with a warning).
    """
    from unireplknet.modalities.baseline_features import d2_histogram, raw_sample_lookup

    cloud_of = raw_sample_lookup(task, "d2_histogram baseline")

    def d2(x: Any) -> np.ndarray:
        """D2 histogram of the raw cloud behind input ``x``."""
        return d2_histogram(cloud_of(x).numpy())

    return {"d2_histogram": d2}


def load_for_predict(path: str, args: argparse.Namespace) -> torch.Tensor:
    """One point-cloud or mesh file → ``3 × H × W`` (or ``V × 3 × H × W`` with rotation voting)."""
    return pipeline_from_args(args, train=False)(read_points(path), train=False)


def views_for_file(path: str, *, num_points: int = 2048, resolution: int = 224, splat: int = 1,
                   sampling: str = "fps") -> torch.Tensor:
    """The ``3 × H × W`` depth views of one file, as the ``project`` command draws them."""
    pipe = PointPipeline(num_points=num_points, sampling=sampling, resolution=resolution, splat=splat,
                         augment=None, views=1)  # the project command draws the three axis views
    return pipe(read_points(path), train=False)

