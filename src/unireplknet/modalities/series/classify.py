"""Time series → image for classification with the unchanged 2-D backbone.

One series (``C x L``, any length, ``NaN`` for missing values) is prepared once:
missing values filled by linear interpolation, split into its interleaved phases when it
interleaves several quantities sample by sample (:func:`deinterleave`, :func:`detect_interleave`),
resampled to ``series_length`` and either
z-normalised per series and channel (``znorm``) or standardised with per-channel statistics
of the whole training set (:func:`channel_stats`, :func:`standardize`), which keeps the
level and scale differences between series (they often carry the class). At every access it is
(optionally) augmented and mapped to a ``C' x S x S`` image (:func:`series_image`):

* ``reshape`` (the default of the ``series`` modality): the series folded row by row into
  a ``W x W`` grid (as in the forecasting embedding) with its first difference, resized
  to ``S x S``: 2 channels per variable;
* ``gaf``: Gramian angular summation and difference fields of the series (piecewise
  averaged to ``S`` points, rescaled to ``[-1, 1]``): 2 channels per variable;
* ``recurrence``: the unthresholded recurrence plot ``|x_i - x_j|`` and the signed
  difference ``x_i - x_j``: 2 channels per variable.

Variables of a multivariate series are stacked as channels. Train-time augmentations
(:data:`AUGMENTATIONS`): ``scale`` (random amplitude per channel), ``jitter`` (Gaussian
noise), ``crop`` (window warping: a random 70-100% window resampled back to full length),
``shift`` (circular time shift).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ...errors import DataError

__all__ = [
    "IMAGE_KINDS", "AUGMENTATIONS", "fill_missing", "resample", "znormalize", "deinterleave", "detect_interleave",
    "prepare_series", "prepare_all",
    "augment_series", "series_image", "image_parts", "channel_stats", "standardize", "image_channels", "parse_augment", "eval_windows", "SeriesMixup", "SeriesImageDataset",
]

#: image parts; a ``z`` prefix applies the part to the per-series z-normalised series.
IMAGE_KINDS = ("gaf", "recurrence", "reshape", "zgaf", "zrecurrence", "zreshape")
AUGMENTATIONS = ("scale", "jitter", "crop", "shift")


def fill_missing(x: np.ndarray) -> np.ndarray:
    """Fill ``NaN`` values per channel by linear interpolation (edges: nearest value; all-NaN: 0)."""
    x = np.array(x, dtype=np.float32, copy=True)
    for c in range(x.shape[0]):
        row = x[c]
        bad = ~np.isfinite(row)
        if not bad.any():
            continue
        if bad.all():
            row[:] = 0.0
            continue
        idx = np.arange(len(row))
        row[bad] = np.interp(idx[bad], idx[~bad], row[~bad])
    return x


def resample(x: np.ndarray, length: int) -> np.ndarray:
    """Resample every channel of ``x`` (``C x L``) to ``length`` points: linear interpolation when
    stretching, the mean over each output point's share of the input when shrinking (no aliasing:
    a spike shorter than the step is kept as part of its bin's mean rather than hit or missed)."""
    n = x.shape[1]
    if n == length:
        return x.astype(np.float32, copy=False)
    if n == 1:
        return np.repeat(x, length, axis=1).astype(np.float32)
    if n > length:
        # exact area averaging: cumulative sums of the piecewise-constant signal at the bin edges
        cum = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1, dtype=np.float64)], axis=1)
        edges = np.linspace(0.0, float(n), length + 1)
        grid = np.arange(n + 1, dtype=np.float64)
        at = np.stack([np.interp(edges, grid, row) for row in cum])
        return (np.diff(at, axis=1) * (length / n)).astype(np.float32)
    src = np.linspace(0.0, 1.0, n)
    dst = np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(dst, src, row) for row in x]).astype(np.float32)


def znormalize(x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per-channel zero mean, unit variance (a constant channel becomes zeros)."""
    mean = x.mean(axis=1, keepdims=True)
    std = x.std(axis=1, keepdims=True)
    return ((x - mean) / np.where(std < eps, 1.0, std)).astype(np.float32)


def deinterleave(x: np.ndarray, period: int) -> np.ndarray:
    """Split every channel of ``x`` (``C x L``) into its ``period`` interleaved phases:
    ``(C * period) x (L // period)`` (channel ``c * period + k`` holds ``x[c, k::period]``; a tail
    shorter than ``period`` is dropped). ``period`` 1 returns ``x``."""
    p = int(period)
    if p < 1:
        raise DataError(f"series_deinterleave must be at least 1, got {period}")
    if p == 1:
        return x
    n = x.shape[1] // p
    if n < 1:
        raise DataError(f"a series of length {x.shape[1]} is shorter than series_deinterleave {p}")
    c = x.shape[0]
    return np.ascontiguousarray(x[:, :n * p].reshape(c, n, p).transpose(0, 2, 1).reshape(c * p, n))


def _autocorr(X: Sequence[np.ndarray], max_lag: int) -> np.ndarray:
    """Median over series and non-constant channels of the autocorrelation at lags ``1..max_lag``."""
    rows = []
    for x in X:
        for row in fill_missing(x):
            if len(row) < 4 * max_lag:
                continue
            z = row - row.mean()
            var = float((z * z).mean())
            if var < 1e-12:
                continue
            rows.append([float((z[:-k] * z[k:]).mean()) / var for k in range(1, max_lag + 1)])
    return np.median(np.asarray(rows), axis=0) if rows else np.zeros(max_lag)


def detect_interleave(X: Sequence[np.ndarray], max_period: int = 8, strong: float = 0.8, weak: float = 0.5) -> int:
    """The period ``p`` of series that interleave ``p`` quantities sample by sample (one value of each
    in turn), else 1: when the median autocorrelation of the training series is at least ``strong`` at
    lag ``p`` (2..``max_period``, the smallest such lag) but below ``weak`` at lag 1 (neighbouring
    samples unrelated, samples ``p`` apart alike). Smooth series (high lag-1 autocorrelation) give 1."""
    ac = _autocorr(X, max_period)
    if ac[0] >= weak:
        return 1
    for p in range(2, max_period + 1):
        if ac[p - 1] >= strong:
            return p
    return 1


def prepare_series(x: np.ndarray, length: int, znorm: bool = True, period: int = 1) -> np.ndarray:
    """One raw series (``C x L``, may hold NaN) → ``C x length`` float32 (``C * period`` channels when
    ``period`` > 1: :func:`deinterleave`), filled, resampled, z-normalised."""
    if x.ndim != 2 or x.shape[1] < 1:
        raise DataError(f"a series must be channels x length, got shape {tuple(x.shape)}")
    x = resample(deinterleave(fill_missing(x), period), length)
    return znormalize(x) if znorm else x


def prepare_all(X: Sequence[np.ndarray], length: int, znorm: bool = True, period: int = 1) -> np.ndarray:
    """Many raw series → ``N x C' x length`` float32 (``C' = C * period``)."""
    if not len(X):
        return np.zeros((0, 1, length), np.float32)
    return np.stack([prepare_series(x, length, znorm, period) for x in X])


def channel_stats(series: np.ndarray) -> list[list[float]]:
    """Per-channel ``[mean, std]`` over all series and time steps of ``N x C x L`` (std >= 1e-6)."""
    mean = series.mean(axis=(0, 2))
    std = series.std(axis=(0, 2))
    return [[float(m), float(max(s, 1e-6))] for m, s in zip(mean, std)]


def standardize(series: np.ndarray, stats: Sequence[Sequence[float]]) -> np.ndarray:
    """Apply per-channel ``[mean, std]`` (from the training data) to ``... x C x L`` series."""
    st = np.asarray(stats, dtype=np.float32)
    if st.ndim != 2 or st.shape[1] != 2 or st.shape[0] != series.shape[-2]:
        raise DataError(f"series_norm needs one [mean, std] per channel ({series.shape[-2]}), got {np.shape(stats)}")
    return ((series - st[:, 0, None]) / st[:, 1, None]).astype(np.float32)


def parse_augment(spec: "str | Sequence[str] | None") -> tuple[str, ...]:
    """``'scale,jitter'``/``['scale']``/``'none'`` → the augmentation names (checked)."""
    if spec is None:
        return ()
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    names = [n for n in names if n not in ("none", "off", "")]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise DataError(f"unknown series augmentation(s) {unknown}; choose from {', '.join(AUGMENTATIONS)} or none")
    return tuple(dict.fromkeys(names))


def augment_series(x: Tensor, augment: Sequence[str], generator: "torch.Generator | None" = None) -> Tensor:
    """Randomly augment one prepared series ``x`` (``C x L``) with the named augmentations."""
    c, length = x.shape
    g = generator
    if "crop" in augment:
        frac = 0.7 + 0.3 * float(torch.rand((), generator=g))
        win = max(2, int(round(frac * length)))
        start = int(torch.randint(0, length - win + 1, (), generator=g))
        x = F.interpolate(x[None, :, start:start + win], size=length, mode="linear", align_corners=True)[0]
    if "shift" in augment:
        x = torch.roll(x, int(torch.randint(-length // 10, length // 10 + 1, (), generator=g)), dims=1)
    if "scale" in augment:
        x = x * (1.0 + 0.2 * torch.randn(c, 1, generator=g))
    if "jitter" in augment:
        x = x + 0.05 * x.std(dim=1, keepdim=True).clamp_min(1e-3) * torch.randn(c, length, generator=g)
    return x


def image_parts(kind: str) -> tuple[str, ...]:
    """The parts of an image kind: ``'reshape+zrecurrence'`` → ``('reshape', 'zrecurrence')`` (checked)."""
    parts = tuple(k.strip().lower() for k in str(kind).split("+"))
    if not all(k in IMAGE_KINDS for k in parts):
        raise DataError(f"unknown series image {kind!r}; choose from {', '.join(IMAGE_KINDS)}, "
                        "or several joined by '+' (their channels are stacked)")
    return parts


def image_channels(kind: str, channels: int) -> int:
    """Image channels ``series_image(kind)`` makes from a series of ``channels`` variables."""
    return 2 * channels * len(image_parts(kind))


def _paa(x: Tensor, size: int) -> Tensor:
    """Piecewise aggregate approximation (or linear upsampling) of ``C x L`` to ``C x size``."""
    if x.shape[1] == size:
        return x
    if x.shape[1] > size:
        return F.adaptive_avg_pool1d(x[None], size)[0]
    return F.interpolate(x[None], size=size, mode="linear", align_corners=True)[0]


def _zseries(x: Tensor) -> Tensor:
    """Per-channel z-normalisation of ``C x L`` (a constant channel becomes zeros)."""
    std = x.std(dim=1, keepdim=True, unbiased=False)
    return (x - x.mean(dim=1, keepdim=True)) / torch.where(std < 1e-6, torch.ones_like(std), std)


def _image_part(x: Tensor, kind: str, size: int) -> Tensor:
    if kind.startswith("z"):
        x, kind = _zseries(x), kind[1:]
    if kind == "gaf":
        p = _paa(x, size)
        lo, hi = p.amin(dim=1, keepdim=True), p.amax(dim=1, keepdim=True)
        r = ((2 * (p - lo) / (hi - lo).clamp_min(1e-6)) - 1).clamp(-1, 1)
        s = torch.sqrt((1 - r * r).clamp_min(0))
        gasf = r[:, :, None] * r[:, None, :] - s[:, :, None] * s[:, None, :]
        gadf = s[:, :, None] * r[:, None, :] - r[:, :, None] * s[:, None, :]
        return torch.cat([gasf, gadf], dim=0)
    if kind == "recurrence":
        p = _paa(x, size)
        d = p[:, :, None] - p[:, None, :]
        return torch.cat([d.abs(), d], dim=0)
    if kind == "reshape":
        c, length = x.shape
        w = math.ceil(math.sqrt(length))
        full = F.interpolate(x[None], size=w * w, mode="linear", align_corners=True)[0]
        diff = torch.diff(full, dim=1, prepend=full[:, :1])
        grid = torch.cat([full, diff], dim=0).reshape(2 * c, w, w)
        return F.interpolate(grid[None], size=(size, size), mode="nearest")[0]
    raise DataError(f"unknown series image {kind!r}; choose from {', '.join(IMAGE_KINDS)}")


def series_image(x: Tensor, kind: str = "gaf", size: int = 64) -> Tensor:
    """One prepared series ``x`` (``C x L``) → a ``C' x size x size`` image (see the module docstring);
    ``kind`` joins parts with ``+`` (``'reshape+zreshape'``), whose channels are stacked."""
    parts = image_parts(kind)
    if len(parts) == 1:
        return _image_part(x, parts[0], size)
    return torch.cat([_image_part(x, k, size) for k in parts], dim=0)


def eval_windows(x: Tensor, views: int, frac: float = 0.9) -> list[Tensor]:
    """Test-time views of a prepared series ``x`` (``C x L``): the whole series, then ``views - 1``
    windows of ``frac`` of its length, evenly placed from start to end, each resampled to ``L``
    (the deterministic counterpart of the ``crop`` augmentation)."""
    out = [x]
    c, length = x.shape
    win = max(2, int(round(frac * length)))
    k = views - 1
    for i in range(k):
        start = int(round(i * (length - win) / max(1, k - 1))) if k > 1 else (length - win) // 2
        out.append(F.interpolate(x[None, :, start:start + win], size=length, mode="linear", align_corners=True)[0])
    return out


class SeriesMixup:
    """Mixup for a batch of series images (any batch size): ``x ← λ·x + (1-λ)·x[perm]`` with
    ``λ ~ Beta(alpha, alpha)`` per batch, and the matching mix of label-smoothed one-hot targets
    (soft targets: the classification loss then uses soft-target cross-entropy)."""

    def __init__(self, alpha: float, num_classes: int, smoothing: float = 0.1) -> None:
        if alpha <= 0:
            raise DataError(f"mixup alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)
        self.num_classes = int(num_classes)
        self.smoothing = float(smoothing)

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        lam = float(torch.distributions.Beta(self.alpha, self.alpha).sample())
        perm = torch.randperm(len(x), device=x.device)
        off = self.smoothing / self.num_classes
        t = torch.full((len(y), self.num_classes), off, device=x.device)
        t.scatter_(1, y.long().view(-1, 1).to(x.device), 1.0 - self.smoothing + off)
        return lam * x + (1.0 - lam) * x[perm], lam * t + (1.0 - lam) * t[perm]


class SeriesImageDataset(Dataset):
    """Prepared series (``N x C x L``) and labels → ``(C' x S x S image, label)``; augmented when ``augment``.

    With ``views > 1`` (evaluation), an item is a ``views x C' x S x S`` stack (:func:`eval_windows`)
    whose scores the evaluation averages."""

    def __init__(self, series: np.ndarray, labels: Sequence[int], kind: str = "gaf", size: int = 64,
                 augment: Sequence[str] = (), classes: Sequence[str] = (), views: int = 1) -> None:
        if series.ndim != 3:
            raise DataError(f"series must be N x C x L, got shape {tuple(series.shape)}")
        if len(series) != len(labels):
            raise DataError(f"{len(series)} series but {len(labels)} labels")
        if int(views) < 1:
            raise DataError(f"views must be at least 1, got {views}")
        image_channels(kind, series.shape[1])  # checks the kind
        self.series = torch.from_numpy(np.ascontiguousarray(series, dtype=np.float32))
        self.labels = [int(v) for v in labels]
        self.kind = kind
        self.size = int(size)
        self.augment = tuple(augment)
        self.classes = list(classes)
        self.views = int(views)
        self.last_item: "tuple[Tensor, Tensor] | None" = None

    @property
    def in_chans(self) -> int:
        """Image channels."""
        return image_channels(self.kind, self.series.shape[1])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        raw = x = self.series[index]
        if self.augment:
            x = augment_series(x, self.augment)
        if self.views > 1:
            img = torch.stack([series_image(v, self.kind, self.size) for v in eval_windows(x, self.views)])
        else:
            img = series_image(x, self.kind, self.size)
        self.last_item = (img, raw)  # the prepared series behind the image (for the simple baselines)
        return img, self.labels[index]
