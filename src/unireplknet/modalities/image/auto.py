"""``auto`` rules of the image modality: input size, channels and augmentation from a sample of the images."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from ..._extras import require
from .transforms import IMAGE_EXTENSIONS

__all__ = ["auto_config", "SAMPLE"]

logger = logging.getLogger(__name__)

#: how many training images are opened to measure the data.
SAMPLE = 200


def _sample_files(cfg: Mapping[str, Any]) -> list[Path]:
    """A seeded sample of the training images, by the run's own split rules (never validation or test files)."""
    from ..base import sample_training_files, scan_splits

    def scan() -> Any:
        return scan_splits(cfg["data"], IMAGE_EXTENSIONS, val_data=cfg.get("val_data"),
                           val_fraction=float(cfg.get("val_fraction") or 0.1), seed=int(cfg.get("seed") or 0),
                           data_root=cfg.get("data_root"), allow_outside_root=bool(cfg.get("allow_outside_root")))

    return sample_training_files(scan, SAMPLE, int(cfg.get("seed") or 0))


def auto_config(cfg: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """``{key: (value, why)}`` for ``input_size``, ``in_chans``, ``transform``, ``hflip`` (empty without data)."""
    if cfg.get("data") is None:
        return {}
    Image = require("PIL.Image", "train", "reading images")
    sizes, gray = [], 0
    for path in _sample_files(cfg):
        try:
            with Image.open(path) as im:
                sizes.append(min(im.size))
                gray += im.mode in ("L", "1", "I;16", "I", "F", "LA")
        except Exception:  # unreadable files are reported by the pre-scan
            continue
    if not sizes:
        logger.info("auto: no training image could be read; input size and channels keep their defaults")
        return {}
    sizes.sort()
    median = sizes[len(sizes) // 2]
    size = int(min(224, max(32, round(median / 16) * 16)))
    out: dict[str, tuple[Any, str]] = {
        "input_size": (size, f"median short side of {len(sizes)} sampled images is {median} px (clipped to 32-224, "
                             f"multiple of 16)")}
    if gray == len(sizes):
        out["in_chans"] = (1, f"all {len(sizes)} sampled images are single-channel")
    else:
        out["in_chans"] = (3, f"{len(sizes) - gray} of {len(sizes)} sampled images are colour")
    if size <= 96:
        out["transform"] = ("light", f"{size} px images: resize + random translation (RandAugment is for large images)")
        out["hflip"] = (0.0, "small images may be glyphs or digits, where a mirror changes the class")
    else:
        out["transform"] = ("imagenet", f"{size} px images: the original ImageNet augmentation")
    return out
