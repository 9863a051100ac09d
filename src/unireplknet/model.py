"""UniRepLKNet: block, model, feature backbone and the variant table (A ... XL).

State-dict keys follow the original implementation (``downsample_layers.*``,
``stages.{s}.{b}.*``, ``norm``, ``head``) so released checkpoints load with a single
rename of the Dilated Reparam Block's branches (see :mod:`unireplknet.weights`).

No ``from __future__ import annotations`` in this module, on purpose: ``torch.fx`` copies the
root ``forward``'s annotations into the generated code, and a postponed (string) annotation
becomes an unresolvable name there (``x: _torch_Tensor_``), so ``torch.jit.script`` of an FX
graph module (timm's FX + TorchScript contract) fails. Annotations here must be valid at runtime.
"""
import re
from contextlib import nullcontext
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.fx
from torch import nn
from torch.utils.checkpoint import checkpoint

from .layers import GRN, DilatedReparamBlock, DropPath, LayerNorm2d, SEBlock, fuse_bn
from .ops.fast_block import block_fast_path_ok, block_residual_train
from .ops.fast_conv import StridedConv2d
from .ops.fast_train import fast_path_applicable

__all__ = [
    "UniRepLKNet", "UniRepLKNetBlock", "UniRepLKNetFeatures", "FeatureInfo", "VARIANTS", "default_kernel_sizes",
    "reparameterize_blocks", "set_block_checkpointing", "check_input", "layer_decay_id",
]


#: depths and widths of the released variants.
VARIANTS: Dict[str, Dict[str, Tuple[int, ...]]] = {
    "a": dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320)),
    "f": dict(depths=(2, 2, 6, 2), dims=(48, 96, 192, 384)),
    "p": dict(depths=(2, 2, 6, 2), dims=(64, 128, 256, 512)),
    "n": dict(depths=(2, 2, 8, 2), dims=(80, 160, 320, 640)),
    "t": dict(depths=(3, 3, 18, 3), dims=(80, 160, 320, 640)),
    "s": dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768)),
    "b": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
    "l": dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
    "xl": dict(depths=(3, 3, 27, 3), dims=(256, 512, 1024, 2048)),
}

KernelSizes = Sequence[Sequence[int]]

_LAYER = re.compile(r"(?:^|\.)(downsample_layers|stages)\.(\d+)\.(?:(\d+)\.)?")


def layer_decay_id(name: str, num_layers: int = 12) -> int:
    """Layer-wise lr-decay group of a parameter name (the original's mapping, classification and dense).

    ``downsample_layers.{0,1,2,3}`` -> 0, 2, 3, ``num_layers``; ``stages.0`` -> 1, ``stages.1`` -> 2,
    ``stages.2.{b}`` -> ``3 + b // 3``; ``stages.3`` -> ``num_layers``; everything else (``norm``,
    ``norm0..3``, ``head``, necks and decode heads) -> ``num_layers + 1``. Any prefix (``module.`` of DDP,
    ``backbone.`` of a detector, ``encoder.model.`` of smp) is ignored.
    """
    m = _LAYER.search(name)
    if m is None:
        return num_layers + 1
    idx = int(m.group(2))
    if m.group(1) == "downsample_layers":
        return {0: 0, 1: 2, 2: 3}.get(idx, num_layers)
    if idx == 2:
        return min(3 + int(m.group(3) or 0) // 3, num_layers)
    return {0: 1, 1: 2}.get(idx, num_layers)


def default_kernel_sizes(depths: Sequence[int]) -> Tuple[Tuple[int, ...], ...]:
    """The original per-block kernel layout for the depths of a released variant.

    Raises ``ValueError`` for other depths: pass ``kernel_sizes`` explicitly then.
    """
    depths = tuple(depths)
    if depths == (2, 2, 6, 2):
        return (3, 3), (13, 13), (13,) * 6, (13, 13)
    if depths == (2, 2, 8, 2):
        return (3, 3), (13, 13), (13,) * 8, (13, 13)
    if depths == (3, 3, 18, 3):
        return (3, 3, 3), (13, 13, 13), (13, 3) * 9, (13, 13, 13)
    if depths == (3, 3, 27, 3):
        return (3, 3, 3), (13, 13, 13), (13, 3, 3) * 9, (13, 13, 13)
    raise ValueError(
        f"no default kernel layout for depths {depths}; pass kernel_sizes (one tuple of per-block sizes per stage)"
    )


class NCHWtoNHWC(nn.Module):
    """Permute channels-first to channels-last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class NHWCtoNCHW(nn.Module):
    """Permute channels-last to channels-first."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


def _bn(use_sync_bn: bool) -> type:
    return nn.SyncBatchNorm if use_sync_bn else nn.BatchNorm2d


def _fast_train_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` channels-last when the fast training path applies to this fp32 input: the stem's strided 3x3
    convs train ~1.4x faster that way (same function); else ``x``. Call only in training mode."""
    if fast_path_applicable(x) and x.dtype == torch.float32:  # the check first: False under FX tracing
        return x.contiguous(memory_format=torch.channels_last)
    return x


class UniRepLKNetBlock(nn.Module):
    """``x + DropPath(gamma * FFN(SE(BN(DWConv(x)))))``.

    Args:
        dim: channels.
        kernel_size: 0 (no token mixer), 3 or 5 (plain depthwise conv), or odd >= 7 (Dilated Reparam Block).
        drop_path: stochastic-depth rate of this block.
        layer_scale_init_value: initial layer scale; ``<= 0`` disables it.
        deploy: build the re-parameterised inference structure.
        use_sync_bn: SyncBatchNorm instead of BatchNorm2d.
        ffn_factor: hidden expansion of the FFN.
    """

    __jit_unused_properties__ = ["deployed"]

    def __init__(
        self,
        dim: int,
        kernel_size: int,
        drop_path: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        deploy: bool = False,
        use_sync_bn: bool = False,
        ffn_factor: int = 4,
    ) -> None:
        super().__init__()
        bn = _bn(use_sync_bn)
        self.dim = dim
        self.kernel_size = kernel_size
        self.grad_checkpointing = False
        if kernel_size == 0:
            self.dwconv: nn.Module = nn.Identity()
        elif kernel_size >= 7:
            self.dwconv = DilatedReparamBlock(dim, kernel_size, deploy=deploy, use_sync_bn=use_sync_bn)
        elif kernel_size in (3, 5):
            self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=deploy)
        else:
            raise ValueError(f"block kernel_size must be 0, 3, 5 or an odd number >= 7, got {kernel_size}")
        self.norm: nn.Module = nn.Identity() if (deploy or kernel_size == 0) else bn(dim)
        self.se = SEBlock(dim, dim // 4)
        hidden = ffn_factor * dim
        self.pwconv1 = nn.Sequential(NCHWtoNHWC(), nn.Linear(dim, hidden))
        self.act = nn.Sequential(nn.GELU(), GRN(hidden, use_bias=not deploy))
        if deploy:
            self.pwconv2 = nn.Sequential(nn.Linear(hidden, dim, bias=True), NHWCtoNCHW())
        else:
            self.pwconv2 = nn.Sequential(nn.Linear(hidden, dim, bias=False), NHWCtoNCHW(), bn(dim))
        self.gamma: Optional[nn.Parameter] = None
        if not deploy and layer_scale_init_value is not None and layer_scale_init_value > 0:
            self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.drop_path: nn.Module = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch (everything but the skip connection and drop path)."""
        if not torch.jit.is_scripting():
            if self.training and self._fast_train_ok(x):
                return self._fast_residual(x)
        y = self.se(self.norm(self.dwconv(x)))
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = y * self.gamma.view(1, -1, 1, 1)
        return y

    @torch.jit.unused
    def _fast_train_ok(self, x: torch.Tensor) -> bool:
        """Whether the memory-lean training path (:mod:`unireplknet.ops.fast_block`) computes :meth:`residual`."""
        return block_fast_path_ok(self, x)

    @torch.jit.unused
    def _fast_residual(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`residual` through the fused BN+SE, GELU+GRN+linear and BN+layer-scale functions."""
        return block_residual_train(self, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and x.requires_grad and not torch.jit.is_scripting():
            y = checkpoint(self.residual, x, use_reentrant=False)
        else:
            y = self.residual(x)
        return x + self.drop_path(y)

    @property
    def deployed(self) -> bool:
        """True when the block has the inference structure."""
        dw_ok = not isinstance(self.dwconv, DilatedReparamBlock) or self.dwconv.deployed
        return dw_ok and isinstance(self.norm, nn.Identity) and len(self.pwconv2) == 2 and self.gamma is None

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fuse to the inference structure in place (idempotent; uses BN running statistics).

        Merges the dilated branches, folds the block BN into the depthwise conv, and folds
        GRN's beta, the last BN and the layer scale into the second linear layer.
        """
        if isinstance(self.dwconv, DilatedReparamBlock):
            self.dwconv.reparameterize()
        if isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            conv = self.dwconv.lk_origin if isinstance(self.dwconv, DilatedReparamBlock) else self.dwconv
            assert isinstance(conv, nn.Conv2d)
            kernel, bias = fuse_bn(conv.weight, conv.bias, self.norm)
            fused = nn.Conv2d(
                conv.in_channels, conv.out_channels, kernel_size=conv.kernel_size, stride=conv.stride,
                padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
                device=kernel.device, dtype=kernel.dtype,
            )
            fused.weight.copy_(kernel)
            fused.bias.copy_(bias)
            if isinstance(self.dwconv, DilatedReparamBlock):
                self.dwconv.lk_origin = fused
            else:
                self.dwconv = fused
            self.norm = nn.Identity()
        grn = self.act[1]
        assert isinstance(grn, GRN)
        linear = self.pwconv2[0]
        assert isinstance(linear, nn.Linear)
        if len(self.pwconv2) == 2 and self.gamma is None and grn.beta is None:
            return
        weight = linear.weight
        bias = linear.bias if linear.bias is not None else weight.new_zeros(weight.shape[0])
        if grn.beta is not None:
            bias = bias + weight @ grn.beta.reshape(-1)
        if len(self.pwconv2) == 3:
            bn = self.pwconv2[2]
            assert isinstance(bn, nn.modules.batchnorm._BatchNorm)
            weight, bias = fuse_bn(weight, bias, bn)
        if self.gamma is not None:
            weight = weight * self.gamma.view(-1, 1)
            bias = bias * self.gamma
        new_linear = nn.Linear(weight.shape[1], weight.shape[0], bias=True, device=weight.device, dtype=weight.dtype)
        new_linear.weight.copy_(weight)
        new_linear.bias.copy_(bias)
        self.pwconv2 = nn.Sequential(new_linear, NHWCtoNCHW())
        grn.beta = None
        self.gamma = None


class FeatureInfo(list):
    """List of ``dict(num_chs, reduction, module)`` per output level, with timm's accessors."""

    def _get(self, key: str, idx: Optional[Union[int, Sequence[int]]]) -> Union[Any, List[Any]]:
        if idx is None:
            return [f[key] for f in self]
        if isinstance(idx, int):
            return self[idx][key]
        return [self[i][key] for i in idx]

    def channels(self, idx: Optional[Union[int, Sequence[int]]] = None) -> Union[int, List[int]]:
        """Channels of each level."""
        return self._get("num_chs", idx)

    def reduction(self, idx: Optional[Union[int, Sequence[int]]] = None) -> Union[int, List[int]]:
        """Stride of each level relative to the input."""
        return self._get("reduction", idx)

    def module_name(self, idx: Optional[Union[int, Sequence[int]]] = None) -> Union[str, List[str]]:
        """Name of the module producing each level."""
        return self._get("module", idx)

    def get_dicts(self) -> List[Dict[str, Any]]:
        """The per-level dicts."""
        return [dict(f) for f in self]


def reparameterize_blocks(module: nn.Module) -> int:
    """Fuse every :class:`UniRepLKNetBlock` inside ``module`` in place (a backbone, a segmentor, a detector...).

    Everything else (heads, necks) is untouched. Uses BatchNorm running statistics, so call it on a model in
    ``eval()`` mode. Idempotent. Returns the number of blocks.
    """
    blocks = [m for m in module.modules() if isinstance(m, UniRepLKNetBlock)]  # collect first: blocks mutate
    with torch.no_grad():
        for block in blocks:
            block.reparameterize()
    return len(blocks)


def set_block_checkpointing(module: nn.Module, enable: bool = True) -> None:
    """Switch gradient checkpointing of every :class:`UniRepLKNetBlock` inside ``module``."""
    for m in module.modules():
        if isinstance(m, UniRepLKNetBlock):
            m.grad_checkpointing = enable


def check_input(x: torch.Tensor, in_chans: int) -> None:
    """Raise ``ValueError`` unless ``x`` is ``B x in_chans x H x W``."""
    if x.dim() != 4:
        raise ValueError(f"expected a 4-D input (B, C, H, W), got shape {list(x.shape)}")
    if x.shape[1] != in_chans:
        raise ValueError(f"expected input with in_chans={in_chans} channels, got {x.shape[1]} (shape {list(x.shape)})")


torch.fx.wrap("check_input")  # a leaf for FX tracing (timm feature extraction, torchvision's graph tools)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _resolve_indices(indices: Optional[Union[int, Sequence[int]]], n: int) -> List[int]:
    """Stage indices to take: ``None`` = all, an int ``k`` = the last ``k``, or explicit (negative allowed)."""
    if indices is None:
        return list(range(n))
    if isinstance(indices, int):
        if not 0 < indices <= n:
            raise ValueError(f"take the last k stages with k in 1..{n}, got {indices}")
        return list(range(n - indices, n))
    out = set()
    for i in indices:
        if not -n <= i < n:
            raise ValueError(f"stage index {i} is out of range for {n} stages (use 0..{n - 1} or negative)")
        out.add(i % n)
    if not out:
        raise ValueError("no stage index given")
    return sorted(out)


class UniRepLKNet(nn.Module):
    """UniRepLKNet (Ding et al., CVPR 2024) for classification or as a feature trunk.

    Args:
        in_chans: input channels (1 for spectrograms and series images, 3 for RGB and point views).
        num_classes: classifier outputs; 0 makes ``forward`` return pooled features.
        depths: blocks per stage.
        dims: channels per stage.
        kernel_sizes: per-block kernel sizes, one sequence per stage (0 = no token mixer);
            ``None`` uses the original layout for the variant's depths.
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth, increasing linearly over all blocks up to this value.
        layer_scale_init_value: initial layer scale (``<= 0`` disables it).
        head_init_scale: multiplies the initial classifier weights (0.001 for 22K->1K fine-tuning).
        global_pool: ``'avg'`` or ``''`` (no pooling: ``forward_head`` returns the normed map).
        deploy: build the re-parameterised inference structure directly.
        use_sync_bn: SyncBatchNorm everywhere a BatchNorm is used.
        grad_checkpointing: recompute blocks in backward to save memory.
        device, dtype: where and in which dtype to create the parameters.
    """

    __jit_unused_properties__ = ["deployed"]

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (3, 3, 27, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        kernel_sizes: Optional[KernelSizes] = None,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        head_init_scale: float = 1.0,
        global_pool: str = "avg",
        deploy: bool = False,
        use_sync_bn: bool = False,
        grad_checkpointing: bool = False,
        device: Optional[Union[str, torch.device]] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        depths, dims = tuple(int(d) for d in depths), tuple(int(d) for d in dims)
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError(f"depths and dims need 4 stages each, got depths={depths}, dims={dims}")
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")
        kernel_sizes = default_kernel_sizes(depths) if kernel_sizes is None else kernel_sizes
        kernel_sizes = tuple(tuple(int(k) for k in ks) for ks in kernel_sizes)
        if len(kernel_sizes) != 4 or any(len(ks) != d for ks, d in zip(kernel_sizes, depths)):
            raise ValueError(f"kernel_sizes {kernel_sizes} must give one size per block for depths {depths}")
        if global_pool not in ("avg", ""):
            raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.depths, self.dims, self.kernel_sizes = depths, dims, kernel_sizes
        self.global_pool = global_pool
        self.drop_rate = drop_rate
        self.num_features = self.head_hidden_size = dims[-1]
        self.grad_checkpointing = grad_checkpointing
        factory = torch.device(device) if device is not None else None
        with factory if factory is not None else nullcontext():
            self._build(in_chans, num_classes, drop_path_rate, layer_scale_init_value, deploy, use_sync_bn)
            self.apply(_init_weights)
            if isinstance(self.head, nn.Linear):
                with torch.no_grad():
                    self.head.weight.mul_(head_init_scale)
                    self.head.bias.mul_(head_init_scale)
        if dtype is not None:
            self.to(dtype=dtype)
        if grad_checkpointing:
            self.set_grad_checkpointing(True)
        self.feature_info = FeatureInfo(
            dict(num_chs=d, reduction=2 ** (i + 2), module=f"stages.{i}") for i, d in enumerate(dims)
        )

    def _build(self, in_chans: int, num_classes: int, dpr_max: float, ls: float, deploy: bool, sync: bool) -> None:
        dims, depths = self.dims, self.depths
        self.downsample_layers = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(in_chans, dims[0] // 2, kernel_size=3, stride=2, padding=1),
                LayerNorm2d(dims[0] // 2),
                nn.GELU(),
                StridedConv2d(dims[0] // 2, dims[0], kernel_size=3, stride=2, padding=1),
                LayerNorm2d(dims[0]),
            )
        ])
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(StridedConv2d(dims[i], dims[i + 1], kernel_size=3, stride=2, padding=1),
                              LayerNorm2d(dims[i + 1]))
            )
        n = sum(depths)
        rates = [dpr_max * i / (n - 1) if n > 1 else 0.0 for i in range(n)]
        self.stages = nn.ModuleList()
        cur = 0
        for i in range(4):
            self.stages.append(nn.Sequential(*[
                UniRepLKNetBlock(dims[i], self.kernel_sizes[i][j], drop_path=rates[cur + j],
                                 layer_scale_init_value=ls, deploy=deploy, use_sync_bn=sync)
                for j in range(depths[i])
            ]))
            cur += depths[i]
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head_drop = nn.Dropout(self.drop_rate)
        self.head: nn.Module = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()

    # ----------------------------------------------------------------- forward
    def _check_input(self, x: torch.Tensor) -> None:
        check_input(x, self.in_chans)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and four stages: ``B x num_features x H/32 x W/32``."""
        self._check_input(x)
        if not torch.jit.is_scripting():
            if self.training:
                x = _fast_train_layout(x)
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, LayerNorm and classify (``pre_logits``: stop before the classifier)."""
        if self.global_pool == "avg":
            x = self.norm(x.mean(dim=(2, 3)))
        else:
            x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,  # List, not Sequence: TorchScript reads this signature
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Stage outputs at ``indices`` (timm's contract); also the final features unless ``intermediates_only``.

        ``norm`` is accepted for compatibility: the final norm acts on pooled features, so maps are never normed.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"only output_fmt='NCHW' is supported, got {output_fmt!r}")
        self._check_input(x)
        if self.training:  # torch.jit.ignore'd method: never scripted
            x = _fast_train_layout(x)
        take = _resolve_indices(indices, len(self.stages))
        last = max(take) if (stop_early or intermediates_only) else len(self.stages) - 1
        intermediates = []
        for i in range(last + 1):
            x = self.downsample_layers[i](x)
            x = self.stages[i](x)
            if i in take:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(
        self, indices: Union[int, Sequence[int]] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> List[int]:
        """Drop stages after the last needed one (and the head); returns the kept indices.

        The final LayerNorm acts on the pooled features before the classifier, so it goes with the
        head (``prune_head``) as well as with ``prune_norm``: a pruned model has no unused parameters
        (DDP) and ``forward`` returns the pooled features of the last kept stage.
        """
        take = _resolve_indices(indices, len(self.stages))
        keep = max(take) + 1
        self.stages = self.stages[:keep]
        self.downsample_layers = self.downsample_layers[:keep]
        self.num_features = self.head_hidden_size = self.dims[keep - 1]
        if prune_norm or prune_head:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take

    @torch.jit.ignore
    def layer_decay_id(self, name: str, num_layers: int = 12) -> int:
        """Layer-wise lr-decay group of parameter ``name`` (see :func:`layer_decay_id`); the engine asks the model."""
        return layer_decay_id(name, num_layers)

    # ---------------------------------------------------------------- timm API
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        """Regexes grouping parameters stem -> stages -> head (for layer-wise lr decay)."""
        return dict(
            stem=r"^downsample_layers\.0",
            blocks=r"^(?:stages|downsample_layers)\.(\d+)" if coarse else [
                (r"^downsample_layers\.(\d+)", (0,)),
                (r"^stages\.(\d+)\.(\d+)", None),
                (r"^norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute every block in the backward pass (saves activation memory)."""
        self.grad_checkpointing = enable
        set_block_checkpointing(self, enable)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The final linear layer."""
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the classifier (0 removes it); optionally change pooling."""
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        # the new head follows the model: device, dtype and train/eval mode (timm's contract)
        ref = next(self.parameters(), None)
        kw = dict(device=ref.device, dtype=ref.dtype) if ref is not None else {}
        self.head = nn.Linear(self.num_features, num_classes, **kw) if num_classes > 0 else nn.Identity()
        if isinstance(self.head, nn.Linear):
            _init_weights(self.head)
        self.head.train(self.training)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        """Names excluded from weight decay beyond 1-D parameters (timm convention)."""
        return {n for n, _ in self.named_parameters() if n.endswith("gamma") or n.endswith("beta")}

    # --------------------------------------------------------------- reparam
    @property
    def deployed(self) -> bool:
        """True when every block has the inference structure."""
        return all(b.deployed for b in self.blocks())

    def blocks(self) -> List[UniRepLKNetBlock]:
        """All blocks in execution order."""
        return [m for m in self.modules() if isinstance(m, UniRepLKNetBlock)]

    def reparameterize(self) -> "UniRepLKNet":
        """Switch every block to the inference structure in place (idempotent); returns ``self``.

        Uses BatchNorm running statistics, so the result equals the model in ``eval()`` mode.
        """
        reparameterize_blocks(self)
        return self


class UniRepLKNetFeatures(nn.Module):
    """Dense-task backbone: the four stage outputs (strides 4, 8, 16, 32), each optionally LayerNorm-ed.

    Takes over the stem and stages of a :class:`UniRepLKNet` (its head is discarded); keys are
    ``downsample_layers.*``, ``stages.*`` and ``norm{i}.*`` as in the original mm backbones.

    Args:
        model: the trunk to take over.
        out_indices: which stages to return (negative indices allowed).
        feature_norm: add the original per-level channels-first LayerNorm ``norm{i}``.
    """

    def __init__(
        self, model: UniRepLKNet, out_indices: Sequence[int] = (0, 1, 2, 3), feature_norm: bool = True, **kwargs: Any
    ) -> None:
        super().__init__()
        fmt = kwargs.pop("output_fmt", "NCHW")
        if fmt != "NCHW" or kwargs:
            raise TypeError(f"unsupported feature options: {dict(kwargs, output_fmt=fmt)}")
        self.out_indices = tuple(_resolve_indices(out_indices, len(model.stages)))
        keep = max(self.out_indices) + 1
        self.in_chans = model.in_chans
        self.dims = model.dims
        self.downsample_layers = model.downsample_layers[:keep]
        self.stages = model.stages[:keep]
        ref = model.downsample_layers[0][0].weight
        for i in self.out_indices:
            norm = LayerNorm2d(model.dims[i]).to(device=ref.device, dtype=ref.dtype) if feature_norm else nn.Identity()
            self.add_module(f"norm{i}", norm)
        self.feature_info = FeatureInfo(
            dict(num_chs=model.dims[i], reduction=2 ** (i + 2), module=f"stages.{i}") for i in self.out_indices
        )
        self.grad_checkpointing = model.grad_checkpointing

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        check_input(x, self.in_chans)
        if not torch.jit.is_scripting():
            if self.training:
                x = _fast_train_layout(x)
        outs: List[torch.Tensor] = []
        for i, (down, stage) in enumerate(zip(self.downsample_layers, self.stages)):
            x = stage(down(x))
            if i in self.out_indices:
                outs.append(getattr(self, f"norm{i}")(x))
        return outs

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute every block in the backward pass."""
        self.grad_checkpointing = enable
        set_block_checkpointing(self, enable)

    @torch.jit.ignore
    def layer_decay_id(self, name: str, num_layers: int = 12) -> int:
        """Layer-wise lr-decay group of parameter ``name`` (see :func:`layer_decay_id`)."""
        return layer_decay_id(name, num_layers)

    def reparameterize(self) -> "UniRepLKNetFeatures":
        """Switch every block to the inference structure in place (idempotent)."""
        reparameterize_blocks(self)
        return self
