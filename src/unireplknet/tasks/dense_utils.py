"""Helpers shared by the dense-prediction models (segmentation, detection).

* :func:`create_dense_backbone` -- a :class:`~unireplknet.model.UniRepLKNetFeatures` by name or custom config,
  with optional released / local weights (mm-style ``{'state_dict': {'backbone.*'}}`` or ImageNet ones);
* :func:`freeze_stages` -- freeze the stem and the first stages (parameters and BatchNorm statistics);
* :func:`build_dense_optimizer` -- the downstream recipe of the original (SPEC §7.3): AdamW with layer-wise
  lr decay through the backbone (the engine's :func:`~unireplknet.engine.optim.param_groups`);
* re-parameterization of a whole dense model is :func:`unireplknet.model.reparameterize_blocks`.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
from torch import nn

from ..engine.optim import param_groups
from ..model import UniRepLKNet, UniRepLKNetFeatures

__all__ = ["create_dense_backbone", "freeze_stages", "build_dense_optimizer"]

_logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


def create_dense_backbone(
    model: str = "unireplknet_t",
    pretrained: Union[bool, str, PathLike, None] = None,
    in_chans: int = 3,
    out_indices: Sequence[int] = (0, 1, 2, 3),
    frozen_stages: int = 0,
    model_args: Optional[Dict[str, Any]] = None,
    **kwargs: Any,
) -> UniRepLKNetFeatures:
    """A feature backbone (4 LayerNorm-ed maps, strides 4/8/16/32).

    Args:
        model: a variant name (``unireplknet_t``) or ``"custom"`` (then ``model_args`` gives
            ``depths``, ``dims``, ``kernel_sizes``).
        pretrained: a released tag or a local checkpoint path (classification, or mm-style detection /
            segmentation checkpoints whose ``backbone.*`` part is taken).
        frozen_stages: see :func:`freeze_stages`.
        **kwargs: any other :class:`~unireplknet.model.UniRepLKNet` argument (``drop_path_rate``,
            ``use_sync_bn``, ``grad_checkpointing``, ``deploy`` ...).
    """
    from ..factory import create_model
    from ..weights import load_weights

    if model == "custom":
        args = dict(model_args or {})
        missing = [k for k in ("depths", "dims") if k not in args]
        if missing:
            raise ValueError(f"model 'custom' needs model_args with {', '.join(missing)}")
        trunk = UniRepLKNet(in_chans=in_chans, num_classes=0, **args, **kwargs)
        backbone = UniRepLKNetFeatures(trunk, out_indices=out_indices)
        if pretrained:
            load_weights(backbone, pretrained)
    else:
        kwargs = {**(model_args or {}), **kwargs}
        backbone = create_model(model, pretrained=pretrained or None, in_chans=in_chans, features_only=True,
                                out_indices=out_indices, **kwargs)
    if frozen_stages:
        freeze_stages(backbone, frozen_stages)
    return backbone  # type: ignore[return-value]


def _keep_eval(module: nn.Module, _inputs: Any) -> None:
    if module.training:
        module.eval()


def freeze_stages(backbone: nn.Module, num_stages: int) -> List[str]:
    """Freeze the stem and the first ``num_stages`` stages of a UniRepLKNet (features or full model).

    ``num_stages=1`` freezes ``downsample_layers.0`` and ``stages.0``, ``2`` also the next downsample
    and stage, and so on (up to 4). Frozen parameters get ``requires_grad=False`` and the frozen
    modules stay in eval mode (BatchNorm running statistics are not updated) even under
    ``model.train()``. Returns the names of the frozen modules.
    """
    stages = getattr(backbone, "stages", None)
    downs = getattr(backbone, "downsample_layers", None)
    if stages is None or downs is None:
        raise ValueError(f"{type(backbone).__name__} has no stages/downsample_layers to freeze")
    if not 0 <= num_stages <= len(stages):
        raise ValueError(f"num_stages must be in 0..{len(stages)}, got {num_stages}")
    frozen = []
    for i in range(num_stages):
        for name, module in ((f"downsample_layers.{i}", downs[i]), (f"stages.{i}", stages[i])):
            for p in module.parameters():
                p.requires_grad_(False)
            module.eval()
            module.register_forward_pre_hook(_keep_eval)
            frozen.append(name)
    _logger.info("frozen: %s", ", ".join(frozen) or "nothing")
    return frozen


def build_dense_optimizer(
    model: nn.Module,
    lr: float = 1e-4,
    weight_decay: float = 0.05,
    layer_decay: Optional[float] = 0.9,
    num_layers: int = 12,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` over the engine's :func:`~unireplknet.engine.optim.param_groups`; each group's ``lr`` is ``lr * lr_scale``.

    The groups keep ``lr_scale``, so timm schedulers (which multiply by it) can drive the lr.
    """
    groups = param_groups(model, weight_decay, layer_decay, num_layers)
    for g in groups:
        g.pop("names")
        g["lr"] = lr * g["lr_scale"]
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)  # type: ignore[arg-type]


