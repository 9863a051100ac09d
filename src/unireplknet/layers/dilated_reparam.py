"""The Dilated Reparam Block: a large depthwise kernel trained beside dilated small kernels.

During training the block sums ``BN(KxK depthwise conv)`` and, for each branch
``(k, r)``, ``BN(k x k depthwise conv with dilation r)``. Because a dilated kernel is a
sparse large kernel, :meth:`DilatedReparamBlock.reparameterize` merges everything
into a single ``K x K`` depthwise convolution with bias, which is all that runs at
inference.

Branch tables
-------------
For ``K`` in 5..17 the original tables are used (:data:`ORIGINAL_BRANCHES`). For any
other odd ``K >= 5`` :func:`default_branches` derives branches with this rule:

* a dense ``5 x 5`` branch (rate 1);
* the largest odd kernel ``k`` whose rate-2 footprint ``2(k-1)+1`` fits in ``K``;
* three ``3 x 3`` branches whose rates are spread evenly (rounded half up) from 3 to ``(K-1)//2``,
  so that the widest one spans exactly ``K``.

Every branch's equivalent size ``r(k-1)+1`` is at most ``K``. Callers may pass their
own ``branches=[(k, r), ...]``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from ..ops.fast_train import dilated_reparam_train, fast_path_applicable
from .fusion import fuse_bn, merge_dilated_branches

__all__ = ["DilatedReparamBlock", "ORIGINAL_BRANCHES", "default_branches"]

#: (kernel, dilation) pairs of the original implementation, by large kernel size.
ORIGINAL_BRANCHES: dict[int, tuple[tuple[int, int], ...]] = {
    17: ((5, 1), (9, 2), (3, 4), (3, 5), (3, 7)),
    15: ((5, 1), (7, 2), (3, 3), (3, 5), (3, 7)),
    13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)),
    11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
    9: ((5, 1), (5, 2), (3, 3), (3, 4)),
    7: ((5, 1), (3, 2), (3, 3)),
    5: ((3, 1), (3, 2)),
}

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def _check_kernel(kernel_size: int) -> None:
    if not isinstance(kernel_size, int) or kernel_size < 5 or kernel_size % 2 == 0:
        raise ValueError(f"DilatedReparamBlock needs an odd kernel_size >= 5, got {kernel_size!r}")


def default_branches(kernel_size: int) -> tuple[tuple[int, int], ...]:
    """The ``(kernel, dilation)`` branches used for a large kernel of size ``kernel_size``."""
    _check_kernel(kernel_size)
    if kernel_size in ORIGINAL_BRANCHES:
        return ORIGINAL_BRANCHES[kernel_size]
    half = (kernel_size - 1) // 2
    k2 = half + 1 if (half + 1) % 2 else half  # largest odd k with 2(k-1)+1 <= K
    rates = sorted({int(3 + i * (half - 3) / 2 + 0.5) for i in range(3)})
    return ((5, 1), (k2, 2)) + tuple((3, r) for r in rates)


def _branch_name(k: int, r: int) -> str:
    return f"k{k}_{r}"


class ConvBN(nn.Sequential):
    """A depthwise (dilated) convolution without bias followed by BatchNorm."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, ndim: int, bn_layer: type) -> None:
        super().__init__()
        self.conv = _CONV[ndim](
            channels, channels, kernel_size=kernel_size, padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation, groups=channels, bias=False,
        )
        self.bn = bn_layer(channels)
        self.dilation = dilation


class DilatedReparamBlock(nn.Module):
    """Depthwise large-kernel convolution with parallel dilated branches (train) or one merged kernel (deploy).

    Args:
        channels: number of channels (depthwise, so also the number of groups).
        kernel_size: the large kernel size ``K`` (odd, >= 5).
        deploy: build the merged inference structure directly.
        branches: ``(k, r)`` pairs overriding :func:`default_branches`; each must satisfy ``r(k-1)+1 <= K``.
        ndim: 1, 2 or 3 spatial dimensions.
        use_sync_bn: use ``nn.SyncBatchNorm`` (2-D and 3-D only).
    """

    __jit_unused_properties__ = ["deployed"]

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        deploy: bool = False,
        branches: Optional[Sequence[tuple[int, int]]] = None,
        ndim: int = 2,
        use_sync_bn: bool = False,
    ) -> None:
        super().__init__()
        _check_kernel(kernel_size)
        if ndim not in _CONV:
            raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
        branches = tuple(default_branches(kernel_size) if branches is None else (tuple(b) for b in branches))
        for k, r in branches:
            if k < 1 or k % 2 == 0 or r < 1 or r * (k - 1) + 1 > kernel_size:
                raise ValueError(
                    f"branch (k={k}, r={r}) is invalid for kernel_size {kernel_size}: k must be odd and r(k-1)+1 <= K"
                )
        self.channels = channels
        self.kernel_size = kernel_size
        self.ndim = ndim
        self.branch_spec = branches
        bn_layer = nn.SyncBatchNorm if use_sync_bn else _BN[ndim]
        self.lk_origin = _CONV[ndim](
            channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=deploy
        )
        self.origin_bn: nn.Module = nn.Identity() if deploy else bn_layer(channels)
        self.branches = nn.ModuleDict()
        if not deploy:
            for k, r in branches:
                self.branches[_branch_name(k, r)] = ConvBN(channels, k, r, ndim, bn_layer)

    @property
    def deployed(self) -> bool:
        """True when the block runs as a single merged convolution."""
        return isinstance(self.origin_bn, nn.Identity) and len(self.branches) == 0

    @torch.jit.unused
    def _fast_train_ok(self, x: torch.Tensor) -> bool:
        """Whether :func:`unireplknet.ops.fast_train.dilated_reparam_train` computes this forward."""
        if not (self.training and self.ndim == 2 and fast_path_applicable(x)) or self.lk_origin.bias is not None:
            return False
        bns = [self.origin_bn, *(b.bn for b in self.branches.values())]
        return all(
            type(bn) is nn.BatchNorm2d and bn.affine and bn.track_running_stats and bn.running_mean is not None
            for bn in bns
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if self._fast_train_ok(x):
                return self._fast_forward(x)
        out = self.origin_bn(self.lk_origin(x))
        for branch in self.branches.values():
            out = out + branch(x)
        return out

    @torch.jit.unused
    def _fast_forward(self, x: torch.Tensor) -> torch.Tensor:
        """All branches and their BatchNorms as one autograd function (same outputs and gradients)."""
        branches = list(self.branches.values())
        return dilated_reparam_train(
            x,
            [self.lk_origin.weight, *(b.conv.weight for b in branches)],
            [1, *(b.dilation for b in branches)],
            [self.origin_bn, *(b.bn for b in branches)],
        )

    @torch.no_grad()
    def merged_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The equivalent single ``K x K`` kernel and bias (uses BN running statistics)."""
        if self.deployed:
            bias = self.lk_origin.bias
            return self.lk_origin.weight, bias if bias is not None else self.lk_origin.weight.new_zeros(self.channels)
        assert isinstance(self.origin_bn, nn.modules.batchnorm._BatchNorm)
        kernel, bias = fuse_bn(self.lk_origin.weight, self.lk_origin.bias, self.origin_bn)
        fused = []
        for branch in self.branches.values():
            k, b = fuse_bn(branch.conv.weight, None, branch.bn)
            fused.append((k, b, branch.dilation))
        return merge_dilated_branches(kernel, bias, fused)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Merge all branches and BNs into ``lk_origin`` (in place, idempotent)."""
        if self.deployed:
            return
        kernel, bias = self.merged_kernel()
        old = self.lk_origin
        merged = _CONV[self.ndim](
            self.channels, self.channels, self.kernel_size, padding=self.kernel_size // 2,
            groups=self.channels, bias=True, device=old.weight.device, dtype=old.weight.dtype,
        )
        merged.weight.copy_(kernel)
        merged.bias.copy_(bias)
        self.lk_origin = merged
        self.origin_bn = nn.Identity()
        self.branches = nn.ModuleDict()

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, branches={self.branch_spec}"
