"""What a modality hands to the training engine.

A modality module (``unireplknet.data.<modality>``) turns raw files into a
:class:`TaskData`; the engine trains any backbone on it without knowing the
modality. Fields may be added (with defaults) but not renamed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
from torch.utils.data import Dataset

__all__ = ["TaskData"]

BatchTransform = Callable[[torch.Tensor, torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]


@dataclass
class TaskData:
    """Datasets and metadata for one classification problem.

    Items of ``train``/``val``/``test`` are ``(input, target)`` with ``input`` a
    ``C x H x W`` float tensor (already a backbone-ready image) and ``target``
    an ``int`` class index or a float vector of length ``num_classes`` (soft or
    multi-label targets). When ``eval_views > 1`` the val/test inputs are
    ``V x C x H x W`` stacks of views (clips x crops, rotations, windows) whose
    scores the engine averages.
    """

    train: Optional[Dataset]
    val: Optional[Dataset]
    num_classes: int
    class_names: Sequence[str]
    in_chans: int
    input_size: tuple[int, int]
    test: Optional[Dataset] = None
    multi_label: bool = False  # BCE-with-logits loss and mAP-style metrics instead of CE / top-1
    eval_views: int = 1
    train_batch_transform: Optional[BatchTransform] = None  # e.g. mixup/cutmix on the device
    collate_fn: Optional[Callable[[list], Any]] = None
    meta: dict = field(default_factory=dict)  # anything worth saving in the run directory (normalisation stats, ...)
