"""The runs behind the commands: config layers, data plan, auto defaults, training, final test evaluation.

Dependencies: core <- modalities <- tasks <- engine (task-agnostic loop) <- runner <- cli.
Every task is run through :func:`run_task`; classification (any modality, including series
classification) goes through :func:`unireplknet.runner.train.run_training`, segmentation and detection
through their task modules (same split rules, run-directory files and final test evaluation), and
forecasting through :func:`unireplknet.runner.forecast.run_forecast` (``train --task forecasting`` and the
``forecast`` command). Every task resolves its config with :func:`unireplknet.engine.resolve.resolve_run_config`.
"""
from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError

__all__ = ["TASKS", "run_task", "run_training"]

#: task name -> (module, function) of its run; the function takes the parsed ``train`` arguments.
TASKS: dict[str, tuple[str, str]] = {
    "classification": ("unireplknet.runner.train", "run_training"),
    "segmentation": ("unireplknet.tasks.segmentation_train", "run_segmentation_training"),
    "detection": ("unireplknet.tasks.detection_train", "run_detection_training"),
    "forecasting": ("unireplknet.runner.forecast", "run_forecast"),
}


def run_task(task: str, args: Any) -> Any:
    """Run ``task`` with the parsed arguments: a summary dict (classification, detection), a report dict
    (forecasting) or an exit code (segmentation)."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    module, name = TASKS[task]
    return getattr(importlib.import_module(module), name)(args)


def run_training(args: Any) -> dict:
    """See :func:`unireplknet.runner.train.run_training`."""
    return run_task("classification", args)
