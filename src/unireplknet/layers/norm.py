"""Normalisation layers of UniRepLKNet: channels-first LayerNorm and GRN."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.fast_train import fast_path_applicable, grn_train

__all__ = ["LayerNorm2d", "GRN"]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of an ``N x C x H x W`` tensor (the original's ``channels_first``)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GRN(nn.Module):
    """Global Response Normalisation (ConvNeXt V2) on ``N x H x W x C`` input.

    ``out = (gamma * Nx + 1) * x + beta`` with ``Nx`` the per-channel spatial L2 norm
    divided by its channel mean. ``gamma``/``beta`` keep the original ``(1, 1, 1, C)``
    shape so released checkpoints load unchanged; ``use_bias=False`` (the deploy
    structure) drops ``beta``, which re-parameterisation folds into the next linear layer.
    """

    def __init__(self, dim: int, use_bias: bool = True) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta: Optional[nn.Parameter] = nn.Parameter(torch.zeros(1, 1, 1, dim)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if self.training and fast_path_applicable(x) and self.gamma.requires_grad:
                return grn_train(x, self.gamma, self.beta)
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        out = (self.gamma * nx + 1) * x
        if self.beta is not None:
            out = out + self.beta
        return out
