"""Forecast model (RevIN → embedding → 1xHxW image → backbone → head) and the baselines."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unireplknet.modalities.series.transforms import RevIN, SeriesEmbedding, TokenEmbedding, image_shape, series_to_image
from unireplknet.tasks.forecasting import (
    ForecastModel,
    LinearForecast,
    NaiveForecast,
    SeasonalNaiveForecast,
    build_backbone,
    detect_period,
    evaluate_forecaster,
    moving_average,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run faster on one thread on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = {"depths": (1, 1, 1, 1), "dims": (8, 16, 24, 32), "kernel_sizes": ((3,), (3,), (3,), (3,))}


def _model(n_vars=3, seq_len=24, pred_len=12, **kw) -> ForecastModel:
    torch.manual_seed(0)
    return ForecastModel(build_backbone(**kw.pop("backbone", TINY)), seq_len, pred_len, n_vars, d_model=16, **kw)


def test_revin_round_trip_and_statistics():
    torch.manual_seed(0)
    rev = RevIN(3)
    with torch.no_grad():
        rev.weight.uniform_(0.5, 2.0)
        rev.bias.normal_()
    x = torch.randn(4, 30, 3) * torch.tensor([1.0, 10.0, 0.1]) + torch.tensor([0.0, 5.0, -3.0])
    xn, stats = rev.normalize(x)
    plain, _ = RevIN(3, affine=False).normalize(x)
    torch.testing.assert_close(plain.mean(1), torch.zeros(4, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(plain.var(1, unbiased=False), torch.ones(4, 3), atol=5e-3, rtol=0)  # eps=1e-5
    torch.testing.assert_close(rev.denormalize(xn, stats), x, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rev.denormalize(xn[..., [2]], stats, channels=[2]), x[..., [2]], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="B x L x 3"):
        rev.normalize(torch.zeros(2, 5, 4))


def test_embedding_and_image_reshape():
    emb = SeriesEmbedding(2, 8, n_time_features=4, n_static=3)
    x, marks, static = torch.randn(5, 6, 2), torch.randn(5, 6, 4), torch.randn(5, 3)
    out = emb(x, marks, static)
    assert out.shape == (5, 6, 8)
    with pytest.raises(ValueError, match="x_mark"):
        emb(x)
    # token conv is circular over time: rolling the input rolls the output
    tok = TokenEmbedding(2, 8)
    torch.testing.assert_close(tok(x.roll(2, dims=1)), tok(x).roll(2, dims=1), atol=1e-5, rtol=1e-5)
    assert image_shape(48, 768) == (192, 192)  # the paper's shape
    assert image_shape(96, 64) == (64, 96)
    assert image_shape(24, 16, height=8) == (8, 48) and image_shape(24, 16, width=8) == (48, 8)
    with pytest.raises(ValueError, match="holds 100 values"):
        image_shape(24, 16, 10, 10)
    with pytest.raises(ValueError, match="does not divide"):
        image_shape(24, 16, height=7)
    img = series_to_image(out, 12, 4)
    assert img.shape == (5, 1, 12, 4)
    torch.testing.assert_close(img[:, 0, :2].reshape(5, 8), out[:, 0])  # step 0 fills rows 0-1


@pytest.mark.parametrize(
    "kwargs, n_vars, out_vars",
    [({}, 3, 3), ({"targets": [2]}, 3, 1), ({"group_size": 1, "head": "flatten"}, 3, 3), ({"group_size": 2}, 4, 4)],
)
def test_forecast_model_shapes(kwargs, n_vars, out_vars):
    model = _model(n_vars, n_time_features=4, **kwargs)
    x = torch.randn(5, 24, n_vars)
    out = model({"x": x, "x_mark": torch.rand(5, 24, 4) - 0.5})
    assert out.shape == (5, 12, out_vars)
    out.square().mean().backward()
    assert model.embed.token.conv.weight.grad.abs().sum() > 0
    assert model.backbone.downsample_layers[0][0].weight.grad.abs().sum() > 0


def test_channel_independence_and_grouping():
    model = _model(3, group_size=1).eval()
    x = torch.randn(2, 24, 3)
    out = model(x)
    # each variable is forecast from its own history only, with shared weights
    x2 = x.clone()
    x2[..., 1] = torch.randn(2, 24)
    out2 = model(x2)
    torch.testing.assert_close(out2[..., [0, 2]], out[..., [0, 2]], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(x[..., [2, 1, 0]]), out[..., [2, 1, 0]], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="joint mode"):
        _model(3, group_size=1, targets=[0])
    with pytest.raises(ValueError, match="groups of 2"):
        _model(3, group_size=2)
    grouped = _model(4, group_size=2, n_static=6).eval()
    with pytest.raises(ValueError, match="B x 2 groups"):
        grouped({"x": torch.randn(2, 24, 4), "static": torch.randn(2, 6)})
    assert grouped({"x": torch.randn(2, 24, 4), "static": torch.randn(2, 2, 6)}).shape == (2, 12, 4)


def test_revin_makes_forecast_scale_equivariant_and_input_checked():
    model = _model(3, targets=[1]).eval()
    x = torch.randn(3, 24, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(x * 5.0 + 2.0), model(x) * 5.0 + 2.0, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match=r"B x 24 x 3"):
        model(torch.randn(3, 20, 3))
    with pytest.raises(ValueError, match="'x'"):
        model({"inputs": x})


def test_reparameterize_keeps_forecasts():
    model = _model(2, backbone={**TINY, "kernel_sizes": ((7,), (7,), (7,), (3,))})
    model.eval()
    x = torch.randn(2, 24, 2)
    with torch.no_grad():
        # make the BatchNorm statistics non-trivial so the fusion is really exercised
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        before = model(x)
        after = model.reparameterize()(x)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_named_variant_backbone_builds():
    bb = build_backbone("unireplknet_a")
    assert bb.num_features == 320 and bb.num_classes == 0
    with pytest.raises(ValueError, match="not both"):
        build_backbone("unireplknet_a", depths=(1, 1, 1, 1))


def test_naive_and_seasonal_naive():
    t = torch.arange(60, dtype=torch.float32)
    x = torch.stack([torch.sin(2 * math.pi * t / 12), t], -1).unsqueeze(0)  # period 12 and a ramp
    naive = NaiveForecast(5, targets=[1])(x[:, :48])
    torch.testing.assert_close(naive, torch.full((1, 5, 1), 47.0))
    seasonal = SeasonalNaiveForecast(12, period=12, targets=[0], seq_len=48)({"x": x[:, :48]})
    torch.testing.assert_close(seasonal[0, :, 0], x[0, 48:60, 0], atol=1e-5, rtol=0)
    long = SeasonalNaiveForecast(30, period=12, targets=[0])(x[:, :48])  # horizon longer than a season repeats it
    torch.testing.assert_close(long[0, 12:24], long[0, :12])
    with pytest.raises(ValueError, match="between 1 and seq_len"):
        SeasonalNaiveForecast(5, period=60, targets=[0], seq_len=48)


def test_detect_period():
    rng = np.random.default_rng(0)
    t = np.arange(600)
    series = 0.02 * t + np.sin(2 * np.pi * t / 24) + 0.1 * rng.normal(size=600)
    assert detect_period(series) == 24
    assert detect_period(np.sin(2 * np.pi * t / 52), max_period=100) == 52
    assert detect_period(np.cumsum(rng.normal(size=600))) == 1  # a random walk has no season
    assert detect_period(np.ones(3)) == 1
    assert detect_period(rng.normal(size=600)) == 1  # white noise
    import statsmodels.datasets as sm_data  # weekly CO2 shipped with statsmodels: a yearly season

    co2 = sm_data.co2.load_pandas().data["co2"].ffill().to_numpy()
    assert detect_period(co2[:1598], max_period=104) == 52


def test_moving_average_and_linear_baseline():
    x = torch.arange(10, dtype=torch.float32).reshape(1, 10, 1)
    ma = moving_average(x, 3)
    torch.testing.assert_close(ma[0, 1:-1, 0], x[0, 1:-1, 0])  # a line is its own moving average
    assert ma[0, 0, 0] == pytest.approx(1 / 3)  # replicate padding at the edge
    with pytest.raises(ValueError, match="odd"):
        moving_average(x, 4)
    lin = LinearForecast(24, 6, targets=[1], kernel=25)
    assert lin.kernel == 23
    out = lin(torch.ones(4, 24, 2) * 3.0)
    torch.testing.assert_close(out, torch.full((4, 6, 1), 3.0))  # initialised as the window mean


def test_evaluate_forecaster_on_a_perfect_model():
    t = torch.arange(40, dtype=torch.float32)
    series = torch.sin(2 * math.pi * t / 8).reshape(1, 40, 1)
    batches = [({"x": series[:, i : i + 16]}, series[:, i + 16 : i + 24]) for i in range(0, 16, 3)]
    res = evaluate_forecaster(SeasonalNaiveForecast(8, 8, [0]), batches)
    assert res["mse"] < 1e-10 and res["n"] == len(batches)
    res = evaluate_forecaster(NaiveForecast(8, [0]), batches)
    assert res["mse"] > 0.1


@pytest.mark.parametrize("group_size, targets", [(None, [1]), (1, None)])
def test_seasonal_anchor_starts_as_seasonal_naive(group_size, targets):
    """With ``season``, the output is the seasonal-naive forecast plus the network's correction."""
    model = _model(n_vars=3, seq_len=24, pred_len=12, group_size=group_size, targets=targets, season=8)
    with torch.no_grad():
        model.head[1].weight.zero_()
        model.head[1].bias.zero_()
        model.revin.weight.uniform_(0.5, 2.0)
        model.revin.bias.normal_()
    x = torch.randn(4, 24, 3) * 3 + 1
    want = SeasonalNaiveForecast(12, 8, targets or [0, 1, 2], 24)(x)
    torch.testing.assert_close(model.eval()(x), want, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="season must be between 1 and seq_len"):
        _model(seq_len=24, season=25)
