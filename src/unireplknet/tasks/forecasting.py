"""Forecasting with the unchanged backbone, and the baselines it is compared with.

:class:`ForecastModel`: RevIN → embedding (token conv + time features +
optional static) → reshape to ``1 x H x W`` → UniRepLKNet (``in_chans=1``) →
linear head to ``pred_len`` steps per target → undo the normalisation.

Variables are processed jointly (one image per sample, ``group_size=None``),
channel-independently (``group_size=1``: one image per variable, weights
shared) or in groups (``group_size=g``: e.g. Corrformer's nodes of 11
stations, each with its own static/geo attributes).

Every model here is called as ``model(inputs)`` with ``inputs`` the dict of a
:class:`unireplknet.modalities.series.datasets.ForecastWindows` batch (``x`` B x L x C,
``x_mark``, ``y_mark``, optionally ``static``) or a bare ``x`` tensor, and
returns B x pred_len x len(targets).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unireplknet.modalities.series.transforms import RevIN, SeriesEmbedding, image_shape, series_to_image

__all__ = [
    "BatchedWindows",
    "ForecastModel",
    "LinearForecast",
    "NaiveForecast",
    "SeasonalNaiveForecast",
    "build_backbone",
    "choose_correction_scale",
    "detect_period",
    "evaluate_forecaster",
    "forecast_loaders",
    "fit_linear_skip",
    "forecast_loss",
    "make_evaluate_fn",
    "moving_average",
    "passthrough_collate",
    "predict",
]

logger = logging.getLogger(__name__)

Inputs = Tensor | Mapping[str, Tensor]


def _unpack(inputs: Inputs) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(x, x_mark, static) from a batch dict or a bare tensor."""
    if isinstance(inputs, Tensor):
        return inputs, None, None
    if "x" not in inputs:
        raise ValueError(f"forecast inputs need an 'x' entry (B x L x C); got keys {sorted(inputs)}")
    return inputs["x"], inputs.get("x_mark"), inputs.get("static")


def _check_x(x: Tensor, seq_len: int, channels: int | None = None) -> None:
    if x.ndim != 3 or x.shape[1] != seq_len or (channels is not None and x.shape[2] != channels):
        want = f"B x {seq_len} x {channels if channels is not None else 'C'}"
        raise ValueError(f"expected a {want} input window, got shape {tuple(x.shape)}")


def build_backbone(
    variant: str | None = None, drop_path_rate: float = 0.0, **custom: Any
) -> nn.Module:
    """A headless single-channel backbone: a named variant or a custom config.

    ``build_backbone("unireplknet_a")`` or ``build_backbone(depths=..., dims=...,
    kernel_sizes=...)``; both have ``in_chans=1`` and ``num_classes=0``.
    """
    import unireplknet

    if variant is not None:
        if custom:
            raise ValueError(f"give a variant name or a custom config, not both (got {variant!r} and {sorted(custom)})")
        return unireplknet.create_model(variant, num_classes=0, in_chans=1, drop_path_rate=drop_path_rate)
    if not custom:
        raise ValueError("build_backbone needs a variant name or custom depths/dims/kernel_sizes")
    return unireplknet.UniRepLKNet(in_chans=1, num_classes=0, drop_path_rate=drop_path_rate, **custom)


class ForecastModel(nn.Module):
    """Embedding-as-image forecaster around a UniRepLKNet backbone (see module docstring).

    Args:
        backbone: a model with ``in_chans=1`` exposing ``forward_features``,
            ``forward_head(f, pre_logits=True)`` and ``num_features``.
        seq_len, pred_len: input and forecast lengths.
        n_vars: input variables per sample (C).
        targets: indices of the forecast variables among the inputs (all
            when ``None``). Grouped / channel-independent modes forecast all.
        group_size: ``None`` joint, ``1`` channel-independent, ``g`` groups
            of ``g`` consecutive variables (C must be a multiple of g).
        d_model: embedding width; ``image_size`` the ``(H, W)`` with
            ``H * W = seq_len * d_model`` (most square when ``None``).
        n_time_features, n_static: calendar features per step and static
            attributes per group (0: not used).
        head: ``"pooled"`` (global-average-pooled, normed features) or
            ``"flatten"`` (the whole stage-4 map).
        season: a seasonal period (``<= seq_len``) to anchor the forecast on:
            the output is the seasonal-naive forecast with that period (on the
            RevIN-normalised scale) plus what the network adds, so a fresh model
            starts as the seasonal naive forecast and learns the correction
            (``None``: no anchor).
        linear_skip: add a linear map lookback → horizon of each target's own
            window (normalised per window as RevIN does, weights shared across
            targets) to the forecast: the backbone then forecasts a correction
            to it. It starts at zero; :func:`fit_linear_skip` sets it by ridge
            regression (closed form) and freezes it. The head starts at zero
            too, so the model starts AS that linear forecast. Exclusive with
            ``season``.
        layout_period: lay the embedded window out by this period (TimesNet's
            idea): the last ``n = seq_len // p`` whole periods become ``n`` rows
            of ``p`` columns for each of the ``d_model`` embedding channels,
            stacked, so the image is ``(d_model * n) x p`` and vertically
            neighbouring pixels are one period apart (the same phase of
            consecutive cycles); older steps that do not fill a period are left
            out of the image (the linear skip still sees them). ``None``: the
            row-major reshape of ``image_size``. Needs ``2 <= p`` and ``n >= 1``.

    The backbone's correction is multiplied by the buffer ``correction_scale``
    (1 by default; :func:`choose_correction_scale` picks it on validation). With
    the linear skip the scale multiplies everything training added to the ridge
    forecast (the de-normalised network output, RevIN's affine map included),
    so at 0 the model is exactly the skip and the backbone is not run.
    """

    def __init__(
        self,
        backbone: nn.Module,
        seq_len: int,
        pred_len: int,
        n_vars: int,
        targets: Sequence[int] | None = None,
        group_size: int | None = None,
        d_model: int = 64,
        image_size: tuple[int | None, int | None] | None = None,
        n_time_features: int = 0,
        n_static: int = 0,
        revin: bool = True,
        revin_affine: bool = True,
        dropout: float = 0.05,
        head: str = "pooled",
        head_dropout: float = 0.0,
        season: int | None = None,
        linear_skip: bool = False,
        layout_period: int | None = None,
    ) -> None:
        super().__init__()
        if season is not None and not 1 <= season <= seq_len:
            raise ValueError(f"season must be between 1 and seq_len ({seq_len}), got {season}")
        if season is not None and linear_skip:
            raise ValueError("season (seasonal-naive anchor) and linear_skip are exclusive")
        self.season = season
        self.seq_len, self.pred_len, self.n_vars = seq_len, pred_len, n_vars
        self.targets = list(range(n_vars)) if targets is None else list(targets)
        if not self.targets or any(not 0 <= t < n_vars for t in self.targets):
            raise ValueError(f"targets {self.targets} must index the {n_vars} input variables")
        self.group_size = n_vars if group_size is None else group_size
        if self.group_size < 1 or n_vars % self.group_size:
            raise ValueError(f"{n_vars} variables cannot be split into groups of {group_size}")
        self.n_groups = n_vars // self.group_size
        if self.n_groups > 1 and self.targets != list(range(n_vars)):
            raise ValueError(
                "channel-independent / grouped mode forecasts every input variable; "
                "for a subset of targets (MS) use joint mode (group_size=None) or S"
            )
        self.n_out = len(self.targets) if self.n_groups == 1 else self.group_size
        self.revin = RevIN(self.group_size, affine=revin_affine) if revin else None
        self.embed = SeriesEmbedding(self.group_size, d_model, n_time_features, n_static, dropout)
        self.layout_period = layout_period
        if layout_period is not None:
            if not 2 <= layout_period <= seq_len:
                raise ValueError(f"layout_period must be between 2 and seq_len ({seq_len}), got {layout_period}")
            if image_size is not None:
                raise ValueError("give image_size or layout_period, not both")
            self.image_size = (d_model * (seq_len // layout_period), layout_period)
        else:
            h, w = image_size if image_size is not None else (None, None)
            self.image_size = image_shape(seq_len, d_model, h, w)
        self.backbone = backbone
        if head not in ("pooled", "flatten"):
            raise ValueError(f"head must be 'pooled' or 'flatten', got {head!r}")
        self.head_type = head
        if head == "pooled":
            in_features = int(backbone.num_features)
        else:
            with torch.no_grad():
                was_training = backbone.training
                backbone.eval()
                in_features = backbone.forward_features(torch.zeros(1, 1, *self.image_size)).numel()
                backbone.train(was_training)
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(in_features, pred_len * self.n_out))
        if season is None and not linear_skip:
            nn.init.trunc_normal_(self.head[1].weight, std=0.02)
        else:  # start exactly at the seasonal-naive anchor / the linear skip
            nn.init.zeros_(self.head[1].weight)
        nn.init.zeros_(self.head[1].bias)
        self.skip = nn.Linear(seq_len, pred_len) if linear_skip else None
        if self.skip is not None:
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)
        self.register_buffer("correction_scale", torch.ones(()))

    def _group(self, x: Tensor) -> Tensor:
        """B x L x C → (B * n_groups) x L x group_size."""
        b, length, _ = x.shape
        grouped = x.reshape(b, length, self.n_groups, self.group_size).permute(0, 2, 1, 3)
        return grouped.reshape(-1, length, self.group_size)

    def to_image(self, x: Tensor, x_mark: Tensor | None = None, static: Tensor | None = None) -> Tensor:
        """Embed grouped, normalised windows ((B * n_groups) x L x group_size) into (B * n_groups) x 1 x H x W."""
        n = self.n_groups
        if x_mark is not None and n > 1:
            x_mark = x_mark.repeat_interleave(n, dim=0)
        if static is not None:
            if n > 1 and (static.ndim != 3 or static.shape[1] != n):
                raise ValueError(
                    f"static features must be B x {n} groups x S in grouped mode, got {tuple(static.shape)}"
                )
            static = static.reshape(x.shape[0], -1)
        embedded = self.embed(x, x_mark, static)
        if self.layout_period is None:
            return series_to_image(embedded, *self.image_size)
        p = self.layout_period
        n = self.seq_len // p
        b, _, d = embedded.shape
        cycles = embedded[:, self.seq_len - n * p:].reshape(b, n, p, d)  # B x cycles x phase x channel
        return cycles.permute(0, 3, 1, 2).reshape(b, 1, d * n, p)

    @property
    def _out_channels(self) -> list[int] | None:
        """Channels of a group that the output columns are (None: all of them)."""
        return None if self.n_groups > 1 else self.targets

    def skip_inputs(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-window normalised target histories for the linear skip.

        ``x`` B x L x C → ``(xs, mean, std)``: ``xs`` (B * n_groups) x L x n_out,
        ``mean``/``std`` (B * n_groups) x 1 x n_out, with ``x = xs * std + mean``
        (RevIN's statistics, without its affine map).
        """
        xg = self._group(x)
        if self._out_channels is not None:
            xg = xg[..., self._out_channels]
        mean = xg.mean(dim=1, keepdim=True).detach()
        eps = self.revin.eps if self.revin is not None else 1e-5
        std = torch.sqrt(xg.var(dim=1, keepdim=True, unbiased=False) + eps).detach()
        return (xg - mean) / std, mean, std

    def group_targets(self, y: Tensor) -> Tensor:
        """B x pred_len x outputs (a target batch) → (B * n_groups) x pred_len x n_out, as :meth:`skip_inputs`."""
        b = y.shape[0]
        return y.reshape(b, self.pred_len, self.n_groups, self.n_out).permute(0, 2, 1, 3).reshape(
            b * self.n_groups, self.pred_len, self.n_out)

    def _network(self, xg: Tensor, x_mark: Tensor | None, static: Tensor | None, rows: int) -> Tensor:
        """Embedding → image → backbone → head: rows x pred_len x n_out on the (RevIN-)normalised scale."""
        feats = self.backbone.forward_features(self.to_image(xg, x_mark, static))
        if self.head_type == "pooled":
            feats = self.backbone.forward_head(feats, pre_logits=True)
        return self.head(feats.flatten(1)).reshape(rows, self.pred_len, self.n_out)

    def forward(self, inputs: Inputs) -> Tensor:
        """Forecast B x pred_len x len(targets) from a batch dict or a B x seq_len x C tensor."""
        x, x_mark, static = _unpack(inputs)
        _check_x(x, self.seq_len, self.n_vars)
        b, n = x.shape[0], self.n_groups
        xg = self._group(x)
        if self.revin is not None:
            xg, stats = self.revin.normalize(xg)
        if self.skip is not None:  # the ridge forecast + the share g of everything training added to it
            xs, mean, std = self.skip_inputs(x)
            out = self.skip(xs.transpose(1, 2)).transpose(1, 2) * std + mean
            if float(self.correction_scale) != 0.0:  # at 0: the linear skip alone, no backbone pass
                corr = self._network(xg, x_mark, static, b * n)
                corr = self.revin.denormalize(corr, stats, self._out_channels) - mean if self.revin is not None else corr
                out = out + self.correction_scale * corr
        else:
            out = self._network(xg, x_mark, static, b * n) * self.correction_scale
            if self.season is not None:
                idx = self.seq_len - self.season + torch.arange(self.pred_len, device=xg.device) % self.season
                anchor = xg[:, idx]
                out = out + (anchor if n > 1 else anchor[..., self.targets])
            if self.revin is not None:
                out = self.revin.denormalize(out, stats, self._out_channels)
        return out.reshape(b, n, self.pred_len, self.n_out).permute(0, 2, 1, 3).reshape(b, self.pred_len, -1)

    def reparameterize(self) -> ForecastModel:
        """Fuse the backbone into its deploy structure (in place)."""
        self.backbone.reparameterize()
        return self

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute backbone blocks in backward to save memory (the engine's ``grad_checkpointing``)."""
        self.backbone.set_grad_checkpointing(enable)


# ----------------------------------------------------------------------------- baselines


class NaiveForecast(nn.Module):
    """Repeat the last observed value of each target over the horizon."""

    def __init__(self, pred_len: int, targets: Sequence[int]) -> None:
        super().__init__()
        self.pred_len, self.targets = pred_len, list(targets)

    def forward(self, inputs: Inputs) -> Tensor:
        x, _, _ = _unpack(inputs)
        return x[:, -1:, self.targets].expand(-1, self.pred_len, -1)


class SeasonalNaiveForecast(nn.Module):
    """Repeat the last full season: step h of the horizon copies step ``L - period + (h mod period)``."""

    def __init__(self, pred_len: int, period: int, targets: Sequence[int], seq_len: int | None = None) -> None:
        super().__init__()
        if period < 1 or (seq_len is not None and period > seq_len):
            raise ValueError(f"seasonal period {period} must be between 1 and seq_len ({seq_len})")
        self.pred_len, self.period, self.targets = pred_len, period, list(targets)

    def forward(self, inputs: Inputs) -> Tensor:
        x, _, _ = _unpack(inputs)
        length = x.shape[1]
        if self.period > length:
            raise ValueError(f"seasonal period {self.period} exceeds the input length {length}")
        idx = length - self.period + torch.arange(self.pred_len, device=x.device) % self.period
        return x[:, idx][..., self.targets]


def moving_average(x: Tensor, kernel: int) -> Tensor:
    """Centred moving average over time of B x L x C (edges padded by repetition), same length."""
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"moving-average kernel must be odd and positive, got {kernel}")
    pad = (kernel - 1) // 2
    padded = F.pad(x.transpose(1, 2), (pad, pad), mode="replicate")
    return F.avg_pool1d(padded, kernel, stride=1).transpose(1, 2)


class LinearForecast(nn.Module):
    """DLinear-like baseline: moving-average trend + remainder, each mapped lookback → horizon by a linear layer.

    The two layers are shared across variables (as DLinear with ``individual=False``).
    """

    def __init__(self, seq_len: int, pred_len: int, targets: Sequence[int], kernel: int = 25) -> None:
        super().__init__()
        kernel = min(kernel, seq_len if seq_len % 2 else seq_len - 1)
        self.seq_len, self.pred_len, self.targets, self.kernel = seq_len, pred_len, list(targets), max(kernel, 1)
        self.seasonal = nn.Linear(seq_len, pred_len)
        self.trend = nn.Linear(seq_len, pred_len)
        for layer in (self.seasonal, self.trend):
            nn.init.constant_(layer.weight, 1.0 / seq_len)
            nn.init.zeros_(layer.bias)

    def forward(self, inputs: Inputs) -> Tensor:
        x, _, _ = _unpack(inputs)
        _check_x(x, self.seq_len)
        x = x[..., self.targets]
        trend = moving_average(x, self.kernel)
        out = self.seasonal((x - trend).transpose(1, 2)) + self.trend(trend.transpose(1, 2))
        return out.transpose(1, 2)


def detect_period(series: np.ndarray, max_period: int | None = None, min_corr: float = 0.2) -> int:
    """Dominant seasonal period of a 1-D series from its autocorrelation.

    The series is detrended by a centred moving average longer than any
    candidate period (a straight-line fit when it is too short). A candidate
    lag (2..max_period) is a local maximum of the autocorrelation that reaches
    ``min_corr`` and rises at least ``min_corr`` above the lowest value at a
    shorter lag (so the slow decay of a trend or random walk does not count).
    The shortest candidate within 10% of the best wins (a multiple of the
    season does not win by noise); 1 when there is none (no seasonality: the
    seasonal naive forecast is then the naive one).
    """
    y = np.asarray(series, dtype=np.float64).reshape(-1)
    y = y[np.isfinite(y)]
    n = len(y)
    max_period = min(max_period or n // 3, n // 3)
    if max_period < 2:
        return 1
    w = 2 * max_period + 1
    if n >= 2 * w:
        y = y[w // 2 : n - w // 2] - np.convolve(y, np.ones(w) / w, mode="valid")
    else:
        t = np.arange(n)
        y = y - np.polyval(np.polyfit(t, y, 1), t)
    n = len(y)
    max_period = min(max_period, n // 2)
    y = y - y.mean()
    spec = np.fft.rfft(y, 2 * n)
    acf = np.fft.irfft(spec * np.conj(spec))[: max_period + 2]
    if acf[0] <= 0:
        return 1
    acf = acf / acf[0]
    lags = np.arange(2, max_period + 1)
    is_peak = (acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1])
    rise = acf[lags] - np.minimum.accumulate(acf[1:max_period])
    good = is_peak & (acf[lags] >= min_corr) & (rise >= min_corr)
    if not good.any():
        return 1
    cand = lags[good]
    return int(cand[acf[cand] >= 0.9 * acf[cand].max()][0])


# ----------------------------------------------------------------------------- training and evaluation helpers


def forecast_loss(output: Tensor, target: Tensor) -> Tensor:
    """MSE on the (normalised) scale of the data."""
    return F.mse_loss(output, target)


class BatchedWindows(torch.utils.data.Dataset):
    """A window dataset whose DataLoader fetches each batch with one vectorised ``windows.batch(indices)``.

    ``DataLoader`` calls ``__getitems__`` with a whole batch of indices; with
    :func:`passthrough_collate` the result is the batch itself (no per-window
    dicts, slices and ``default_collate`` stacking). ``__getitem__`` still
    returns single windows.
    """

    def __init__(self, windows: Any) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> Any:
        return self.windows[i]

    def __getitems__(self, indices: list[int]) -> Any:
        return self.windows.batch(indices)


def passthrough_collate(batch: Any) -> Any:
    """Collate for :class:`BatchedWindows`: the batch is already stacked."""
    return batch


def forecast_loaders(data: Any, config: Any, eval_batch_size: int | None = None) -> dict[str, Any]:
    """Engine loaders for a :class:`~unireplknet.modalities.series.datasets.ForecastData`.

    Train is shuffled, seeded and resumable (last partial batch dropped; the
    engine's :class:`~unireplknet.engine.loader.ResumableSampler`); val and test
    keep their order and **every window** (``drop_last=False``). ``config`` is
    an :class:`unireplknet.engine.EngineConfig`. Windows are sliced a batch at
    a time (:class:`BatchedWindows`) when the datasets have ``batch()``;
    evaluation batches are ``eval_batch_size`` (default ``max(batch_size, 128)``:
    no gradients, fewer calls).
    """
    from torch.utils.data import DataLoader

    from unireplknet.engine.distributed import get_info
    from unireplknet.engine.loader import ResumableSampler, ShardSampler, make_loader

    batch = min(config.batch_size, len(data.train))
    eval_batch = eval_batch_size or max(config.batch_size, 128)
    if not all(hasattr(ds, "batch") for ds in (data.train, data.val, data.test)):
        return {
            "train": make_loader(data.train, config, train=True, batch_size=batch),
            "val": make_loader(data.val, config, train=False, batch_size=eval_batch),
            "test": make_loader(data.test, config, train=False, batch_size=eval_batch),
        }
    info = get_info()
    pin = torch.cuda.is_available() and config.device != "cpu"

    def loader(ds: Any, train: bool) -> DataLoader:
        if len(ds) == 0:
            raise ValueError("cannot build a loader over an empty dataset")
        sampler = ResumableSampler(ds, info, shuffle=True, seed=config.seed) if train else ShardSampler(ds, info)
        if train and len(sampler) < batch:
            raise ValueError(f"the training set has {len(sampler)} samples per process, fewer than batch_size={batch}")
        return DataLoader(BatchedWindows(ds), batch_size=batch if train else eval_batch, sampler=sampler,
                          drop_last=train, num_workers=config.num_workers, collate_fn=passthrough_collate,
                          pin_memory=pin, generator=torch.Generator())

    return {"train": loader(data.train, True), "val": loader(data.val, False), "test": loader(data.test, False)}


@torch.no_grad()
def _evaluate(
    model: nn.Module, loader: Any, to_device: Callable[[Any], Any], meter: Any, autocast: Callable | None = None
) -> dict[str, float]:
    was_training = model.training
    model.eval()
    for inputs, target in loader:
        inputs, target = to_device((inputs, target))
        if autocast is not None:
            with autocast():
                pred = model(inputs)
        else:
            pred = model(inputs)
        meter.update(pred.float(), target.float())
    model.train(was_training)
    return meter.compute()


def _mover(device: str | torch.device) -> Callable[[Any], Any]:
    def move(obj: Any) -> Any:
        if isinstance(obj, Tensor):
            return obj.to(device)
        if isinstance(obj, Mapping):
            return {k: move(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(move(v) for v in obj)
        return obj

    return move


def evaluate_forecaster(
    model: nn.Module, loader: Any, device: str | torch.device = "cpu", scaler: Any = None,
    columns: Sequence[int] | None = None,
) -> dict[str, float]:
    """Per-sample averaged MSE/MAE of ``model`` over ``loader`` (plus original units with a scaler)."""
    from unireplknet.modalities.series.datasets import ForecastMeter

    return _evaluate(model.to(device), loader, _mover(device), ForecastMeter(scaler, columns))


def make_evaluate_fn(scaler: Any = None, columns: Sequence[int] | None = None) -> Callable[..., dict[str, float]]:
    """An ``evaluate_fn(model, loader, ctx)`` for :class:`unireplknet.engine.Trainer` (keys mse, mae, n)."""
    from unireplknet.modalities.series.datasets import ForecastMeter

    def evaluate_fn(model: nn.Module, loader: Any, ctx: Any) -> dict[str, float]:
        return _evaluate(model, loader, ctx.to_device, ForecastMeter(scaler, columns), ctx.autocast)

    return evaluate_fn


def _window_batches(dataset: Any, batch_size: int) -> Any:
    """(inputs, y) batches over every window of ``dataset`` in order (vectorised when it has ``batch()``)."""
    if hasattr(dataset, "batch"):
        for start in range(0, len(dataset), batch_size):
            yield dataset.batch(list(range(start, min(start + batch_size, len(dataset)))))
        return
    from torch.utils.data import DataLoader

    yield from DataLoader(dataset, batch_size=batch_size, shuffle=False)


#: ridge penalties tried by :func:`fit_linear_skip`, per training row (scale-free)
SKIP_RIDGE_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


@torch.no_grad()
def fit_linear_skip(
    model: ForecastModel, train: Any, val: Any, ridge: Sequence[float] = SKIP_RIDGE_GRID, batch_size: int = 512,
) -> dict[str, Any]:
    """Fit ``model.skip`` by ridge regression on the training windows; the penalty is chosen on validation.

    In the per-window normalised space of :meth:`ForecastModel.skip_inputs`, every target's
    normalised horizon is regressed on its normalised lookback (one map shared by all
    targets, intercept not penalised), for each penalty ``λ * n_rows`` of ``ridge``; the one
    with the lowest validation MSE on the data's scale (what the evaluation reports) is kept.
    Flat training windows (standard deviation under ``10 * sqrt(eps)``) are left out of the
    fit: normalised by their own near-zero spread, their horizons would be huge outliers.
    The skip is then frozen (``requires_grad=False``): training fits the backbone's
    correction to it. ``train``/``val`` are window datasets (``ForecastWindows``). Returns
    ``ridge`` (the chosen λ), ``val_mse`` per λ and ``rows`` (training rows used).
    """
    if model.skip is None:
        raise ValueError("this ForecastModel has no linear skip (build it with linear_skip=True)")
    device = model.skip.weight.device
    length = model.seq_len
    batch_size = max(1, min(batch_size, (1 << 22) // (length * model.n_vars)))  # about 32 MB of doubles a batch
    gram = torch.zeros(length + 1, length + 1, dtype=torch.float64)
    cross = torch.zeros(length + 1, model.pred_len, dtype=torch.float64)
    rows = 0

    def design(inputs: Any) -> tuple[Tensor, Tensor, Tensor]:
        x, _, _ = _unpack(inputs)
        xs, mean, std = model.skip_inputs(x.to(device).double())
        feats = xs.permute(0, 2, 1).reshape(-1, length)
        return torch.cat([feats, feats.new_ones(len(feats), 1)], 1), mean, std

    min_std = 10.0 * (model.revin.eps if model.revin is not None else 1e-5) ** 0.5
    for inputs, y in _window_batches(train, batch_size):
        a, mean, std = design(inputs)
        yn = (model.group_targets(y.to(device).double()) - mean) / std
        yn = yn.permute(0, 2, 1).reshape(-1, model.pred_len)
        keep = std.permute(0, 2, 1).reshape(-1) > min_std  # a flat window would blow its horizon up to outliers
        a, yn = a[keep], yn[keep]
        gram += (a.T @ a).cpu()
        cross += (a.T @ yn).cpu()
        rows += len(a)
    if rows == 0:
        raise ValueError("the linear skip has no training window to fit: every training window is flat (a constant "
                         "series?); pass --linear-skip none")
    weights = []
    for lam in ridge:
        penalty = torch.full((length + 1,), float(lam) * rows, dtype=torch.float64)
        penalty[-1] = 0.0
        weights.append(torch.linalg.solve(gram + torch.diag(penalty), cross))
    stacked = torch.stack(weights).to(device)  # K x (L + 1) x P
    sq_err = torch.zeros(len(ridge), dtype=torch.float64)
    count = 0
    for inputs, y in _window_batches(val, batch_size):
        a, mean, std = design(inputs)
        yg = model.group_targets(y.to(device).double()).permute(0, 2, 1).reshape(-1, model.pred_len)
        scale = std.permute(0, 2, 1).reshape(-1, 1)
        shift = mean.permute(0, 2, 1).reshape(-1, 1)
        pred = torch.einsum("nl,klp->knp", a, stacked) * scale + shift
        sq_err += ((pred - yg) ** 2).sum(dim=(1, 2)).cpu()
        count += yg.numel()
    val_mse = (sq_err / max(count, 1)).tolist() if count else [float("nan")] * len(ridge)
    best = int(np.nanargmin(val_mse)) if count else len(ridge) // 2
    w = stacked[best].float()
    model.skip.weight.copy_(w[:-1].T)
    model.skip.bias.copy_(w[-1])
    model.skip.requires_grad_(False)
    logger.info("linear skip: ridge %g chosen on validation (MSE per ridge: %s)", ridge[best],
                dict(zip(ridge, (round(v, 5) for v in val_mse))))
    return {"ridge": float(ridge[best]), "val_mse": dict(zip((float(r) for r in ridge), val_mse)), "rows": rows}


#: correction scales tried by :func:`choose_correction_scale`
CORRECTION_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


@torch.no_grad()
def choose_correction_scale(
    model: ForecastModel, loader: Any, grid: Sequence[float] = CORRECTION_GRID,
    to_device: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Set ``model.correction_scale`` to the value of ``grid`` with the lowest MSE on ``loader`` (validation).

    The forecast is affine in the scale, so two passes (scale 0 and 1) give the MSE of every value
    of ``grid`` exactly. Returns ``scale`` and ``mse`` per scale.
    """
    move = to_device or _mover(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    sq = torch.zeros(len(grid), dtype=torch.float64)
    count = 0
    for inputs, y in loader:
        inputs, y = move((inputs, y))
        model.correction_scale.fill_(0.0)
        base = model(inputs).double()
        model.correction_scale.fill_(1.0)
        full = model(inputs).double()
        g = torch.tensor(list(grid), dtype=torch.float64, device=base.device).view(-1, 1, 1, 1)
        sq += (((base + g * (full - base)) - y.double()) ** 2).sum(dim=(1, 2, 3)).cpu()
        count += y.numel()
    mse = (sq / max(count, 1)).tolist()
    best = int(np.argmin(mse))
    model.correction_scale.fill_(float(grid[best]))
    model.train(was_training)
    logger.info("backbone correction scale %g chosen on validation (MSE per scale: %s)", grid[best],
                dict(zip(grid, (round(v, 5) for v in mse))))
    return {"scale": float(grid[best]), "mse": dict(zip((float(v) for v in grid), mse))}


@torch.no_grad()
def predict(model: nn.Module, dataset: Any, indices: Sequence[int], device: str | torch.device = "cpu") -> Tensor:
    """Forecasts for the windows ``indices`` of ``dataset``: len(indices) x pred_len x targets (on CPU)."""
    move = _mover(device)
    was_training = model.training
    model.eval()
    outs = []
    for i in indices:
        inputs, _ = dataset[i]
        inputs = move({k: v.unsqueeze(0) for k, v in inputs.items()})
        outs.append(model(inputs).cpu())
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)
