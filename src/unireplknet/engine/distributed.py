"""Process-group helpers for DDP (``torchrun``): gloo on CPU, nccl on CUDA."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_from_env", "get_info", "is_main", "all_reduce_tensor", "barrier", "cleanup", "resolve_device"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and local rank of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` into a device (``auto``: this rank's GPU if any, else CPU)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but CUDA is not available")
        name = f"cuda:{local_rank}"
    return torch.device(name)


def init_from_env(device: str = "auto") -> DistInfo:
    """Start the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1); otherwise a no-op."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dev = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
        logger.info("DDP: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return get_info()


def get_info() -> DistInfo:
    """The current process's rank information (single process when no group is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def is_main() -> bool:
    """True on rank 0 (or when not distributed)."""
    return get_info().is_main


def all_reduce_tensor(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Sum (or average with ``op='mean'``) a tensor across ranks; identity when not distributed."""
    if not get_info().enabled:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    if op == "mean":
        t /= dist.get_world_size()
    return t


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a picklable object from ``src`` to every rank."""
    if not get_info().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if get_info().enabled:
        dist.barrier()


def cleanup() -> None:
    """Destroy the process group if this module's caller created one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
