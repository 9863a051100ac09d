"""The runner's own config keys (classification runs); the resolution itself, for any task, is
:func:`unireplknet.engine.resolve.resolve_run_config`."""
from __future__ import annotations

from typing import Any

__all__ = ["RUNNER_DEFAULTS"]

#: keys the runner itself reads (beside engine and modality keys).
RUNNER_DEFAULTS: dict[str, Any] = {
    "task": "classification", "modality": "image", "data": None, "val_data": None, "output": None,
    "model": "unireplknet_a", "model_args": None, "pretrained": None, "head_init_scale": None,
    "val_fraction": 0.1, "skip_bad_files": True, "data_root": None, "allow_outside_root": False,
    "auto": True, "time_budget": 15.0, "select": "best", "baselines": None, "allow_nonfinite": False,
    "force": False,
}
