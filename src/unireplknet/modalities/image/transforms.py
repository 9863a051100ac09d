"""Images as backbone input: file loading and the train/eval transform presets.

Presets:

* ``imagenet`` - the original recipe: bicubic RandomResizedCrop, RandAugment
  ``rand-m9-mstd0.5-inc1``, horizontal flip, random erasing 0.25 (pixel mode);
  eval resizes to ``size / crop_pct`` and center-crops below 384 px, and warps
  to ``size x size`` (no crop) at 384 px and above.
* ``light`` - for small images (digits, CIFAR-sized data): resize, random
  translation by up to 1/8 of the size (reflect padding + random crop),
  optional horizontal flip; eval only resizes.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from ..._extras import require

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_EXTENSIONS", "PRESETS", "DEEP_MODES", "to_8bit", "load_image",
           "default_stats", "build_transform"]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
PRESETS = ("imagenet", "light")


#: PIL modes of single-channel images deeper than 8 bits (16-bit PNG/TIFF, 32-bit integer and float TIFF).
DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_8bit(im: Any) -> Any:
    """A high-bit-depth or float single-channel PIL image as an 8-bit ``L`` image; other images unchanged.

    PIL's own ``convert`` clips every value above 255, so a 16-bit image would turn almost white. Integer
    images are scaled by their type's range (16-bit: 65535 → 255, as ``torchvision`` does; 32-bit integer images
    holding 16-bit values, as PIL reads some 16-bit files, too); float images are taken as 0-1 data when their
    values lie in [0, 1], as 0-255 data when they lie in [0, 255], and stretched from their minimum to their
    maximum otherwise.
    """
    if im.mode not in DEEP_MODES:
        return im
    import numpy as np

    Image = require("PIL.Image", "train", "reading images")
    a = np.asarray(im, dtype=np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if im.mode == "F":
        if lo >= 0.0 and hi <= 1.0:
            a = a * 255.0
        elif lo < 0.0 or hi > 255.0:
            a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    elif im.mode != "I" or hi > 255.0:  # 16-bit data (an ``I`` image within 0-255 is 8-bit data)
        a = a / 257.0 if lo >= 0.0 and hi <= 65535.0 else ((a - lo) * (255.0 / (hi - lo)) if hi > lo else a * 0)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def load_image(path: str | Path, in_chans: int = 3) -> Any:
    """Open an image file as a PIL image in ``RGB`` (3 channels) or ``L`` (1 channel) mode.

    The EXIF orientation of a photo is applied (the image as every viewer shows it), and 16-bit or float
    images are scaled to 8 bits (:func:`to_8bit`) instead of clipped.
    """
    Image = require("PIL.Image", "train", "reading images")
    from PIL import ImageOps

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    if in_chans not in (1, 3):
        raise ValueError(f"images can be read with 1 or 3 channels, not in_chans={in_chans}")
    try:
        with Image.open(path) as im:
            if "exif" in im.info or im.format == "TIFF":  # only files that can carry an orientation: the
                im = ImageOps.exif_transpose(im)  # EXIF parse costs ~15 us, as much as decoding a small image
            im = to_8bit(im)
            return im.convert("RGB" if in_chans == 3 else "L")
    except Exception as e:
        raise ValueError(f"cannot read image {path}: {e}") from e


def default_stats(in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet mean/std for RGB; their channel averages for single-channel images."""
    if in_chans == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    if in_chans == 1:
        return (sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,)
    raise ValueError(f"no default normalisation for in_chans={in_chans}; give mean and std")


def build_transform(
    is_training: bool,
    input_size: int,
    preset: str = "imagenet",
    *,
    aa: Optional[str] = "rand-m9-mstd0.5-inc1",
    reprob: float = 0.25,
    remode: str = "pixel",
    recount: int = 1,
    crop_pct: float = 0.875,
    interpolation: str = "bicubic",
    hflip: float = 0.5,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable[[Any], torch.Tensor]:
    """PIL image → normalised ``C x H x W`` float tensor, for training or evaluation."""
    if preset not in PRESETS:
        raise ValueError(f"unknown transform preset {preset!r}; choose from {', '.join(PRESETS)}")
    if input_size < 8:
        raise ValueError(f"input_size must be >= 8, got {input_size}")
    T = require("torchvision.transforms", "train", "image transforms")
    interp = T.InterpolationMode(interpolation)
    mean, std = tuple(mean), tuple(std)
    to_tensor = [T.ToTensor(), T.Normalize(mean, std)]
    if preset == "imagenet":
        if is_training:
            timm_data = require("timm.data", "train", "the ImageNet augmentation recipe")
            return timm_data.create_transform(
                input_size,
                is_training=True,
                auto_augment=aa or None,
                interpolation=interpolation,
                re_prob=reprob,
                re_mode=remode,
                re_count=recount,
                hflip=hflip,
                mean=mean,
                std=std,
            )
        if input_size >= 384:
            return T.Compose([T.Resize((input_size, input_size), interpolation=interp), *to_tensor])
        return T.Compose(
            [T.Resize(int(input_size / crop_pct), interpolation=interp), T.CenterCrop(input_size), *to_tensor]
        )
    # light
    resize = T.Resize((input_size, input_size), interpolation=interp)
    if not is_training:
        return T.Compose([resize, *to_tensor])
    pad = max(input_size // 8, 1)
    ops = [resize, T.RandomCrop(input_size, padding=pad, padding_mode="reflect")]
    if hflip > 0:
        ops.append(T.RandomHorizontalFlip(hflip))
    return T.Compose(ops + to_tensor)
