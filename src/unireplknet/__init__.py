"""UniRepLKNet: one large-kernel ConvNet for images, audio, video, point clouds and time series.

>>> import unireplknet
>>> model = unireplknet.create_model("unireplknet_t", num_classes=10, in_chans=1)
>>> model.reparameterize()  # train -> deploy structure, in place

Importing the package is light: the public names below load their modules on first use, and
timm is imported only when it is used. The variants are registered in timm's model registry as
soon as timm is imported (before or after this package), so ``timm.create_model("unireplknet_t")``
works after ``import unireplknet``.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_LAZY: dict[str, str] = {
    "create_model": "factory", "list_models": "factory", "model_config": "factory",
    "optimize_for_inference": "inference", "DilatedReparamBlock": "layers",
    "VARIANTS": "model", "UniRepLKNet": "model", "UniRepLKNetBlock": "model", "UniRepLKNetFeatures": "model",
    "PRETRAINED": "weights", "list_pretrained": "weights", "load_weights": "weights", "save_weights": "weights",
}

__all__ = [
    "create_model", "list_models", "model_config", "UniRepLKNet", "UniRepLKNetBlock", "UniRepLKNetFeatures",
    "DilatedReparamBlock", "optimize_for_inference", "VARIANTS", "PRETRAINED", "list_pretrained", "load_weights",
    "save_weights", "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _TimmRegistration(importlib.abc.MetaPathFinder):
    """Registers the variants in timm right after ``timm`` itself is imported."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec("timm")
        finally:
            pass
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            importlib.import_module(f"{__name__}.timm_models")

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _register_timm() -> None:
    """Register every variant in timm's registry now if timm is loaded, else as soon as it is."""
    if "timm" in sys.modules:
        importlib.import_module(f"{__name__}.timm_models")
    elif importlib.util.find_spec("timm") is not None:
        sys.meta_path.insert(0, _TimmRegistration())


_register_timm()
