"""Time-series classification on a UCR/UEA set: UniRepLKNet on series images vs 1-NN Euclidean.

Copies one of the sets sktime ships (default BasicMotions; also JapaneseVowels, OSULeaf,
ACSF1, PLAID) to a temporary folder, trains with the real command and its defaults (``auto``)::

    unireplknet train --modality series --data DIR --seed 0 --num-threads N

prints the command's own table (the model's val/test accuracy beside its simple baselines on the
same splits) and then 1-NN Euclidean distance on the same TEST file (1-NN uses the whole TRAIN
file, resampled to the same length; z-normalised per series and raw). ``--epochs``,
``--time-budget``, ``--recipe`` and ``--select`` are passed on; ``--api`` trains with the library API and a plain
torch loop instead of the command (the same data and small model, 60 epochs unless ``--epochs``).

Usage::

    pip install sktime          # only for its bundled data files
    python examples/series_classification.py --set OSULeaf --threads 1
    python examples/series_classification.py --set BasicMotions --epochs 20   # a quick check
    python examples/series_classification.py --set ACSF1 --dev 0.3 --seed 1  # TRAIN only: 30% held out

GunPoint, ArrowHead and ItalyPowerDemand are refused: they are kept for independent evaluation.
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import shutil
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: kept out of every experiment (independent evaluation).
RESERVED = {"GunPoint", "ArrowHead", "ItalyPowerDemand"}


def sktime_data_dir(name: str) -> Path:
    """The folder of a bundled sktime set."""
    if name in RESERVED:
        raise SystemExit(f"{name} is reserved for independent evaluation; choose another set")
    try:
        import sktime  # noqa: F401
    except ImportError:
        raise SystemExit("this example reads sktime's bundled data: pip install sktime") from None
    import sktime.datasets
    d = Path(sktime.datasets.__file__).parent / "data" / name
    if not d.is_dir() or not glob.glob(str(d / f"{name}_TRAIN.*")):
        raise SystemExit(f"sktime has no bundled set {name!r}")
    return d


def dev_split(train_file: Path, out_dir: Path, fraction: float, seed: int = 123) -> tuple[int, int]:
    """A development split written from a ``Name_TRAIN.ts`` file only: ``fraction`` of each class
    (at least one series) becomes ``out_dir/Name_TEST.ts``, the rest ``out_dir/Name_TRAIN.ts``
    (header kept). The real TEST file is not read. Returns (train, test) sizes."""
    import random
    name = train_file.name[: -len("_TRAIN.ts")]
    lines = train_file.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.strip().lower() == "@data")
    head = lines[:i + 1]
    by_class: dict[str, list[str]] = {}
    for line in lines[i + 1:]:
        if line.strip():
            by_class.setdefault(line.rsplit(":", 1)[1].strip(), []).append(line)
    rng = random.Random(seed)
    kept, held = [], []
    for _, rows in sorted(by_class.items()):
        rng.shuffle(rows)
        k = max(1, round(fraction * len(rows)))
        held += rows[:k]
        kept += rows[k:]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}_TRAIN.ts").write_text("\n".join(head + kept) + "\n")
    (out_dir / f"{name}_TEST.ts").write_text("\n".join(head + held) + "\n")
    return len(kept), len(held)


def one_nn_accuracy(train: tuple, test: tuple, length: int, znorm: bool = True) -> float:
    """1-NN Euclidean on series resampled to ``length`` (none when they have it already; z-normalised
    per channel when ``znorm``)."""
    from unireplknet.modalities.series.classify import prepare_all
    A = prepare_all(train[0], length, znorm).reshape(len(train[0]), -1)
    B = prepare_all(test[0], length, znorm).reshape(len(test[0]), -1)
    ya, yb = np.array(train[1]), np.array(test[1])
    d = (B * B).sum(1)[:, None] + (A * A).sum(1)[None, :] - 2 * B @ A.T
    return float((ya[d.argmin(1)] == yb).mean())


def train_api(data: Path, args: argparse.Namespace) -> tuple[float, str]:
    """The plain-loop path: build the TaskData (with what ``auto`` chooses), train the small model;
    returns the test accuracy (at the best validation epoch) and the image mapping used."""
    import torch
    import torch.nn.functional as F
    from unireplknet import UniRepLKNet
    from unireplknet.modalities.series import series_datasets as SD

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cfg = {"data": str(data), "val_data": None, "seed": args.seed, "val_fraction": None,
           "series_image": args.series_image, "series_image_size": args.image_size,
           "series_length": None, "znorm": args.znorm, "series_augment": None, "series_deinterleave": None}
    cfg.update({k: v for k, (v, _) in SD.auto_config(cfg).items() if cfg.get(k) is None and k != "batch_size"})
    cfg = argparse.Namespace(**cfg)
    task = SD.build_task_data(cfg)
    recipe = SD.RECIPES["small"]
    margs = recipe["model_args"]
    model = UniRepLKNet(in_chans=task.in_chans, num_classes=task.num_classes, depths=margs["depths"],
                        dims=margs["dims"], kernel_sizes=margs["kernel_sizes"], drop_path_rate=recipe["drop_path"])
    bs = 16 if len(task.train) < 200 else 32
    epochs = args.epochs or 60
    steps = epochs * math.ceil(len(task.train) / bs)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=steps, pct_start=0.1)
    loader = torch.utils.data.DataLoader(task.train, batch_size=bs, shuffle=True, drop_last=len(task.train) > bs)

    def evaluate(ds) -> float:
        model.eval()
        xs = torch.stack([ds[i][0] for i in range(len(ds))])
        with torch.no_grad():
            pred = torch.cat([model(xs[i:i + 128]).argmax(1) for i in range(0, len(xs), 128)])
        return float((pred == torch.tensor(ds.labels)).float().mean())

    best_val, best_state = -1.0, None
    for epoch in range(epochs):
        model.train()
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb, label_smoothing=recipe["smoothing"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if epoch >= epochs // 2:
            acc = evaluate(task.val)  # selection on validation only; TEST is evaluated once below
            if acc >= best_val:
                best_val, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return evaluate(task.tests["test"]), task.meta["series_image"]


def train_command(data: Path, args: argparse.Namespace, run_dir: Path) -> float:
    """The real command; returns the test accuracy it reports."""
    cmd = [sys.executable, "-m", "unireplknet", "train", "--modality", "series", "--data", str(data),
           "--seed", str(args.seed), "--output", str(run_dir), "--num-threads", str(args.threads)]
    if args.recipe:
        cmd += ["--recipe", args.recipe]
    if args.select:
        cmd += ["--select", args.select]
    if args.epochs is not None:
        cmd += ["--epochs", str(args.epochs)]
    if args.time_budget is not None:
        cmd += ["--time-budget", str(args.time_budget)]
    if args.series_image is not None:
        cmd += ["--series-image", args.series_image]
    if args.image_size is not None:
        cmd += ["--series-image-size", str(args.image_size)]
    if args.znorm is not None:
        cmd.append("--znorm" if args.znorm else "--no-znorm")
    if args.deinterleave is not None:
        cmd += ["--series-deinterleave", str(args.deinterleave)]
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"train failed (exit {proc.returncode}):\n{out[-3000:]}")
    print(proc.stdout.rstrip(), flush=True)  # the command's own table: val/test beside its baselines
    summary = json.loads((run_dir / "summary.json").read_text())
    auto = summary.get("auto") or {}
    chosen = {k: auto[k]["value"] for k in ("series_deinterleave", "series_image", "series_image_size", "series_length",
                                            "epochs", "batch_size", "series_eval_views") if k in auto}
    if chosen:
        print("  auto: " + ", ".join(f"{k}={v}" for k, v in chosen.items()))
    print(f"  selected epoch {(summary.get('best') or {}).get('epoch')} of {summary.get('epochs')} "
          f"(val acc {float((summary.get('best') or {}).get('value', float('nan'))):.3f})")
    base = (summary.get("baselines") or {}).get("results", {}).get("test", {})
    if base:
        print("  baselines on the same test split: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(base.items())))
    return float(summary["test"]["test"]["acc1"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="BasicMotions", help="a bundled sktime set (not GunPoint/ArrowHead/ItalyPowerDemand)")
    p.add_argument("--epochs", type=int, default=None, help="default: auto (from the time budget)")
    p.add_argument("--time-budget", type=float, default=None, help="minutes for auto's epoch budget (default 15)")
    p.add_argument("--recipe", default=None, help="e.g. small (turns auto off); default: auto")
    p.add_argument("--select", default=None, choices=("best", "last"),
                   help="epoch kept: best validation (the default) or last")
    p.add_argument("--series-image", default=None, choices=("gaf", "recurrence", "reshape"),
                   help="default: the library's (CONFIG_DEFAULTS)")
    p.add_argument("--image-size", type=int, default=None, help="default: the library's / auto")
    p.add_argument("--znorm", action=argparse.BooleanOptionalAction, default=None, help="default: the library's")
    p.add_argument("--deinterleave", type=int, default=None, help="--series-deinterleave P (1: off; default: auto)")
    p.add_argument("--dev", type=float, default=None, metavar="FRACTION",
                   help="development run: hold out FRACTION of each class of TRAIN as the test split "
                        "(seed 123); the real TEST file is not read")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    p.add_argument("--api", action="store_true", help="train with the library API instead of the command")
    args = p.parse_args()

    from unireplknet.modalities.series.series_datasets import choose_length
    from unireplknet.modalities.series.ucr import find_ucr_splits, read_series_file

    src = sktime_data_dir(args.set)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / args.set
        data.mkdir()
        if args.dev:
            n_kept, n_held = dev_split(src / f"{args.set}_TRAIN.ts", data, args.dev)
            print(f"development split of {args.set}_TRAIN.ts: {n_kept} train / {n_held} held out as test "
                  "(the TEST file is not read)")
        else:
            for f in ("TRAIN", "TEST"):
                shutil.copy(next(iter(sorted(src.glob(f"{args.set}_{f}.ts")))), data)
        full_train = read_series_file(data / f"{args.set}_TRAIN.ts")
        test = find_ucr_splits(data).tests["test"]
        lengths = {x.shape[1] for x in full_train[0] + test[0]}
        # 1-NN on the series as the files hold them when all have one length (the usual UCR baseline),
        # else resampled to the model's length
        length = lengths.pop() if len(lengths) == 1 else choose_length([x.shape[1] for x in full_train[0]])
        nn = one_nn_accuracy(full_train, test, length)
        nn_raw = one_nn_accuracy(full_train, test, length, znorm=False)
        t0 = time.time()
        if args.api:
            (acc, kind), how = train_api(data, args), "library API (plain loop)"
        else:
            acc, how = train_command(data, args, Path(tmp) / "run"), "unireplknet train --modality series"
            model_json = Path(tmp) / "run" / "model.json"
            kind = json.loads(model_json.read_text())["config"].get("series_image") if model_json.is_file() else None
            kind = kind or args.series_image or "default"
        wall = time.time() - t0
    print(f"{args.set}: {len(full_train[0])} train / {len(test[0])} test series, 1-NN length {length}, "
          f"{full_train[0][0].shape[0]} channel(s)")
    print(f"  1-NN Euclidean (z-normalised): {nn:.3f}   (raw values: {nn_raw:.3f})")
    print(f"  UniRepLKNet ({kind} image, {args.epochs or 'auto'} epochs, {how}): "
          f"{acc:.3f}  [{wall:.0f} s]")


if __name__ == "__main__":
    main()
