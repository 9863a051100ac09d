"""Point clouds in tar shards (``.npy``/``.npz`` members): the point :class:`ShardCodec`.

``unireplknet shard --modality point`` reads every point layout the modality reads (split/class folders
of ``.npy``/``.txt``/``.ply``/mesh files, CSV lists, ModelNet/ScanObjectNN HDF5, resampled ModelNet)
with the modality's own readers and stores each cloud as a float32 ``.npy`` member (meshes are sampled
once, as training reads them). Map-style training uses :class:`~.datasets.PointCloudDataset` itself
(sampling cached once, the same augmentation and projection); streaming applies the same
:class:`~.datasets.PointPipeline` per cloud.
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch.utils.data import Dataset

from ..base import ShardCodec, ShardSample
from .io import PointSplit, decode_points, encode_points

__all__ = ["ShardCloudLoader", "CODEC"]


class ShardCloudLoader:
    """A :class:`PointSplit` loader reading clouds named ``shard.tar#key`` from a map-style shard ``source``."""

    def __init__(self, source: Dataset) -> None:
        self.source = source
        self.index = {source.name_of(i): i for i in range(len(source))}

    def __call__(self, path: Path) -> np.ndarray:
        return self.source[self.index[str(path)]][0]


def _decoder(args: argparse.Namespace) -> Callable[[bytes, str], np.ndarray]:
    def decode(data: bytes, ext: str) -> np.ndarray:
        return decode_points(data, ext, f".{ext} member")

    return decode


def _transform(args: argparse.Namespace, train: bool) -> Callable[[np.ndarray], Any]:
    from .datasets import pipeline_from_args

    return functools.partial(pipeline_from_args(args, train=train), train=train)


def _dataset(args: argparse.Namespace, source: Dataset, train: bool) -> Dataset:
    from .datasets import PointCloudDataset, pipeline_from_args

    split = PointSplit([Path(source.name_of(i)) for i in range(len(source))], np.asarray(source.labels, np.int64),
                       list(source.classes), ShardCloudLoader(source))
    return PointCloudDataset(split, pipeline_from_args(args, train=train), train=train)


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    from .datasets import _get, pipeline_from_args

    size = int(_get(args, "input_size"))
    return {"in_chans": pipeline_from_args(args, train=False).channels, "input_size": (size, size),
            "eval_views": int(_get(args, "vote_views")), "meta": {"modality": "point"}}


def _samples(args: argparse.Namespace) -> tuple[dict[str, list[ShardSample]], list[str], dict[str, str]]:
    from .datasets import point_splits

    parts, splits = point_splits(args)
    classes = list(parts["train"].class_names)

    def sample(split: PointSplit, i: int) -> ShardSample:
        return "npy", lambda: encode_points(split.get(i)), classes[int(split.labels[i])]

    samples = {name: [sample(split, i) for i in range(len(split))] for name, split in parts.items()}
    sources = dict(splits.sources) if splits is not None else {name: str(args.data) for name in parts}
    return samples, classes, sources


CODEC = ShardCodec(keys=("npy", "npz"), decoder=_decoder, transform=_transform, fields=_fields,
                   dataset=_dataset, samples=_samples, hf_columns=("points", "point_cloud", "pointcloud"))
