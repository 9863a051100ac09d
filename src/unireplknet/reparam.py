"""Re-parameterize a trained model into its deploy structure and check its outputs."""
from __future__ import annotations

import copy
import logging

import torch
from torch import nn


__all__ = ["reparameterize_verified"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def reparameterize_verified(model: nn.Module, probe: torch.Tensor, rtol: float = 1e-4) -> tuple[nn.Module, float]:
    """Deep-copy ``model``, call ``reparameterize()`` on the copy and check outputs on ``probe``.

    Returns ``(deployed_model, max_abs_diff)``; raises RuntimeError when the outputs differ by
    more than ``rtol * (1 + max|reference|)``.
    """
    if not hasattr(model, "reparameterize"):
        raise TypeError(f"{type(model).__name__} has no reparameterize() method")
    was_training = model.training
    model.eval()
    ref = model(probe).float()
    deployed = copy.deepcopy(model).eval()
    deployed.reparameterize()
    out = deployed(probe).float()
    model.train(was_training)
    diff = (out - ref).abs().max().item() if ref.numel() else 0.0
    tol = rtol * (1.0 + ref.abs().max().item())
    if not diff <= tol:
        raise RuntimeError(f"re-parameterized outputs differ from the trained model by {diff:.3g} (tolerance {tol:.3g})")
    return deployed, diff
