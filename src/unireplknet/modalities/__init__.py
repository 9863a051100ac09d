"""Modalities: one folder each, registered here explicitly.

Each ``modalities/<name>/plugin.py`` defines ``PLUGIN``, a :class:`~unireplknet.modalities.base.Modality`.
To add a modality, copy a folder, adapt it, and add one line to :data:`REGISTRY` (docs/architecture.md).
"""
from __future__ import annotations

import importlib

from ..errors import ConfigError

__all__ = ["REGISTRY", "get_modality", "modality_names"]

#: modality name -> module defining ``PLUGIN`` (imported only when that modality is used).
REGISTRY: dict[str, str] = {
    "image": "unireplknet.modalities.image.plugin",
    "audio": "unireplknet.modalities.audio.plugin",
    "video": "unireplknet.modalities.video.plugin",
    "point": "unireplknet.modalities.point.plugin",
    "series": "unireplknet.modalities.series.plugin_classify",
}


def modality_names() -> list[str]:
    """The registered modality names."""
    return list(REGISTRY)


def get_modality(name: str):  # -> Modality (not imported here: keeps `import unireplknet.modalities` light)
    """The :class:`~unireplknet.modalities.base.Modality` registered as ``name``."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown modality {name!r}; choose from {', '.join(REGISTRY)}")
    return importlib.import_module(REGISTRY[name]).PLUGIN
