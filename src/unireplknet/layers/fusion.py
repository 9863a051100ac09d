"""Structural re-parameterisation math, written once for 1-D, 2-D and 3-D kernels.

Every function works on plain tensors (kernels shaped ``out x in/groups x *spatial``)
and keeps their device and dtype.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

__all__ = ["fuse_bn", "dilate_kernel", "pad_kernel", "merge_dilated_branches"]


def fuse_bn(
    kernel: torch.Tensor, bias: Optional[torch.Tensor], bn: nn.modules.batchnorm._BatchNorm
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm that follows a convolution into the convolution.

    Returns ``(W * g / s, beta + (b - mu) * g / s)`` with ``s = sqrt(var + eps)``.
    """
    std = (bn.running_var + bn.eps).sqrt()
    scale = (bn.weight if bn.weight is not None else torch.ones_like(std)) / std
    shift = bn.bias if bn.bias is not None else torch.zeros_like(std)
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    new_kernel = kernel * scale.reshape(-1, *([1] * (kernel.ndim - 1)))
    return new_kernel, shift + (b - bn.running_mean) * scale


def dilate_kernel(kernel: torch.Tensor, rate: int) -> torch.Tensor:
    """Turn a dilated kernel into the equivalent dense one by inserting ``rate - 1`` zeros between taps.

    A spatial size ``k`` becomes ``rate * (k - 1) + 1`` in every spatial dimension.
    """
    if rate == 1:
        return kernel
    spatial = kernel.shape[2:]
    out = kernel.new_zeros(*kernel.shape[:2], *[rate * (k - 1) + 1 for k in spatial])
    index = (slice(None), slice(None)) + tuple(slice(None, None, rate) for _ in spatial)
    out[index] = kernel
    return out


def pad_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad an odd-sized kernel symmetrically to ``size`` in every spatial dimension."""
    pads: list[int] = []
    for k in reversed(kernel.shape[2:]):
        if k > size or (size - k) % 2:
            raise ValueError(f"cannot centre a kernel of size {k} in {size}")
        pads += [(size - k) // 2, (size - k) // 2]
    return torch.nn.functional.pad(kernel, pads)


def merge_dilated_branches(
    kernel: torch.Tensor,
    bias: torch.Tensor,
    branches: list[tuple[torch.Tensor, torch.Tensor, int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add dilated branches ``(kernel_i, bias_i, rate_i)`` into one large ``kernel`` with ``bias``."""
    size = kernel.shape[-1]
    for k, b, rate in branches:
        kernel = kernel + pad_kernel(dilate_kernel(k, rate), size)
        bias = bias + b
    return kernel, bias
