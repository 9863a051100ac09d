"""Squeeze-and-excitation block."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SEBlock"]


class SEBlock(nn.Module):
    """Global average pool -> 1x1 conv -> ReLU -> 1x1 conv -> sigmoid, multiplied onto the input."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, reduced, kernel_size=1, bias=True)
        self.up = nn.Conv2d(reduced, channels, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        s = self.up(F.relu(self.down(s)))
        return x * torch.sigmoid(s)
