"""What ``auto`` chooses for each modality's demo data laid out as user data, and how long a run takes.

    python benchmarks/auto_report.py [--time-budget 2] [--modalities image audio point video series]

Each modality's built-in data is written as files in the layout users have (``{train,test}/<class>/``
with no ``val/``: validation is carved from train), then ``unireplknet train --data DIR --time-budget B``
runs with every other setting left to ``auto``. Printed per modality: the choices with their reasons,
the wall time, and the test accuracy beside the best simple baseline of the same run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def image_data(root: Path) -> Path:
    """sklearn digits as 8x8 PNGs, 80% train / 20% test."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for i, (img, t) in enumerate(zip(d.images, d.target)):
        split = "test" if i % 5 == 0 else "train"
        p = root / split / str(t) / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 15).astype(np.uint8)).save(p)
    return root


def audio_data(root: Path) -> Path:
    """The spoken-words demo (espeak-ng), train voices vs unseen test voices (its val/ folder is dropped)."""
    import shutil

    from unireplknet.modalities.audio.demo import build_spoken_words

    src = build_spoken_words(root / "src", words=10, repeats=1)
    shutil.copytree(src / "train", root / "data" / "train")
    shutil.copytree(src / "test", root / "data" / "test")
    return root / "data"


def point_data(root: Path) -> Path:
    """The demo primitives (SO(3)-rotated), 40 train / 20 test per class, as .npy files."""
    from unireplknet.modalities.point.datasets import demo_splits

    ex = _example("point_shapes")
    train, _ = demo_splits(40, 1, seed=0)
    test = demo_splits(1, 20, seed=1000)[1]
    ex.write_split(root / "train", train)
    ex.write_split(root / "test", test)
    return root


def video_data(root: Path) -> Path:
    """Camera motions over photos (examples/video_motion.py), the test photo never seen in training."""
    ex = _example("video_motion")
    photos = ex.load_photos()
    held = "grace_hopper" if "grace_hopper" in photos else "flower"
    seen = [p for n, p in photos.items() if n != held]
    ex.make_dataset(root / "train", seen, 96, 8, 32, 0)
    ex.make_dataset(root / "test", [photos[held]], 48, 8, 32, 2)
    return root


def series_data(root: Path) -> Path:
    """sktime's bundled BasicMotions (UCR/UEA ``_TRAIN``/``_TEST`` files)."""
    import shutil

    ex = _example("series_classification")
    src = ex.sktime_data_dir("BasicMotions")
    root.mkdir(parents=True, exist_ok=True)
    for f in ("TRAIN", "TEST"):
        shutil.copy(next(iter(sorted(src.glob(f"BasicMotions_{f}.ts")))), root)
    return root


MAKERS = {"image": image_data, "audio": audio_data, "point": point_data, "video": video_data, "series": series_data}


def run(modality: str, work: Path, budget: float) -> dict:
    data = MAKERS[modality](work / "data")
    out = work / "run"
    cmd = [sys.executable, "-m", "unireplknet", "train", "--modality", modality, "--data", str(data), "-o", str(out),
           "--time-budget", str(budget)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"modality": modality, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    summary = json.loads((out / "summary.json").read_text())
    base = (summary.get("baselines") or {}).get("results", {}).get("test", {})
    best_base = max(base.items(), key=lambda kv: kv[1]) if base else (None, None)
    return {"modality": modality, "wall_s": wall, "auto": summary.get("auto", {}), "splits": summary.get("splits"),
            "test_acc1": summary["test"]["test"]["acc1"], "best_baseline": best_base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-budget", type=float, default=2.0, help="minutes per run (auto plans epochs for it)")
    ap.add_argument("--modalities", nargs="+", default=list(MAKERS), choices=list(MAKERS))
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    results = []
    for m in args.modalities:
        with tempfile.TemporaryDirectory() as tmp:
            r = run(m, Path(tmp), args.time_budget)
        results.append(r)
        if "error" in r:
            print(f"{m}: error: {r['error']}")
            continue
        print(f"{m}: {r['wall_s']:.0f} s wall, splits {r['splits']}, test top-1 {100 * r['test_acc1']:.1f}% "
              f"(best baseline {r['best_baseline'][0]} {100 * (r['best_baseline'][1] or 0):.1f}%)")
        for key, v in r["auto"].items():
            print(f"    auto {key} = {v.get('value')}" + (f"  ({v['why']})" if v.get("why") else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
