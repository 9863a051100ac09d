"""A small dense-prediction dataset made at run time: shapes pasted on real photos.

The backgrounds are crops of the two photos scikit-learn ships (``sklearn.datasets.load_sample_images``:
a Chinese temple and a flower). Each scene gets 1..``max_shapes`` filled circles, squares and
triangles of random colour, size and place; later shapes occlude earlier ones. Every scene comes with
a semantic mask (0 = background, 1 circle, 2 square, 3 triangle), per-instance masks, boxes and labels,
so the same data serves segmentation and detection. Scenes are deterministic functions of
``(seed, index)``.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .._extras import require

__all__ = ["SHAPE_CLASSES", "sample_photos", "make_scene", "ShapesSegmentation", "ShapesDetection", "write_shapes_folder"]

#: class names; index 0 is the background.
SHAPE_CLASSES = ("background", "circle", "square", "triangle")


@functools.lru_cache(maxsize=1)
def sample_photos() -> Tuple[np.ndarray, ...]:
    """The photos shipped with scikit-learn, as ``H x W x 3`` uint8 arrays."""
    datasets = require("sklearn.datasets", "dense", "the shapes-on-photos demo dataset")
    return tuple(np.asarray(im, dtype=np.uint8) for im in datasets.load_sample_images().images)


def _background(rng: np.random.Generator, size: Tuple[int, int]) -> np.ndarray:
    photos = sample_photos()
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    h, w = size
    scale = rng.uniform(max(h / ph, w / pw, 0.3), 1.0)
    ch, cw = max(int(h / scale), h // 4, 1), max(int(w / scale), w // 4, 1)
    ch, cw = min(ch, ph), min(cw, pw)
    top, left = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    crop = torch.from_numpy(np.ascontiguousarray(photo[top:top + ch, left:left + cw])).permute(2, 0, 1).float()
    out = F.interpolate(crop[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    return out.permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def _shape_mask(kind: int, h: int, w: int, cy: float, cx: float, r: float, angle: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    if kind == 1:  # circle
        return dx * dx + dy * dy <= r * r
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    if kind == 2:  # square
        return (np.abs(u) <= r * 0.85) & (np.abs(v) <= r * 0.85)
    # equilateral triangle: inside three half-planes
    inside = np.ones((h, w), dtype=bool)
    for k in range(3):
        a = angle + k * 2 * np.pi / 3
        inside &= (np.cos(a) * dx + np.sin(a) * dy) <= r * 0.5
    return inside


def make_scene(
    seed: int, size: Tuple[int, int] = (128, 128), max_shapes: int = 3, min_pixels: int = 16
) -> Dict[str, np.ndarray]:
    """One scene: ``image`` (HxWx3 uint8), ``mask`` (HxW int64), ``instance_masks`` (NxHxW bool),
    ``boxes`` (Nx4 float32, xyxy in pixels), ``labels`` (N int64, 1..3).

    Instances occluded down to fewer than ``min_pixels`` visible pixels are dropped.
    """
    h, w = size
    if h < 16 or w < 16:
        raise ValueError(f"scene size must be at least 16x16, got {size}")
    rng = np.random.default_rng(seed)
    image = _background(rng, (h, w)).copy()
    mask = np.zeros((h, w), dtype=np.int64)
    owner = np.full((h, w), -1, dtype=np.int64)
    kinds: List[int] = []
    n = int(rng.integers(1, max_shapes + 1))
    for i in range(n):
        kind = int(rng.integers(1, len(SHAPE_CLASSES)))
        r = rng.uniform(0.1, 0.25) * min(h, w)
        cy, cx = rng.uniform(r * 0.5, h - r * 0.5), rng.uniform(r * 0.5, w - r * 0.5)
        region = _shape_mask(kind, h, w, cy, cx, r, rng.uniform(0, 2 * np.pi))
        color = rng.integers(0, 256, size=3)
        noise = rng.normal(0, 12, size=(h, w, 3))
        image[region] = np.clip(color + noise[region], 0, 255).astype(np.uint8)
        mask[region] = kind
        owner[region] = i
        kinds.append(kind)
    inst, boxes, labels = [], [], []
    for i, kind in enumerate(kinds):
        m = owner == i
        if m.sum() < min_pixels:
            continue
        ys, xs = np.nonzero(m)
        inst.append(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        labels.append(kind)
    return {
        "image": image,
        "mask": mask,
        "instance_masks": np.stack(inst) if inst else np.zeros((0, h, w), dtype=bool),
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "labels": np.asarray(labels, dtype=np.int64),
    }


class ShapesSegmentation(Dataset):
    """``length`` scenes as segmentation pairs; ``transform(image, mask)`` as for
    :class:`~unireplknet.tasks.segmentation_data.SegmentationFolder` (``None`` returns the arrays)."""

    num_classes = len(SHAPE_CLASSES)
    class_names = list(SHAPE_CLASSES)

    def __init__(self, length: int = 32, size: Tuple[int, int] = (128, 128), seed: int = 0,
                 transform: Optional[Callable[[np.ndarray, np.ndarray], Any]] = None, max_shapes: int = 3) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.length, self.size, self.seed, self.transform, self.max_shapes = length, tuple(size), seed, transform, max_shapes

    def __len__(self) -> int:
        return self.length

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """The raw ``(image, mask)`` of scene ``index``."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} scenes")
        s = make_scene(self.seed * 100_003 + index, self.size, self.max_shapes)  # type: ignore[arg-type]
        return s["image"], s["mask"]

    def __getitem__(self, index: int) -> Any:
        image, mask = self.load(index)
        return self.transform(image, mask) if self.transform is not None else (image, mask)


class ShapesDetection(Dataset):
    """``length`` scenes in torchvision's detection format: ``(3xHxW float in [0, 1], target)`` with
    ``target = {"boxes", "labels", "masks"}`` (labels 1..3; 0 is torchvision's background)."""

    num_classes = len(SHAPE_CLASSES)
    class_names = list(SHAPE_CLASSES)

    def __init__(self, length: int = 32, size: Tuple[int, int] = (128, 128), seed: int = 0, max_shapes: int = 3) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.length, self.size, self.seed, self.max_shapes = length, tuple(size), seed, max_shapes

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} scenes")
        s = make_scene(self.seed * 100_003 + index, self.size, self.max_shapes)  # type: ignore[arg-type]
        image = torch.from_numpy(s["image"]).permute(2, 0, 1).float() / 255.0
        target = {
            "boxes": torch.from_numpy(s["boxes"]),
            "labels": torch.from_numpy(s["labels"]),
            "masks": torch.from_numpy(s["instance_masks"].astype(np.uint8)),
        }
        return image, target


def write_shapes_folder(
    root: Union[str, os.PathLike], length: int = 32, size: Tuple[int, int] = (128, 128), seed: int = 0
) -> Path:
    """Write ``length`` scenes in the ``images/`` + ``masks/`` layout (PNG) with a ``classes.txt``."""
    Image = require("PIL.Image", "dense", "writing PNG files")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(length):
        s = make_scene(seed * 100_003 + i, size)
        Image.fromarray(s["image"]).save(root / "images" / f"scene_{i:04d}.png")
        Image.fromarray(s["mask"].astype(np.uint8)).save(root / "masks" / f"scene_{i:04d}.png")
    (root / "classes.txt").write_text("\n".join(SHAPE_CLASSES) + "\n")
    return root
