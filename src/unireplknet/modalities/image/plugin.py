"""The ``image`` modality plug-in: split/class folders or CSV lists of images; the digits demo."""
from __future__ import annotations

from ..base import Modality
from . import datasets
from .auto import auto_config
from .shard_codec import CODEC

PLUGIN = Modality.from_module("image", "images: split/class folders or CSV lists; the digits demo", datasets,
                              auto=auto_config, extensions=datasets.IMAGE_EXTENSIONS, shards=CODEC)
