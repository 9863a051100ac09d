"""The ``point`` modality plug-in: point clouds as depth views."""
from __future__ import annotations

from ..base import Modality
from . import datasets
from .auto import auto_config
from .shard_codec import CODEC

PLUGIN = Modality.from_module("point", "point clouds as depth views", datasets, auto=auto_config,
                              extensions=datasets.POINT_EXTENSIONS, baseline_features=datasets.baseline_features,
                              shards=CODEC)
