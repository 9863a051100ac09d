"""``create_model`` and ``list_models``: build any variant by name, optionally with released weights."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

from torch import nn

from .model import VARIANTS, UniRepLKNet, UniRepLKNetFeatures
from .weights import get_pretrained, list_pretrained, load_weights, resolve_pretrained

__all__ = ["create_model", "list_models", "model_config"]

_logger = logging.getLogger(__name__)


def list_models(with_tags: bool = False) -> List[str]:
    """Names of the variants (``unireplknet_a`` ... ``unireplknet_xl``), or every ``name.tag`` of released weights."""
    names = [f"unireplknet_{v}" for v in VARIANTS]
    return list_pretrained() if with_tags else names


def model_config(name: str) -> dict:
    """Depths and dims of a variant name; raises ``ValueError`` listing the valid names."""
    base = name.split(".")[0]
    key = base[len("unireplknet_"):] if base.startswith("unireplknet_") else None
    if key not in VARIANTS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return dict(VARIANTS[key])


def create_model(
    name: str,
    pretrained: Union[bool, str, os.PathLike, None] = None,
    *,
    num_classes: Optional[int] = None,
    in_chans: int = 3,
    features_only: bool = False,
    out_indices: Sequence[int] = (0, 1, 2, 3),
    feature_norm: bool = True,
    strict: bool = True,
    allow_nonfinite: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a UniRepLKNet variant.

    Args:
        name: ``unireplknet_{a,f,p,n,t,s,b,l,xl}``, optionally with a weight tag (``unireplknet_s.in1k_224``).
        pretrained: ``True`` (the tag in ``name``, else the variant's first released weights), a tag
            (``"in22k_ft_in1k_384"`` or ``"unireplknet_s.in22k_ft_in1k_384"``), or a local checkpoint path.
        num_classes: classifier size (default: the pretrained weights' classes, else 1000); 0 = pooled features.
        in_chans: input channels; a pretrained stem is adapted.
        features_only: return a :class:`UniRepLKNetFeatures` dense backbone (stage outputs at ``out_indices``).
        feature_norm: per-level LayerNorm on the feature outputs (the original dense backbones have them).
        strict: raise on missing/unexpected checkpoint keys.
        allow_nonfinite: load weights holding NaN/inf (refused by default, naming the tensors).
        **kwargs: any other :class:`UniRepLKNet` argument (drop_path_rate, kernel_sizes, deploy, ...).
    """
    cfg = model_config(name)
    base, _, tag = name.partition(".")
    weights = None
    path: Optional[Path] = None
    if pretrained is True or (tag and pretrained in (None, True)):
        weights = get_pretrained(tag, base) if tag else get_pretrained(list_pretrained(base)[0])
    elif isinstance(pretrained, (str, os.PathLike)) and pretrained:
        p = Path(pretrained)
        if p.suffix in (".pth", ".pt", ".bin", ".safetensors", ".ckpt") or p.exists() or os.sep in str(pretrained):
            path = p
        else:
            weights = get_pretrained(str(pretrained), base)
    if num_classes is None:
        num_classes = weights.num_classes if weights is not None and weights.num_classes > 0 else 1000
    cfg.update(kwargs)
    model = UniRepLKNet(in_chans=in_chans, num_classes=0 if features_only else num_classes, **cfg)
    if features_only:
        model = UniRepLKNetFeatures(model, out_indices=out_indices, feature_norm=feature_norm)
    if weights is not None:
        path = resolve_pretrained(weights)
        _logger.info("loading %s (%s) from %s", weights.tag, weights.description, path)
    if path is not None:
        load_weights(model, path, strict=strict, allow_nonfinite=allow_nonfinite)
    return model
