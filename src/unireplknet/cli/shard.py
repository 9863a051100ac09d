"""``unireplknet shard``: write a folder/CSV data set as WebDataset-style tar shards with ``index.json``.

The splits are found by the same rules as ``unireplknet train`` (docs/data.md); every split is
written (a validation split carved from training is written as ``val-*`` shards, so later runs
use the same validation). Train with ``unireplknet train --data OUT``. See docs/scale.md.
"""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("shard", help="write data as tar shards (+ index.json) for fast loading at scale",
                              description="Write every split of DATA (split folders, class folders or a CSV list, "
                                          "as `train --data` reads them) as uncompressed tar shards "
                                          "SPLIT-NNNNNN.tar with an index.json; train with --data OUTPUT.")
    p.add_argument("--data", required=True, help="folder or CSV list (the layouts of `unireplknet train --data`)")
    p.add_argument("-o", "--output", required=True, help="folder to write the shards and index.json into")
    p.add_argument("--modality", default="image",
                   help="image, audio, video, point or series: whose layouts are read and how samples are stored")
    p.add_argument("--max-size", type=float, default=1024.0, help="largest shard in MB (default 1024)")
    p.add_argument("--max-count", type=int, default=100_000, help="most samples per shard (default 100000)")
    p.add_argument("--val-data", default=None, help="validation data (default: DATA/val, else carved from train)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="validation carved per class without val/")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation carve and the train shuffle")
    p.add_argument("--data-root", default=None, help="folder that relative CSV paths resolve under")
    p.add_argument("--allow-outside-root", action="store_true", help="allow CSV paths outside the data root")
    p.add_argument("--force", action="store_true", help="write into an OUTPUT that already holds shards")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from unireplknet.errors import ConfigError, DataError
    from unireplknet.modalities import get_modality
    from unireplknet.modalities.base import scan_splits
    from unireplknet.modalities.shards import INDEX_NAME, file_samples, write_shards

    if args.max_size <= 0 or args.max_count <= 0:
        raise ConfigError("--max-size and --max-count must be positive")
    modality = get_modality(args.modality)
    if modality.shards is None and not modality.extensions:
        raise ConfigError(f"modality {modality.name} cannot be written as shards")
    out = Path(args.output)
    if out.exists() and any(out.glob("*.tar")) and not args.force:
        raise DataError(f"{out} already holds shards: choose another --output or pass --force")
    if args.force and out.exists():
        for old in list(out.glob("*.tar")) + [out / INDEX_NAME]:
            if old.exists():
                old.unlink()
    if modality.shards is not None and modality.shards.samples is not None:
        samples, classes, sources = modality.shards.samples(args)  # the modality's own layouts
    else:
        splits = scan_splits(args.data, modality.extensions, val_data=args.val_data, val_fraction=args.val_fraction,
                             seed=args.seed, data_root=args.data_root, allow_outside_root=args.allow_outside_root)
        samples, classes, sources = file_samples(splits), list(splits.classes), dict(splits.sources)

    def report(split: str, entries: list) -> None:
        n = sum(e["count"] for e in entries)
        size = sum(e["bytes"] for e in entries) / 1e6
        names = [e["name"] for e in entries]
        pattern = names[0] if len(names) == 1 else \
            f"{split}-{{{names[0][-10:-4]}..{names[-1][-10:-4]}}}.tar"
        print(f"{split}: {n} samples in {len(entries)} shard(s), {size:.1f} MB -> {out / pattern}")

    write_shards(samples, out, max_bytes=int(args.max_size * 1e6), max_count=args.max_count, seed=args.seed,
                 modality=modality.name, classes=classes, sources=sources, progress=report)
    print(f"index: {out / INDEX_NAME} ({len(classes)} classes); train with: unireplknet train "
          f"--modality {modality.name} --data {out}")
    return 0
