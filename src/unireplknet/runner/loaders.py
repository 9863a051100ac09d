"""Loaders for a run's datasets: map-style ones through the engine, streaming ones (``IterableDataset``) here.

A streaming dataset (:class:`~unireplknet.modalities.shards.ShardIterableDataset`, or a Hugging Face
streaming split from :mod:`unireplknet.modalities.hf`) is told its rank, world size and batch size
(``for_rank``) and read by a plain ``DataLoader``: it cuts each epoch's samples into equal per-rank
ranges and, within a rank, into whole batches per worker, so every rank runs the same number of steps
(``len(loader)``) whatever ``num_workers`` is. The engine's ``Trainer`` calls its ``set_epoch`` before
each epoch (shard order, shuffle buffer and augmentation seeds). Evaluation streams read every sample
once over all ranks.
"""
from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, Optional

__all__ = ["is_streaming", "build_loader", "dataset_size", "materialize", "StreamPosition", "StreamLoader"]


def is_streaming(dataset: Any) -> bool:
    """Whether ``dataset`` is read sequentially (a ``torch.utils.data.IterableDataset``)."""
    from torch.utils.data import IterableDataset

    return isinstance(dataset, IterableDataset)


def dataset_size(dataset: Any) -> int:
    """Samples in the whole split (for a stream: over all ranks, from its index, not this rank's share)."""
    total = getattr(dataset, "total", None) if is_streaming(dataset) else None
    return int(total) if total is not None else len(dataset)


def build_loader(dataset: Any, config: Any, train: bool, collate_fn: Optional[Callable[[list], Any]] = None,
                 info: Any = None) -> Any:
    """The run's loader over ``dataset``: :func:`unireplknet.engine.make_loader` for map-style data; for a
    stream, a ``DataLoader`` over its ``for_rank(rank, world, batch_size=...)`` copy (``drop_last`` in
    training, so each rank yields exactly ``len(dataset) // batch_size`` batches)."""
    import torch

    from ..engine import make_loader
    from ..engine.distributed import get_info

    if not is_streaming(dataset):
        return make_loader(dataset, config, train=train, collate_fn=collate_fn, info=info)
    info = info or get_info()
    stream = dataset.for_rank(info.rank, info.world_size, batch_size=config.batch_size)
    if len(stream) == 0:
        raise ValueError("cannot build a loader over an empty dataset")
    if train and len(stream) < config.batch_size:
        raise ValueError(f"the training stream has {len(stream)} samples per process, fewer than "
                         f"batch_size={config.batch_size}")
    return StreamLoader(stream, batch_size=config.batch_size, drop_last=train, num_workers=config.num_workers,
                        collate_fn=collate_fn, pin_memory=torch.cuda.is_available() and config.device != "cpu",
                        persistent_workers=False,  # workers must see each epoch's set_epoch
                        generator=torch.Generator())  # creating an iterator leaves the global RNG untouched


class StreamPosition:
    """What the engine's ``Trainer`` drives through ``loader.sampler`` (epoch, mid-epoch skip), passed to the stream."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (shard order, shuffle buffer, augmentation seeds)."""
        self.stream.set_epoch(epoch)

    def set_skip(self, samples: int) -> None:
        """Resume mid-epoch: leave out the first ``samples`` (whole batches) of this rank's epoch."""
        self.stream.set_skip_batches(int(samples) // max(1, int(self.stream.batch_size)))


@functools.lru_cache(maxsize=None)
def _stream_loader_class() -> type:
    from torch.utils.data import DataLoader

    class _StreamLoader(DataLoader):
        """A ``DataLoader`` over a stream whose ``sampler`` is its :class:`StreamPosition` (mid-epoch resume)."""

        @property
        def sampler(self) -> Any:  # type: ignore[override]
            return StreamPosition(self.dataset)

        @sampler.setter
        def sampler(self, value: Any) -> None:  # DataLoader sets its internal sampler; batches use batch_sampler
            pass

    return _StreamLoader


def StreamLoader(*args: Any, **kw: Any) -> Any:  # noqa: N802 - a class factory (torch is imported lazily)
    """A ``DataLoader`` whose ``sampler`` attribute drives the stream's epoch and mid-epoch skip."""
    return _stream_loader_class()(*args, **kw)


def materialize(dataset: Any, limit: Optional[int] = None) -> Any:
    """A map-style dataset unchanged; a stream as a list of its first ``limit`` items (read as one process,
    in epoch 0's order), for what needs random access (the simple baselines)."""
    if not is_streaming(dataset):
        return dataset
    stream = dataset.for_rank(0, 1)
    stream.set_epoch(0)
    return list(itertools.islice(iter(stream), limit))
