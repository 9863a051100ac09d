"""Semantic segmentation: UPerNet on UniRepLKNet, trained on a mask folder with the generic engine.

A dataset in the ``images/`` + ``masks/`` layout is written at run time: circles, squares and
triangles pasted on crops of the two photos scikit-learn ships. It is then trained exactly as
``unireplknet train --task segmentation --data DIR`` does (:func:`run_segmentation_training`:
cross-entropy with ignore index and auxiliary head, AdamW with layer-wise lr decay, mIoU
validation, re-parameterized deploy weights verified at the end, ``predictions.png``). Finally
the best model is evaluated with whole-image and sliding-window inference.

    python examples/segmentation_shapes.py            # unireplknet_a, 96 scenes of 96 px, 4 epochs
    python examples/segmentation_shapes.py --model tiny --size 64 --scenes 64   # the run in docs/dense.md
    python examples/segmentation_shapes.py --quick    # a tiny model for one short epoch
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path


from unireplknet.tasks.segmentation_data import SegmentationFolder, SegTransform, pad_collate
from unireplknet.tasks.synthetic_dense import write_shapes_folder
from unireplknet.engine.checkpoint import load_checkpoint
from unireplknet.tasks.segmentation import (
    confusion_matrix, create_upernet, predict_segmentation, segmentation_metrics,
)
from unireplknet.tasks.segmentation_train import add_segmentation_args, run_segmentation_training

TINY = dict(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), kernel_sizes=((3,), (7,), (7, 3), (7,)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/segmentation_shapes")
    p.add_argument("--model", default="unireplknet_a", help="backbone variant, or 'tiny' (a 5-block test model)")
    p.add_argument("--scenes", type=int, default=96, help="training scenes (plus 1/8 as many validation scenes)")
    p.add_argument("--size", type=int, default=96, help="scene size and training crop (px)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--quick", action="store_true", help="tiny model, 16 scenes of 64 px, one epoch (smoke test)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    scenes, size, epochs = (16, 64, 1) if args.quick else (args.scenes, args.size, args.epochs)
    data = out / "data"  # DIR/train and DIR/val, each with images/ + masks/ + classes.txt
    write_shapes_folder(data / "train", length=scenes, size=(size, size), seed=0)
    write_shapes_folder(data / "val", length=max(8, scenes // 8), size=(size, size), seed=1)

    flags = ["--data", str(data), "--output", str(out / "run"), "--crop-size", str(size), "--epochs", str(epochs),
             "--num-workers", "0", "--warmup-epochs", "1", "--drop-path", "0.0"]
    if args.quick or args.model == "tiny":
        flags += ["--model", "custom", "--model-args", json.dumps(TINY), "--seg-channels", "32", "--aux-channels", "16",
                  "--batch-size", "4", "--lr", "2e-3", "--layer-decay", "0.9"]
    else:
        flags += ["--model", args.model, "--seg-channels", "128", "--aux-channels", "64", "--batch-size", "8",
                  "--lr", "2e-3", "--layer-decay", "0.9"]
    parser = argparse.ArgumentParser()
    add_segmentation_args(parser)
    train_args = parser.parse_args(flags)
    t0 = time.time()
    run_segmentation_training(train_args)
    seconds = time.time() - t0

    # Re-evaluate the best checkpoint with both inference modes on the held-out images.
    run = out / "run"
    cfg = load_checkpoint(run / "best.pt")["config"]
    model = create_upernet(cfg["model"], 4, channels=cfg["seg_channels"], aux_channels=cfg["aux_channels"],
                           model_args=cfg.get("model_args"))
    model.load_state_dict(load_checkpoint(run / "best.pt")["model"])
    model.eval()
    held_out = json.loads((run / "summary.json").read_text())
    val = SegmentationFolder(data / "val", transform=SegTransform(train=False))
    x, y = pad_collate([val[i] for i in range(len(val))], size_divisor=32)
    results = {}
    for mode in ("whole", "slide"):
        pred = predict_segmentation(model, x, mode, 4, crop_size=size * 3 // 4, stride=size // 4)
        results[f"mIoU_{mode}"] = 100 * segmentation_metrics(confusion_matrix(pred, y, 4))["mIoU"]
    summary = {"scenes": scenes, "size": size, "epochs": epochs, "best": held_out["best"],
               "deploy_max_abs_diff": held_out.get("deploy_max_abs_diff"), **results,
               "train_seconds": seconds, "png": str(run / "predictions.png")}
    (out / "result.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
