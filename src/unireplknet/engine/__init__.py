"""Task-agnostic training engine: config, loaders, optimizer groups, the Trainer loop, checkpoints, DDP.

See docs/engine.md for the contract other tasks build on.
"""
from . import distributed
from .checkpoint import atomic_save, load_checkpoint
from .config import DEFAULTS, EngineConfig, check_keys, load_config_file
from .deploy import reparameterize_verified
from .loader import ResumableSampler, SeededDataset, ShardSampler, make_loader
from .metrics_log import MetricsLog, plot_curves
from .optim import build_optimizer, build_scheduler, layer_id, param_groups, uses_weight_decay
from .trainer import EvalContext, Trainer

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
    "layer_id",
    "load_checkpoint",
    "load_config_file",
    "make_loader",
    "param_groups",
    "plot_curves",
    "reparameterize_verified",
    "uses_weight_decay",
]
