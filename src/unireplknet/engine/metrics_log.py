"""Per-epoch metric files (JSONL, CSV), TensorBoard when installed, and a PNG of the curves."""
from __future__ import annotations

import csv
import importlib.util
import json
import logging
import math
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["MetricsLog", "plot_curves"]

logger = logging.getLogger(__name__)


class MetricsLog:
    """Appends one row per epoch to ``metrics.jsonl`` and rewrites ``metrics.csv``; mirrors to TensorBoard."""

    def __init__(self, run_dir: str | Path, history: Optional[list[dict[str, Any]]] = None, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.history: list[dict[str, Any]] = list(history or [])
        self._tb = None
        if tensorboard and importlib.util.find_spec("tensorboard") is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tb"))
            except Exception as e:  # pragma: no cover - broken tensorboard installs
                logger.warning("TensorBoard disabled: %s", e)

    def log(self, row: dict[str, Any]) -> None:
        """Record one epoch's metrics (must contain ``epoch``)."""
        self.history.append(dict(row))
        self._write()
        if self._tb is not None:
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, row["epoch"])
            self._tb.flush()

    def _write(self) -> None:
        with open(self.run_dir / "metrics.jsonl", "w") as f:
            for row in self.history:
                f.write(json.dumps(row) + "\n")
        keys: list[str] = []
        for row in self.history:
            keys += [k for k in row if k not in keys]
        with open(self.run_dir / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.history)

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self._tb is not None:
            self._tb.close()


def plot_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Optional[Path]:
    """Loss curves (left) and every other numeric validation metric (right) to a PNG; None if matplotlib is missing."""
    if not history or importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    loss_keys = [k for k in history[-1] if k.endswith("loss")]
    other = [k for k in history[-1] if k.startswith(("val_", "ema_")) and not k.endswith("loss")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, keys, title in ((axes[0], loss_keys, "loss"), (axes[1], other, "validation metrics")):
        for k in keys:
            ys = [r.get(k, math.nan) for r in history]
            ax.plot(epochs, ys, marker="o", ms=3, label=k)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        if keys:
            ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
