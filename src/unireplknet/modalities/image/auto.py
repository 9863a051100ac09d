"""``auto`` rules of the image modality: input size, channels and augmentation from a sample of the images."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Mapping

from ..._extras import require
from .transforms import IMAGE_EXTENSIONS

__all__ = ["auto_config", "SAMPLE"]

#: how many training images are opened to measure the data.
SAMPLE = 200


def _sample_files(data: Path, seed: int) -> list[Path]:
    if data.is_file():  # a CSV list: its training rows only (test rows are never looked at before the end)
        import csv

        from ..base import split_kind

        with data.open(newline="") as f:
            rows = [r.get("path", "") for r in csv.DictReader(f)
                    if not (r.get("split") or "").strip() or split_kind(r["split"]) == "train"]
        files = [(data.parent / r.strip()) for r in rows if r.strip()]
    else:
        root = data / "train" if (data / "train").is_dir() else data
        files = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS]
    files = sorted(files)
    random.Random(seed).shuffle(files)
    return files[:SAMPLE]


def auto_config(cfg: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """``{key: (value, why)}`` for ``input_size``, ``in_chans``, ``transform``, ``hflip`` (empty without data)."""
    if cfg.get("data") is None:
        return {}
    Image = require("PIL.Image", "train", "reading images")
    sizes, gray = [], 0
    for path in _sample_files(Path(cfg["data"]), int(cfg.get("seed") or 0)):
        try:
            with Image.open(path) as im:
                sizes.append(min(im.size))
                gray += im.mode in ("L", "1", "I;16", "I", "F", "LA")
        except Exception:  # unreadable files are reported by the pre-scan
            continue
    if not sizes:
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
