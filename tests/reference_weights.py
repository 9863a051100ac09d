"""The reference data's deterministic weight rule (tests/fixtures/reference/README.md)."""
from __future__ import annotations

import json
import math
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

REF = Path(__file__).parent / "fixtures" / "reference"


@lru_cache(maxsize=None)
def manifest() -> dict:
    return json.loads((REF / "manifest.json").read_text())


def golden(name: str) -> dict:
    with np.load(REF / "golden" / f"{name}.npz") as z:
        return {k: torch.from_numpy(z[k]) for k in z.files}


def rule_tensor(key: str, shape) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    shape = tuple(shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.long)
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=g)
    if key.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=g)
    if key.endswith(".weight") and len(shape) == 1:
        return 1 + 0.1 * torch.randn(shape, generator=g)
    if key.endswith(".weight") and len(shape) >= 2:
        return torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
    return 0.1 * torch.randn(shape, generator=g)


def rule_state_dict(keys_shapes: dict) -> dict:
    return {k: rule_tensor(k, s) for k, s in keys_shapes.items()}


def reference_input(shape, seed: int) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())
