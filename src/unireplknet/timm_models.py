"""Registration of every UniRepLKNet variant and released checkpoint in timm's model registry.

Imported by ``import unireplknet`` when timm is installed, after which
``timm.create_model("unireplknet_t", pretrained=..., num_classes=..., in_chans=..., features_only=...)``,
``timm.utils.reparameterize_model`` and smp's ``tu-unireplknet_*`` encoders work.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from .model import VARIANTS, UniRepLKNet, UniRepLKNetFeatures
from .weights import HF_REPO, PRETRAINED, from_official, unwrap_state_dict

__all__ = ["checkpoint_filter_fn"]


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """Unwrap a released checkpoint and rename its keys to this package's layout."""
    return from_official(unwrap_state_dict(state_dict))


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    return {
        "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7), "crop_pct": 0.875,
        "interpolation": "bicubic", "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "downsample_layers.0.0", "classifier": "head", "license": "apache-2.0",
        "paper_ids": "arXiv:2311.15599", "origin_url": "https://github.com/AILab-CVC/UniRepLKNet", **kwargs,
    }


def _weights_cfg(tag: str) -> Dict[str, Any]:
    w = PRETRAINED[tag]
    size = w.input_size
    extra: Dict[str, Any] = {}
    if size >= 384:
        extra["crop_pct"] = 1.0
    return _cfg(hf_hub_id=HF_REPO, hf_hub_filename=w.filename, num_classes=w.num_classes,
                input_size=(3, size, size), pool_size=(size // 32, size // 32), **extra)


default_cfgs = generate_default_cfgs({tag: _weights_cfg(tag) for tag, w in PRETRAINED.items() if not w.backbone_only})


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:
    name = variant.split("_", 1)[1]
    model_args = dict(VARIANTS[name])
    # a caller's feature_cfg (e.g. feature_cls="fx" or "getter") refines the default one
    feature_cfg = dict(out_indices=(0, 1, 2, 3), feature_cls=UniRepLKNetFeatures)
    feature_cfg.update(kwargs.pop("feature_cfg", None) or {})
    model_args.update(kwargs)
    return build_model_with_cfg(
        UniRepLKNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=feature_cfg, **model_args,
    )


@register_model
def unireplknet_a(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:
    """UniRepLKNet-A (4.4M params)."""
    return _create("unireplknet_a", pretrained, **kwargs)


@register_model
def unireplknet_f(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:
    """UniRepLKNet-F (6.2M params)."""
    return _create("unireplknet_f", pretrained, **kwargs)


@register_model
def unireplknet_p(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:
    """UniRepLKNet-P (10.7M params)."""
    return _create("unireplknet_p", pretrained, **kwargs)


@register_model
def unireplknet_n(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:
    """UniRepLKNet-N (18.3M params)."""
    return _create("unireplknet_n", pretrained, **kwargs)


@register_model
def unireplknet_t(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:
    """UniRepLKNet-T (31M params)."""
    return _create("unireplknet_t", pretrained, **kwargs)


@register_model
def unireplknet_s(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:
    """UniRepLKNet-S (56M params)."""
    return _create("unireplknet_s", pretrained, **kwargs)


@register_model
def unireplknet_b(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:
    """UniRepLKNet-B (98M params)."""
    return _create("unireplknet_b", pretrained, **kwargs)


@register_model
def unireplknet_l(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:
    """UniRepLKNet-L (218M params)."""
    return _create("unireplknet_l", pretrained, **kwargs)


@register_model
def unireplknet_xl(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:
    """UniRepLKNet-XL (386M params)."""
    return _create("unireplknet_xl", pretrained, **kwargs)
