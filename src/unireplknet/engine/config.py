"""Engine configuration: the known keys, their defaults, and validation."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Optional

__all__ = ["EngineConfig", "DEFAULTS", "load_config_file", "check_keys"]


@dataclass
class EngineConfig:
    """Every knob of the training loop; see docs/engine.md for the meaning of each key."""

    epochs: int = 300
    batch_size: int = 128
    accum: int = 1
    lr: float = 4e-3
    lr_base_batch: Optional[int] = None
    min_lr: float = 1e-6
    warmup_epochs: float = 20
    warmup_lr: float = 0.0
    weight_decay: float = 0.05
    layer_decay: Optional[float] = None
    opt: str = "adamw"
    opt_eps: float = 1e-8
    opt_betas: list = field(default_factory=lambda: [0.9, 0.999])
    clip_grad: Optional[float] = None
    amp: bool = False
    amp_dtype: str = "bfloat16"
    ema: bool = False
    ema_decay: float = 0.9999
    ema_eval: bool = True
    drop_path: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: str = "batch"
    smoothing: float = 0.1
    grad_checkpointing: bool = False
    sync_bn: bool = False
    channels_last: bool = False
    seed: int = 0
    num_workers: int = 2
    num_threads: Optional[int] = None
    device: str = "auto"
    metric: str = "acc1"
    metric_mode: str = "max"
    eval_every: int = 1
    ckpt_every_steps: int = 0
    max_train_steps: Optional[int] = None
    deploy: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1 or self.accum < 1:
            raise ValueError(f"batch_size and accum must be >= 1, got {self.batch_size} and {self.accum}")
        if self.metric_mode not in ("max", "min"):
            raise ValueError(f"metric_mode must be 'max' or 'min', got {self.metric_mode!r}")
        if self.amp_dtype not in ("bfloat16", "float16"):
            raise ValueError(f"amp_dtype must be 'bfloat16' or 'float16', got {self.amp_dtype!r}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}")

    @classmethod
    def keys(cls) -> set[str]:
        """Names of all engine keys."""
        return {f.name for f in fields(cls)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], strict: bool = False) -> "EngineConfig":
        """Build from a mapping; keys that are not engine keys are ignored unless ``strict``."""
        known = cls.keys()
        unknown = sorted(set(values) - known)
        if strict and unknown:
            raise ValueError(f"unknown engine config key(s): {', '.join(unknown)}")
        kwargs = {k: v for k, v in values.items() if k in known and v is not None}
        if "opt_betas" in kwargs:
            kwargs["opt_betas"] = list(kwargs["opt_betas"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict copy (YAML/JSON/checkpoint friendly)."""
        return asdict(self)


DEFAULTS: dict[str, Any] = EngineConfig().to_dict()


def load_config_file(path: str) -> dict[str, Any]:
    """Read a YAML (or JSON) config file into a dict of config keys; clear errors for bad files."""
    from pathlib import Path

    from .._extras import require

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    yaml = require("yaml", "train", "YAML config files")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"cannot parse {p}: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{p} must hold a mapping of config keys, not {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def check_keys(values: Mapping[str, Any], known: set[str], where: str) -> None:
    """ValueError naming every key of ``values`` that is not in ``known``."""
    unknown = sorted(set(values) - known)
    if unknown:
        import difflib

        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, sorted(known), n=1)
            hints.append(f"{k} (did you mean {close[0]}?)" if close else k)
        raise ValueError(f"unknown config key(s) in {where}: {', '.join(hints)}")
