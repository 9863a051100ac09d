"""Semantic segmentation with a UniRepLKNet backbone, without mmcv/mmseg.

* :class:`UPerHead` (PPM on the last level + FPN fusion) and :class:`FCNHead` (auxiliary head on
  stage 3): the project's own compact versions of the original's mmseg UperNet configuration;
* :class:`UPerNet` -- backbone + heads; :func:`create_upernet` builds it by name; :func:`create_smp_upernet`
  builds segmentation_models_pytorch's ``UPerNet`` on the ``tu-unireplknet_*`` timm encoder instead;
* :func:`segmentation_loss` (cross-entropy with ``ignore_index`` and the auxiliary term);
* :func:`confusion_matrix`, :func:`segmentation_metrics` (mIoU, mAcc, aAcc);
* :func:`whole_inference` and :func:`slide_inference`; :func:`evaluate_segmentation` (engine contract).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..model import UniRepLKNetFeatures
from ..model import reparameterize_blocks
from .dense_utils import create_dense_backbone

__all__ = [
    "ConvNormAct", "UPerHead", "FCNHead", "UPerNet", "create_upernet", "create_smp_upernet", "segmentation_loss",
    "confusion_matrix", "segmentation_metrics", "whole_inference", "slide_inference", "predict_segmentation",
    "evaluate_segmentation",
]

_logger = logging.getLogger(__name__)


class ConvNormAct(nn.Sequential):
    """Conv (no bias) + BatchNorm + ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 1, use_sync_bn: bool = False) -> None:
        bn = nn.SyncBatchNorm if use_sync_bn else nn.BatchNorm2d
        super().__init__(nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=False), bn(cout),
                         nn.ReLU(inplace=True))


class UPerHead(nn.Module):
    """UPerNet decoder: a pyramid-pooling module on the deepest map, a top-down FPN over all levels,
    and a fusion of the upsampled FPN outputs, then dropout and a 1x1 classifier.

    Args:
        in_channels: channels of the input maps, shallow to deep (e.g. the backbone's dims).
        num_classes: output classes.
        channels: width of the decoder (512 in the original).
        pool_scales: adaptive-pool output sizes of the PPM.
        dropout: dropout before the classifier.
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, channels: int = 512,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout: float = 0.1, use_sync_bn: bool = False) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        in_channels = list(in_channels)
        self.ppm = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvNormAct(in_channels[-1], channels, 1, use_sync_bn)) for s in pool_scales
        )
        self.bottleneck = ConvNormAct(in_channels[-1] + len(pool_scales) * channels, channels, 3, use_sync_bn)
        self.lateral = nn.ModuleList(ConvNormAct(c, channels, 1, use_sync_bn) for c in in_channels[:-1])
        self.fpn = nn.ModuleList(ConvNormAct(channels, channels, 3, use_sync_bn) for _ in in_channels[:-1])
        self.fuse = ConvNormAct(len(in_channels) * channels, channels, 3, use_sync_bn)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def _psp(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(p(x), size=size, mode="bilinear", align_corners=False) for p in self.ppm]
        return self.bottleneck(torch.cat([x, *pooled], dim=1))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(feats) != len(self.lateral) + 1:
            raise ValueError(f"UPerHead expects {len(self.lateral) + 1} feature maps, got {len(feats)}")
        laterals = [conv(f) for conv, f in zip(self.lateral, feats[:-1])] + [self._psp(feats[-1])]
        for i in range(len(laterals) - 1, 0, -1):  # top-down pathway
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="bilinear", align_corners=False)
        outs = [conv(x) for conv, x in zip(self.fpn, laterals[:-1])] + [laterals[-1]]
        size = outs[0].shape[-2:]
        outs = [outs[0]] + [F.interpolate(o, size=size, mode="bilinear", align_corners=False) for o in outs[1:]]
        return self.classifier(self.dropout(self.fuse(torch.cat(outs, dim=1))))


class FCNHead(nn.Module):
    """Auxiliary head: one 3x3 conv-BN-ReLU, dropout and a 1x1 classifier."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256, dropout: float = 0.1,
                 use_sync_bn: bool = False) -> None:
        super().__init__()
        self.conv = ConvNormAct(in_channels, channels, 3, use_sync_bn)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.conv(x)))


class UPerNet(nn.Module):
    """UniRepLKNet + UPerHead (+ FCN auxiliary head on stage 3), logits at the input resolution.

    ``forward`` returns ``B x num_classes x H x W`` logits; in training mode with an auxiliary head
    it returns ``{"out": logits, "aux": aux_logits}`` (both at input resolution), which
    :func:`segmentation_loss` understands. ``reparameterize()`` fuses the backbone only.
    """

    def __init__(self, backbone: UniRepLKNetFeatures, num_classes: int, channels: int = 512,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout: float = 0.1, aux_channels: int = 256,
                 use_sync_bn: bool = False) -> None:
        super().__init__()
        if len(backbone.out_indices) != 4:
            raise ValueError(f"UPerNet needs the 4 backbone levels, got out_indices={backbone.out_indices}")
        dims = [backbone.dims[i] for i in backbone.out_indices]
        self.num_classes = num_classes
        self.backbone = backbone
        self.decode_head = UPerHead(dims, num_classes, channels, pool_scales, dropout, use_sync_bn)
        self.auxiliary_head = FCNHead(dims[2], num_classes, aux_channels, dropout, use_sync_bn) if aux_channels > 0 else None

    @property
    def in_chans(self) -> int:
        return self.backbone.in_chans

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        feats = self.backbone(x)
        size = x.shape[-2:]
        out = F.interpolate(self.decode_head(feats), size=size, mode="bilinear", align_corners=False)
        if self.training and self.auxiliary_head is not None:
            aux = F.interpolate(self.auxiliary_head(feats[2]), size=size, mode="bilinear", align_corners=False)
            return {"out": out, "aux": aux}
        return out

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute backbone blocks in backward (saves memory)."""
        self.backbone.set_grad_checkpointing(enable)

    @torch.no_grad()
    def reparameterize(self) -> "UPerNet":
        """Fuse the backbone's blocks in place (heads untouched); call after ``eval()``."""
        reparameterize_blocks(self.backbone)
        return self


def create_upernet(
    model: str = "unireplknet_t",
    num_classes: int = 150,
    pretrained: Any = None,
    in_chans: int = 3,
    channels: int = 512,
    aux_channels: int = 256,
    dropout: float = 0.1,
    frozen_stages: int = 0,
    model_args: Optional[Dict[str, Any]] = None,
    use_sync_bn: bool = False,
    **kwargs: Any,
) -> UPerNet:
    """The original ADE20K configuration (UPerHead 512, PPM 1/2/3/6, FCN aux 256) on a named backbone.

    ``model`` is a variant name or ``"custom"`` with ``model_args``; ``pretrained`` a released tag or a
    checkpoint path (ImageNet or mm-style ``backbone.*``); ``kwargs`` go to the backbone
    (``drop_path_rate``, ``grad_checkpointing`` ...). ``use_sync_bn`` applies to backbone and heads.
    """
    backbone = create_dense_backbone(model, pretrained, in_chans=in_chans, frozen_stages=frozen_stages,
                                     model_args=model_args, use_sync_bn=use_sync_bn, **kwargs)
    return UPerNet(backbone, num_classes, channels=channels, aux_channels=aux_channels, dropout=dropout,
                   use_sync_bn=use_sync_bn)


def create_smp_upernet(
    model: str = "unireplknet_t", num_classes: int = 150, in_chans: int = 3, decoder_channels: int = 256,
    pretrained: Any = None, **encoder_kwargs: Any
) -> nn.Module:
    """segmentation_models_pytorch's ``UPerNet`` with the ``tu-<model>`` timm-universal encoder.

    ``encoder_kwargs`` go to ``timm.create_model`` (e.g. ``depths``/``dims``/``kernel_sizes`` for a tiny
    model, ``drop_path_rate``). ``pretrained``: a released tag or a checkpoint path, loaded into the
    encoder with :func:`unireplknet.load_weights` (mm-style and ImageNet checkpoints both work).
    The encoder is ``model.encoder.model`` (a :class:`~unireplknet.model.UniRepLKNetFeatures`).
    """
    from .._extras import require
    from ..weights import get_pretrained, load_weights, resolve_pretrained

    smp = require("segmentation_models_pytorch", "dense", "the smp UPerNet")
    require("timm", "timm", "smp's tu- encoders")
    from .. import timm_models  # noqa: F401  (registers tu-unireplknet_*)

    net = smp.UPerNet(encoder_name=f"tu-{model}", encoder_weights=None, in_channels=in_chans, classes=num_classes,
                      decoder_channels=decoder_channels, **encoder_kwargs)
    if pretrained:
        src = pretrained
        if isinstance(pretrained, str) and not any(pretrained.endswith(s) for s in (".pth", ".pt", ".safetensors", ".bin")):
            src = resolve_pretrained(get_pretrained(pretrained, model))
        load_weights(net.encoder.model, src, strict=False)
    return net


def segmentation_loss(ignore_index: int = 255, aux_weight: float = 0.4) -> Callable[[Any, torch.Tensor], torch.Tensor]:
    """Cross-entropy ignoring ``ignore_index``; a dict output adds ``aux_weight`` x the auxiliary CE."""

    def loss_fn(output: Union[torch.Tensor, Dict[str, torch.Tensor]], target: torch.Tensor) -> torch.Tensor:
        if isinstance(output, dict):
            loss = F.cross_entropy(output["out"].float(), target, ignore_index=ignore_index)
            if "aux" in output and aux_weight:
                loss = loss + aux_weight * F.cross_entropy(output["aux"].float(), target, ignore_index=ignore_index)
            return loss
        if output.shape[-2:] != target.shape[-2:]:
            raise ValueError(f"logits {tuple(output.shape)} and target {tuple(target.shape)} sizes differ")
        return F.cross_entropy(output.float(), target, ignore_index=ignore_index)

    return loss_fn


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """``num_classes x num_classes`` int64 counts (rows: ground truth, columns: prediction)."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} shapes differ")
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"target values outside 0..{num_classes - 1} (ignore_index={ignore_index}): "
                         f"{sorted(set(t[(t < 0) | (t >= num_classes)].unique().tolist()))[:10]}")
    return torch.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes).cpu()


def segmentation_metrics(conf: torch.Tensor) -> Dict[str, Any]:
    """mIoU, mAcc (mean class recall) and aAcc (pixel accuracy) from a confusion matrix, as fractions.

    Classes absent from both ground truth and prediction are left out of the means (as mmseg does
    for classes with no ground truth: their IoU is NaN). ``IoU`` holds the per-class values.
    """
    conf = conf.double()
    tp = conf.diag()
    gt, pr = conf.sum(1), conf.sum(0)
    union = gt + pr - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, float("nan")))
    total = conf.sum()
    return {
        "mIoU": float(torch.nanmean(iou[gt > 0])) if (gt > 0).any() else float("nan"),
        "mAcc": float(torch.nanmean(acc)) if (gt > 0).any() else float("nan"),
        "aAcc": float(tp.sum() / total) if total > 0 else float("nan"),
        "IoU": iou.tolist(),
    }


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if isinstance(out, dict):
        out = out["out"]
    if out.shape[-2:] != x.shape[-2:]:
        out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return out


@torch.no_grad()
def whole_inference(model: nn.Module, images: torch.Tensor, size_divisor: int = 32) -> torch.Tensor:
    """Logits for whole images: pad bottom/right to a multiple of ``size_divisor``, run once, crop back."""
    h, w = images.shape[-2:]
    ph, pw = (-h) % size_divisor, (-w) % size_divisor
    x = F.pad(images, (0, pw, 0, ph)) if (ph or pw) else images
    return _logits(model, x)[..., :h, :w]


@torch.no_grad()
def slide_inference(model: nn.Module, images: torch.Tensor, num_classes: int, crop_size: Union[int, Tuple[int, int]] = 512,
                    stride: Union[int, Tuple[int, int], None] = None) -> torch.Tensor:
    """Logits averaged over overlapping ``crop_size`` windows taken every ``stride`` (default 2/3 of the crop).

    Images smaller than the crop are padded (bottom/right) for the windows; the output has the input size.
    """
    ch, cw = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
    if stride is None:
        stride = (max(1, ch * 2 // 3), max(1, cw * 2 // 3))
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    if sh < 1 or sw < 1 or sh > ch or sw > cw:
        raise ValueError(f"stride {stride} must be in 1..crop_size {crop_size}")
    b, _, h, w = images.shape
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    x = F.pad(images, (0, pw, 0, ph)) if (ph or pw) else images
    H, W = x.shape[-2:]
    logits = x.new_zeros((b, num_classes, H, W))
    count = x.new_zeros((1, 1, H, W))
    rows = math.ceil(max(H - ch, 0) / sh) + 1
    cols = math.ceil(max(W - cw, 0) / sw) + 1
    for r in range(rows):
        for c in range(cols):
            y0, x0 = min(r * sh, H - ch), min(c * sw, W - cw)
            out = _logits(model, x[..., y0:y0 + ch, x0:x0 + cw])
            logits[..., y0:y0 + ch, x0:x0 + cw] += out.float()
            count[..., y0:y0 + ch, x0:x0 + cw] += 1
    return (logits / count)[..., :h, :w]


@torch.no_grad()
def predict_segmentation(model: nn.Module, images: torch.Tensor, mode: str = "whole", num_classes: Optional[int] = None,
                         crop_size: int = 512, stride: Optional[int] = None) -> torch.Tensor:
    """Class-index predictions ``B x H x W`` with ``mode`` ``"whole"`` or ``"slide"``."""
    if mode == "whole":
        logits = whole_inference(model, images)
    elif mode == "slide":
        if num_classes is None:
            num_classes = getattr(model, "num_classes", None)
            if num_classes is None:
                raise ValueError("slide inference needs num_classes")
        logits = slide_inference(model, images, num_classes, crop_size, stride)
    else:
        raise ValueError(f"inference mode must be 'whole' or 'slide', got {mode!r}")
    return logits.argmax(1)


def evaluate_segmentation(
    num_classes: int, ignore_index: int = 255, mode: str = "whole", crop_size: int = 512, stride: Optional[int] = None
) -> Callable[[nn.Module, Any, Any], Dict[str, float]]:
    """An ``evaluate_fn(model, loader, ctx)`` for :class:`unireplknet.engine.Trainer`: mIoU, mAcc, aAcc (in %).

    The confusion matrix is summed across ranks, so the values are global (no ``"n"`` key).
    """

    def evaluate_fn(model: nn.Module, loader: Any, ctx: Any) -> Dict[str, float]:
        from ..engine.distributed import all_reduce_tensor

        conf = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        for images, masks in loader:
            images, masks = ctx.to_device(images), ctx.to_device(masks)
            with ctx.autocast():
                pred = predict_segmentation(model, images, mode, num_classes, crop_size, stride)
            conf += confusion_matrix(pred, masks, num_classes, ignore_index)
        conf = all_reduce_tensor(conf.to(ctx.device)).cpu()
        m = segmentation_metrics(conf)
        return {"mIoU": 100 * m["mIoU"], "mAcc": 100 * m["mAcc"], "aAcc": 100 * m["aAcc"]}

    return evaluate_fn
