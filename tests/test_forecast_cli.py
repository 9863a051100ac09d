"""`unireplknet forecast` end to end on a tiny CSV and a tiny custom backbone."""
from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
import torch

from unireplknet.cli import main

TINY = ["--num-threads", "1", "--depths", "1", "1", "1", "1", "--dims", "8", "16", "24", "32",
        "--kernel-sizes", "3", "3", "3", "3",
        "--d-model", "8", "--batch-size", "16", "--max-train-steps", "2", "--device", "cpu"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run faster on one thread on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _series(tmp_path, n=240):
    t = np.arange(n)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "date": pd.date_range("2022-01-01", periods=n, freq="h").astype(str),
        "load": np.sin(2 * np.pi * t / 24) + 0.1 * rng.normal(size=n),
        "OT": 10 + 3 * np.cos(2 * np.pi * t / 24) + 0.01 * t,
    })
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_forecast_command_trains_evaluates_and_saves(tmp_path, capsys):
    path, frame = _series(tmp_path)
    out = tmp_path / "run"
    rc = main(["forecast", "--data", str(path), "--target", "OT", "--features", "MS", "--seq-len", "24",
               "--pred-len", "8", "--epochs", "1", "--plot-windows", "2", "--output", str(out)] + TINY)
    assert rc == 0
    printed = capsys.readouterr().out
    for name in ("UniRepLKNet", "Linear (DLinear-like)", "Naive (last value)", "Seasonal naive (period 24, daily)"):
        assert name in printed
    assert "training plan: 1 epoch(s) at most" in printed and "no time budget" in printed
    report = json.loads((out / "metrics.json").read_text())
    test = report["test"]
    n_rows_test = int(240 * 0.2)  # 70/10/20: train 168 rows, test 48, val the rest
    assert report["data"]["borders"][2] == [240 - n_rows_test - 24, 240]
    assert all(r["n"] == n_rows_test - 8 + 1 for r in test.values())  # every test window, drop_last=False
    assert report["seasonal_period"] == 24 and report["seasonal_periods"] == [24]
    assert report["training"]["epochs_run"] == 1 and report["training"]["wall_s"] > 0

    # the naive row, recomputed by hand from the CSV: train-only scaler, test windows, per-sample mean
    ot = frame["OT"].to_numpy()
    mean, std = ot[:168].mean(), ot[:168].std()
    z = (ot - mean) / std
    start = 240 - n_rows_test
    errs = np.stack([z[s : s + 8] - z[s - 1] for s in range(start, 240 - 8 + 1)])
    assert test["Naive (last value)"]["mse"] == pytest.approx(float((errs ** 2).mean()), rel=1e-4)
    assert test["Naive (last value)"]["mae_orig"] == pytest.approx(float(np.abs(errs).mean() * std), rel=1e-4)
    assert test["Seasonal naive (period 24, daily)"]["mse"] < test["Naive (last value)"]["mse"]
    for r in test.values():
        assert np.isfinite(r["mse"]) and r["mse"] >= 0

    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == list(test)
    png = (out / "forecast.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert (out / "unireplknet" / "best.pt").is_file() and (out / "linear" / "best.pt").is_file()


def test_forecast_channel_independent_resume(tmp_path, capsys):
    path, _ = _series(tmp_path)
    out = tmp_path / "ci"
    args = ["forecast", "--data", str(path), "--features", "M", "--channel-independent", "--seq-len", "24",
            "--pred-len", "8", "--plot-windows", "0", "--output", str(out)] + TINY
    assert main(args + ["--epochs", "1"]) == 0
    assert main(args + ["--epochs", "2", "--resume", str(out / "unireplknet" / "last.pt")]) == 0
    history = (out / "unireplknet" / "metrics.csv").read_text().strip().splitlines()
    assert len(history) == 3  # header + epoch 1 + resumed epoch 2
    report = json.loads((out / "metrics.json").read_text())
    assert report["data"]["targets"] == ["load", "OT"] and not (out / "forecast.png").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--target", "missing"], "target column 'missing' not found"),
        (["--seq-len", "200", "--pred-len", "50"], "shorter than seq_len \\+ pred_len"),
        (["--target", "OT", "--features", "MS", "--channel-independent"], "joint mode"),
        (["--image-size", "7by9"], "--image-size must look like"),
        (["--period", "30"], "--period must be between 1 and --seq-len \\(24\\)"),
    ],
)
def test_forecast_bad_input_exits_2(tmp_path, capsys, extra, message):
    path, _ = _series(tmp_path)
    rc = main(["forecast", "--data", str(path), "--seq-len", "24", "--pred-len", "8", "--output",
               str(tmp_path / "bad")] + TINY + extra)
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and __import__("re").search(message, err)


def test_forecast_missing_file(tmp_path, capsys):
    assert main(["forecast", "--data", str(tmp_path / "nope.csv")]) == 2
    assert "no such data file" in capsys.readouterr().err


def test_forecast_global_weather_layout(tmp_path, capsys):
    """The paper's task layout: station arrays, time stamps, coordinates, nodes of grouped stations."""
    rng = np.random.default_rng(0)
    root = tmp_path / "global"
    root.mkdir()
    n_st, t = 4, 60
    for flag in ("train", "val", "test"):
        hours = np.arange(t)
        season = np.sin(2 * np.pi * hours / 24)[:, None] * np.arange(1, n_st + 1)
        np.save(root / f"wind_global_hourly_{flag}.npy", (season + 0.1 * rng.normal(size=(t, n_st)))[..., None])
        np.save(root / f"data_time_{flag}.npy", np.datetime64("2019-01-01T00") + hours.astype("timedelta64[h]"))
    np.save(root / "stations_sorted.npy", rng.uniform(-50, 50, size=(n_st, 3)))
    out = tmp_path / "gw"
    rc = main(["forecast", "--data", str(root), "--global-weather", "wind", "--group-size", "2", "--seq-len", "12",
               "--label-len", "6", "--pred-len", "6", "--epochs", "1", "--plot-windows", "1", "--output", str(out)]
              + TINY)
    assert rc == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["data"]["windows"] == {"train": 43, "val": 43, "test": 43}
    assert len(report["data"]["targets"]) == 4 and report["data"]["scaler"] is None
    assert all(r["n"] == 43 and "mse_orig" not in r for r in report["test"].values())
    assert main(["forecast", "--data", str(root / "wind_global_hourly_val.npy"), "--global-weather", "wind"]) == 2
    assert "needs --data to be a directory" in capsys.readouterr().err


def test_train_command_points_to_forecast(capsys):
    assert main(["train", "--modality", "timeseries", "--epochs", "1"]) == 2
    assert "unireplknet forecast" in capsys.readouterr().err


def test_a_new_forecast_run_sets_an_earlier_one_aside(tmp_path, capsys):
    path, _ = _series(tmp_path)
    out = tmp_path / "run"
    args = ["forecast", "--data", str(path), "--target", "OT", "--seq-len", "24", "--pred-len", "8", "--epochs", "1",
            "--plot-windows", "0", "--output", str(out)] + TINY
    assert main(args) == 0 and main(args) == 0  # the same rule as every training command (engine.rundir)
    old = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(old) == 1 and (old[0] / "metrics.json").is_file() and (out / "metrics.json").is_file()
