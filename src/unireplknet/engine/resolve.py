"""Resolving a run's configuration for any task: one function, one order, every layer read once.

Order (later wins): base defaults < modality defaults < task defaults < demo defaults (when there is no
data) < ``auto`` < ``--recipe`` < ``--config`` YAML < flags. On ``--resume`` the checkpoint's config is the
base and recipe/YAML/flags override it; the keys that changed are logged. Task-agnostic: each task passes its
own defaults, known keys and ``auto`` function (:func:`resolve_run_config`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

from ..errors import ConfigError

__all__ = ["Layers", "resolve_layers", "resolve_run_config", "metric_mode_for", "RUN_ARGS",
           "CLASSIFICATION_ONLY_FLAGS"]

logger = logging.getLogger(__name__)


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


#: parsed arguments that steer the run but are not config keys.
RUN_ARGS = frozenset({"func", "command", "verbose", "recipe", "config", "resume"})

#: ``train`` flags of the classification run that the other tasks do not read (dropped, not an error).
CLASSIFICATION_ONLY_FLAGS = ("modality", "force", "time_budget", "baselines", "allow_nonfinite", "data_root",
                             "allow_outside_root", "head_init_scale")

AutoFn = Callable[[dict[str, Any]], dict[str, tuple[Any, str]]]


def resolve_run_config(
    args: Any,
    *,
    task: str,
    known: set[str],
    base: Mapping[str, Any],
    task_defaults: Mapping[str, Any],
    demo_defaults: Optional[Mapping[str, Any]] = None,
    modality_defaults: Optional[Mapping[str, Any]] = None,
    recipes: Optional[Mapping[str, Mapping[str, Any]]] = None,
    recipe_owner: str = "",
    auto: Optional[AutoFn] = None,
    ignored: Sequence[str] = (),
) -> Layers:
    """The config of any task's run from the parsed arguments: read each layer once, then :func:`resolve_layers`.

    ``args`` is the parsed command line: its non-``None`` values that are config keys (``known``) are the
    flags layer; a value for a key the task does not know is an error naming the flag (keys in ``ignored``
    are dropped silently: shared flags another task reads). ``--config`` is read once; ``--recipe`` is looked
    up in ``recipes`` (an error for tasks without recipes); on ``--resume`` the checkpoint's saved config is
    the base. ``auto`` runs when there is data, no resume, no recipe and ``auto`` is not turned off.
    Demo defaults apply when there is no ``data`` anywhere.
    """
    from .checkpoint import load_checkpoint
    from .config import load_config_file

    values = {k: v for k, v in vars(args).items() if v is not None and k not in RUN_ARGS}
    skip = set(ignored) | {"task"}
    stray = sorted(k for k in values if k not in known and k not in skip)
    if stray:
        raise ConfigError(f"{', '.join('--' + k.replace('_', '-') for k in stray)} "
                          f"{'does' if len(stray) == 1 else 'do'} not apply to --task {task}")
    flags = {k: v for k, v in values.items() if k in known}
    resumed = None
    if getattr(args, "resume", None):
        resumed = (str(args.resume), dict(load_checkpoint(args.resume).get("config") or {}))
    yaml_config = (args.config, load_config_file(args.config)) if getattr(args, "config", None) else None
    data = flags.get("data", (yaml_config[1].get("data") if yaml_config else None))
    if resumed is not None and data is None:
        data = resumed[1].get("data")
    recipe = None
    name = getattr(args, "recipe", None)
    if name:
        if not recipes:
            raise ConfigError(f"--recipe is not available for --task {task}: use flags or --config YAML")
        if name not in recipes:
            raise ConfigError(f"unknown recipe {name!r} for {recipe_owner or task}; "
                              f"valid: {', '.join(sorted(recipes))}")
        recipe = (name, recipes[name])
    auto_on = flags.get("auto", (yaml_config[1].get("auto", True) if yaml_config else True)) is not False
    use_auto = auto is not None and data is not None and resumed is None and recipe is None and auto_on
    return resolve_layers(
        base=base, known=known, modality_defaults=modality_defaults or {},
        demo_defaults=demo_defaults if (data is None and resumed is None) else None,
        task_defaults=task_defaults, recipe=recipe, yaml_config=yaml_config, flags=flags, resumed=resumed,
        auto=auto if use_auto else None,
    )
