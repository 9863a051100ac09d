"""Images per second of folder vs. shard loading (decode + the training transform), same images.

    python benchmarks/data_loading.py [--repeats 3] [--workers 0 2] [--json FILE]

The images are the demo's: scikit-learn's 1797 digits written as 32x32 PNGs into class folders
(``train/<digit>/``, ``val/<digit>/``), then written as shards with ``unireplknet shard``. Each
reader goes through what ``unireplknet train`` builds (``image`` modality, ``light`` preset,
1 channel, 32 px): the folder ``ImageFileDataset``, the map-style ``ShardDataset``, and the streaming
``ShardIterableDataset``; the map-style ones through the engine's ``SeededDataset`` (per-sample
seeded augmentation, as the trainer wraps them; the stream seeds its samples itself). One pass over
the training split with a DataLoader (batch 64) per repeat; the median of the repeats is reported.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def write_images(root: Path) -> int:
    """The digits as 32x32 PNGs in ``root/{train,val}/<digit>/``; returns the count."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    for i, (img, y) in enumerate(zip(d.images, d.target)):
        split = "val" if i % 10 == 0 else "train"
        folder = root / split / str(y)
        folder.mkdir(parents=True, exist_ok=True)
        pil = Image.fromarray((img * (255.0 / 16.0)).round().astype(np.uint8), mode="L").resize((32, 32))
        pil.save(folder / f"{i:05d}.png")
    return len(d.target)


def time_pass(dataset, workers: int, set_epoch=None) -> float:
    """Images per second of one DataLoader pass over ``dataset``."""
    from torch.utils.data import DataLoader

    if set_epoch is not None:
        set_epoch(0)
    loader = DataLoader(dataset, batch_size=64, num_workers=workers, shuffle=False)
    t0 = time.perf_counter()
    n = sum(len(y) for _, y in loader)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import functools

    import torch

    from unireplknet.cli import main as cli
    from unireplknet.modalities import get_modality
    from unireplknet.modalities.image.datasets import CONFIG_DEFAULTS
    from unireplknet.modalities.image.transforms import IMAGE_EXTENSIONS
    from unireplknet.modalities.shards import ShardIterableDataset, decode_image, load_shard_index

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = write_images(root / "folder")
        assert cli(["shard", "--data", str(root / "folder"), "-o", str(root / "shards"), "--max-count", "512"]) == 0
        cfg = {**CONFIG_DEFAULTS, "input_size": 32, "in_chans": 1, "transform": "light", "hflip": 0.0,
               "verify_images": False, "seed": 0, "val_fraction": 0.1}
        build = get_modality("image").build
        folder = build(argparse.Namespace(**cfg, data=str(root / "folder"))).train
        shards = build(argparse.Namespace(**cfg, data=str(root / "shards"))).train
        # as the trainer reads them: map-style items through the engine's per-sample seeding (the
        # streaming reader seeds its samples itself)
        from unireplknet.engine.loader import SeededDataset

        seeded_folder, seeded_shards = SeededDataset(folder), SeededDataset(shards)
        index = load_shard_index(str(root / "shards"))
        paths = index.shards["train"]
        stream = ShardIterableDataset(paths, [index.counts[p] for p in paths], IMAGE_EXTENSIONS,
                                      functools.partial(decode_image, in_chans=1), transform=shards.transform,
                                      buffer=256, rank=0, world_size=1)
        results = {"images": n, "train_images": len(folder), "repeats": args.repeats, "median_img_per_s": {}}
        for workers in args.workers:
            for name, ds, se in (("folder", seeded_folder, None), ("shards (map-style)", seeded_shards, None),
                                 ("shards (streaming)", stream, stream.set_epoch)):
                runs = [time_pass(ds, workers, se) for _ in range(args.repeats)]
                med = statistics.median(runs)
                results["median_img_per_s"][f"{name}, workers={workers}"] = round(med, 1)
                print(f"{name:<20} workers={workers}: {med:8.0f} img/s  (runs: {', '.join(f'{r:.0f}' for r in runs)})")
                sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
