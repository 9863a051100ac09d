"""UniRepLKNet: one large-kernel ConvNet for images, audio, video, point clouds and time series.

>>> import unireplknet
>>> model = unireplknet.create_model("unireplknet_t", num_classes=10, in_chans=1)
>>> model.reparameterize()  # train -> deploy structure, in place
"""
from __future__ import annotations

from .factory import create_model, list_models, model_config
from .inference import optimize_for_inference
from .layers import DilatedReparamBlock
from .model import VARIANTS, UniRepLKNet, UniRepLKNetBlock, UniRepLKNetFeatures
from .weights import PRETRAINED, list_pretrained, load_weights, save_weights

__version__ = "0.1.0"

__all__ = [
    "create_model", "list_models", "model_config", "UniRepLKNet", "UniRepLKNetBlock", "UniRepLKNetFeatures",
    "DilatedReparamBlock", "optimize_for_inference", "VARIANTS", "PRETRAINED", "list_pretrained", "load_weights", "save_weights",
    "__version__",
]


def _register_timm() -> None:
    """Register every variant in timm's registry when timm is importable (no-op otherwise)."""
    import importlib.util

    if importlib.util.find_spec("timm") is None:
        return
    from . import timm_models  # noqa: F401  (registration happens at import)


_register_timm()
