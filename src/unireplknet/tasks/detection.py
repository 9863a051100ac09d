"""Object detection with a UniRepLKNet backbone through torchvision (no mmcv/mmdet).

:class:`UniRepLKNetFPN` feeds the four normed backbone maps (strides 4/8/16/32) to torchvision's
``FeaturePyramidNetwork`` (+ a max-pooled fifth level) and exposes ``out_channels``, which is all
torchvision's ``FasterRCNN`` / ``MaskRCNN`` need from a backbone. :func:`create_faster_rcnn` and
:func:`create_mask_rcnn` assemble the detectors.

For reference, the original reaches COCO box/mask AP 51.7/44.9 (T, IN-1K) up to 56.4/49.0
(XL, IN-22K) with Cascade Mask R-CNN 3x in mmdet (see docs/dense.md); torchvision has no
Cascade R-CNN, so those numbers are not reproduced by these detectors.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from .._extras import require
from ..model import UniRepLKNetFeatures
from ..model import reparameterize_blocks
from .dense_utils import create_dense_backbone

__all__ = ["UniRepLKNetFPN", "create_fpn_backbone", "create_faster_rcnn", "create_mask_rcnn", "average_precision",
           "DetectorWithTargets"]

_logger = logging.getLogger(__name__)


class UniRepLKNetFPN(nn.Module):
    """Backbone + FPN returning ``OrderedDict`` ``'0'..'3'`` (strides 4..32) and ``'pool'`` (stride 64).

    Args:
        backbone: a feature backbone with the 4 levels.
        out_channels: FPN width (256 in the original).
        extra_pool: add torchvision's ``LastLevelMaxPool`` level (the default detectors' anchors
            and RoI pooler expect it).
    """

    def __init__(self, backbone: UniRepLKNetFeatures, out_channels: int = 256, extra_pool: bool = True) -> None:
        super().__init__()
        ops = require("torchvision.ops", "dense", "the FPN")
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

        self.body = backbone
        in_list = [backbone.dims[i] for i in backbone.out_indices]
        self.fpn = ops.FeaturePyramidNetwork(in_list, out_channels, extra_blocks=LastLevelMaxPool() if extra_pool else None)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        feats = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute backbone blocks in backward."""
        self.body.set_grad_checkpointing(enable)

    @torch.no_grad()
    def reparameterize(self) -> "UniRepLKNetFPN":
        """Fuse the backbone's blocks (FPN untouched)."""
        reparameterize_blocks(self.body)
        return self


def create_fpn_backbone(model: str = "unireplknet_t", pretrained: Any = None, out_channels: int = 256,
                        frozen_stages: int = 0, model_args: Optional[Dict[str, Any]] = None, **kwargs: Any) -> UniRepLKNetFPN:
    """:class:`UniRepLKNetFPN` on a named (or ``"custom"``) backbone; see :func:`create_dense_backbone`."""
    backbone = create_dense_backbone(model, pretrained, frozen_stages=frozen_stages, model_args=model_args, **kwargs)
    return UniRepLKNetFPN(backbone, out_channels)


def _detector_kwargs(anchor_sizes: Optional[Sequence[int]], representation_size: int, out_channels: int,
                     num_classes: int, kwargs: Dict[str, Any], mask: bool = False) -> Dict[str, Any]:
    if representation_size != 1024 and "box_head" not in kwargs:
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

        kwargs["box_head"] = TwoMLPHead(out_channels * 7 * 7, representation_size)
        kwargs["box_predictor"] = FastRCNNPredictor(representation_size, num_classes)
        kwargs["num_classes"] = None
        if mask and "mask_predictor" not in kwargs:
            from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

            kwargs["mask_predictor"] = MaskRCNNPredictor(256, 256, num_classes)  # torchvision's default mask head
    if anchor_sizes is not None:
        from torchvision.models.detection.anchor_utils import AnchorGenerator

        if len(anchor_sizes) != 5:
            raise ValueError(f"anchor_sizes needs one size per FPN level (5), got {list(anchor_sizes)}")
        kwargs["rpn_anchor_generator"] = AnchorGenerator(tuple((int(s),) for s in anchor_sizes), ((0.5, 1.0, 2.0),) * 5)
    return kwargs


def create_faster_rcnn(
    model: str = "unireplknet_t", num_classes: int = 91, pretrained: Any = None, min_size: int = 800, max_size: int = 1333,
    anchor_sizes: Optional[Sequence[int]] = None, out_channels: int = 256, frozen_stages: int = 0,
    model_args: Optional[Dict[str, Any]] = None, backbone_kwargs: Optional[Dict[str, Any]] = None,
    representation_size: int = 1024, **detector_kwargs: Any,
) -> nn.Module:
    """torchvision ``FasterRCNN`` on UniRepLKNet + FPN.

    ``num_classes`` includes the background (class 0). ``anchor_sizes`` (5 values, one per FPN level;
    torchvision's default is 32..512) suits small images; ``representation_size`` is the width of the
    box head's two fully connected layers (1024 in the original); ``detector_kwargs`` go to ``FasterRCNN``.
    """
    det = require("torchvision.models.detection", "dense", "Faster R-CNN")
    fpn = create_fpn_backbone(model, pretrained, out_channels, frozen_stages, model_args, **(backbone_kwargs or {}))
    kw = _detector_kwargs(anchor_sizes, representation_size, out_channels, num_classes,
                          dict(detector_kwargs, num_classes=num_classes))
    return det.FasterRCNN(fpn, min_size=min_size, max_size=max_size, **kw)


def create_mask_rcnn(
    model: str = "unireplknet_t", num_classes: int = 91, pretrained: Any = None, min_size: int = 800, max_size: int = 1333,
    anchor_sizes: Optional[Sequence[int]] = None, out_channels: int = 256, frozen_stages: int = 0,
    model_args: Optional[Dict[str, Any]] = None, backbone_kwargs: Optional[Dict[str, Any]] = None,
    representation_size: int = 1024, **detector_kwargs: Any,
) -> nn.Module:
    """torchvision ``MaskRCNN`` on UniRepLKNet + FPN (arguments as :func:`create_faster_rcnn`)."""
    det = require("torchvision.models.detection", "dense", "Mask R-CNN")
    fpn = create_fpn_backbone(model, pretrained, out_channels, frozen_stages, model_args, **(backbone_kwargs or {}))
    kw = _detector_kwargs(anchor_sizes, representation_size, out_channels, num_classes,
                          dict(detector_kwargs, num_classes=num_classes), mask=True)
    return det.MaskRCNN(fpn, min_size=min_size, max_size=max_size, **kw)


class DetectorWithTargets(nn.Module):
    """A torchvision detector behind one input ``x = (images, targets)``, as the engine's ``Trainer`` calls it.

    Training: returns the detector's loss dict (sum it for the loss); eval: the detections
    (``targets`` may be ``None``). Pair it with :func:`unireplknet.tasks.detection_data.trainer_collate`.
    The detector's weights are under ``detector.`` in the state dict.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: Any) -> Any:
        images, targets = x
        if self.training:
            return self.detector(list(images), list(targets))
        return self.detector(list(images))


@torch.no_grad()
def average_precision(detections: Sequence[Dict[str, torch.Tensor]], targets: Sequence[Dict[str, torch.Tensor]],
                      num_classes: int, iou_threshold: float = 0.5) -> Dict[str, float]:
    """VOC-style AP at one IoU threshold (all-point interpolation), per class and its mean (``mAP``).

    ``detections``: per image ``{"boxes", "labels", "scores"}``; ``targets``: ``{"boxes", "labels"}``.
    A prediction is a hit if it overlaps a not-yet-matched ground-truth box of its class with
    IoU >= ``iou_threshold`` (greedy by score over the whole set). Classes without ground truth
    are left out of the mean. Values are fractions.
    """
    ops = require("torchvision.ops", "dense", "box IoU")
    if len(detections) != len(targets):
        raise ValueError(f"{len(detections)} detection results for {len(targets)} targets")
    out: Dict[str, float] = {}
    aps = []
    for c in range(1, num_classes):
        scores, hits = [], []
        n_gt = 0
        for det, tgt in zip(detections, targets):
            gt = tgt["boxes"][tgt["labels"] == c].float()
            n_gt += len(gt)
            keep = det["labels"] == c
            boxes, sc = det["boxes"][keep].float(), det["scores"][keep].float()
            order = sc.argsort(descending=True)
            boxes, sc = boxes[order], sc[order]
            used = torch.zeros(len(gt), dtype=torch.bool)
            iou = ops.box_iou(boxes, gt) if len(gt) and len(boxes) else torch.zeros(len(boxes), len(gt))
            for i in range(len(boxes)):
                hit = False
                if len(gt):
                    cand = iou[i].clone()
                    cand[used] = -1
                    j = int(cand.argmax())
                    if cand[j] >= iou_threshold:
                        used[j] = True
                        hit = True
                scores.append(float(sc[i]))
                hits.append(hit)
        if n_gt == 0:
            continue
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        tp = torch.tensor([float(hits[i]) for i in order]).cumsum(0)
        fp = torch.tensor([float(not hits[i]) for i in order]).cumsum(0)
        recall = tp / n_gt if len(order) else torch.zeros(0)
        precision = tp / (tp + fp).clamp(min=1e-9) if len(order) else torch.zeros(0)
        r = torch.cat([torch.tensor([0.0]), recall, torch.tensor([1.0])])
        p = torch.cat([torch.tensor([0.0]), precision, torch.tensor([0.0])])
        p = torch.flip(torch.cummax(torch.flip(p, [0]), 0).values, [0])  # precision envelope
        ap = float(((r[1:] - r[:-1]) * p[1:]).sum())
        out[f"AP_{c}"] = ap
        aps.append(ap)
    out["mAP"] = sum(aps) / len(aps) if aps else float("nan")
    return out
