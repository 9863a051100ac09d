"""Parameter and multiply-accumulate counts (MACs = FLOPs / 2, the papers' "FLOPs")."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "count_macs"]


def count_params(model: nn.Module) -> int:
    """Number of parameters (shared ones counted once)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, input_size: Sequence[int] = (3, 224, 224), batch_size: int = 1) -> int:
    """Multiply-accumulates of one forward pass at ``input_size`` (C, H, W), counted by ``torch.utils.flop_counter``.

    Works for models on the ``meta`` device (no memory, no compute), which is how large variants are counted.
    """
    p = next(model.parameters())
    x = torch.zeros(batch_size, *input_size, device=p.device, dtype=p.dtype)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
