"""Detection targets in torchvision's format: checks and batching.

A target is ``{"boxes": N x 4 float (x1, y1, x2, y2 in pixels), "labels": N int64 in 1..num_classes-1,
"masks": N x H x W uint8 (Mask R-CNN only)}``; label 0 is torchvision's background.

Documented behaviour: an image without annotations (``N = 0``, boxes of shape ``0 x 4``) is valid and
trains as a negative (background-only) image, as torchvision's detectors support. Boxes with
``x2 <= x1`` or ``y2 <= y1``, boxes outside the image, labels outside ``1..num_classes-1`` and masks
of another size raise ``ValueError`` naming the sample.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import torch

__all__ = ["check_detection_target", "detection_collate"]


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
