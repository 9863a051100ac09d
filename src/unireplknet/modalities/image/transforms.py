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

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_EXTENSIONS", "PRESETS", "load_image", "default_stats", "build_transform"]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
PRESETS = ("imagenet", "light")


def load_image(path: str | Path, in_chans: int = 3) -> Any:
    """Open an image file as a PIL image in ``RGB`` (3 channels) or ``L`` (1 channel) mode."""
    Image = require("PIL.Image", "train", "reading images")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    if in_chans not in (1, 3):
        raise ValueError(f"images can be read with 1 or 3 channels, not in_chans={in_chans}")
    try:
        with Image.open(path) as im:
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
