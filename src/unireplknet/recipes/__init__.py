"""Named training presets (config keys) from the original ImageNet recipes (SPEC §2).

``in1k_<v>``: ImageNet-1K from scratch, 300 epochs at 224 (lr 4e-3 for a total batch of 4096,
scaled linearly to the actual total batch). ``in22k_ft_in1k_<v>``: fine-tuning the 22K
checkpoint on 1K at 384 (lr 5e-5 for a total batch of 512, layer decay 0.8).
"""
from __future__ import annotations

import copy
from typing import Any

__all__ = ["IMAGENET_RECIPES", "get_recipe"]

_IN1K_BASE: dict[str, Any] = {
    "epochs": 300,
    "warmup_epochs": 20,
    "lr": 4e-3,
    "lr_base_batch": 4096,
    "min_lr": 1e-6,
    "weight_decay": 0.05,
    "smoothing": 0.1,
    "input_size": 224,
    "transform": "imagenet",
    "aa": "rand-m9-mstd0.5-inc1",
    "reprob": 0.25,
    "crop_pct": 0.875,
    "batch_size": 128,
    "accum": 8,  # 4 processes x 128 x 8 = 4096
}

# variant: (drop_path, mixup, cutmix, batch_size, accum)  - total batch 4096 on 4 (A..T) or 8 (S) processes
_IN1K_TABLE = {
    "a": (0.0, 0.3, 0.3, 128, 8),
    "f": (0.0, 0.3, 0.3, 128, 8),
    "p": (0.1, 0.3, 0.3, 128, 8),
    "n": (0.1, 0.5, 0.5, 128, 8),
    "t": (0.2, 0.8, 1.0, 128, 8),
    "s": (0.4, 0.8, 1.0, 64, 8),
}

_FT_BASE: dict[str, Any] = {
    "warmup_epochs": 0,
    "lr": 5e-5,
    "lr_base_batch": 512,
    "min_lr": 1e-6,
    "weight_decay": 1e-8,
    "layer_decay": 0.8,
    "head_init_scale": 0.001,
    "mixup": 0.0,
    "cutmix": 0.0,
    "input_size": 384,
    "transform": "imagenet",
    "aa": "rand-m9-mstd0.5-inc1",
    "reprob": 0.25,
}

# variant: (drop_path, epochs, smoothing, ema, batch_size, accum)  - total batch 512
_FT_TABLE = {
    "s": (0.2, 30, 0.1, False, 64, 2),
    "b": (0.2, 30, 0.1, False, 64, 2),
    "l": (0.3, 20, 0.3, True, 64, 2),
    "xl": (0.3, 20, 0.3, True, 32, 2),
}


def _build() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for v, (dp, mix, cut, bs, acc) in _IN1K_TABLE.items():
        out[f"in1k_{v}"] = dict(_IN1K_BASE, model=f"unireplknet_{v}", drop_path=dp, mixup=mix, cutmix=cut,
                                batch_size=bs, accum=acc)
    for v, (dp, ep, sm, ema, bs, acc) in _FT_TABLE.items():
        out[f"in22k_ft_in1k_{v}"] = dict(_FT_BASE, model=f"unireplknet_{v}", pretrained=f"unireplknet_{v}.in22k",
                                         drop_path=dp, epochs=ep, smoothing=sm, ema=ema, ema_eval=ema,
                                         batch_size=bs, accum=acc)
    return out


#: every ImageNet preset by name.
IMAGENET_RECIPES: dict[str, dict[str, Any]] = _build()


def get_recipe(name: str, recipes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """A copy of the preset ``name``; ValueError listing the valid names otherwise."""
    table = IMAGENET_RECIPES if recipes is None else recipes
    if name not in table:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(sorted(table))}")
    return copy.deepcopy(table[name])
