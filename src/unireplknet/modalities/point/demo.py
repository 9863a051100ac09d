"""A synthetic labelled point-cloud set: trimesh primitives with random proportions and rotations.

The built-in demo data of ``unireplknet train --modality point`` and of
``examples/point_shapes.py``. Each sample is a primitive (box, ellipsoid,
cylinder, cone, torus, capsule) with random proportions, surface-sampled
(area-weighted) and randomly rotated over SO(3), so orientation carries no
information about the class. Generation is deterministic given ``seed``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from unireplknet._extras import require
from unireplknet.modalities.point.io import PointSplit
from unireplknet.modalities.point.transforms import normalize, random_rotation, rotate, sample_surface

__all__ = ["SHAPE_CLASSES", "make_shape", "make_shapes"]

SHAPE_CLASSES = ("box", "ellipsoid", "cylinder", "cone", "torus", "capsule")


def _builders(rng: np.random.Generator) -> dict[str, Callable[[], object]]:
    c = require("trimesh", "point", "generating the demo shapes").creation

    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    def ellipsoid() -> object:
        m = c.icosphere(subdivisions=2)
        m.vertices = m.vertices * np.array([u(0.5, 1.0), u(0.5, 1.0), u(0.5, 1.0)])
        return m

    return {
        "box": lambda: c.box(extents=[u(0.4, 1.0), u(0.4, 1.0), u(0.4, 1.0)]),
        "ellipsoid": ellipsoid,
        "cylinder": lambda: c.cylinder(radius=u(0.2, 0.5), height=u(0.6, 1.2), sections=24),
        "cone": lambda: c.cone(radius=u(0.3, 0.6), height=u(0.6, 1.2), sections=24),
        "torus": lambda: c.torus(major_radius=u(0.45, 0.6), minor_radius=u(0.1, 0.25),
                                 major_sections=24, minor_sections=12),
        "capsule": lambda: c.capsule(height=u(0.5, 1.0), radius=u(0.15, 0.35), count=[12, 12]),
    }


def make_shape(name: str, num_points: int = 1024, *, seed: int = 0, rotation: str = "so3") -> np.ndarray:
    """One ``num_points × 3`` cloud of primitive ``name`` (random proportions and rotation), unit-sphere normalised."""
    if name not in SHAPE_CLASSES:
        raise ValueError(f"unknown shape {name!r}; choose from {', '.join(SHAPE_CLASSES)}")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    mesh = _builders(rng)[name]()
    pts = sample_surface(np.asarray(mesh.vertices), np.asarray(mesh.faces), num_points, generator=gen)[:, :3]
    pts = rotate(pts, random_rotation(1, rotation, generator=gen)[0])  # type: ignore[arg-type]
    return normalize(pts).numpy()


def make_shapes(
    per_class: int,
    num_points: int = 1024,
    *,
    seed: int = 0,
    classes: Optional[Sequence[str]] = None,
    rotation: str = "so3",
) -> PointSplit:
    """``per_class`` samples of each class (all in memory) as a :class:`PointSplit`.

    Different ``seed`` values give disjoint random streams (use one for train, another for val).
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    names = list(classes or SHAPE_CLASSES)
    clouds, labels = [], []
    for k, name in enumerate(names):
        for i in range(per_class):
            item_seed = (seed * 1_000_003 + k * 10_007 + i) % (2**63 - 1)
            clouds.append(make_shape(name, num_points, seed=item_seed, rotation=rotation))
            labels.append(k)
    return PointSplit(np.stack(clouds).astype(np.float32), np.asarray(labels, dtype=np.int64), names)

