"""Time series in tar shards (one ``.npy`` member per series, ``C x L`` float32): the series :class:`ShardCodec`.

``unireplknet shard --modality series`` reads UCR/UEA files (``.ts``/``.tsv``/``.arff``/``.csv``) with the
modality's own readers and split rules and stores every series as its own sample. Training reads all
series of the shards at once (they are small) and builds the datasets with the modality's own code
(:func:`~.series_datasets.task_from_series`: length from the training series, per-channel statistics of
the training split, the same image transforms), so series shards are read map-style only.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch.utils.data import Dataset

from ..base import ShardCodec, ShardSample, Splits, TaskData, finalize_splits

__all__ = ["decode_series", "encode_series", "CODEC"]


def encode_series(x: np.ndarray) -> bytes:
    """One ``C x L`` series as the bytes of a float32 ``.npy`` file."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def decode_series(data: bytes, ext: str = "npy") -> np.ndarray:
    """The ``C x L`` float32 series of a ``.npy`` member (a 1-D array is one channel)."""
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"cannot read the series array ({e})") from e
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"a series must be C x L, got shape {arr.shape}")
    return arr


def _decoder(args: argparse.Namespace) -> Callable[[bytes, str], np.ndarray]:
    return decode_series


def _no_stream(args: argparse.Namespace, train: bool) -> Callable[[Any], Any]:
    raise NotImplementedError("series shards are read map-style")


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    return {}


def _tasks(args: argparse.Namespace, sets: dict[str, Dataset], classes: list[str]) -> TaskData:
    from .series_datasets import task_from_series

    read: dict[str, tuple[list, list]] = {}
    items: dict[str, list] = {}
    for name, ds in sets.items():
        pairs = [ds[i] for i in range(len(ds))]
        read[name] = ([x for x, _ in pairs], [classes[int(y)] for _, y in pairs])
        items[name] = [(Path(ds.name_of(i)), (classes[int(y)],)) for i, (_, y) in enumerate(pairs)]
    plan = Splits("shards", items["train"], items["val"], {n: v for n, v in items.items() if n not in ("train", "val")},
                  {n: f"{len(v)} series from the shards" for n, v in items.items()})
    plan = finalize_splits(plan, str(getattr(args, "data", "")))
    task = task_from_series(args, read, plan, str(getattr(args, "data", "")))
    task.splits = None  # the shard plan (from shards.py) replaces the file-level one
    task.meta["plan_extra"] = task.meta.get("plan", [])[-1:]
    return task


def _samples(args: argparse.Namespace) -> tuple[dict[str, list[ShardSample]], list[str], dict[str, str]]:
    from .ucr import find_ucr_splits

    ucr = find_ucr_splits(args.data, getattr(args, "val_data", None),
                          val_fraction=float(getattr(args, "val_fraction", None) or 0.1),
                          seed=int(getattr(args, "seed", 0) or 0), data_root=getattr(args, "data_root", None),
                          allow_outside_root=bool(getattr(args, "allow_outside_root", False)))

    def sample(x: np.ndarray, label: Any) -> ShardSample:
        return "npy", lambda: encode_series(x), str(label)

    samples = {name: [sample(x, y) for x, y in zip(X, labels)] for name, (X, labels) in ucr.named()}
    return samples, list(ucr.plan.classes), dict(ucr.plan.sources)


CODEC = ShardCodec(keys=("npy",), decoder=_decoder, transform=_no_stream, fields=_fields, tasks=_tasks,
                   samples=_samples, stream=False, hf_columns=("series", "values"))
