"""Engine configuration: the known keys, their defaults, and validation."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Optional

from ..errors import ConfigError

__all__ = ["EngineConfig", "DEFAULTS", "load_config_file", "check_keys", "coerce_value"]


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
    select: str = "best"  # best: the epoch with the best val metric (ties: lower val loss); last: the last epoch
    fast_train: bool = True  # the fast Dilated Reparam Block training path (same function and gradients)
    patience: int = 0  # early stopping: stop after this many evaluations without a better val metric (0: off)
    fsdp: bool = False  # under torchrun: shard with FSDP2 (+ activation checkpointing) instead of DDP

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1 or self.accum < 1:
            raise ValueError(f"batch_size and accum must be >= 1, got {self.batch_size} and {self.accum}")
        if self.metric_mode not in ("max", "min"):
            raise ValueError(f"metric_mode must be 'max' or 'min', got {self.metric_mode!r}")
        if self.select not in ("best", "last"):
            raise ValueError(f"select must be 'best' or 'last', got {self.select!r}")
        if self.amp_dtype not in ("bfloat16", "float16"):
            raise ConfigError(f"amp_dtype must be 'bfloat16' or 'float16', got {self.amp_dtype!r}")
        if self.amp and self.amp_dtype == "float16" and not _cuda_device(self.device):
            raise ConfigError(
                f"amp_dtype float16 needs a CUDA device (device {self.device!r} runs on the CPU, where autocast "
                f"supports only bfloat16): use amp_dtype bfloat16, or turn amp off"
            )
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0 (0: no early stopping), got {self.patience}")
        if self.patience and self.select == "last":
            raise ValueError("patience (early stopping) needs select: best; select: last keeps every epoch")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}")

    @classmethod
    def keys(cls) -> set[str]:
        """Names of all engine keys."""
        return {f.name for f in fields(cls)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], strict: bool = False, source: Optional[str] = None) -> "EngineConfig":
        """Build from a mapping; keys that are not engine keys are ignored unless ``strict``.

        Values are checked against the key's type (numbers written as strings, such as YAML's ``1e-3``,
        are converted); a wrong type is a :class:`~unireplknet.errors.ConfigError` naming the key
        (and ``source``, e.g. the file it came from).
        """
        known = cls.keys()
        unknown = sorted(set(values) - known)
        if strict and unknown:
            where = f" in {source}" if source else ""
            raise ConfigError(f"unknown engine config key(s){where}: {', '.join(unknown)}")
        kwargs = {k: coerce_value(k, v, source) for k, v in values.items() if k in known and v is not None}
        return cls(**kwargs)

    def autocast_dtype(self, device_type: str) -> Optional[Any]:
        """The ``torch`` dtype to autocast to on ``device_type`` (None without amp).

        float16 off CUDA is a :class:`~unireplknet.errors.ConfigError`, never silently bfloat16.
        """
        if not self.amp:
            return None
        import torch

        if self.amp_dtype == "float16" and device_type != "cuda":
            raise ConfigError(
                f"amp_dtype float16 needs a CUDA device (running on {device_type}, where autocast supports only "
                f"bfloat16): use amp_dtype bfloat16, or turn amp off"
            )
        return getattr(torch, self.amp_dtype)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict copy (YAML/JSON/checkpoint friendly)."""
        return asdict(self)


DEFAULTS: dict[str, Any] = EngineConfig().to_dict()


def _cuda_device(device: str) -> bool:
    """Whether ``device`` (a config value) will run on CUDA."""
    if device == "auto":
        import torch

        return torch.cuda.is_available()
    return str(device).startswith("cuda")


_KINDS = {name: f.type for name, f in EngineConfig.__dataclass_fields__.items()}


def coerce_value(key: str, value: Any, source: Optional[str] = None) -> Any:
    """``value`` converted to engine key ``key``'s type, or a :class:`ConfigError` naming key and ``source``.

    Numbers may be given as strings (``"1e-3"``: YAML 1.1 reads ``1e-3`` as a string); integers
    are accepted for float keys and integral floats for int keys; booleans are never numbers.
    Keys that are not engine keys are returned unchanged.
    """
    kind = _KINDS.get(key)
    if kind is None:
        return value
    optional = kind.startswith("Optional[")
    base = kind[len("Optional["):-1] if optional else kind
    if value is None:
        return None

    def bad(expected: str) -> ConfigError:
        where = f" in {source}" if source else ""
        return ConfigError(f"config key {key!r}{where} must be {expected}{' or null' if optional else ''}, "
                           f"got {value!r} ({type(value).__name__})")

    if base == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad("true or false")
    if base in ("int", "float"):
        if isinstance(value, bool):
            raise bad("an integer" if base == "int" else "a number")
        num: Any = value
        if isinstance(value, str):
            try:
                num = float(value.strip()) if base == "float" else int(value.strip())
            except ValueError:
                try:
                    num = float(value.strip())
                except ValueError:
                    raise bad("an integer" if base == "int" else "a number") from None
        if not isinstance(num, (int, float)):
            raise bad("an integer" if base == "int" else "a number")
        if base == "int":
            if isinstance(num, float) and not num.is_integer():
                raise bad("an integer")
            return int(num)
        return num  # an int is a fine float (kept as given)
    if base == "str":
        if isinstance(value, str):
            return value
        raise bad("a string")
    if base == "list":
        if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                    for v in value):
            return list(value)
        raise bad("a list of numbers")
    return value  # pragma: no cover - every field kind is handled above


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
        raise ConfigError(f"cannot parse {p}: {' '.join(str(e).split())}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of config keys, not {type(data).__name__}")
    out = {str(k).replace("-", "_"): v for k, v in data.items()}
    # engine keys get their type checked here, where the file is still known
    return {k: coerce_value(k, v, str(p)) for k, v in out.items()}


def check_keys(values: Mapping[str, Any], known: set[str], where: str) -> None:
    """:class:`~unireplknet.errors.ConfigError` (a ``ValueError``) naming every key of ``values`` not in ``known``."""
    unknown = sorted(set(values) - known)
    if unknown:
        import difflib

        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, sorted(known), n=1)
            hints.append(f"{k} (did you mean {close[0]}?)" if close else k)
        raise ConfigError(f"unknown config key(s) in {where}: {', '.join(hints)}")
