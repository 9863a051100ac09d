"""PNG pictures of dense predictions (Pillow): segmentation overlays and detection boxes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .._extras import require
from .segmentation_data import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["palette", "denormalize", "colorize", "save_segmentation_png", "save_detection_png"]

ArrayLike = Union[np.ndarray, torch.Tensor]


def palette(n: int) -> np.ndarray:
    """``n x 3`` uint8 distinct colours (class 0 black), deterministic."""
    rng = np.random.default_rng(12345)
    colors = rng.integers(40, 256, size=(max(n, 1), 3)).astype(np.uint8)
    colors[0] = 0
    return colors


def _np(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def denormalize(image: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """A normalised ``3 x H x W`` tensor back to ``H x W x 3`` uint8."""
    x = image.detach().cpu().float() * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def colorize(mask: ArrayLike, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Class-index mask to an ``H x W x 3`` colour image (ignored pixels white)."""
    m = _np(mask).astype(np.int64)
    out = palette(num_classes)[np.clip(m, 0, num_classes - 1)]
    out[m == ignore_index] = 255
    return out


def save_segmentation_png(path: Union[str, os.PathLike], images: Sequence[np.ndarray], preds: Sequence[ArrayLike],
                          num_classes: int, targets: Optional[Sequence[ArrayLike]] = None, alpha: float = 0.5) -> Path:
    """One row per image: the image, the ground truth overlay (if given) and the prediction overlay."""
    Image = require("PIL.Image", "dense", "writing PNG files")
    rows = []
    for i, img in enumerate(images):
        img = np.asarray(img, dtype=np.uint8)
        cols = [img]
        masks = ([targets[i]] if targets is not None else []) + [preds[i]]
        for m in masks:
            cols.append((img * (1 - alpha) + colorize(m, num_classes) * alpha).astype(np.uint8))
        rows.append(np.concatenate(cols, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return path


def save_detection_png(path: Union[str, os.PathLike], images: Sequence[np.ndarray], detections: Sequence[dict],
                       class_names: Sequence[str], targets: Optional[Sequence[dict]] = None, score_thresh: float = 0.5) -> Path:
    """Images side by side with predicted boxes (coloured, with class and score) and ground truth (white)."""
    Image = require("PIL.Image", "dense", "writing PNG files")
    ImageDraw = require("PIL.ImageDraw", "dense", "drawing boxes")
    colors = palette(len(class_names))
    tiles = []
    for i, img in enumerate(images):
        im = Image.fromarray(np.asarray(img, dtype=np.uint8)).convert("RGB")
        draw = ImageDraw.Draw(im)
        if targets is not None:
            for box in _np(targets[i]["boxes"]):
                draw.rectangle([float(v) for v in box], outline=(255, 255, 255), width=1)
        det = detections[i]
        for box, label, score in zip(_np(det["boxes"]), _np(det["labels"]), _np(det["scores"])):
            if score < score_thresh:
                continue
            color = tuple(int(c) for c in colors[int(label) % len(colors)])
            draw.rectangle([float(v) for v in box], outline=color, width=2)
            draw.text((float(box[0]) + 2, float(box[1]) + 1), f"{class_names[int(label)]} {score:.2f}", fill=color)
        tiles.append(np.asarray(im))
    h = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, h - t.shape[0]), (0, 2), (0, 0))) for t in tiles]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(tiles, axis=1)).save(path)
    return path
