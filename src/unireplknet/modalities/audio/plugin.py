"""The ``audio`` modality plug-in: audio clips as log-mel spectrogram images (1 channel)."""
from __future__ import annotations

from ..base import Modality
from . import datasets as _d
from .auto import auto_config

PLUGIN = Modality(
    name="audio",
    description="audio clips as log-mel spectrogram images (1 channel)",
    config_defaults=_d.CONFIG_DEFAULTS,
    demo_defaults=_d.DEMO_DEFAULTS,
    recipes=_d.RECIPES,
    add_args=_d.add_train_args,
    build=_d.build_task_data,
    load_for_predict=_d.load_for_predict,
    auto=auto_config,
    extensions=tuple(_d.AUDIO_EXTENSIONS),
)
