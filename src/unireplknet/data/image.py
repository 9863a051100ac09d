"""Image classification data: ImageFolder directories, CSV lists and the built-in digits demo.

This is the ``image`` implementation of the modality plug-in contract (docs/engine.md).

Unreadable images: when the data is indexed, every file is opened and checked with PIL
(``--no-verify-images`` turns this off); files that fail are **skipped** and their count is
logged as a warning with the first bad path. A file that still fails to decode during
training raises a ValueError naming it.
"""
from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .._extras import require
from ..modalities.image import IMAGE_EXTENSIONS, PRESETS, build_transform, default_stats, load_image
from ..recipes import IMAGENET_RECIPES
from ..tasks.base import TaskData

__all__ = [
    "CONFIG_DEFAULTS", "DEMO_DEFAULTS", "RECIPES", "ImageFileDataset", "DigitsDataset", "scan_image_folder",
    "read_image_csv", "digits_demo", "add_train_args", "build_task_data", "load_for_predict", "transform_kwargs",
]

logger = logging.getLogger(__name__)

#: defaults of the keys added by :func:`add_train_args`.
CONFIG_DEFAULTS: dict[str, Any] = {
    "input_size": 224,
    "in_chans": 3,
    "transform": "imagenet",
    "aa": "rand-m9-mstd0.5-inc1",
    "reprob": 0.25,
    "remode": "pixel",
    "recount": 1,
    "crop_pct": 0.875,
    "interpolation": "bicubic",
    "hflip": 0.5,
    "mean": None,
    "std": None,
    "verify_images": True,
}

#: the built-in demo: scikit-learn's 8x8 digits upscaled to 32x32 and a small custom UniRepLKNet
#: (dims 16-128, one DRB of kernel 7 per stage from stage 1 on).
DEMO_DEFAULTS: dict[str, Any] = {
    "model": "custom",
    "model_args": {"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128],
                   "kernel_sizes": [[3], [7], [7, 3], [7]]},
    "input_size": 32,
    "in_chans": 1,
    "transform": "light",
    "hflip": 0.0,
    "epochs": 10,
    "batch_size": 64,
    "lr": 4e-3,
    "warmup_epochs": 1,
    "weight_decay": 0.05,
    "smoothing": 0.1,
    "drop_path": 0.0,
    "num_workers": 0,  # 1437 tiny in-memory images: worker processes cost more than they save
    "num_threads": 1,  # a 0.35M-parameter model gains nothing from more threads, and one thread is robust on busy CPUs
}

#: named presets: the ImageNet recipes plus ``demo``.
RECIPES: dict[str, dict[str, Any]] = {**IMAGENET_RECIPES, "demo": dict(DEMO_DEFAULTS)}

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2


class ImageFileDataset(Dataset):
    """``(path, label)`` samples read with PIL and passed through ``transform``."""

    def __init__(self, samples: Sequence[tuple[str, int]], classes: Sequence[str], transform: Any, in_chans: int = 3) -> None:
        self.samples = list(samples)
        self.classes = list(classes)
        self.transform = transform
        self.in_chans = in_chans

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return self.transform(load_image(path, self.in_chans)), label


class DigitsDataset(Dataset):
    """scikit-learn's 8x8 digits (values 0..16) as ``L`` images through ``transform``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform
        self.classes = [str(i) for i in range(10)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        Image = require("PIL.Image", "train", "the digits demo")
        img = Image.fromarray((self.images[index] * (255.0 / 16.0)).round().astype(np.uint8), mode="L")
        return self.transform(img), int(self.labels[index])


def _is_readable(path: Path) -> bool:
    Image = require("PIL.Image", "train", "reading images")
    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:
        return False


def _filter_readable(samples: list[tuple[str, int]], where: str, verify: bool) -> list[tuple[str, int]]:
    if not verify:
        return samples
    ok = [_is_readable(Path(s[0])) for s in samples]
    good = [s for s, k in zip(samples, ok) if k]
    bad = [s[0] for s, k in zip(samples, ok) if not k]
    if bad:
        logger.warning("skipped %d unreadable image(s) in %s (first: %s)", len(bad), where, bad[0])
    if not good:
        raise ValueError(f"no readable images in {where}")
    return good


def scan_image_folder(
    root: str | Path, class_to_idx: Optional[dict[str, int]] = None, verify: bool = True
) -> tuple[list[tuple[str, int]], list[str]]:
    """``root/<class>/<image>`` → samples and class names (sorted, or those of ``class_to_idx``)."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"data directory not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"not a directory: {root}")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"{root} has no class folders (expected {root}/<class>/<image files>)")
    if class_to_idx is None:
        class_to_idx = {d.name: i for i, d in enumerate(class_dirs)}
    else:
        unknown = [d.name for d in class_dirs if d.name not in class_to_idx]
        if unknown:
            raise ValueError(f"{root} has class folder(s) not in the training set: {', '.join(unknown[:10])}")
    samples: list[tuple[str, int]] = []
    for d in class_dirs:
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ValueError(f"class folder {d} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        samples += [(str(p), class_to_idx[d.name]) for p in files]
    samples = _filter_readable(samples, str(root), verify)
    classes = sorted(class_to_idx, key=class_to_idx.get)  # type: ignore[arg-type]
    return samples, classes


def read_image_csv(
    path: str | Path, class_to_idx: Optional[dict[str, int]] = None, verify: bool = True
) -> tuple[list[tuple[str, int]], list[str]]:
    """A CSV with a ``path,label`` header (paths relative to the CSV's folder) → samples and class names."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file not found: {path}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise ValueError(f"{path} must have a 'path,label' header and at least one row")
    labels = [r["label"].strip() for r in rows]
    if class_to_idx is None:
        names = sorted(set(labels), key=lambda s: (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s))
        class_to_idx = {n: i for i, n in enumerate(names)}
    else:
        unknown = sorted(set(labels) - set(class_to_idx))
        if unknown:
            raise ValueError(f"{path} has label(s) not in the training set: {', '.join(unknown[:10])}")
    samples = []
    for r, label in zip(rows, labels):
        p = Path(r["path"].strip())
        p = p if p.is_absolute() else path.parent / p
        if not p.is_file():
            raise FileNotFoundError(f"{path}: image not found: {p}")
        samples.append((str(p), class_to_idx[label]))
    samples = _filter_readable(samples, str(path), verify)
    return samples, sorted(class_to_idx, key=class_to_idx.get)  # type: ignore[arg-type]


def _index(source: str | Path, class_to_idx: Optional[dict[str, int]], verify: bool) -> tuple[list, list[str]]:
    source = Path(source)
    if source.suffix.lower() == ".csv":
        return read_image_csv(source, class_to_idx, verify)
    return scan_image_folder(source, class_to_idx, verify)


def transform_kwargs(args: Any) -> dict[str, Any]:
    """The :func:`~unireplknet.modalities.image.build_transform` options held by a resolved config."""
    get = (lambda k: args.get(k, CONFIG_DEFAULTS[k])) if isinstance(args, dict) else (
        lambda k: getattr(args, k, CONFIG_DEFAULTS[k]))
    in_chans = int(get("in_chans"))
    mean, std = default_stats(in_chans) if get("mean") is None or get("std") is None else (get("mean"), get("std"))
    if len(mean) != in_chans or len(std) != in_chans:
        raise ValueError(f"mean/std need {in_chans} value(s), got {mean} and {std}")
    return {
        "input_size": int(get("input_size")),
        "preset": get("transform"),
        "aa": get("aa"),
        "reprob": float(get("reprob")),
        "remode": get("remode"),
        "recount": int(get("recount")),
        "crop_pct": float(get("crop_pct")),
        "interpolation": get("interpolation"),
        "hflip": float(get("hflip")),
        "mean": tuple(mean),
        "std": tuple(std),
    }


def _transforms(args: Any) -> tuple[Any, Any]:
    kw = transform_kwargs(args)
    size, preset = kw.pop("input_size"), kw.pop("preset")
    return build_transform(True, size, preset, **kw), build_transform(False, size, preset, **kw)


def digits_demo(train_tf: Any, eval_tf: Any) -> tuple[DigitsDataset, DigitsDataset]:
    """scikit-learn's digits with a fixed stratified 80/20 split (seed 0): 1437 train, 360 test images."""
    datasets = require("sklearn.datasets", "train", "the digits demo")
    model_selection = require("sklearn.model_selection", "train", "the digits demo")
    digits = datasets.load_digits()
    tr, te = model_selection.train_test_split(
        np.arange(len(digits.target)), test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED,
        stratify=digits.target,
    )
    return (DigitsDataset(digits.images[tr], digits.target[tr], train_tf),
            DigitsDataset(digits.images[te], digits.target[te], eval_tf))


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """Image flags (all default to None; real defaults in :data:`CONFIG_DEFAULTS`)."""
    g = parser.add_argument_group("image data")
    g.add_argument("--input-size", type=int, default=None, help="training/eval resolution (default 224; demo 32)")
    g.add_argument("--in-chans", type=int, default=None, choices=(1, 3), help="read images as 1 or 3 channels")
    g.add_argument("--transform", default=None, choices=PRESETS, help="augmentation preset (default imagenet)")
    g.add_argument("--aa", default=None, help="timm RandAugment spec for the imagenet preset ('' = off)")
    g.add_argument("--reprob", type=float, default=None, help="random-erasing probability (default 0.25)")
    g.add_argument("--remode", default=None, help="random-erasing mode (default pixel)")
    g.add_argument("--recount", type=int, default=None, help="random-erasing count (default 1)")
    g.add_argument("--crop-pct", type=float, default=None, help="eval center-crop fraction below 384 px (0.875)")
    g.add_argument("--interpolation", default=None, help="resize interpolation (default bicubic)")
    g.add_argument("--hflip", type=float, default=None, help="horizontal-flip probability (default 0.5)")
    g.add_argument("--mean", type=float, nargs="+", default=None, help="normalisation mean per channel")
    g.add_argument("--std", type=float, nargs="+", default=None, help="normalisation std per channel")
    g.add_argument("--verify-images", action=argparse.BooleanOptionalAction, default=None,
                   help="check every image when indexing and skip unreadable ones (default on)")


def build_task_data(args: argparse.Namespace) -> TaskData:
    """Datasets for ``args.data`` (ImageFolder root with train/ and val/, a class-folder dir or a CSV)
    and ``args.val_data``; the digits demo when ``args.data`` is None."""
    train_tf, eval_tf = _transforms(args)
    size = int(args.input_size)
    if args.data is None:
        if int(args.in_chans) != 1:
            raise ValueError("the digits demo is single-channel: use --in-chans 1")
        train, test = digits_demo(train_tf, eval_tf)
        return TaskData(train=train, val=test, test=test, num_classes=10, class_names=train.classes, in_chans=1,
                        input_size=(size, size), meta={"source": "sklearn digits (demo)"})
    root = Path(args.data)
    if not root.exists():
        raise FileNotFoundError(f"data not found: {root}")
    train_src: Path = root
    val_src: Optional[Path] = Path(args.val_data) if getattr(args, "val_data", None) else None
    if root.is_dir() and (root / "train").is_dir():
        train_src = root / "train"
        if val_src is None:
            val_src = next((root / n for n in ("val", "validation", "test") if (root / n).is_dir()), None)
    if root.is_dir() and not any(root.iterdir()):
        raise ValueError(f"data directory is empty: {root}")
    if val_src is None:
        raise ValueError(f"no validation data: {root} has no val/ folder; pass --val-data DIR|CSV")
    verify = bool(args.verify_images)
    samples, classes = _index(train_src, None, verify)
    class_to_idx = {c: i for i, c in enumerate(classes)}
    val_samples, _ = _index(val_src, class_to_idx, verify)
    in_chans = int(args.in_chans)
    logger.info("%d training and %d validation images in %d classes", len(samples), len(val_samples), len(classes))
    return TaskData(
        train=ImageFileDataset(samples, classes, train_tf, in_chans),
        val=ImageFileDataset(val_samples, classes, eval_tf, in_chans),
        num_classes=len(classes), class_names=classes, in_chans=in_chans, input_size=(size, size),
        meta={"source": str(root)},
    )


def load_for_predict(path: str, args: argparse.Namespace) -> torch.Tensor:
    """One image file → the ``C x H x W`` tensor the model was validated on."""
    _, eval_tf = _transforms(args)
    return eval_tf(load_image(path, int(args.in_chans)))
