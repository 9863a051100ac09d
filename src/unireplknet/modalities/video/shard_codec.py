"""Videos in tar shards (``.mp4`` and the other video members): the video :class:`ShardCodec`.

A sample's member holds the whole video file; clips are decoded from its bytes in memory with PyAV
(:func:`~.datasets.read_clips_bytes`), sampled and augmented by :class:`~.datasets.VideoClipDataset`
itself (training: one random clip, augmented; evaluation: ``eval_clips x eval_crops`` views). A CSV
with segment times (``start``/``end`` columns) cannot be sharded yet: the segment would be lost.
"""
from __future__ import annotations

import argparse
import random
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from ...errors import DataError
from ..base import ShardCodec, ShardSample, prescan
from .datasets import (VIDEO_EXTENSIONS, VideoClipDataset, VideoRecord, _augment_from_args, _datasets_from_args,
                       check_video, read_clips_bytes, video_splits)

__all__ = ["ShardVideoDataset", "CODEC"]


class ShardVideoDataset(VideoClipDataset):
    """:class:`VideoClipDataset` whose videos are the members of a map-style shard ``source`` (items
    ``(video bytes, class index)``)."""

    def __init__(self, source: Dataset, **kw: Any) -> None:
        records = [VideoRecord(source.name_of(i), int(lab)) for i, lab in enumerate(source.labels)]
        super().__init__(records, **kw)
        self.source = source

    def clips_from_bytes(self, data: bytes, name: str) -> torch.Tensor:
        """The decoded uint8 clips (``clips x T x 3 x H x W``) of one video's bytes."""
        train = self.augment is not None
        return read_clips_bytes(data, name, self.sampling, num_clips=1 if train else self.num_clips,
                                rng=random.Random(random.getrandbits(64)) if train else None,
                                short_side=self.short_side)

    def load_clips(self, index: int) -> torch.Tensor:
        """The decoded clips of item ``index``, from its shard member."""
        return self.clips_from_bytes(self.source[index][0], self.records[index].path)


class _StreamVideo(ShardVideoDataset):
    """A :class:`ShardVideoDataset` without a source: :meth:`views` turns bytes into the model input."""

    def __init__(self, **kw: Any) -> None:
        VideoClipDataset.__init__(self, [VideoRecord("<stream>", 0)], **kw)
        self._pending = None

    def load_clips(self, index: int) -> torch.Tensor:
        data, name = self._pending
        return self.clips_from_bytes(data, name)

    def views(self, data: bytes, name: str = "<stream>") -> torch.Tensor:
        """The model input of one video's bytes (what ``__getitem__`` returns for a stored one)."""
        self._pending = (data, name)
        try:
            return self[0][0]
        finally:
            self._pending = None


def _decoder(args: argparse.Namespace) -> Callable[[bytes, str], bytes]:
    def decode(data: bytes, ext: str) -> bytes:  # clips are decoded (and sampled) by the dataset
        if not data:
            raise ValueError("video member is empty (0 bytes)")
        return data

    return decode


def _kw(args: argparse.Namespace, train: bool) -> dict[str, Any]:
    kw = _datasets_from_args(args)
    if train:
        kw = {k: v for k, v in kw.items() if k not in ("num_clips", "num_crops")}
        kw["augment"] = _augment_from_args(args)
    return kw


def _transform(args: argparse.Namespace, train: bool) -> Callable[[bytes], torch.Tensor]:
    return _StreamVideo(**_kw(args, train)).views


def _dataset(args: argparse.Namespace, source: Dataset, train: bool) -> Dataset:
    return ShardVideoDataset(source, **_kw(args, train))


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    from .transforms import image_size_for, layout_channels

    kw = _datasets_from_args(args)
    views = int(kw["num_clips"]) * int(kw["num_crops"])
    return {"in_chans": layout_channels(kw["layout"], kw["sampling"].num_frames),
            "input_size": image_size_for(kw["sampling"].num_frames, kw["frame_size"], kw["layout"], kw["grid"],
                                         kw["factor"]),
            "eval_views": views,
            "meta": {"layout": kw["layout"], "num_frames": kw["sampling"].num_frames,
                     "frame_size": kw["frame_size"][0], "grid": list(kw["grid"]) if kw["grid"] else None,
                     "reshape_factor": kw["factor"]}}


def _samples(args: argparse.Namespace) -> tuple[dict[str, list[ShardSample]], list[str], dict[str, str]]:
    from ..shards import file_samples

    splits, records = video_splits(args)
    if any(r.start is not None or r.end is not None for recs in records.values() for r in recs):
        raise DataError(f"{args.data}: segment times (start/end columns) cannot be written as shards yet; "
                        f"cut the segments into files first")
    prescan(splits, check_video, name="video-first-frame", skip_bad=getattr(args, "skip_bad_files", None))
    return file_samples(splits), list(splits.classes), dict(splits.sources)


CODEC = ShardCodec(keys=tuple(e.lstrip(".") for e in VIDEO_EXTENSIONS), decoder=_decoder, transform=_transform,
                   fields=_fields, dataset=_dataset, samples=_samples, hf_columns=("video",))
