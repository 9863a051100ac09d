"""Resumable, DDP-aware data loading with per-sample seeded augmentation."""
from __future__ import annotations

import random
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .config import EngineConfig
from .distributed import DistInfo, get_info

__all__ = ["SeededDataset", "ResumableSampler", "ShardSampler", "make_loader"]


class SeededDataset(Dataset):
    """Wraps a map-style dataset so that item ``i`` of epoch ``e`` is augmented with RNGs seeded from (seed, e, i).

    The global ``random``/``numpy``/``torch`` states are saved and restored around each item,
    so the training step's own randomness (drop-path, mixup) is untouched and augmentation
    does not depend on worker count, rank or resumption.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation stream is used."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not yet set (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> Any:
        item_seed = (((self.seed * 1_000_003) + self.epoch) * 1_000_003 + int(index)) % (2**31 - 1)
        py_state, np_state, t_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
        try:
            random.seed(item_seed)
            np.random.seed(item_seed)
            # the CPU generator only: torch.manual_seed also seeds every CUDA device (~0.3 ms a call),
            # and datasets draw their augmentation on the CPU
            torch.default_generator.manual_seed(item_seed)
            return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.set_rng_state(t_state)


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (seeded shuffle, per-epoch order via ``set_epoch``) that can skip
    the first ``skip`` indices of its shard, to resume mid-epoch."""

    def __init__(self, dataset: Dataset, info: DistInfo, shuffle: bool = True, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed)
        self.skip = 0

    def set_skip(self, n: int) -> None:
        """Skip the first ``n`` indices of the next iteration (reset with 0)."""
        self.skip = int(n)

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.skip:])

    def __len__(self) -> int:
        return max(self.num_samples - self.skip, 0)


class ShardSampler(Sampler[int]):
    """Evaluation sampler: rank ``r`` gets indices ``r, r + world, ...`` (no padding, no duplicates)."""

    def __init__(self, dataset: Dataset, info: DistInfo) -> None:
        self.n = len(dataset)  # type: ignore[arg-type]
        self.info = info

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.info.rank, self.n, self.info.world_size))

    def __len__(self) -> int:
        return len(range(self.info.rank, self.n, self.info.world_size))


def make_loader(
    dataset: Dataset,
    config: EngineConfig,
    train: bool,
    collate_fn: Optional[Callable[[list], Any]] = None,
    info: Optional[DistInfo] = None,
    batch_size: Optional[int] = None,
) -> DataLoader:
    """A DataLoader the :class:`~unireplknet.engine.Trainer` can resume and shard.

    Training loaders shuffle with ``config.seed``, drop the last partial batch and wrap the
    dataset in :class:`SeededDataset`; evaluation loaders keep the order and shard without padding.
    """
    info = info or get_info()
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("cannot build a loader over an empty dataset")
    bs = batch_size or config.batch_size
    if train:
        dataset = SeededDataset(dataset, config.seed)
        sampler: Sampler = ResumableSampler(dataset, info, shuffle=True, seed=config.seed)
        if len(sampler) < bs:
            raise ValueError(
                f"the training set has {len(sampler)} samples per process, fewer than batch_size={bs}"
            )
    else:
        sampler = ShardSampler(dataset, info)
    cuda = torch.cuda.is_available() and config.device != "cpu"
    return DataLoader(
        dataset,
        batch_size=bs,
        sampler=sampler,
        drop_last=train,
        num_workers=config.num_workers,
        collate_fn=collate_fn,
        pin_memory=cuda,
        generator=torch.Generator(),  # keeps the global RNG untouched when iterators are created
    )
