"""Task-agnostic training engine: config, loaders, optimizer groups, the Trainer loop, checkpoints, DDP.

See docs/engine.md for the contract other tasks build on.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "atomic_save": "checkpoint", "load_checkpoint": "checkpoint",
    "DEFAULTS": "config", "EngineConfig": "config", "check_keys": "config", "load_config_file": "config",
    "reparameterize_verified": "unireplknet.reparam",
    "ResumableSampler": "loader", "SeededDataset": "loader", "ShardSampler": "loader", "make_loader": "loader",
    "MetricsLog": "metrics_log", "plot_curves": "metrics_log",
    "build_optimizer": "optim", "build_scheduler": "optim", "model_layer_id_fn": "optim", "param_groups": "optim",
    "uses_weight_decay": "optim",
    "EvalContext": "trainer", "Trainer": "trainer",
}


def __getattr__(name: str) -> Any:  # names load their module on first use (keeps `--help` free of torch)
    if name == "distributed":
        return importlib.import_module(".distributed", __name__)
    if name in _LAZY:
        target = _LAZY[name]
        module = importlib.import_module(target if "." in target else f".{target}", None if "." in target else __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULTS",
    "EngineConfig",
    "EvalContext",
    "MetricsLog",
    "ResumableSampler",
    "SeededDataset",
    "ShardSampler",
    "Trainer",
    "atomic_save",
    "build_optimizer",
    "build_scheduler",
    "check_keys",
    "distributed",
    "model_layer_id_fn",
    "load_checkpoint",
    "load_config_file",
    "make_loader",
    "param_groups",
    "plot_curves",
    "reparameterize_verified",
    "uses_weight_decay",
]
