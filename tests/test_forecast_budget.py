"""Issue 16 item 5: early stopping (engine ``patience``), the forecast time budget, and the multi-seasonal example."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from unireplknet.cli import main
from unireplknet.engine import EngineConfig, Trainer

TINY = ["--num-threads", "1", "--depths", "1", "1", "1", "1", "--dims", "8", "16", "24", "32",
        "--kernel-sizes", "3", "3", "3", "3", "--d-model", "8", "--batch-size", "16", "--device", "cpu"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run faster on one thread on a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- engine patience


def _scripted_trainer(tmp_path, values, **cfg):
    """A Trainer whose validation metric follows ``values`` epoch by epoch (lower is better)."""
    torch.manual_seed(0)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    calls = iter(values)

    def evaluate_fn(model, loader, ctx):
        return {"mse": float(next(calls)), "n": 16}

    config = {"epochs": len(values), "batch_size": 8, "lr": 1e-2, "warmup_epochs": 0, "device": "cpu",
              "num_workers": 0, "metric": "mse", "metric_mode": "min", "deploy": False} | cfg
    return Trainer(nn.Linear(3, 1), loader, loader, nn.functional.mse_loss, evaluate_fn, config, tmp_path / "run")


def test_patience_stops_after_no_improvement_and_keeps_the_best(tmp_path):
    trainer = _scripted_trainer(tmp_path, [1.0, 0.5, 0.6, 0.55, 0.7, 0.1, 0.1, 0.1], patience=3)
    summary = trainer.fit()
    assert summary["stopped_early"] == 5 and summary["epochs"] == 5  # best at 2, then 3 evaluations without
    assert trainer.best["epoch"] == 2 and trainer.best["value"] == 0.5
    assert trainer.evals_since_best() == 3
    rows = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 5
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert best["epoch"] == 2  # best.pt is the epoch to restore


def test_patience_off_runs_every_epoch_and_improvement_resets_the_count(tmp_path):
    off = _scripted_trainer(tmp_path / "off", [1.0, 2.0, 3.0, 4.0])
    assert off.fit()["stopped_early"] is None and off.epoch == 4
    resets = _scripted_trainer(tmp_path / "on", [1.0, 2.0, 0.5, 2.0, 0.4, 3.0], patience=2)
    assert resets.fit()["stopped_early"] is None and resets.epoch == 6  # never two stale evaluations in a row


def test_patience_config_validation():
    assert EngineConfig().patience == 0
    assert EngineConfig.from_dict({"patience": "3"}).patience == 3
    with pytest.raises(ValueError, match="patience must be >= 0"):
        EngineConfig(patience=-1)
    with pytest.raises(ValueError, match="needs select: best"):
        EngineConfig(patience=2, select="last")


# ----------------------------------------------------------------------------- time budget


def _series(tmp_path, n=400):
    t = np.arange(n)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "date": pd.date_range("2022-01-03", periods=n, freq="h").astype(str),
        "load": np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 168) + 0.1 * rng.normal(size=n),
    })
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    return path


def test_time_budget_chooses_epochs_from_measured_steps(tmp_path, capsys):
    path = _series(tmp_path)
    out = tmp_path / "run"
    rc = main(["forecast", "--data", str(path), "--target", "load", "--seq-len", "48", "--pred-len", "12",
               "--time-budget", "0.1", "--epochs", "3", "--plot-windows", "0", "--output", str(out)] + TINY)
    assert rc == 0
    printed = capsys.readouterr().out
    assert "training plan:" in printed and "0.1-minute budget" in printed and "ms per training sample" in printed
    report = json.loads((out / "metrics.json").read_text())
    plan = report["training"]["plan"]
    assert 1 <= plan["epochs"] <= 3 and report["config"]["epochs"] == plan["epochs"]
    assert report["training"]["epochs_run"] <= plan["epochs"]
    assert report["model"]["d_model"] == 8


def test_plan_budget_caps_updates_when_one_epoch_does_not_fit(tmp_path):
    from unireplknet.runner.forecast import plan_budget
    from unireplknet.modalities.series.datasets import build_forecast_data
    from unireplknet.tasks import forecasting as fc

    data = build_forecast_data(_series(tmp_path), target="load", features="S", seq_len=48, pred_len=12)
    cfg = EngineConfig.from_dict({"batch_size": 8, "num_workers": 0, "device": "cpu"})
    loaders = fc.forecast_loaders(data, cfg)
    model = fc.ForecastModel(fc.build_backbone(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32),
                                               kernel_sizes=((3,), (3,), (3,), (3,))), 48, 12, 1, d_model=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = plan_budget(model, loaders, minutes=1e-4, max_epochs=10, batch_size=8, device=torch.device("cpu"),
                       choose_threads=False)
    assert plan["epochs"] == 1 and 1 <= plan["max_train_steps"] < len(loaders["train"])
    assert "does not fit" in plan["why"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the probe trained a copy


def test_auto_d_model_keeps_long_lookback_images_small():
    from unireplknet.runner.forecast import auto_d_model

    assert auto_d_model(96) == 32 and auto_d_model(336) == 12 and auto_d_model(720) == 8
    assert 336 * auto_d_model(336) <= 4096


def test_budget_and_patience_flags_are_checked(tmp_path, capsys):
    path = _series(tmp_path)
    for extra, message in ((["--time-budget", "-1"], "--time-budget must be >= 0"),
                           (["--patience", "-2"], "--patience must be positive")):
        assert main(["forecast", "--data", str(path), "--output", str(tmp_path / "bad")] + extra) == 2
        assert message in capsys.readouterr().err


# ----------------------------------------------------------------------------- the multi-seasonal example


def test_multiseasonal_example_table_and_beats_naive(tmp_path, capsys):
    """CI-sized run of examples/forecast_multiseasonal.py on the real Taylor half-hourly demand series."""
    pytest.importorskip("pmdarima")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    try:
        import forecast_multiseasonal as ex
    finally:
        sys.path.pop(0)
    frame = ex.taylor_frame()
    assert len(frame) == 4032 and frame["date"].iloc[1] == "2000-06-05 00:30:00"
    out = tmp_path / "run"
    rc = ex.main(["--output", str(out), "--csv-dir", str(tmp_path), "--epochs", "2", "--max-train-steps", "12",
                  "--num-threads", "1", "--device", "cpu", "--plot-windows", "0", "--patience", "0"])
    assert rc == 0
    printed = capsys.readouterr().out
    for row in ("UniRepLKNet", "Linear (DLinear-like)", "Naive (last value)", "Ridge (the linear skip alone)",
                "Seasonal naive (period 336, weekly)", "Seasonal naive (period 48, daily)"):
        assert f"| {row}" in printed
    report = json.loads((out / "metrics.json").read_text())
    assert report["seasonal_periods"] == [336, 48]
    test = report["test"]
    assert test["UniRepLKNet"]["mse"] < 0.5 * test["Naive (last value)"]["mse"]
    # the default linear skip (ridge on the training windows) + the backbone's gated correction
    assert test["UniRepLKNet"]["mse"] < test["Seasonal naive (period 336, weekly)"]["mse"]
    assert test["UniRepLKNet"]["mse"] < test["Linear (DLinear-like)"]["mse"]
    skip = report["model"]["linear_skip"]
    assert skip["ridge"] in [float(k) for k in skip["val_mse"]]
    assert 0.0 <= report["model"]["correction_scale"]["scale"] <= 1.0
