"""The ``video`` modality plug-in: video clips as frame grids (or other layouts)."""
from __future__ import annotations

from ..base import Modality
from . import datasets as _d
from .auto import auto_config

PLUGIN = Modality(
    name="video",
    description="video clips as frame grids, stacked channels or frames + differences",
    config_defaults=_d.CONFIG_DEFAULTS,
    demo_defaults=_d.DEMO_DEFAULTS,
    recipes=_d.RECIPES,
    add_args=_d.add_train_args,
    build=_d.build_task_data,
    load_for_predict=_d.load_for_predict,
    auto=auto_config,
    extensions=tuple(_d.VIDEO_EXTENSIONS),
    baseline_features=_d.baseline_features,
)
