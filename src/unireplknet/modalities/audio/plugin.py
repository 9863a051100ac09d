"""The ``audio`` modality plug-in: audio clips as log-mel spectrogram images (1 channel)."""
from __future__ import annotations

from ..base import Modality
from . import datasets
from .auto import auto_config
from .shard_codec import CODEC

PLUGIN = Modality.from_module("audio", "audio clips as log-mel spectrogram images (1 channel)", datasets,
                              auto=auto_config, extensions=datasets.AUDIO_EXTENSIONS, shards=CODEC)
