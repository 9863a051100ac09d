"""Data conventions of the forecasting literature: splits, train-only scaling, windows, metrics, bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from unireplknet.modalities.series.datasets import (
    ForecastMeter,
    ForecastWindows,
    build_forecast_data,
    infer_freq,
    load_global_weather,
    read_series_csv,
    split_borders,
    time_features,
)


def _frame(n: int, freq: str = "h", cols: int = 2, start: str = "2020-01-01") -> pd.DataFrame:
    t = np.arange(n, dtype=np.float64)
    data = {"date": pd.date_range(start, periods=n, freq=freq).astype(str)}
    for j in range(cols):
        data[f"v{j}"] = np.sin(2 * np.pi * t / 24 + j) + 0.01 * t * (j + 1)
    data["OT"] = np.cos(2 * np.pi * t / 12) + 0.001 * t
    return pd.DataFrame(data)


def _csv(tmp_path, frame: pd.DataFrame, name: str = "series.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_ratio_borders_follow_70_10_20_with_lookback():
    assert split_borders(1000, 96, "ratio") == [(0, 700), (604, 800), (704, 1000)]
    # int() rounding of train and test, val takes the rest
    assert split_borders(1001, 10, "ratio") == [(0, 700), (690, 801), (791, 1001)]


def test_ett_borders_are_12_4_4_months():
    h = split_borders(20 * 720, 96, "etth")
    assert h == [(0, 8640), (8640 - 96, 11520), (11520 - 96, 14400)]
    m = split_borders(20 * 720 * 4, 96, "ettm")
    assert m == [(0, 34560), (34560 - 96, 46080), (46080 - 96, 57600)]
    with pytest.raises(ValueError, match="20 months"):
        split_borders(1000, 96, "etth")


def test_etth_file_name_selects_month_split(tmp_path):
    path = _csv(tmp_path, _frame(20 * 720 + 50), "ETTh1.csv")
    data = build_forecast_data(path, target="OT", features="S", seq_len=96, pred_len=24)
    assert data.borders == [(0, 8640), (8544, 11520), (11424, 14400)]  # rows past 20 months unused
    assert len(data.test) == 2880 - 24 + 1


def test_window_counts_and_contents(tmp_path):
    n, seq, pred = 500, 48, 12
    frame = _frame(n)
    data = build_forecast_data(_csv(tmp_path, frame), features="M", seq_len=seq, pred_len=pred)
    (_t0, t1), (v0, v1), (s0, s1) = data.borders
    assert (t1, v1, s1) == (350, 400, 500) and v0 == t1 - seq and s0 == v1 - seq
    n_test = n - v1
    assert len(data.test) == (s1 - s0) - seq - pred + 1 == n_test - pred + 1
    assert len(data.val) == (v1 - v0) - seq - pred + 1
    assert len(data.train) == t1 - seq - pred + 1
    raw = frame[["v0", "v1", "OT"]].to_numpy(np.float32)
    scaled = (raw - data.scaler.mean) / data.scaler.std
    inputs, y = data.test[0]
    np.testing.assert_allclose(inputs["x"].numpy(), scaled[s0 : s0 + seq], atol=1e-5)
    np.testing.assert_allclose(y.numpy(), scaled[v1 : v1 + pred], atol=1e-5)  # first target = first test row
    inputs, y = data.test[len(data.test) - 1]
    np.testing.assert_allclose(y.numpy()[-1], scaled[-1], atol=1e-5)  # last target = last row
    assert inputs["x_mark"].shape == (seq, 4) and inputs["y_mark"].shape == (pred, 4)


def test_scaler_fit_on_train_split_only(tmp_path):
    frame = _frame(400)
    frame.loc[300:, "OT"] += 1000.0  # a level shift outside the training slice must not leak into the scaler
    data = build_forecast_data(_csv(tmp_path, frame), target="OT", features="S", seq_len=24, pred_len=8)
    train_ot = frame["OT"].to_numpy()[: data.borders[0][1]]
    np.testing.assert_allclose(data.scaler.mean, [train_ot.mean()], rtol=1e-5)
    np.testing.assert_allclose(data.scaler.std, [train_ot.std()], rtol=1e-5)
    assert data.test[0][1].mean() > 100  # test values are far out on the train scale


def test_feature_modes_select_inputs_and_targets(tmp_path):
    path = _csv(tmp_path, _frame(300))
    m = build_forecast_data(path, features="M", seq_len=24, pred_len=8)
    s = build_forecast_data(path, target="OT", features="S", seq_len=24, pred_len=8)
    ms = build_forecast_data(path, target="v1", features="MS", seq_len=24, pred_len=8, label_len=12)
    assert m.columns == ["v0", "v1", "OT"] and m.targets == [0, 1, 2]
    assert s.columns == ["OT"] and s.targets == [0]
    assert ms.targets == [1] and ms.target_names == ["v1"]
    inputs, y = ms.test[3]
    assert inputs["x"].shape == (24, 3) and y.shape == (8, 1) and inputs["y_mark"].shape == (20, 4)
    torch.testing.assert_close(inputs["y_mark"][:12], inputs["x_mark"][-12:])


def test_test_loader_keeps_last_partial_batch_and_metrics_are_per_sample(tmp_path):
    from unireplknet.engine.config import EngineConfig
    from unireplknet.tasks.forecasting import forecast_loaders

    data = build_forecast_data(_csv(tmp_path, _frame(300)), features="M", seq_len=24, pred_len=8)
    cfg = EngineConfig.from_dict({"batch_size": 7, "num_workers": 0, "device": "cpu"})
    loaders = forecast_loaders(data, cfg, eval_batch_size=7)
    sizes = [y.shape[0] for _, y in loaders["test"]]
    assert sum(sizes) == len(data.test) and sizes[-1] == len(data.test) % 7  # 53 windows: last batch of 4
    meter = ForecastMeter()
    preds, trues = [], []
    for inputs, y in loaders["test"]:
        p = inputs["x"][:, -1:, :].expand_as(y)
        meter.update(p, y)
        preds.append(p)
        trues.append(y)
    res = meter.compute()
    p, t = torch.cat(preds).double(), torch.cat(trues).double()
    assert res["n"] == len(data.test)
    assert res["mse"] == pytest.approx(((p - t) ** 2).mean().item(), rel=1e-9)
    assert res["mae"] == pytest.approx((p - t).abs().mean().item(), rel=1e-9)
    # batch means averaged naively would weigh the small last batch 7/4 times too much
    batch_means = [((a - b) ** 2).mean().item() for a, b in zip(preds, trues)]
    assert res["mse"] != pytest.approx(float(np.mean(batch_means)), rel=1e-6)


def test_meter_reports_original_units(tmp_path):
    data = build_forecast_data(_csv(tmp_path, _frame(300)), target="OT", features="MS", seq_len=24, pred_len=8)
    meter = ForecastMeter(data.scaler, data.targets)
    y = data.test[0][1].unsqueeze(0)
    meter.update(y + 0.5, y)
    res = meter.compute()
    assert res["mae"] == pytest.approx(0.5, rel=1e-5)
    assert res["mae_orig"] == pytest.approx(0.5 * float(data.scaler.std[2]), rel=1e-5)
    assert res["mse_orig"] == pytest.approx(0.25 * float(data.scaler.std[2]) ** 2, rel=1e-5)


def test_time_features_and_frequency():
    dates = pd.date_range("2021-01-04 00:00", periods=48, freq="h")  # a Monday
    tf = time_features(dates)
    assert tf.shape == (48, 4) and tf.min() >= -0.5 and tf.max() <= 0.5
    assert tf[0, 0] == pytest.approx(-0.5) and tf[23, 0] == pytest.approx(0.5)  # hour of day
    assert tf[0, 1] == pytest.approx(-0.5)  # Monday
    assert infer_freq(pd.date_range("2021", periods=5, freq="15min")) == "t"
    assert infer_freq(pd.date_range("2021", periods=5, freq="W-SAT")) == "w"
    assert infer_freq(pd.date_range("2021", periods=5, freq="MS")) == "m"
    assert time_features(pd.date_range("2000", periods=5, freq="YS")).shape == (5, 0)
    with pytest.raises(ValueError, match="unknown frequency"):
        time_features(dates, "fortnight")


def test_nan_fill_policies(tmp_path):
    frame = _frame(200)
    frame.loc[0, "OT"] = np.nan  # leading gap: back-filled by ffill
    frame.loc[10:12, "OT"] = np.nan
    path = _csv(tmp_path, frame)
    orig = _frame(200)["OT"].to_numpy(np.float32)
    ff = read_series_csv(path, columns=["OT"]).values[:, 0]
    assert ff[0] == orig[1] and np.all(ff[10:13] == orig[9])
    lin = read_series_csv(path, columns=["OT"], fill="interpolate").values[:, 0]
    np.testing.assert_allclose(lin[10:13], orig[9] + (orig[13] - orig[9]) * np.array([1, 2, 3]) / 4, rtol=1e-5)
    assert read_series_csv(path, columns=["OT"], fill="zero").values[11, 0] == 0.0
    with pytest.raises(ValueError, match=r"missing values \(NaN\).*'OT': 4"):
        read_series_csv(path, fill="error")
    with pytest.raises(ValueError, match="unknown fill policy"):
        read_series_csv(path, fill="mean")


@pytest.mark.parametrize(
    "mutate, kwargs, error, match",
    [
        (None, {"target": "nope", "features": "S"}, ValueError, "target column 'nope' not found"),
        (None, {"target": None, "features": "MS"}, ValueError, "needs a target column"),
        (lambda f: f.assign(OT=f["OT"].astype(object).where(f.index != 7, "n/a?")), {}, ValueError,
         "non-numeric value 'n/a\\?' in column 'OT' at data row 7"),
        (lambda f: f.iloc[[1, 0] + list(range(2, len(f)))], {}, ValueError, "not sorted"),
        (lambda f: pd.concat([f.iloc[:5], f.iloc[4:]]), {}, ValueError, "duplicate timestamp"),
        (lambda f: f.assign(date=f["date"].where(f.index != 3, "not a date")), {}, ValueError, "dates|timestamp"),
        (lambda f: f.iloc[:30], {}, ValueError, "30 rows, shorter than seq_len \\+ pred_len = 32"),
        (lambda f: f.iloc[:60], {}, ValueError, "the val split has .* fewer than seq_len \\+ pred_len"),
        (lambda f: f.rename(columns={"date": "when"}), {}, ValueError, "no date column 'date'"),
        (lambda f: f.assign(OT=np.nan), {}, ValueError, "hold no numeric value"),
    ],
)
def test_bad_input_gives_clear_errors(tmp_path, mutate, kwargs, error, match):
    frame = _frame(200)
    if mutate is not None:
        frame = mutate(frame)
    path = _csv(tmp_path, frame)
    args = {"target": "OT", "features": "S", "seq_len": 24, "pred_len": 8, **kwargs}
    with pytest.raises(error, match=match):
        build_forecast_data(path, **args)


def test_missing_file_and_window_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        build_forecast_data(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="label_len"):
        ForecastWindows(np.zeros((50, 1)), np.zeros((50, 0)), seq_len=8, pred_len=4, label_len=9)


def test_dataframe_source_with_date_index():
    frame = _frame(200).set_index("date")
    frame.index = pd.to_datetime(frame.index)
    data = build_forecast_data(frame, target="OT", features="S", seq_len=24, pred_len=8)
    assert data.freq == "h" and len(data.test) == 40 - 8 + 1


def test_global_weather_loader_groups_stations(tmp_path):
    t, n_st = 120, 22
    rng = np.random.default_rng(0)
    np.save(tmp_path / "temp_global_hourly_val.npy", rng.normal(size=(t, n_st, 1)).astype(np.float32))
    np.save(tmp_path / "data_time_val.npy", np.datetime64("2020-01-01T00") + np.arange(t).astype("timedelta64[h]"))
    coords = rng.uniform(-90, 90, size=(n_st, 3))
    np.save(tmp_path / "stations_sorted.npy", coords)
    ds = load_global_weather(tmp_path, "temp", "val")
    assert len(ds) == t - 48 - 24 + 1
    inputs, y = ds[0]
    assert inputs["x"].shape == (48, 22) and y.shape == (24, 22) and inputs["y_mark"].shape == (48, 4)
    assert inputs["static"].shape == (2, 33)
    z = inputs["static"].reshape(22, 3)
    torch.testing.assert_close(z.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    with pytest.raises(FileNotFoundError, match="wind_global_hourly_val.npy"):
        load_global_weather(tmp_path, "wind", "val")
    with pytest.raises(ValueError, match="cannot be grouped"):
        load_global_weather(tmp_path, "temp", "val", group_size=5)


def test_co2_example_data_builds_documented_windows(tmp_path):
    """The example's CSV (statsmodels' bundled CO2, 59 gaps) gives the windows quoted in docs/timeseries.md."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "forecast_co2", Path(__file__).resolve().parents[1] / "examples" / "forecast_co2.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    path = example.write_co2_csv(tmp_path / "co2.csv")
    with pytest.raises(ValueError, match=r"missing values \(NaN\) in \{'co2': 59\}"):
        build_forecast_data(path, target="co2", features="S", seq_len=104, pred_len=52, fill="error")
    data = build_forecast_data(path, target="co2", features="S", seq_len=104, pred_len=52)
    assert data.freq == "w" and data.n_time_features == 2
    assert (len(data.train), len(data.val), len(data.test)) == (1443, 179, 405)
    assert not torch.isnan(data.test.values).any()


def test_batched_windows_equal_collated_single_windows(tmp_path):
    """The vectorised batch slicing gives exactly what default_collate of single windows gives."""
    from torch.utils.data import default_collate

    from unireplknet.engine.config import EngineConfig
    from unireplknet.tasks.forecasting import forecast_loaders

    data = build_forecast_data(_csv(tmp_path, _frame(300)), target="v1", features="MS", seq_len=24, pred_len=8,
                               label_len=12)
    for ds in (data.train, data.test):
        idx = [0, 7, 3, len(ds) - 1]
        want, got = default_collate([ds[i] for i in idx]), ds.batch(idx)
        assert sorted(got[0]) == sorted(want[0])
        for k in want[0]:
            assert torch.equal(got[0][k], want[0][k]), k
        assert torch.equal(got[1], want[1])
    with pytest.raises(IndexError):
        data.test.batch([len(data.test)])
    cfg = EngineConfig.from_dict({"batch_size": 5, "num_workers": 0, "device": "cpu", "seed": 1})
    train = forecast_loaders(data, cfg)["train"]
    order = list(train.sampler)
    inputs, y = next(iter(train))
    want = default_collate([data.train[i] for i in order[:5]])
    assert torch.equal(inputs["x"], want[0]["x"]) and torch.equal(y, want[1])
    assert len(train) == len(data.train) // 5  # drop_last for training
