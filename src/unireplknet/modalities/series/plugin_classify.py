"""The ``series`` modality plug-in: time-series classification (UCR/UEA archives, CSV series) as images."""
from __future__ import annotations

from ..base import Modality
from . import series_datasets
from .shard_codec import CODEC

PLUGIN = Modality.from_module(
    "series", "time-series classification: UCR/UEA .ts/.tsv/.arff/.csv files as images", series_datasets,
    auto=series_datasets.auto_config, extensions=series_datasets.SERIES_EXTENSIONS, shards=CODEC,
    baseline_features=series_datasets.baseline_features)
