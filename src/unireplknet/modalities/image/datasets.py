"""Image classification data: ImageFolder directories, CSV lists and the built-in digits demo.

This is the ``image`` implementation of the modality plug-in contract (docs/engine.md).

Unreadable images: when the data is indexed, every file is opened and checked with PIL
(``--no-verify-images`` turns this off); files that fail are **skipped** and their count is
logged as a warning with the first bad path. A file that still fails to decode during
training raises a ValueError naming it.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..._extras import require
from .transforms import IMAGE_EXTENSIONS, PRESETS, build_transform, default_stats, load_image
from ...recipes import IMAGENET_RECIPES
from ...errors import DataError
from ..base import NamedFileErrors, TaskData, prescan, scan_splits

__all__ = [
    "CONFIG_DEFAULTS", "DEMO_DEFAULTS", "RECIPES", "ImageFileDataset", "DigitsDataset",
    "check_image", "digits_demo", "add_train_args", "build_task_data", "load_for_predict", "transform_kwargs",
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


def check_image(path: Path) -> None:
    """Decode ``path`` fully (raises on an empty, truncated or foreign file)."""
    Image = require("PIL.Image", "train", "reading images")
    with Image.open(path) as im:
        im.load()


def transform_kwargs(args: Any) -> dict[str, Any]:
    """The :func:`~unireplknet.modalities.image.transforms.build_transform` options held by a resolved config."""
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


def digits_demo(train_tf: Any, eval_tf: Any, val_fraction: float = 0.1,
                seed: int = 0) -> tuple[DigitsDataset, DigitsDataset, DigitsDataset]:
    """scikit-learn's digits: a fixed stratified 80/20 train/test split (seed 0: 1437 / 360 images), and
    ``val_fraction`` of the training part carved out per class (seed ``seed``) for validation."""
    datasets = require("sklearn.datasets", "train", "the digits demo")
    model_selection = require("sklearn.model_selection", "train", "the digits demo")
    digits = datasets.load_digits()
    tr, te = model_selection.train_test_split(
        np.arange(len(digits.target)), test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED,
        stratify=digits.target,
    )
    tr, va = model_selection.train_test_split(tr, test_size=val_fraction, random_state=seed,
                                              stratify=digits.target[tr])
    return (DigitsDataset(digits.images[tr], digits.target[tr], train_tf),
            DigitsDataset(digits.images[va], digits.target[va], eval_tf),
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
                   help="decode every image once before training (cached) to find unreadable ones (default on)")


def build_task_data(args: argparse.Namespace) -> TaskData:
    """Datasets for ``args.data`` (split folders, class folders or a CSV list; see
    :mod:`unireplknet.modalities.base`); the digits demo when ``args.data`` is None."""
    train_tf, eval_tf = _transforms(args)
    size = int(args.input_size)
    seed = int(getattr(args, "seed", 0) or 0)
    in_chans = int(args.in_chans)
    # --- shards / Hugging Face datasets (modalities/shards.py, modalities/hf.py) ---
    from ..shards import image_task_data
    from ..hf import image_task_data as hf_task_data
    for external in (image_task_data, hf_task_data):
        task = external(args, train_tf, eval_tf)
        if task is not None:
            return task
    # --- end shards / HF ---
    if args.data is None:
        if in_chans != 1:
            raise DataError("the digits demo is single-channel: use --in-chans 1")
        train, val, test = digits_demo(train_tf, eval_tf, float(getattr(args, "val_fraction", None) or 0.1), seed)
        return TaskData(train=train, val=val, tests={"test": test}, num_classes=10, class_names=train.classes,
                        in_chans=1, input_size=(size, size),
                        meta={"source": "sklearn digits (demo)", "plan": [
                            "data layout: sklearn digits (demo)",
                            f"  train {len(train):>7} images  training               from 80% of the digits minus validation",
                            f"  val   {len(val):>7} images  validation (selection)   from {getattr(args, 'val_fraction', None) or 0.1:g} of train per class (seed {seed})",
                            f"  test  {len(test):>7} images  test (final, once)       from the fixed 20% held out (seed 0)"]})
    splits = scan_splits(
        args.data, IMAGE_EXTENSIONS, val_data=getattr(args, "val_data", None),
        val_fraction=float(getattr(args, "val_fraction", None) or 0.1), seed=seed,
        data_root=getattr(args, "data_root", None), allow_outside_root=bool(getattr(args, "allow_outside_root", False)),
    )
    if bool(getattr(args, "verify_images", True)):
        prescan(splits, check_image, name="image-decode", skip_bad=getattr(args, "skip_bad_files", None))
    index = splits.class_index()

    def dataset(items: list, tf: Any) -> Dataset:
        samples = [(str(f), index[lab[0]]) for f, lab in items]
        ds = ImageFileDataset(samples, splits.classes, tf, in_chans)
        return NamedFileErrors(ds, lambda i, s=samples: s[i][0])

    return TaskData(
        train=dataset(splits.train, train_tf), val=dataset(splits.val, eval_tf),
        tests={name: dataset(items, eval_tf) for name, items in splits.tests.items()},
        num_classes=len(splits.classes), class_names=splits.classes, in_chans=in_chans, input_size=(size, size),
        meta={"source": str(args.data)}, splits=splits,
    )


def load_for_predict(path: str, args: argparse.Namespace) -> torch.Tensor:
    """One image file → the ``C x H x W`` tensor the model was validated on."""
    _, eval_tf = _transforms(args)
    return eval_tf(load_image(path, int(args.in_chans)))
