"""Features of the simple baselines: one model input (or raw points) -> one 1-D vector.

They live with the modalities (they read the modalities' tensors and point clouds); the baselines
themselves (fitting, scoring, the table) are in :mod:`unireplknet.tasks.baselines`. A modality names
its extra features through ``Modality.baseline_features``.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["FEATURES", "FeatureFn", "register_feature", "feature", "pixel_features", "frame_difference",
           "first_frame", "d2_histogram"]

#: a feature function: one input (``C x H x W`` tensor, or raw points for ``d2_histogram``) → 1-D vector.
FeatureFn = Callable[..., np.ndarray]

#: feature functions by name; see :func:`register_feature` and :func:`feature`.
FEATURES: dict[str, FeatureFn] = {}



def register_feature(name: str) -> Callable[[FeatureFn], FeatureFn]:
    """Decorator registering a feature function in :data:`FEATURES` under ``name``."""

    def deco(fn: FeatureFn) -> FeatureFn:
        FEATURES[name] = fn
        return fn

    return deco


def feature(name: str, **params: Any) -> FeatureFn:
    """The registered feature ``name`` with ``params`` bound, e.g. ``feature("frame_difference", frames_grid=(4, 4))``.

    Raises ``KeyError`` naming the registered features for an unknown ``name``.
    """
    if name not in FEATURES:
        raise KeyError(f"unknown baseline feature {name!r}; registered: {', '.join(sorted(FEATURES))}")
    fn = FEATURES[name]
    return functools.partial(fn, **params) if params else fn


# ----------------------------------------------------------------------------- feature functions
def _as_tensor(x: Any) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.detach().to("cpu", torch.float32)


def _pool(x: torch.Tensor, pool: int) -> torch.Tensor:
    """``[N x] C x H x W`` adaptive-average-pooled to at most ``pool x pool``."""
    h, w = x.shape[-2:]
    return F.adaptive_avg_pool2d(x, (min(h, pool), min(w, pool)))


@register_feature("pixels")
def pixel_features(x: Any, *, pool: int = 16) -> np.ndarray:
    """The input ``C x H x W`` average-pooled to at most ``pool x pool`` per channel, flattened."""
    t = _as_tensor(x)
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3:
        raise ValueError(f"pixel features need a C x H x W input, got shape {tuple(t.shape)}")
    return _pool(t, pool).reshape(-1).numpy().astype(np.float64)


def _frames(x: Any, frames_grid: Sequence[int], num_frames: Optional[int]) -> torch.Tensor:
    """Cut a ``C x (rows*h) x (cols*w)`` frame grid into ``T x C x h x w`` (row-major, as the video modality tiles)."""
    t = _as_tensor(x)
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3:
        raise ValueError(f"a frame grid must be C x H x W, got shape {tuple(t.shape)}")
    rows, cols = int(frames_grid[0]), int(frames_grid[1])
    c, hh, ww = t.shape
    if rows < 1 or cols < 1 or hh % rows or ww % cols:
        raise ValueError(f"image {hh}x{ww} does not split into a {rows}x{cols} grid of frames")
    h, w = hh // rows, ww // cols
    frames = t.reshape(c, rows, h, cols, w).permute(1, 3, 0, 2, 4).reshape(rows * cols, c, h, w)
    n = rows * cols if num_frames is None else int(num_frames)
    if not 1 <= n <= rows * cols:
        raise ValueError(f"num_frames={num_frames} does not fit a {rows}x{cols} grid")
    return frames[:n]


def _profile_velocity(profiles: torch.Tensor) -> torch.Tensor:
    """Gradient-based shift of consecutive 1-D profiles (``T x L`` → ``T-1``): > 0 when they move to higher index.

    From brightness constancy ``dp/dt = -v dp/dx``: ``v = -sum(dt * dx) / sum(dx^2)``, with
    the spatial gradient averaged over both frames (independent of where the content is).
    """
    dt = profiles[1:] - profiles[:-1]
    mid = 0.5 * (profiles[1:] + profiles[:-1])
    dx = torch.zeros_like(mid)
    dx[:, 1:-1] = 0.5 * (mid[:, 2:] - mid[:, :-2])
    return -(dt * dx).sum(1) / ((dx * dx).sum(1) + 1e-8)


@register_feature("frame_difference")
def frame_difference(
    x: Any, *, frames_grid: Sequence[int], num_frames: Optional[int] = None, pool: int = 8
) -> np.ndarray:
    """Motion features of a video frame grid ``C x (rows*h) x (cols*w)``.

    ``frames_grid`` is ``(rows, cols)`` of the grid (frames tiled row-major);
    ``num_frames`` drops the zero padding of a grid with more cells than frames.
    The vector holds: absolute differences of consecutive frames pooled to
    ``pool x pool`` per channel (where things change); the mean signed difference of
    consecutive row and column intensity profiles, pooled to ``pool`` bins (where
    intensity moves to); and the gradient-based shift of those profiles per frame pair
    and on average (which way it moves, wherever it is).
    """
    frames = _frames(x, frames_grid, num_frames)
    if frames.shape[0] < 2:
        raise ValueError("frame_difference needs at least two frames")
    diff = frames[1:] - frames[:-1]
    absdiff = _pool(diff.abs(), pool).reshape(-1)
    gray = frames.mean(1)  # T x h x w
    rows_p, cols_p = gray.mean(2), gray.mean(1)  # T x h (row profile), T x w (column profile)
    signed = []
    for prof in (rows_p, cols_p):
        d = (prof[1:] - prof[:-1]).mean(0)
        signed.append(F.adaptive_avg_pool1d(d.view(1, 1, -1), min(pool, d.numel())).reshape(-1))
    vy, vx = _profile_velocity(rows_p), _profile_velocity(cols_p)
    motion = torch.cat([vy, vx, vy.mean().view(1), vx.mean().view(1)])
    return torch.cat([absdiff, *signed, motion]).numpy().astype(np.float64)


@register_feature("first_frame")
def first_frame(x: Any, *, frames_grid: Sequence[int], pool: int = 8) -> np.ndarray:
    """Only the first frame of a video frame grid, pooled to at most ``pool x pool`` per channel (no motion)."""
    return _pool(_frames(x, frames_grid, 1)[0], pool).reshape(-1).numpy().astype(np.float64)


@register_feature("d2_histogram")
def d2_histogram(points: np.ndarray, bins: int = 32, pairs: int = 4096, seed: int = 0) -> np.ndarray:
    """Osada's D2 shape distribution of a raw point cloud ``N x 3`` (``bins`` values summing to 1).

    Distances of ``pairs`` random point pairs (drawn with ``seed``, so the same pairs for
    clouds of the same size), divided by their maximum and histogrammed on ``[0, 1]``:
    invariant to rotation, translation and scale.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 3 or len(p) < 2:
        raise ValueError(f"d2_histogram needs an N x 3 point array with N >= 2, got shape {p.shape}")
    p = p[:, :3]
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(p), pairs)
    j = (i + rng.integers(1, len(p), pairs)) % len(p)  # j != i
    d = np.linalg.norm(p[i] - p[j], axis=1)
    top = d.max()
    d = d / top if top > 0 else d
    hist, _ = np.histogram(d, bins=bins, range=(0.0, 1.0))
    return hist.astype(np.float64) / max(hist.sum(), 1)


def raw_sample_lookup(task: Any, what: str) -> Callable[[Any], torch.Tensor]:
    """``x -> raw sample`` behind a model input ``x`` of ``task``: the datasets that keep their last item as
    ``last_item = (input, raw sample)`` (point clouds, series) are searched for the input's storage.
    Any other input raises ``ValueError`` naming ``what`` (the runner then skips that baseline)."""
    datasets = [d for d in (task.train, task.val, *task.tests.values()) if d is not None]

    def raw_of(x: Any) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            ptr = x.untyped_storage().data_ptr()
            for ds in datasets:
                last = getattr(ds, "last_item", None)
                if last is not None and last[0].untyped_storage().data_ptr() == ptr:
                    return last[1]
        raise ValueError(f"{what}: the input is not the last item of a dataset of this task")

    return raw_of

