"""The ``video`` modality plug-in: video clips as frame grids (or other layouts)."""
from __future__ import annotations

from ..base import Modality
from . import datasets
from .auto import auto_config
from .shard_codec import CODEC

PLUGIN = Modality.from_module("video", "video clips as frame grids, stacked channels, frames + differences or + normal flow",
                              datasets, auto=auto_config, extensions=datasets.VIDEO_EXTENSIONS,
                              baseline_features=datasets.baseline_features, shards=CODEC)
