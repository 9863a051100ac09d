"""Object detection: torchvision Faster R-CNN on a UniRepLKNet + FPN backbone, trained on CPU.

Scenes are made at run time: circles, squares and triangles pasted on crops of the two photos
scikit-learn ships (``unireplknet.tasks.synthetic_dense``). The detector is torchvision's
``FasterRCNN`` with :class:`unireplknet.tasks.detection.UniRepLKNetFPN` as backbone, optimised with
the original's downstream recipe (AdamW, layer-wise lr decay through the backbone, no weight decay
on norms and biases). It reports AP@0.5 on held-out scenes, checks that re-parameterizing the
backbone leaves the detections unchanged, and writes a PNG of predicted boxes.

    python examples/detection_shapes.py                  # unireplknet_a, 60 iterations of 4 scenes, 96 px
    python examples/detection_shapes.py --model tiny     # the run in docs/dense.md
    python examples/detection_shapes.py --quick          # a tiny model for a few iterations
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from unireplknet.tasks.detection_data import detection_collate
from unireplknet.tasks.synthetic_dense import SHAPE_CLASSES, ShapesDetection
from unireplknet.model import reparameterize_blocks
from unireplknet.tasks.dense_utils import build_dense_optimizer
from unireplknet.tasks.dense_viz import save_detection_png
from unireplknet.tasks.detection import average_precision, create_faster_rcnn

TINY = dict(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), kernel_sizes=((3,), (7,), (7, 3), (7,)))


@torch.no_grad()
def detect(model: torch.nn.Module, data: ShapesDetection, batch: int = 8) -> tuple[list, list]:
    """Detections and targets for every scene of ``data``."""
    model.eval()
    dets, targets = [], []
    for i in range(0, len(data), batch):
        images, tgts = detection_collate([data[j] for j in range(i, min(i + batch, len(data)))])
        dets += model(images)
        targets += tgts
    return dets, targets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="unireplknet_a", help="backbone variant, or 'tiny' (a 5-block test model)")
    p.add_argument("--iters", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--size", type=int, default=96, help="scene size (px); also the detector's min/max size")
    p.add_argument("--train-scenes", type=int, default=600)
    p.add_argument("--val-scenes", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--layer-decay", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/detection_shapes")
    p.add_argument("--quick", action="store_true", help="tiny model, 6 iterations of 64 px (smoke test)")
    args = p.parse_args()
    if args.quick:
        args.model, args.iters, args.train_scenes, args.val_scenes, args.size, args.batch_size = "tiny", 6, 24, 4, 64, 2
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train = ShapesDetection(args.train_scenes, (args.size, args.size), seed=args.seed)
    val = ShapesDetection(args.val_scenes, (args.size, args.size), seed=args.seed + 1)
    s = args.size
    anchors = (s // 16, s // 8, s // 4, s // 2, s)
    model_name, model_args = ("custom", TINY) if args.model == "tiny" else (args.model, None)
    model = create_faster_rcnn(model_name, num_classes=len(SHAPE_CLASSES), min_size=s, max_size=s, anchor_sizes=anchors,
                               model_args=model_args, representation_size=256,
                               # few objects per small image: fewer proposals and sampled RoIs than COCO's defaults
                               rpn_pre_nms_top_n_train=500, rpn_post_nms_top_n_train=250, rpn_pre_nms_top_n_test=250,
                               rpn_post_nms_top_n_test=100, rpn_batch_size_per_image=128, box_batch_size_per_image=64)
    opt = build_dense_optimizer(model, lr=args.lr, weight_decay=0.05, layer_decay=args.layer_decay, num_layers=12)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=args.iters,
                                                pct_start=0.1)
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, collate_fn=detection_collate,
                                         drop_last=True, generator=torch.Generator().manual_seed(args.seed))
    t0, step, history = time.time(), 0, []
    model.train()
    while step < args.iters:
        for images, targets in loader:
            losses = model(images, targets)
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            history.append(loss.item())
            step += 1
            if step % 10 == 0 or step == args.iters:
                print(f"iter {step}/{args.iters} loss {np.mean(history[-10:]):.3f} ({time.time() - t0:.0f}s)", flush=True)
            if step == args.iters:
                break
    dets, targets = detect(model, val)
    ap = average_precision(dets, targets, len(SHAPE_CLASSES))
    # re-parameterize the backbone and check the detections do not change
    reparameterize_blocks(model)
    dets2, _ = detect(model, val)
    diff = max((float((a["scores"][:n] - b["scores"][:n]).abs().max()) for a, b in zip(dets, dets2)
                if (n := min(len(a["scores"]), len(b["scores"])))), default=0.0)
    show = [val[i] for i in range(min(4, len(val)))]
    images = [(x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for x, _ in show]
    png = save_detection_png(out / "predictions.png", images, dets2[: len(show)], SHAPE_CLASSES,
                             targets=[t for _, t in show])
    result = {
        "model": args.model, "iters": args.iters, "first_loss": float(np.mean(history[:10])),
        "last_loss": float(np.mean(history[-10:])), "AP50": ap["mAP"], "AP50_per_class": {
            SHAPE_CLASSES[c]: ap[f"AP_{c}"] for c in range(1, len(SHAPE_CLASSES)) if f"AP_{c}" in ap},
        "reparam_max_score_diff": diff, "seconds": time.time() - t0, "png": str(png),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
