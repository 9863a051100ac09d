"""The ``series`` modality plug-in: time-series classification (UCR/UEA archives, CSV series) as images."""
from __future__ import annotations

from ..base import Modality
from . import series_datasets as _d

PLUGIN = Modality(
    name="series",
    description="time-series classification: UCR/UEA .ts/.tsv/.arff/.csv files as images (series folded into a grid)",
    config_defaults=_d.CONFIG_DEFAULTS,
    demo_defaults=_d.DEMO_DEFAULTS,
    recipes=_d.RECIPES,
    add_args=_d.add_train_args,
    build=_d.build_task_data,
    load_for_predict=_d.load_for_predict,
    auto=_d.auto_config,
    extensions=tuple(_d.SERIES_EXTENSIONS),
)
