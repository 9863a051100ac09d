"""Config keys of the classification task (stdlib only: the ``train`` parser reads them for its flags).

The engine knows none of these: they shape the loss and the batch transform, built by
:func:`unireplknet.tasks.classification.classification_parts`.
"""
from __future__ import annotations

from typing import Any

__all__ = ["CLASSIFICATION_DEFAULTS", "CLASSIFICATION_HELP"]

CLASSIFICATION_DEFAULTS: dict[str, Any] = {
    "smoothing": 0.1,
    "mixup": 0.0,
    "cutmix": 0.0,
    "mixup_prob": 1.0,
    "mixup_switch_prob": 0.5,
    "mixup_mode": "batch",
}

CLASSIFICATION_HELP: dict[str, str] = {
    "smoothing": "label smoothing (0.1)",
    "mixup": "mixup alpha (0: off)",
    "cutmix": "cutmix alpha (0: off)",
    "mixup_prob": "probability of mixup/cutmix per batch (1.0)",
    "mixup_switch_prob": "probability of cutmix instead of mixup when both are on (0.5)",
    "mixup_mode": "batch, pair or elem",
}
