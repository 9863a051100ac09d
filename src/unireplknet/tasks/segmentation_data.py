"""Semantic-segmentation data: the ``images/`` + ``masks/`` folder layout, mask checks and transforms.

Layout of a dataset folder ``DIR``::

    DIR/images/NAME.{jpg,jpeg,png,bmp,tif,tiff,webp}
    DIR/masks/NAME.png          # one mask per image, same stem, same height and width
    DIR/classes.txt             # optional: one class name per line (line i = class i)

A mask is a single-channel PNG (mode ``L``/``P``/``I;16``) whose pixel value is the class index
``0 .. num_classes-1``; ``ignore_index`` (default 255) marks pixels excluded from loss and metrics.
``DIR`` may instead hold ``train/`` and ``val/`` sub-folders, each in this layout.

Documented behaviour on bad input: an image without a mask raises ``FileNotFoundError`` listing the
images (unlabeled images are not silently used); a mask without an image is ignored with a warning;
an image/mask size mismatch and mask values outside ``0..num_classes-1`` (other than
``ignore_index``) raise ``ValueError`` naming the file. The training command first pre-scans every pair
(:func:`drop_bad_pairs`: the shared bad-file rule of :func:`unireplknet.modalities.base.prescan`): a pair whose
image or mask cannot be decoded, whose sizes differ, or (in any split) whose mask holds a value outside the class
count of ``classes.txt`` / the training masks, is skipped with one warning, or is an error naming it. Hidden
files (``.DS_Store``, AppleDouble ``._x.jpg``) are never read.
"""
from __future__ import annotations

import logging
import math
import os
import random
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .._extras import require
from ..modalities.base import files_with

__all__ = [
    "IMAGE_EXTENSIONS", "IMAGENET_MEAN", "IMAGENET_STD", "find_pairs", "read_image", "read_mask", "check_mask",
    "SegTransform", "SegmentationFolder", "pad_collate", "read_class_names", "check_pair", "drop_bad_pairs",
]

_logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_MODES = ("L", "P", "I", "I;16", "1")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Pair = Tuple[Path, Path]


def find_pairs(root: Union[str, os.PathLike]) -> List[Pair]:
    """``(image, mask)`` paths of a folder in the ``images/`` + ``masks/`` layout, sorted by name."""
    root = Path(root)
    img_dir, mask_dir = root / "images", root / "masks"
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"segmentation folder {root} needs images/ and masks/ sub-folders; missing {d}")
    images = files_with(img_dir, IMAGE_EXTENSIONS, recursive=False)
    if not images:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {img_dir}")
    masks = {p.stem: p for p in files_with(mask_dir, (".png",), recursive=False)}
    missing = [p.name for p in images if p.stem not in masks]
    if missing:
        more = f" ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise FileNotFoundError(
            f"{len(missing)} image(s) in {img_dir} have no mask {mask_dir}/<name>.png: {', '.join(missing[:5])}{more}"
        )
    orphans = set(masks) - {p.stem for p in images}
    if orphans:
        _logger.warning("%d mask(s) in %s have no image and are ignored: %s", len(orphans), mask_dir,
                        ", ".join(sorted(orphans)[:5]))
    return [(p, masks[p.stem]) for p in images]


def read_class_names(root: Union[str, os.PathLike]) -> Optional[List[str]]:
    """Class names from ``root/classes.txt`` (one per line), or None when absent."""
    path = Path(root) / "classes.txt"
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return names or None


def read_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """An RGB image as ``H x W x 3`` uint8."""
    Image = require("PIL.Image", "dense", "reading images")
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def read_mask(path: Union[str, os.PathLike]) -> np.ndarray:
    """A class-index mask as ``H x W`` int64 (single-channel PNG: ``L``, ``P``, ``I``, ``I;16``)."""
    Image = require("PIL.Image", "dense", "reading masks")
    with Image.open(path) as im:
        _check_mask_mode(im.mode, path)
        return np.asarray(im).astype(np.int64)


def _check_mask_mode(mode: str, path: Union[str, os.PathLike]) -> None:
    if mode not in MASK_MODES:
        raise ValueError(
            f"mask {path} has mode {mode}: masks must be single-channel PNGs whose values are class "
            f"indices (mode L or P), not colour images"
        )


def check_mask(mask: np.ndarray, num_classes: int, ignore_index: int = 255, where: str = "mask") -> None:
    """Raise ``ValueError`` naming ``where`` if a value is outside ``0..num_classes-1`` and not ``ignore_index``."""
    values = np.unique(mask)
    bad = [int(v) for v in values if (v < 0 or v >= num_classes) and v != ignore_index]
    if bad:
        raise ValueError(
            f"{where} has values {bad[:10]} outside the class range 0..{num_classes - 1} "
            f"(ignore_index={ignore_index}); fix the mask or pass a larger num_classes"
        )


def _image_size(path: Path, mask: bool = False) -> Tuple[int, int]:
    Image = require("PIL.Image", "dense", "reading images")
    with Image.open(path) as im:
        if mask:
            _check_mask_mode(im.mode, path)
        w, h = im.size
    return h, w


def check_pair(image: Union[str, os.PathLike], mask: Union[str, os.PathLike], num_classes: Optional[int] = None,
               ignore_index: int = 255) -> None:
    """Decode ``image`` and ``mask`` fully; raise ``ValueError``/``OSError`` naming the file at fault when either
    cannot be decoded, the mask is not single-channel, their sizes differ, or (``num_classes`` given) a mask value
    is outside ``0..num_classes-1`` and not ``ignore_index``."""
    Image = require("PIL.Image", "dense", "reading images")
    with Image.open(image) as im:
        im.load()
        iw, ih = im.size
    try:
        with Image.open(mask) as m:
            _check_mask_mode(m.mode, mask)
            m.load()
            mw, mh = m.size
            values = np.asarray(m).astype(np.int64) if num_classes is not None else None
    except Exception as e:  # any failure to decode the mask: say it is the mask
        reason = (str(e).splitlines() or [type(e).__name__])[0] or type(e).__name__
        raise ValueError(reason if str(mask) in reason else f"mask {mask}: {reason}") from e
    if (ih, iw) != (mh, mw):
        raise ValueError(f"image is {ih}x{iw} (HxW) but its mask {mask} is {mh}x{mw}")
    if values is not None:
        check_mask(values, int(num_classes), ignore_index, where=f"mask {mask}")


def _pair_key(masks: Dict[Path, Path]) -> Callable[[Path], Optional[str]]:
    """The pre-scan cache key of an image: path, size and mtime of the image *and* of its mask."""

    def key(image: Path) -> Optional[str]:
        parts = []
        for path in (image, masks[image]):
            try:
                st = path.stat()
            except OSError:
                return None
            parts.append(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}")
        return "||".join(parts)

    return key


def drop_bad_pairs(splits: Dict[str, List[Pair]], skip_bad: Optional[bool] = True, num_classes: Optional[int] = None,
                   ignore_index: int = 255) -> Dict[str, List[str]]:
    """Pre-scan every ``(image, mask)`` pair of every split (parallel, cached per both files' path/size/mtime)
    with :func:`check_pair`, and remove the bad pairs in place. With ``num_classes`` a mask holding a value
    outside ``0..num_classes-1`` (other than ``ignore_index``) is a bad pair too, in every split.

    The rule is :func:`unireplknet.modalities.base.prescan`'s: one warning with the count and the first paths
    (``skip_bad`` True or None), or :class:`~unireplknet.errors.BadFileError` naming the first bad pair
    (``skip_bad=False``); a split left empty raises :class:`~unireplknet.errors.DataError`. Returns
    ``{split: [skipped image paths]}`` (only splits that lost pairs).
    """
    from ..modalities.base import Splits, prescan

    missing = [n for n in ("train", "val") if n not in splits]
    if missing:
        raise ValueError(f"drop_bad_pairs needs the train and val splits; missing: {', '.join(missing)}")
    masks: Dict[Path, Path] = {}
    for pairs in splits.values():
        for image, mask in pairs:
            masks[Path(image)] = Path(mask)
    names = list(splits)
    rest = [n for n in names if n not in ("train", "val")]
    plan = Splits(layout="images/ + masks/", train=[(Path(i), ()) for i, _ in splits["train"]],
                  val=[(Path(i), ()) for i, _ in splits["val"]],
                  tests={n: [(Path(i), ()) for i, _ in splits[n]] for n in rest})
    name = "segmentation-pair-decode"
    if num_classes is not None:
        name += f"-values-{int(num_classes)}-{int(ignore_index)}"
    prescan(plan, lambda image: check_pair(image, masks[image], num_classes, ignore_index), name=name,
            skip_bad=skip_bad, key=_pair_key(masks))
    for name, kept in plan.named():
        if name in splits:
            ok = {p for p, _ in kept}
            splits[name][:] = [pair for pair in splits[name] if Path(pair[0]) in ok]
    return dict(plan.skipped)


class SegTransform:
    """Image/mask pair to ``(3 x H x W float, H x W int64)`` tensors, with optional training augmentation.

    Training (``train=True``): resize so the short side is ``crop_size * s`` with ``s`` uniform in
    ``scale``; random crop of ``crop_size`` (padded with ``ignore_index``); horizontal flip;
    brightness/contrast jitter. Evaluation: optional resize of the short side to ``eval_size``.
    Both normalise with ``mean``/``std`` (ImageNet by default). Randomness comes from Python's
    ``random`` (seeded per sample by the engine).
    """

    def __init__(
        self,
        train: bool,
        crop_size: int = 512,
        scale: Sequence[float] = (0.5, 2.0),
        flip: bool = True,
        jitter: float = 0.2,
        eval_size: Optional[int] = None,
        ignore_index: int = 255,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if crop_size < 8:
            raise ValueError(f"crop_size must be >= 8, got {crop_size}")
        self.train, self.crop_size, self.scale, self.flip, self.jitter = train, int(crop_size), tuple(scale), flip, jitter
        self.eval_size, self.ignore_index = eval_size, ignore_index
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    @staticmethod
    def _resize(img: torch.Tensor, mask: torch.Tensor, short: int) -> Tuple[torch.Tensor, torch.Tensor]:
        h, w = img.shape[-2:]
        r = short / min(h, w)
        size = (max(1, round(h * r)), max(1, round(w * r)))
        img = F.interpolate(img[None], size=size, mode="bilinear", align_corners=False)[0]
        mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0].long()
        return img, mask

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor]:
        if image.shape[:2] != mask.shape[:2]:
            raise ValueError(f"image {image.shape[:2]} and mask {mask.shape[:2]} sizes differ")
        img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        msk = torch.from_numpy(np.ascontiguousarray(mask)).long()
        if self.train:
            s = random.uniform(*self.scale)
            img, msk = self._resize(img, msk, max(8, round(self.crop_size * s)))
            c = self.crop_size
            h, w = img.shape[-2:]
            ph, pw = max(c - h, 0), max(c - w, 0)
            if ph or pw:
                img = F.pad(img, (0, pw, 0, ph), value=0.0)
                msk = F.pad(msk, (0, pw, 0, ph), value=self.ignore_index)
                h, w = img.shape[-2:]
            top, left = random.randint(0, h - c), random.randint(0, w - c)
            img, msk = img[:, top:top + c, left:left + c], msk[top:top + c, left:left + c]
            if self.flip and random.random() < 0.5:
                img, msk = img.flip(-1), msk.flip(-1)
            if self.jitter > 0:
                b = 1.0 + random.uniform(-self.jitter, self.jitter)
                k = 1.0 + random.uniform(-self.jitter, self.jitter)
                mean = img.mean()
                img = ((img - mean) * k + mean * b).clamp(0, 1)
        elif self.eval_size:
            img, msk = self._resize(img, msk, int(self.eval_size))
        img = (img - self.mean) / self.std
        return img.contiguous(), msk.contiguous()


class SegmentationFolder(Dataset):
    """A folder in the ``images/`` + ``masks/`` layout (see the module docstring).

    Args:
        root: the folder, or a list of ``(image, mask)`` path pairs.
        num_classes: number of classes; ``None`` infers ``max label + 1`` by reading every mask.
        transform: ``(image HxWx3 uint8, mask HxW int64) -> item``; ``None`` returns the arrays.
        ignore_index: mask value excluded from loss and metrics.
        check_sizes: compare every image/mask size up front (reads only the file headers).
        class_names: names of the classes when ``root`` is a list of pairs (a folder's ``classes.txt`` wins).
    """

    def __init__(
        self,
        root: Union[str, os.PathLike, Sequence[Pair]],
        num_classes: Optional[int] = None,
        transform: Optional[Callable[[np.ndarray, np.ndarray], Any]] = None,
        ignore_index: int = 255,
        check_sizes: bool = True,
        class_names: Optional[Sequence[str]] = None,
    ) -> None:
        if isinstance(root, (str, os.PathLike)):
            self.root: Optional[Path] = Path(root)
            self.pairs = find_pairs(root)
            self.class_names = read_class_names(root)
        else:
            self.root, self.pairs = None, [(Path(a), Path(b)) for a, b in root]
            self.class_names = list(class_names) if class_names is not None else None
            if not self.pairs:
                raise ValueError("no (image, mask) pairs given")
        self.ignore_index = ignore_index
        self.transform = transform
        if check_sizes:
            for img_path, mask_path in self.pairs:
                a, b = _image_size(img_path), _image_size(mask_path, mask=True)
                if a != b:
                    raise ValueError(f"image {img_path} is {a[0]}x{a[1]} (HxW) but its mask {mask_path} is {b[0]}x{b[1]}")
        if num_classes is None:
            if self.class_names:
                num_classes = len(self.class_names)
            else:
                top = 0
                for _, mask_path in self.pairs:
                    m = read_mask(mask_path)
                    valid = m[m != ignore_index]
                    top = max(top, int(valid.max()) if valid.size else 0)
                num_classes = top + 1
                _logger.info("inferred num_classes=%d from the masks", num_classes)
        if num_classes < 2:
            raise ValueError(f"segmentation needs num_classes >= 2, got {num_classes}")
        self.num_classes = int(num_classes)
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"classes.txt lists {len(self.class_names)} names but num_classes={self.num_classes}")
        if self.class_names is None:
            self.class_names = [str(i) for i in range(self.num_classes)]

    def __len__(self) -> int:
        return len(self.pairs)

    def path_of(self, index: int) -> Path:
        """The image file of item ``index`` (its mask is ``pairs[index][1]``)."""
        return self.pairs[index][0]

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """The checked raw pair ``(H x W x 3 uint8, H x W int64)`` of item ``index``."""
        img_path, mask_path = self.pairs[index]
        image = read_image(img_path)
        try:
            mask = read_mask(mask_path)
        except (OSError, ValueError, EOFError) as e:  # say that it is the mask (callers name the image)
            reason = (str(e).splitlines() or [type(e).__name__])[0] or type(e).__name__
            raise ValueError(reason if str(mask_path) in reason else f"mask {mask_path}: {reason}") from e
        if image.shape[:2] != mask.shape[:2]:
            raise ValueError(f"image {img_path} is {image.shape[0]}x{image.shape[1]} (HxW) but its mask "
                             f"{mask_path} is {mask.shape[0]}x{mask.shape[1]}")
        check_mask(mask, self.num_classes, self.ignore_index, where=f"mask {mask_path}")
        return image, mask

    def __getitem__(self, index: int) -> Any:
        image, mask = self.load(index)
        return self.transform(image, mask) if self.transform is not None else (image, mask)


def pad_collate(batch: Sequence[Tuple[torch.Tensor, torch.Tensor]], ignore_index: int = 255,
                size_divisor: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """Stack images/masks of different sizes: pad bottom/right (images with 0, masks with ``ignore_index``)."""
    h = max(x.shape[-2] for x, _ in batch)
    w = max(x.shape[-1] for x, _ in batch)
    if size_divisor > 1:
        h, w = math.ceil(h / size_divisor) * size_divisor, math.ceil(w / size_divisor) * size_divisor
    imgs = batch[0][0].new_zeros((len(batch), batch[0][0].shape[0], h, w))
    masks = torch.full((len(batch), h, w), ignore_index, dtype=torch.long)
    for i, (x, m) in enumerate(batch):
        imgs[i, :, : x.shape[-2], : x.shape[-1]] = x
        masks[i, : m.shape[-2], : m.shape[-1]] = m
    return imgs, masks
