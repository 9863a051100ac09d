"""Self-contained box detection metrics: COCO-style mean average precision (no pycocotools).

:func:`detection_map` matches detections to ground truth per image and class, greedily by score: a
detection is a true positive when it overlaps a not-yet-matched ground-truth box of its class with
IoU >= the threshold (among those, the one with the highest IoU, as COCO does). Precision is made
monotone (the envelope) and integrated over recall either at COCO's 101 recall points
(``interpolation="coco"``, the default) or exactly over every recall step (``"voc"``, VOC 2010+).

* ``map50``: mean over classes of AP at IoU 0.5;
* ``map75``: the same at IoU 0.75;
* ``map``: mean over classes and IoU thresholds 0.50:0.05:0.95 (COCO's primary metric).

Classes without ground truth in the evaluated set are left out of the means (COCO's rule), so false
positives of such classes cost nothing. With no ground truth at all the means are NaN. COCO's
area ranges, ``maxDets`` limits and crowd regions are not modelled (crowd boxes are dropped when the
data are read). Values are fractions in [0, 1].
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

__all__ = ["COCO_IOU_THRESHOLDS", "box_iou_np", "detection_map"]

#: IoU thresholds of COCO's primary metric: 0.50, 0.55, ..., 0.95.
COCO_IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def _as_np(x: object, dtype: type, shape_tail: tuple = ()) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()  # type: ignore[union-attr]
    arr = np.asarray(x, dtype=dtype)
    if shape_tail and arr.size == 0:
        arr = arr.reshape((0, *shape_tail))
    return arr


def box_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (``len(a) x len(b)``) of ``x1, y1, x2, y2`` boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _match(iou: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """``len(thresholds) x D`` true-positive flags for detections (rows of ``iou``, sorted by score)."""
    n_det, n_gt = iou.shape
    tp = np.zeros((len(thresholds), n_det), dtype=bool)
    if n_det == 0 or n_gt == 0:
        return tp
    for t, thr in enumerate(thresholds):
        used = np.zeros(n_gt, dtype=bool)
        for d in range(n_det):
            cand = np.where(used, -1.0, iou[d])
            j = int(cand.argmax())
            if cand[j] >= thr:
                used[j] = True
                tp[t, d] = True
    return tp


def _ap(tp_sorted: np.ndarray, n_gt: int, interpolation: str) -> float:
    """AP of one class at one threshold from the TP flags of its detections sorted by descending score."""
    if len(tp_sorted) == 0:
        return 0.0
    tp = np.cumsum(tp_sorted, dtype=np.float64)
    fp = np.cumsum(~tp_sorted, dtype=np.float64)
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this recall or beyond
    if interpolation == "voc":
        r = np.concatenate([[0.0], recall])
        return float(np.sum((r[1:] - r[:-1]) * envelope))
    points = np.linspace(0.0, 1.0, 101)
    idx = np.searchsorted(recall, points, side="left")
    values = np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0)
    return float(values.mean())


def detection_map(
    detections: Sequence[Mapping[str, object]],
    targets: Sequence[Mapping[str, object]],
    num_classes: Optional[int] = None,
    iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
    interpolation: str = "coco",
) -> Dict[str, object]:
    """Mean average precision of box detections (see the module docstring for the rules).

    Args:
        detections: per image ``{"boxes": D x 4 (x1, y1, x2, y2), "scores": D, "labels": D}`` (tensors
            or arrays), e.g. the eval-mode output of a torchvision detector.
        targets: per image ``{"boxes": G x 4, "labels": G}``, in the same order.
        num_classes: classes ``1..num_classes-1`` are scored (0 is the background); default: every
            label seen in ``targets``.
        iou_thresholds: thresholds averaged into ``map``; 0.5 and 0.75 are added if missing.
        interpolation: ``"coco"`` (101 recall points) or ``"voc"`` (every recall step).

    Returns:
        ``{"map50", "map75", "map", "per_class": {label: AP@0.5}, "num_gt": int}``.
    """
    if len(detections) != len(targets):
        raise ValueError(f"{len(detections)} detection results for {len(targets)} targets")
    if interpolation not in ("coco", "voc"):
        raise ValueError(f"interpolation must be 'coco' or 'voc', got {interpolation!r}")
    thresholds: List[float] = sorted({float(t) for t in iou_thresholds} | {0.5, 0.75})
    main = [t for t in thresholds if any(abs(t - c) < 1e-9 for c in iou_thresholds)]
    t50, t75 = thresholds.index(0.5), thresholds.index(0.75)

    gts = [(_as_np(t["boxes"], np.float64, (4,)).reshape(-1, 4), _as_np(t["labels"], np.int64).reshape(-1))
           for t in targets]
    dets = [(_as_np(d["boxes"], np.float64, (4,)).reshape(-1, 4), _as_np(d["scores"], np.float64).reshape(-1),
             _as_np(d["labels"], np.int64).reshape(-1)) for d in detections]
    if num_classes is None:
        seen = {int(x) for _, lab in gts for x in lab}
        classes = sorted(c for c in seen if c > 0)
    else:
        classes = list(range(1, int(num_classes)))

    per_class: Dict[int, List[float]] = {}
    for c in classes:
        n_gt = 0
        scores: List[np.ndarray] = []
        flags: List[np.ndarray] = []
        for (gb, gl), (db, ds, dl) in zip(gts, dets):
            g = gb[gl == c]
            n_gt += len(g)
            keep = dl == c
            b, s = db[keep], ds[keep]
            order = np.argsort(-s, kind="mergesort")
            b, s = b[order], s[order]
            flags.append(_match(box_iou_np(b, g), thresholds))
            scores.append(s)
        if n_gt == 0:
            continue
        all_scores = np.concatenate(scores) if scores else np.zeros(0)
        all_flags = np.concatenate(flags, axis=1) if flags else np.zeros((len(thresholds), 0), dtype=bool)
        order = np.argsort(-all_scores, kind="mergesort")
        per_class[c] = [_ap(all_flags[t, order], n_gt, interpolation) for t in range(len(thresholds))]

    def mean(values: List[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    main_idx = [thresholds.index(t) for t in main]
    return {
        "map50": mean([v[t50] for v in per_class.values()]),
        "map75": mean([v[t75] for v in per_class.values()]),
        "map": mean([float(np.mean([v[i] for i in main_idx])) for v in per_class.values()]),
        "per_class": {c: v[t50] for c, v in per_class.items()},
        "num_gt": int(sum(int((gl > 0).sum()) for _, gl in gts)),
    }
