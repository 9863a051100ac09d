"""The forecaster's linear skip (ridge in closed form, penalty chosen on validation) and the correction gate."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unireplknet.modalities.series.datasets import build_forecast_data
from unireplknet.tasks import forecasting as fc

SEQ, PRED = 48, 12


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny_backbone():
    return fc.build_backbone(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), kernel_sizes=((3,), (3,), (3,), (3,)))


def _model(n_vars=1, **kw):
    torch.manual_seed(0)
    return fc.ForecastModel(_tiny_backbone(), SEQ, PRED, n_vars, d_model=8, linear_skip=True, **kw)


def _data(tmp_path, n=600, noise=0.05, trend=0.0):
    import pandas as pd

    t = np.arange(n)
    rng = np.random.default_rng(0)
    load = np.sin(2 * np.pi * t / 24) + 0.4 * np.sin(2 * np.pi * t / 8) + trend * t + noise * rng.normal(size=n)
    frame = pd.DataFrame({"date": pd.date_range("2022-01-03", periods=n, freq="h").astype(str), "load": load})
    path = tmp_path / "s.csv"
    frame.to_csv(path, index=False)
    return build_forecast_data(path, target="load", features="S", seq_len=SEQ, pred_len=PRED)


def _mse(model, ds):
    inputs, y = ds.batch(list(range(len(ds))))
    with torch.no_grad():
        return float(((model.eval()(inputs) - y) ** 2).mean())


def test_fresh_model_starts_as_the_window_mean_and_season_is_exclusive():
    model = _model().eval()
    x = torch.randn(3, SEQ, 1)
    with torch.no_grad():
        out = model(x)
    assert torch.allclose(out, x.mean(1, keepdim=True).expand(-1, PRED, -1), atol=1e-5)
    with pytest.raises(ValueError, match="exclusive"):
        fc.ForecastModel(_tiny_backbone(), SEQ, PRED, 1, d_model=8, linear_skip=True, season=24)


def test_fit_linear_skip_is_the_closed_form_ridge_and_beats_naive(tmp_path):
    data = _data(tmp_path)
    model = _model()
    info = fc.fit_linear_skip(model, data.train, data.val, ridge=(1e-4,))
    assert not model.skip.weight.requires_grad and info["rows"] == len(data.train)
    # the same regression in numpy
    x, y = (t[..., 0].double().numpy() for t in (data.train.batch(list(range(len(data.train))))[0]["x"],
                                                 data.train.batch(list(range(len(data.train))))[1]))
    mean, std = x.mean(1, keepdims=True), np.sqrt(x.var(1, keepdims=True) + 1e-5)
    a = np.c_[(x - mean) / std, np.ones(len(x))]
    pen = np.full(SEQ + 1, 1e-4 * len(x))
    pen[-1] = 0
    w = np.linalg.solve(a.T @ a + np.diag(pen), a.T @ ((y - mean) / std))
    assert np.allclose(model.skip.weight.double().numpy(), w[:-1].T, atol=1e-4)
    model.correction_scale.fill_(0.0)
    naive = fc.NaiveForecast(PRED, [0])
    assert _mse(model, data.test) < 0.1 * _mse(naive, data.test)


def test_ridge_penalty_is_chosen_on_validation(tmp_path):
    data = _data(tmp_path, noise=0.3)
    model = _model()
    info = fc.fit_linear_skip(model, data.train, data.val, ridge=(1e-6, 1e-2, 1e3))
    best = min(info["val_mse"], key=info["val_mse"].get)
    assert info["ridge"] == best
    assert info["val_mse"][1e3] > info["val_mse"][best]  # a huge penalty shrinks the map to the window mean


def test_correction_scale_is_exact_and_picks_the_validation_minimum(tmp_path):
    data = _data(tmp_path)
    model = _model()
    fc.fit_linear_skip(model, data.train, data.val, ridge=(1e-4,))
    with torch.no_grad():  # a correction that only hurts: the gate must close
        model.head[1].bias.fill_(0.5)
    loader = [data.val.batch(list(range(len(data.val))))]
    res = fc.choose_correction_scale(model, loader, grid=(0.0, 0.5, 1.0))
    assert res["scale"] == 0.0 and float(model.correction_scale) == 0.0
    for g in (0.5, 1.0):  # the two-pass formula equals a real evaluation at that scale
        model.correction_scale.fill_(g)
        assert res["mse"][g] == pytest.approx(_mse(model, data.val), rel=1e-4)
    inputs, y = loader[0]
    with torch.no_grad():  # a correction that fixes an offset of 0.3 window-stds: the gate opens
        _, _, std = model.skip_inputs(inputs["x"])
        model.head[1].bias.fill_(0.3)
    shifted = [(inputs, y + 0.3 * std)]
    assert fc.choose_correction_scale(model, shifted, grid=(0.0, 0.5, 1.0))["scale"] == 1.0


@pytest.mark.parametrize("mode", ["MS", "channel_independent"])
def test_skip_in_multivariate_modes(mode):
    torch.manual_seed(0)
    if mode == "MS":
        model = _model(n_vars=3, targets=[2])
    else:
        model = _model(n_vars=3, group_size=1)
    x = torch.randn(5, SEQ, 3)
    with torch.no_grad():
        out = model.eval()(x)
    cols = [2] if mode == "MS" else [0, 1, 2]
    assert out.shape == (5, PRED, len(cols))
    assert torch.allclose(out, x[..., cols].mean(1, keepdim=True).expand(-1, PRED, -1), atol=1e-5)
    xs, mean, std = model.skip_inputs(x)
    assert xs.shape == ((5, SEQ, 1) if mode == "MS" else (15, SEQ, 1))
    assert torch.allclose(xs * std + mean, model._group(x)[..., [2]] if mode == "MS" else model._group(x), atol=1e-5)
    y = torch.randn(5, PRED, len(cols))
    assert model.group_targets(y).shape == (5 * (1 if mode == "MS" else 3), PRED, 1)


# ----------------------------------------------------------------------------- period image layout


def test_period_layout_puts_one_cycle_per_row():
    seq, p, d = 50, 12, 3  # 4 whole cycles: the 2 oldest steps are left out of the image
    torch.manual_seed(0)
    model = fc.ForecastModel(_tiny_backbone(), seq, PRED, 1, d_model=d, layout_period=p, linear_skip=True)
    assert model.image_size == (d * 4, p)
    t = torch.arange(seq, dtype=torch.float32).view(1, seq, 1)
    stamp = t * 100 + torch.arange(d, dtype=torch.float32).view(1, 1, d)  # step * 100 + channel

    class Stamp(torch.nn.Module):
        def forward(self, x, x_mark=None, static=None):
            return stamp.expand(len(x), -1, -1)

    real_embed, model.embed = model.embed, Stamp()
    img = model.to_image(torch.zeros(1, seq, 1))
    assert img.shape == (1, 1, d * 4, p)
    for ch in range(d):
        for row in range(4):
            for col in (0, 5, p - 1):
                assert img[0, 0, ch * 4 + row, col] == (seq - 4 * p + row * p + col) * 100 + ch
    # vertical neighbours are one period apart
    assert torch.all(img[0, 0, 1:4] - img[0, 0, 0:3] == p * 100)
    model.embed = real_embed
    out = model(torch.randn(2, seq, 1))
    assert out.shape == (2, PRED, 1)
    with pytest.raises(ValueError, match="layout_period"):
        fc.ForecastModel(_tiny_backbone(), seq, PRED, 1, d_model=d, layout_period=1)
    with pytest.raises(ValueError, match="not both"):
        fc.ForecastModel(_tiny_backbone(), seq, PRED, 1, d_model=d, layout_period=p, image_size=(10, 15))


def test_layout_period_is_the_longest_that_fits_twice():
    from unireplknet.runner.forecast import layout_period_for

    assert layout_period_for([336, 48], 336) == 48
    assert layout_period_for([168, 24], 336) == 168
    assert layout_period_for([52], 104) == 52
    assert layout_period_for([200], 336) is None and layout_period_for([], 96) is None


def test_scale_zero_is_exactly_the_skip_whatever_training_changed():
    model = _model().eval()
    with torch.no_grad():
        model.skip.weight.normal_(std=0.05)
        model.revin.bias.fill_(0.5)  # trained RevIN affine and head: part of the correction, not of the skip
        model.revin.weight.fill_(1.3)
        model.head[1].bias.fill_(0.2)
        x = torch.randn(4, SEQ, 1)
        xs, mean, std = model.skip_inputs(x)
        ridge = model.skip(xs.transpose(1, 2)).transpose(1, 2) * std + mean
        model.correction_scale.fill_(0.0)
        assert torch.allclose(model(x), ridge, atol=1e-5)
        model.correction_scale.fill_(1.0)
        full = model(x)
        assert not torch.allclose(full, ridge, atol=1e-3)
        model.correction_scale.fill_(0.5)
        assert torch.allclose(model(x), ridge + 0.5 * (full - ridge), atol=1e-5)


def test_flat_training_windows_do_not_spoil_the_fit(tmp_path):
    import pandas as pd

    n = 600
    t = np.arange(n)
    load = np.sin(2 * np.pi * t / 24) + 0.4 * np.sin(2 * np.pi * t / 8)
    load[100:160] = 0.0  # a flat stretch (a sensor stuck at zero): some windows have no spread at all
    frame = pd.DataFrame({"date": pd.date_range("2022-01-03", periods=n, freq="h").astype(str), "load": load})
    frame.to_csv(tmp_path / "flat.csv", index=False)
    data = build_forecast_data(tmp_path / "flat.csv", target="load", features="S", seq_len=SEQ, pred_len=PRED)
    model = _model()
    info = fc.fit_linear_skip(model, data.train, data.val, ridge=(1e-4,))
    assert info["rows"] < len(data.train)  # the flat windows were left out
    model.correction_scale.fill_(0.0)
    assert _mse(model, data.test) < 0.01 * _mse(fc.NaiveForecast(PRED, [0]), data.test)
