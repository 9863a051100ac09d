"""Training checkpoints: atomic writes, safe loading, RNG state capture, model signatures."""
from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError

__all__ = ["FORMAT", "TEMP_FILE_RE", "atomic_save", "load_checkpoint", "rng_state", "set_rng_state", "model_signature", "check_signature"]

FORMAT = "unireplknet-train-1"

#: names of the temp files :func:`atomic_save` (and ``weights.save_weights``) write before the rename:
#: ``.<name>.<8 random chars>.tmp`` for checkpoint/weight files (``.last.pt.k3j_x9a2.tmp``).
TEMP_FILE_RE = re.compile(r"^\.(?P<name>[^/]+\.(?:pt|pth|safetensors))\.[A-Za-z0-9_]{8}\.tmp$")


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temp file in the same directory, then ``os.replace`` (never a half-written file).

    The temp file (``.<name>.<random>.tmp``, see :data:`TEMP_FILE_RE`) is removed on any error;
    one left by a killed process is removed by :func:`~unireplknet.engine.rundir.clean_temp_files`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a training checkpoint with ``weights_only=True``; clear errors for missing/foreign files."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is empty (0 bytes; an interrupted copy or save?)")
    from ..weights import safe_torch_load

    ckpt = safe_torch_load(path)  # corrupt files and pickled objects: one CheckpointError naming the file
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a unireplknet training checkpoint (expected format {FORMAT!r})")
    return ckpt


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as tensors/lists/numbers only."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def model_signature(model: nn.Module) -> dict[str, list[int]]:
    """Parameter/buffer names and shapes, to recognise the model a checkpoint belongs to."""
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def check_signature(ckpt_sig: dict[str, list[int]], model: nn.Module, path: str = "checkpoint") -> None:
    """Raise ValueError naming the first differences when a checkpoint was written for another model."""
    mine = model_signature(model)
    missing = sorted(set(mine) - set(ckpt_sig))
    extra = sorted(set(ckpt_sig) - set(mine))
    shape = sorted(k for k in set(mine) & set(ckpt_sig) if list(mine[k]) != list(ckpt_sig[k]))
    if missing or extra or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) e.g. {missing[0]}")
        if extra:
            parts.append(f"{len(extra)} unexpected key(s) e.g. {extra[0]}")
        if shape:
            k = shape[0]
            parts.append(f"{len(shape)} shape mismatch(es) e.g. {k}: {ckpt_sig[k]} vs {mine[k]}")
        raise ValueError(f"{path} was written for a different model: " + "; ".join(parts))
