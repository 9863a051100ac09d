"""``auto``: defaults chosen from the user's data and machine (docs/auto.md has the table).

Two stages:

1. before the data is built, the modality's ``auto`` reads a sample of the files and picks
   input-related keys (image size and channels, clip length, ...);
2. after the data is built, :func:`model_rule` picks the model from the number of training
   samples and the device, and :func:`budget_epochs` the epochs from ``time_budget`` minutes,
   using the measured time of the first training steps.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Optional

__all__ = ["SMALL_NET", "MEDIUM_NET", "model_rule", "budget_epochs", "probe_step", "warmup_for", "BUDGET_FRACTION"]

logger = logging.getLogger(__name__)

#: a 0.35 M-parameter UniRepLKNet (one 7x7 Dilated Reparam Block per stage from stage 2 on).
SMALL_NET: dict[str, Any] = {"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128], "kernel_sizes": [[3], [7], [7, 3], [7]]}
#: a 1.5 M-parameter one for a few thousand samples on a CPU.
MEDIUM_NET: dict[str, Any] = {"depths": [1, 1, 3, 1], "dims": [24, 48, 96, 192],
                              "kernel_sizes": [[3], [9], [9, 3, 9], [7]]}
#: share of the budget given to training epochs (the rest: evaluation, test, deploy export).
BUDGET_FRACTION = 0.8


def model_rule(n_train: int, device: str) -> dict[str, tuple[Any, str]]:
    """Model (and batch size, lr) from the training-set size and the device."""
    cuda = device.startswith("cuda")
    if not cuda and n_train <= 3000:
        return {"model": ("custom", f"{n_train} training samples on a CPU: a small custom network"),
                "model_args": (SMALL_NET, "0.35M parameters (depths 1-1-2-1, dims 16-128, 7x7 DRB)"),
                "batch_size": (64, "small network"), "lr": (4e-3, "AdamW, batch 64"),
                "warmup_epochs": (1, "short run")}
    if not cuda and n_train <= 30000:
        return {"model": ("custom", f"{n_train} training samples on a CPU: a medium custom network"),
                "model_args": (MEDIUM_NET, "1.5M parameters (depths 1-1-3-1, dims 24-192, 9x9 DRB)"),
                "batch_size": (64, "medium network"), "lr": (3e-3, "AdamW, batch 64"),
                "warmup_epochs": (1, "short run")}
    if not cuda:
        return {"model": ("unireplknet_a", f"{n_train} training samples on a CPU"),
                "batch_size": (64, "CPU"), "lr": (2e-3, "AdamW, batch 64"), "warmup_epochs": (2, "")}
    if n_train <= 5000:
        return {"model": ("unireplknet_a", f"{n_train} training samples on {device}"),
                "batch_size": (64, "GPU"), "lr": (2e-3, "AdamW, batch 64"), "warmup_epochs": (2, "")}
    return {"model": ("unireplknet_t", f"{n_train} training samples on {device}"),
            "batch_size": (128, "GPU"), "lr": (4e-3, "AdamW, batch 128"), "warmup_epochs": (5, ""),
            "amp": (True, "GPU mixed precision")}


def budget_epochs(
    step: Callable[[], int],
    *,
    n_train: int,
    n_eval: int,
    batch_size: int,
    minutes: float,
    max_epochs: int = 200,
    min_epochs: int = 1,
    probe_steps: int = 3,
) -> tuple[int, str]:
    """Epochs that fit in ``minutes``: times ``probe_steps`` calls of ``step`` (one training step on a real
    batch, returning its sample count) after one warm-up call; evaluation is counted at a third of a
    training sample's cost."""
    step()  # warm-up: first-call allocations, lazy initialisation
    t0 = time.perf_counter()
    seen = sum(step() for _ in range(probe_steps))
    per_sample = (time.perf_counter() - t0) / max(seen, 1)
    epoch_s = per_sample * (n_train + n_eval / 3.0)
    epochs = int(minutes * 60 * BUDGET_FRACTION / max(epoch_s, 1e-9))
    epochs = max(min_epochs, min(max_epochs, epochs))
    why = (f"{per_sample * 1000:.1f} ms per training sample measured over {seen} samples: an epoch of "
           f"{n_train} training + {n_eval} validation samples takes about {epoch_s:.1f} s; "
           f"{BUDGET_FRACTION:.0%} of the {minutes:g}-minute budget gives {epochs} epoch(s)"
           f"{' (capped)' if epochs in (max_epochs,) else ''}")
    return epochs, why


def warmup_for(epochs: int) -> float:
    """A warm-up of about 5% of the run (at most 5 epochs, at least a fraction of one)."""
    return float(min(5.0, max(0.2, math.floor(epochs * 0.05 * 10) / 10)))


def probe_step(model: Any, loader: Any, loss_fn: Callable, device: Any,
               batch_transform: Optional[Callable] = None) -> Callable[[], int]:
    """A function running one real training step (forward, backward, AdamW) of ``model`` on the next batch
    of ``loader`` on ``device``; returns the batch size. Inputs may be tensors or dicts of tensors. The
    model's weights change: rebuild it (or probe a copy)."""
    import torch

    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = iter(loader)

    def move(obj: Any) -> Any:
        return {k: v.to(device) for k, v in obj.items()} if isinstance(obj, dict) else obj.to(device)

    def step() -> int:
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        x, y = move(x), move(y)
        if batch_transform is not None:
            x, y = batch_transform(x, y)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return int(len(y))

    return step
