"""``auto`` rules of the point modality: how to handle orientation, read from a sample of the training clouds.

Rule (generic, no data set named): sample up to :data:`SAMPLE` training clouds and measure how
many have a principal (PCA) axis within :data:`ALIGNED_DEG` degrees of the up axis. Upright data
(ModelNet, ScanObjectNN, scans with gravity) has one for most clouds; arbitrarily rotated clouds
have one only by chance (about 10 % for uniform rotations at 15°). Below :data:`UPRIGHT_SHARE`
the data is treated as arbitrarily oriented and ``auto`` sets

* ``canonical_pose = True``: every cloud is rotated into its PCA frame before projection, so
  the same shape gives the same views whatever its rotation;
* ``rotation = "so3"``: training rotations over all of SO(3) (removed again by the canonical
  pose; what remains is the sampling noise of the PCA frame, which the network learns to ignore);
* ``vote_views = 4``, ``vote_rotation = "so3"``: evaluation averages the four sign choices of
  the PCA frame that the sign rule cannot fix for symmetric shapes.

Upright data keeps the defaults (up-axis rotations, no canonical pose): there the orientation is
information, and PCA would discard it.
"""
from __future__ import annotations

import argparse
import math
from typing import Any, Mapping

import numpy as np
import torch

__all__ = ["auto_config", "upright_share", "SAMPLE", "ALIGNED_DEG", "UPRIGHT_SHARE"]

#: how many training clouds are read to measure the data.
SAMPLE = 64
#: a principal axis within this angle of the up axis counts as upright.
ALIGNED_DEG = 15.0
#: share of upright clouds above which the data is treated as upright.
UPRIGHT_SHARE = 0.5


def upright_share(clouds: list[torch.Tensor], up_axis: int = 1) -> float:
    """Share of ``clouds`` (each ``N × 3``) with a PCA axis within :data:`ALIGNED_DEG` of axis ``up_axis``.

    Clouds that cannot be measured (NaN/inf coordinates, fewer than two distinct points) are left out;
    1.0 (upright, the defaults) when none can be."""
    cos_min = math.cos(math.radians(ALIGNED_DEG))
    hits = measured = 0
    for c in clouds:
        xyz = c[:, :3].double()
        if xyz.shape[0] < 2 or not torch.isfinite(xyz).all():
            continue
        xyz = xyz - xyz.mean(0)
        if not float(xyz.abs().max()) > 0:
            continue
        try:
            _, vecs = torch.linalg.eigh(xyz.T @ xyz)
        except RuntimeError:  # torch.linalg.LinAlgError: no PCA frame for this cloud
            continue
        hits += int(vecs[up_axis].abs().max() >= cos_min)
        measured += 1
    return hits / measured if measured else 1.0


def auto_config(cfg: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """Canonical pose, SO(3) augmentation and sign voting for arbitrarily oriented data (empty for upright data)."""
    if cfg.get("data") is None:
        return {}
    from .datasets import point_splits
    from .transforms import AXES

    try:
        parts, _ = point_splits(argparse.Namespace(**dict(cfg)), check_files=False)  # the run checks them
    except Exception:  # the build reports data problems with its own message
        return {}
    train = parts["train"]
    n = len(train)
    idx = np.random.default_rng(int(cfg.get("seed") or 0)).permutation(n)[:SAMPLE]
    clouds = []
    for i in idx:
        try:
            clouds.append(torch.as_tensor(np.asarray(train.get(int(i)), dtype=np.float32)))
        except Exception:  # unreadable files are reported by the pre-scan
            continue
    if not clouds:
        return {}
    out: dict[str, tuple[Any, str]] = {}
    points = int(cfg.get("num_points") or 1024)
    side = int(min(224, max(32, 2 ** round(math.log2(math.sqrt(points))))))
    out["input_size"] = (side, f"{points} sampled points: views of about sqrt({points}) px a side hold about one "
                               f"point per pixel (power of two, 32-224); larger views of few points are mostly empty")
    out["splat"] = (1, "one pixel per point at that resolution")
    up = str(cfg.get("up_axis") or "y")
    share = upright_share(clouds, AXES.get(up, 1))
    measured = (f"{100 * share:.0f} % of {len(clouds)} sampled clouds have a principal axis within "
                f"{ALIGNED_DEG:g}° of the up axis {up}")
    if share >= UPRIGHT_SHARE:
        return out
    why = f"{measured}: arbitrarily oriented data"
    return {
        **out,
        "canonical_pose": (True, f"{why}, project each cloud in its PCA frame"),
        "rotation": ("so3", f"{why}, train over all rotations"),
        "vote_views": (4, f"{why}, vote over the 4 sign choices of the PCA frame"),
        "vote_rotation": ("so3", f"{why}, vote over the 4 sign choices of the PCA frame"),
    }
