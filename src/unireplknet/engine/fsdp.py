"""FSDP2 helpers (``torch.distributed.fsdp.fully_shard``): sharding with activation checkpointing,
resharding-capable checkpoints (``torch.distributed.checkpoint``) and full weights for deployment.

Used by ``unireplknet train --fsdp`` under torchrun (:class:`~unireplknet.engine.trainer.Trainer`);
tested in 2 CPU processes with gloo (``tests/test_fsdp_train.py``, torch 2.14).

* :func:`shard_model` checkpoints the activations of every block (optional) and shards each
  stage, then the root, so that only one stage's full parameters exist at a time.
* :func:`save_sharded` / :func:`load_sharded` write/read a DCP directory (one file per rank plus
  metadata); it can be loaded at another world size, because DCP reshards on load.
* :func:`full_state_dict` gathers the full (unsharded) weights on CPU for the usual single-file
  deploy weights; :func:`load_full` reads a DCP directory into a plain model in one process.
* :func:`meta_copy` keeps a weightless copy of the model's structure (for the unsharded model at
  the end of a run); :func:`gathered` runs evaluation without collectives per forward.
"""
from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

__all__ = ["shard_model", "sync_buffers", "save_sharded", "load_sharded", "full_state_dict", "load_full",
           "meta_copy", "gathered", "is_sharded"]


def is_sharded(model: nn.Module) -> bool:
    """Whether ``fully_shard`` was applied to ``model``."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on the meta device (no memory).

    Take it before :func:`shard_model`; ``meta_copy(m).to_empty(device=...)`` then gives an
    unsharded model to load full weights into.
    """
    memo: dict[int, Any] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(meta, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else meta
    return copy.deepcopy(model, memo)


@contextlib.contextmanager
def gathered(model: nn.Module):
    """Hold the full parameters on every rank (one all-gather per FSDP module) while in the block.

    Inside, forwards run without collectives, so ranks may run different numbers of evaluation
    batches (evaluation loaders shard without padding). No backward inside the block.
    """
    from torch.distributed.fsdp import FSDPModule

    mods = [m for m in model.modules() if isinstance(m, FSDPModule)]
    inner = [m for m in mods if m is not model]
    for m in inner:
        m.set_reshard_after_forward(False, recurse=False)
    for m in mods:
        m.unshard()
    try:
        yield model
    finally:
        for m in inner:
            m.set_reshard_after_forward(True, recurse=False)
        for m in mods:
            m.reshard()


def sync_buffers(model: nn.Module) -> None:
    """Broadcast every buffer (BatchNorm running statistics) from rank 0, as DDP does each step.

    FSDP shards parameters only; buffers stay per-rank and drift apart, and a DCP checkpoint keeps
    one copy of a replicated tensor, so they are made equal before saving.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        for buf in model.buffers():
            dist.broadcast(buf.data, src=0)


def shard_model(model: nn.Module, checkpoint_activations: bool = True, mesh: Optional[Any] = None) -> nn.Module:
    """Apply FSDP2 to ``model`` in place (per stage, then the root); returns it.

    ``checkpoint_activations`` recomputes each block's activations in the backward pass
    (``torch.distributed.algorithms._checkpoint.checkpoint_wrapper``), trading compute for memory.
    """
    from torch.distributed.fsdp import fully_shard

    stages = getattr(model, "stages", None)
    if checkpoint_activations and stages is not None:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

        for stage in stages:
            for i, block in enumerate(list(stage)):
                stage[i] = checkpoint_wrapper(block)
    kw = {"mesh": mesh} if mesh is not None else {}
    if stages is not None:
        for stage in stages:
            fully_shard(stage, **kw)
    fully_shard(model, **kw)
    return model


def save_sharded(model: nn.Module, optimizer: Optional[torch.optim.Optimizer], path: str | Path,
                 extra: Optional[dict[str, Any]] = None) -> None:
    """Save model (and optimizer) state as a DCP checkpoint directory (every rank calls this)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    sync_buffers(model)
    msd, osd = get_state_dict(model, optimizer if optimizer is not None else [])
    state: dict[str, Any] = {"model": msd}
    if optimizer is not None:
        state["optim"] = osd
    if extra:
        state["extra"] = extra
    dcp.save(state, checkpoint_id=str(path))


def load_sharded(model: nn.Module, optimizer: Optional[torch.optim.Optimizer], path: str | Path) -> None:
    """Load a :func:`save_sharded` directory into ``model`` (and ``optimizer``), at any world size."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    msd, osd = get_state_dict(model, optimizer if optimizer is not None else [])
    state: dict[str, Any] = {"model": msd}
    if optimizer is not None:
        state["optim"] = osd
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer if optimizer is not None else [], model_state_dict=state["model"],
                   optim_state_dict=state.get("optim", {}))


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full, unsharded weights on CPU (rank 0 gets them; every rank must call this)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    sync_buffers(model)
    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k.replace("._checkpoint_wrapped_module", ""): v for k, v in sd.items()}


def load_full(model: nn.Module, path: str | Path) -> dict[str, torch.Tensor]:
    """The model weights of a :func:`save_sharded` directory as a full state dict, read in this process only.

    ``model`` is an unsharded model of the same architecture (its state dict is the template and
    is overwritten); no collective is run, so one rank may call this alone.
    """
    import torch.distributed.checkpoint as dcp

    sd = {k: v for k, v in model.state_dict().items()}
    dcp.load({"model": sd}, checkpoint_id=str(path), no_dist=True)
    return sd
