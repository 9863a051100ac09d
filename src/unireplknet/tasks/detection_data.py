"""Detection targets in torchvision's format: checks and batching.

A target is ``{"boxes": N x 4 float (x1, y1, x2, y2 in pixels), "labels": N int64 in 1..num_classes-1,
"masks": N x H x W uint8 (Mask R-CNN only)}``; label 0 is torchvision's background.

Documented behaviour: an image without annotations (``N = 0``, boxes of shape ``0 x 4``) is valid and
trains as a negative (background-only) image, as torchvision's detectors support. Boxes with
``x2 <= x1`` or ``y2 <= y1``, boxes outside the image, labels outside ``1..num_classes-1`` and masks
of another size raise ``ValueError`` naming the sample.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils.data import Dataset

__all__ = ["check_detection_target", "detection_collate", "trainer_collate", "DetectionFiles", "BoxesOnly"]


def check_detection_target(target: Dict[str, torch.Tensor], image_size: Tuple[int, int], num_classes: int,
                           where: str = "target") -> None:
    """Raise ``ValueError`` (naming ``where``) unless ``target`` is a valid torchvision detection target."""
    if "boxes" not in target or "labels" not in target:
        raise ValueError(f"{where} needs 'boxes' and 'labels', got keys {sorted(target)}")
    boxes, labels = target["boxes"], target["labels"]
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{where}: boxes must be N x 4 (x1, y1, x2, y2), got shape {tuple(boxes.shape)} "
                         f"(use torch.zeros(0, 4) for an image without annotations)")
    if labels.shape != (boxes.shape[0],):
        raise ValueError(f"{where}: {boxes.shape[0]} boxes but labels of shape {tuple(labels.shape)}")
    if boxes.numel():
        h, w = image_size
        bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        if bad.any():
            raise ValueError(f"{where}: degenerate boxes (x2 <= x1 or y2 <= y1): {boxes[bad][:3].tolist()}")
        out = (boxes[:, :2] < 0).any(1) | (boxes[:, 2] > w) | (boxes[:, 3] > h)
        if out.any():
            raise ValueError(f"{where}: boxes outside the {h}x{w} (HxW) image: {boxes[out][:3].tolist()}")
        wrong = (labels < 1) | (labels >= num_classes)
        if wrong.any():
            raise ValueError(f"{where}: labels {sorted(set(labels[wrong].tolist()))} outside 1..{num_classes - 1} "
                             f"(0 is the background)")
    if "masks" in target:
        masks = target["masks"]
        if masks.shape != (boxes.shape[0], *image_size):
            raise ValueError(f"{where}: masks of shape {tuple(masks.shape)}, expected {(boxes.shape[0], *image_size)}")


def detection_collate(batch: Sequence[Tuple[torch.Tensor, Dict[str, Any]]]) -> Tuple[List[torch.Tensor], List[Dict[str, Any]]]:
    """Keep images and targets as lists (torchvision's detectors take images of different sizes)."""
    images, targets = zip(*batch)
    return list(images), list(targets)


def trainer_collate(batch: Sequence[Tuple[torch.Tensor, Dict[str, Any]]]) -> Tuple[Tuple[List[torch.Tensor], List[Dict[str, Any]]], List[Dict[str, Any]]]:
    """``((images, targets), targets)``: the engine's ``(x, y)`` for a detector that needs the targets in training
    (see :class:`unireplknet.tasks.detection.DetectorWithTargets`)."""
    images, targets = detection_collate(batch)
    return (images, targets), targets


class DetectionFiles(Dataset):
    """Image files with boxes: item ``i`` is ``(3 x H x W float in [0, 1], {"boxes", "labels"})``.

    Args:
        samples: ``(path, boxes, labels)`` per image; ``boxes`` are ``x1, y1, x2, y2`` pixels, ``labels``
            in ``1..num_classes-1``; an image without boxes is a negative.
        hflip: probability of a horizontal flip (training augmentation; uses the torch RNG, which the
            engine's ``SeededDataset`` seeds per sample).

    Boxes are clipped to the image; those left empty (``x2 <= x1`` or ``y2 <= y1``) are dropped.
    """

    def __init__(self, samples: Sequence[Tuple[Union[str, "os.PathLike[str]"], Sequence[Sequence[float]], Sequence[int]]],
                 hflip: float = 0.0) -> None:
        self.samples = list(samples)
        self.hflip = float(hflip)

    def __len__(self) -> int:
        return len(self.samples)

    def path_of(self, index: int) -> str:
        """The file of sample ``index``."""
        return str(self.samples[index][0])

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        import numpy as np
        from PIL import Image

        path, boxes, labels = self.samples[index]
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
        h, w = arr.shape[:2]
        image = torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)
        b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        lab = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if len(b):
            b[:, 0::2] = b[:, 0::2].clamp(0, w)
            b[:, 1::2] = b[:, 1::2].clamp(0, h)
            keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
            b, lab = b[keep], lab[keep]
        if self.hflip > 0 and float(torch.rand(())) < self.hflip:
            image = image.flip(-1)
            b = torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], 1) if len(b) else b
        return image, {"boxes": b, "labels": lab}


class BoxesOnly(Dataset):
    """A detection dataset without its targets' ``masks`` (what Faster R-CNN needs; less to move)."""

    def __init__(self, dataset: Dataset, keys: Optional[Sequence[str]] = ("boxes", "labels")) -> None:
        self.dataset = dataset
        self.keys = tuple(keys or ())

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        image, target = self.dataset[index]
        return image, {k: target[k] for k in self.keys}
