"""Point-cloud classification of randomly rotated primitive shapes: UniRepLKNet on depth views versus a small
PointNet and a D2-histogram logistic regression, all on the same clouds in the same run.

    python examples/point_shapes.py                       # CPU minutes (tens under load)
    python examples/point_shapes.py --views-png docs/point_views.png
    python examples/point_shapes.py -- --projection faces # extra `unireplknet train` flags after --

The data is the built-in demo generator (``unireplknet.modalities.point.demo``): six trimesh
primitives (box, ellipsoid, cylinder, cone, torus, capsule) with random proportions,
surface-sampled and rotated uniformly over SO(3), written as ``OUT/data/{train,val,test}/<class>/*.npy``.
UniRepLKNet is trained with ``unireplknet train --modality point --data OUT/data`` (``auto`` sees
arbitrarily oriented clouds and turns on the canonical PCA pose, SO(3) training rotations and sign
voting); the runner also fits the D2-histogram baseline on the same splits. The PointNet sees the same
sampled, normalised clouds with SO(3) rotations; both select their epoch on val and are scored once on test.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unireplknet.cli import main as cli_main
from unireplknet.modalities.point.datasets import CONFIG_DEFAULTS, DEMO_DEFAULTS, PointPipeline, demo_splits
from unireplknet.modalities.point.transforms import PointAugment, fit_unit_sphere, normalize, sample_points


class PointNet(nn.Module):
    """A small PointNet: shared per-point MLP, max-pool over points, MLP classifier."""

    def __init__(self, num_classes: int, width: int = 64) -> None:
        super().__init__()

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv1d(i, o, 1, bias=False), nn.BatchNorm1d(o), nn.ReLU(inplace=True))

        self.features = nn.Sequential(block(3, width), block(width, width), block(width, 2 * width),
                                      block(2 * width, 4 * width))
        self.head = nn.Sequential(nn.Linear(4 * width, 2 * width), nn.BatchNorm1d(2 * width),
                                  nn.ReLU(inplace=True), nn.Dropout(0.3), nn.Linear(2 * width, num_classes))

    def forward(self, points: torch.Tensor) -> torch.Tensor:  # B x N x 3
        return self.head(self.features(points.transpose(1, 2)).amax(-1))


def write_split(root: Path, split: Any) -> None:
    """Write a :class:`PointSplit` as ``root/<class>/<i>.npy`` (the class-folder layout ``--data`` reads)."""
    for i, (cloud, label) in enumerate(zip(split.clouds, split.labels)):
        folder = root / split.class_names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{i:04d}.npy", np.asarray(cloud, dtype=np.float32))


def make_data(opts: argparse.Namespace, root: Path) -> dict[str, Any]:
    """``root/{train,val,test}/<class>/*.npy``: three disjoint random streams of SO(3)-rotated primitives."""
    train, val = demo_splits(opts.per_class, opts.val_per_class, seed=opts.seed)
    test = demo_splits(1, opts.test_per_class, seed=opts.seed + 1000)[1]
    for name, split in (("train", train), ("val", val), ("test", test)):
        write_split(root / name, split)
    return {"train": train, "val": val, "test": test}


def train_pointnet(opts: argparse.Namespace, cfg: dict[str, Any], splits: dict[str, Any]) -> dict[str, float]:
    """Train the PointNet baseline on the same clouds; select its epoch on val like the runner; score test."""
    torch.manual_seed(opts.seed)
    train, val, test = splits["train"], splits["val"], splits["test"]
    pipe = PointPipeline(num_points=cfg["num_points"], sampling="fps", resolution=8, augment=None)
    aug = PointAugment(rotation="so3", scale=tuple(cfg["scale"]), translate=cfg["translate"])
    # the same clouds as the UniRepLKNet run: FPS bases, a random subset per step for training
    x_train = pipe.base(train.clouds, train=True)
    x_val, x_test = pipe.base(val.clouds, train=False), pipe.base(test.clouds, train=False)
    y_train, y_val, y_test = (torch.as_tensor(s.labels) for s in (train, val, test))
    model = PointNet(len(train.class_names))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    steps = opts.epochs * math.ceil(len(x_train) / opts.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    start = time.time()
    best = (-1.0, None)
    for _ in range(opts.epochs):
        model.train()
        for idx in torch.randperm(len(x_train)).split(opts.batch_size):
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            x = normalize(sample_points(x_train[idx], cfg["num_points"], "random"))
            x = fit_unit_sphere(aug(x))
            loss = nn.functional.cross_entropy(model(x), y_train[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            val_acc = (model(x_val).argmax(-1) == y_val).float().mean().item()
        if val_acc > best[0]:
            best = (val_acc, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[1])
    model.eval()
    with torch.no_grad():
        acc = (model(x_test).argmax(-1) == y_test).float().mean().item()
    return {"test_acc1": acc, "val_acc1": best[0], "seconds": time.time() - start,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


#: the tiny UniRepLKNet of the example (0.35 M parameters), as the built-in demo uses.
MODEL_ARGS = DEMO_DEFAULTS["model_args"]


def train_command(opts: argparse.Namespace, data: Path, run_dir: Path) -> list[str]:
    """The ``unireplknet train`` arguments; orientation handling is left to ``auto`` (canonical pose here)."""
    argv = ["train", "--modality", "point", "--data", str(data), "-o", str(run_dir), "--seed", str(opts.seed),
            "--model", "custom", "--model-args", json.dumps(MODEL_ARGS, separators=(",", ":")),
            "--epochs", str(opts.epochs), "--batch-size", str(opts.batch_size), "--lr", "2e-3",
            "--warmup-epochs", "1", "--smoothing", "0.1", "--num-points", str(opts.num_points),
            "--input-size", str(opts.input_size), "--splat", str(opts.splat), "--translate", "0",
            "--num-workers", str(opts.workers), "--baselines", "--no-deploy"]
    return argv + list(opts.extra or [])


def train_unireplknet(opts: argparse.Namespace, data: Path, run_dir: Path) -> dict[str, Any]:
    """Train a tiny UniRepLKNet on the depth views through ``unireplknet train --data`` (auto on)."""
    argv = train_command(opts, data, run_dir)
    start = time.time()
    if cli_main(argv) != 0:
        raise SystemExit("training UniRepLKNet failed")
    summary = json.loads((run_dir / "summary.json").read_text())
    record = json.loads((run_dir / "model.json").read_text())
    base = (summary.get("baselines") or {}).get("results", {}).get("test", {})
    return {"test_acc1": float(summary["evaluation"]["test"]["acc1"]),
            "val_acc1": float(summary["evaluation"]["val"]["acc1"]), "seconds": time.time() - start,
            "input": [record["in_chans"], *record["input_size"]],
            "auto": {k: v.get("value") for k, v in (summary.get("auto") or {}).items()},
            "baselines": base, "command": "unireplknet " + " ".join(argv)}


def write_views_png(out_png: Path, work: Path) -> None:
    """A table mesh (five boxes), then ``unireplknet project`` on it."""
    import numpy as np
    import trimesh

    parts = [trimesh.creation.box(extents=[1.2, 0.08, 0.7], transform=trimesh.transformations.translation_matrix(
        [0, 0.5, 0]))]
    for x in (-0.55, 0.55):
        for z in (-0.3, 0.3):
            parts.append(trimesh.creation.box(
                extents=[0.08, 1.0, 0.08], transform=trimesh.transformations.translation_matrix([x, 0, z])))
    table = trimesh.util.concatenate(parts)
    # turn it a little (30° about y, then 20° about x) so the depth varies across each view
    table.apply_transform(trimesh.transformations.rotation_matrix(np.radians(20), [1, 0, 0])
                          @ trimesh.transformations.rotation_matrix(np.radians(30), [0, 1, 0]))
    mesh_path = work / "table.off"
    table.export(str(mesh_path))
    if cli_main(["project", str(mesh_path), "--out", str(out_png), "--num-points", "8192", "--splat", "3"]) != 0:
        raise SystemExit("project failed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-class", type=int, default=40, help="training shapes per class (40)")
    p.add_argument("--val-per-class", type=int, default=10, help="validation shapes per class (10)")
    p.add_argument("--test-per-class", type=int, default=20, help="held-out test shapes per class (20)")
    p.add_argument("--epochs", type=int, default=DEMO_DEFAULTS["epochs"], help="epochs for both models")
    p.add_argument("--batch-size", type=int, default=DEMO_DEFAULTS["batch_size"])
    p.add_argument("--num-points", type=int, default=DEMO_DEFAULTS["num_points"], help="points per cloud (512)")
    p.add_argument("--input-size", type=int, default=32, help="depth-view resolution (32)")
    p.add_argument("--splat", type=int, default=1, help="splat size in pixels (1)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers for the UniRepLKNet run (1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/point_shapes", help="output folder (data, run dir, results.json)")
    p.add_argument("--views-png", default=None, help="also draw the three views of a table mesh to this PNG")
    p.add_argument("--views-only", action="store_true", help="only draw --views-png, train nothing")
    p.add_argument("extra", nargs="*", help="more `unireplknet train` flags, after --, e.g. -- --projection faces")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    opts = parse_args(argv)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    if opts.views_only:
        if not opts.views_png:
            raise SystemExit("--views-only needs --views-png")
        write_views_png(Path(opts.views_png), out)
        return {}
    cfg = {**CONFIG_DEFAULTS, **DEMO_DEFAULTS, "num_points": opts.num_points, "translate": 0.0}
    data = out / "data"
    if data.exists():
        shutil.rmtree(data)
    splits = make_data(opts, data)
    ulk = train_unireplknet(opts, data, out / "unireplknet")
    base = train_pointnet(opts, cfg, splits)
    d2 = ulk["baselines"].get("logreg[d2_histogram]")
    results = {"classes": 6, "train": len(splits["train"]), "val": len(splits["val"]), "test": len(splits["test"]),
               "epochs": opts.epochs, "unireplknet": ulk, "pointnet": base, "d2_logreg": d2}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    if opts.views_png:
        write_views_png(Path(opts.views_png), out)
    views = "x".join(str(v) for v in ulk["input"])
    print(f"{'model (test split, SO(3)-rotated shapes)':<44}{'test acc':>9}{'time (s)':>10}")
    print(f"{'UniRepLKNet (depth views ' + views + ')':<44}{ulk['test_acc1']:>9.3f}{ulk['seconds']:>10.1f}")
    print(f"{'PointNet baseline':<44}{base['test_acc1']:>9.3f}{base['seconds']:>10.1f}")
    print(f"{'D2 histogram + logistic regression':<44}{(d2 if d2 is not None else float('nan')):>9.3f}")
    print(f"chance {1 / 6:.3f}; {results['train']} train / {results['val']} val / {results['test']} test shapes, "
          f"{opts.epochs} epochs; auto chose {ulk['auto']}; results in {out / 'results.json'}")
    return results


if __name__ == "__main__":
    main()
