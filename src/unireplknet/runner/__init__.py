"""The run behind ``unireplknet train``: config layers, data plan, auto defaults, training, final test evaluation.

Dependencies: core <- modalities <- tasks <- engine (task-agnostic loop) <- runner <- cli.
"""
from __future__ import annotations

from typing import Any

__all__ = ["run_training"]


def run_training(args: Any) -> dict:
    """See :func:`unireplknet.runner.train.run_training`."""
    from .train import run_training as _run

    return _run(args)
