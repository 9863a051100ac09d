"""Time series → single-channel image for the backbone.

The paper (after Corrformer) normalises each window per series (RevIN), embeds
it into a ``length x d_model`` latent (a circular token convolution over time,
plus a linear embedding of calendar features and, optionally, of static
per-series attributes such as station coordinates), and reshapes that latent
directly into a ``1 x H x W`` image with ``H * W = length * d_model``.

Tensors follow the ``B x L x C`` (batch, time, variables) layout of the
forecasting literature. Only torch is needed here.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "RevIN",
    "SeriesEmbedding",
    "TokenEmbedding",
    "image_shape",
    "series_to_image",
]

NormStats = tuple[Tensor, Tensor]


class RevIN(nn.Module):
    """Reversible instance normalisation over time, per sample and per variable.

    ``normalize`` subtracts each series' time mean and divides by
    ``sqrt(var + eps)``, then applies an optional learnable affine map (one
    weight and bias per variable); ``denormalize`` inverts both on a forecast.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"RevIN needs num_features >= 1, got {num_features}")
        self.num_features = num_features
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))

    def normalize(self, x: Tensor) -> tuple[Tensor, NormStats]:
        """Normalise ``x`` (B x L x C); return it with the ``(mean, std)`` needed to undo it."""
        if x.ndim != 3 or x.shape[-1] != self.num_features:
            raise ValueError(f"RevIN expects B x L x {self.num_features}, got shape {tuple(x.shape)}")
        mean = x.mean(dim=1, keepdim=True).detach()
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps).detach()
        out = (x - mean) / std
        if self.affine:
            out = out * self.weight + self.bias
        return out, (mean, std)

    def denormalize(self, y: Tensor, stats: NormStats, channels: Sequence[int] | None = None) -> Tensor:
        """Undo :meth:`normalize` on a forecast ``y`` (B x P x len(channels)).

        ``channels`` picks which input variables the columns of ``y`` are
        (all of them, in order, when ``None``).
        """
        mean, std = stats
        weight = self.weight if self.affine else None
        bias = self.bias if self.affine else None
        if channels is not None:
            idx = torch.as_tensor(list(channels), device=y.device, dtype=torch.long)
            mean, std = mean.index_select(-1, idx), std.index_select(-1, idx)
            if self.affine:
                weight, bias = weight.index_select(0, idx), bias.index_select(0, idx)
        if y.shape[-1] != mean.shape[-1]:
            raise ValueError(f"forecast has {y.shape[-1]} variables but the statistics have {mean.shape[-1]}")
        if self.affine:
            y = (y - bias) / (weight + self.eps * self.eps)
        return y * std + mean


class TokenEmbedding(nn.Module):
    """Conv1d over time (kernel 3, circular padding, no bias) from ``c_in`` variables to ``d_model``."""

    def __init__(self, c_in: int, d_model: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, d_model, kernel_size=3, padding=1, padding_mode="circular", bias=False)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x: Tensor) -> Tensor:
        """B x L x c_in → B x L x d_model."""
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


class SeriesEmbedding(nn.Module):
    """Token conv + time-feature embedding + optional static (e.g. geo) embedding, summed.

    ``n_time_features`` is the number of calendar features per step (0: none);
    ``n_static`` the number of static attributes per sample (0: none), which
    are embedded once and broadcast over time.
    """

    def __init__(
        self, c_in: int, d_model: int, n_time_features: int = 0, n_static: int = 0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.token = TokenEmbedding(c_in, d_model)
        self.time = nn.Linear(n_time_features, d_model, bias=False) if n_time_features > 0 else None
        self.static = nn.Linear(n_static, d_model) if n_static > 0 else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, x_mark: Tensor | None = None, static: Tensor | None = None) -> Tensor:
        """``x`` B x L x c_in, ``x_mark`` B x L x n_time_features, ``static`` B x n_static → B x L x d_model."""
        out = self.token(x)
        if self.time is not None:
            if x_mark is None:
                raise ValueError("this embedding was built with time features: pass x_mark (B x L x F)")
            out = out + self.time(x_mark)
        if self.static is not None:
            if static is None:
                raise ValueError("this embedding was built with static features: pass static (B x n_static)")
            out = out + self.static(static).unsqueeze(1)
        return self.dropout(out)


def image_shape(length: int, d_model: int, height: int | None = None, width: int | None = None) -> tuple[int, int]:
    """Choose ``(H, W)`` with ``H * W == length * d_model``.

    Given neither, the most square factorisation (H <= W) is used, e.g.
    48 x 768 → 192 x 192 as in the paper.
    """
    total = length * d_model
    if height is not None and width is not None:
        if height * width != total:
            raise ValueError(f"image {height}x{width} holds {height * width} values but length*d_model = {total}")
        return height, width
    if height is not None or width is not None:
        given = height if height is not None else width
        if given <= 0 or total % given:
            raise ValueError(f"image side {given} does not divide length*d_model = {total}")
        other = total // given
        return (given, other) if height is not None else (other, given)
    h = math.isqrt(total)
    while total % h:
        h -= 1
    return h, total // h


def series_to_image(embedded: Tensor, height: int, width: int) -> Tensor:
    """Reshape a B x L x D latent to B x 1 x H x W (row-major, so time step l fills a contiguous band)."""
    b, length, d = embedded.shape
    if height * width != length * d:
        raise ValueError(f"cannot reshape {length}x{d} latent to a {height}x{width} image")
    return embedded.reshape(b, 1, height, width)
