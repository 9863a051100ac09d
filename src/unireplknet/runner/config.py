"""Resolving a run's configuration: one function, one order, every layer read once.

Order (later wins): engine defaults < runner defaults < modality defaults (demo defaults when
there is no ``--data``) < task default metric < ``auto`` < ``--recipe`` < ``--config`` YAML < flags.
On ``--resume`` the checkpoint's config is the base and recipe/YAML/flags override it; the keys
that changed are logged.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from ..errors import ConfigError

__all__ = ["RUNNER_DEFAULTS", "Layers", "resolve_layers", "metric_mode_for"]

logger = logging.getLogger(__name__)

#: keys the runner itself reads (beside engine and modality keys).
RUNNER_DEFAULTS: dict[str, Any] = {
    "task": "classification", "modality": "image", "data": None, "val_data": None, "output": None,
    "model": "unireplknet_a", "model_args": None, "pretrained": None, "head_init_scale": None,
    "val_fraction": 0.1, "skip_bad_files": True, "data_root": None, "allow_outside_root": False,
    "auto": True, "time_budget": 15.0, "select": "best", "baselines": None, "allow_nonfinite": False,
    "force": False,
}


def metric_mode_for(metric: str) -> str:
    """``min`` for losses and errors, ``max`` for everything else."""
    m = metric.lower()
    return "min" if ("loss" in m or m in ("mse", "mae", "rmse", "error") or m.endswith("_mse")) else "max"


@dataclass
class Layers:
    """The resolved config and where each key's value came from."""

    config: dict[str, Any]
    origin: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # why ``auto`` chose each of its values

    def set_by_user(self, key: str) -> bool:
        """Whether ``key`` came from a recipe, a YAML file, a flag or a resumed checkpoint."""
        o = self.origin.get(key, "")
        return o.startswith(("recipe", "config", "flags", "checkpoint"))

    def apply(self, name: str, values: Mapping[str, Any], known: Optional[set[str]] = None) -> None:
        """Overlay ``values`` (checked against ``known`` keys) as layer ``name``."""
        if known is not None:
            unknown = sorted(set(values) - known)
            if unknown:
                raise ConfigError(f"unknown config key(s) in {name}: {', '.join(unknown)}")
        for k, v in values.items():
            self.config[k] = v
            self.origin[k] = name


def resolve_layers(
    *,
    base: Mapping[str, Any],
    known: set[str],
    modality_defaults: Mapping[str, Any],
    demo_defaults: Optional[Mapping[str, Any]],
    task_defaults: Mapping[str, Any],
    recipe: Optional[tuple[str, Mapping[str, Any]]],
    yaml_config: Optional[tuple[str, Mapping[str, Any]]],
    flags: Mapping[str, Any],
    resumed: Optional[tuple[str, Mapping[str, Any]]] = None,
    auto: Optional[Callable[[dict[str, Any]], dict[str, tuple[Any, str]]]] = None,
) -> Layers:
    """Build the config from its layers (see the module docstring)."""
    layers = Layers(dict(base), {k: "defaults" for k in base})
    if resumed is not None:
        where, ckpt_cfg = resumed
        layers.apply(f"checkpoint {where}", {k: v for k, v in ckpt_cfg.items() if k in known})
        before = dict(layers.config)
    else:
        layers.apply("modality defaults", dict(modality_defaults))
        layers.apply("task defaults", dict(task_defaults))
        if demo_defaults is not None:
            layers.apply("demo defaults", dict(demo_defaults))
    upper: list[tuple[str, Mapping[str, Any]]] = []
    if recipe is not None:
        upper.append((f"recipe {recipe[0]}", recipe[1]))
    if yaml_config is not None:
        upper.append((f"config {yaml_config[0]}", yaml_config[1]))
    upper.append(("flags", flags))
    for name, values in upper:
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) in {name}: {', '.join(unknown)}")
    if auto is not None and resumed is None:
        preview = dict(layers.config)
        for _, values in upper:
            preview.update(values)
        chosen = auto(preview)
        explicit = {k for _, values in upper for k in values}
        for key, (value, why) in chosen.items():
            if key in explicit:
                continue
            layers.apply("auto", {key: value})
            layers.reasons[key] = why
            logger.info("auto: %s = %s (%s)", key, value, why)
    for name, values in upper:
        layers.apply(name, values)
    if resumed is not None:
        changed = sorted(k for k in layers.config if layers.config.get(k) != before.get(k))
        if changed:
            logger.info("resume: overriding the checkpoint's %s", ", ".join(
                f"{k}={before.get(k)!r}->{layers.config[k]!r}" for k in changed))
    if not layers.set_by_user("metric_mode") and "metric" in layers.config:
        layers.config["metric_mode"] = metric_mode_for(str(layers.config["metric"]))
    return layers
