"""Seconds per training epoch of ``unireplknet forecast``: backbone forecaster vs linear model, same process.

    python benchmarks/forecast_epoch.py                          # lookback 336, horizon 96, 2 threads
    python benchmarks/forecast_epoch.py --loader window --d-model 32   # the pre-issue-16 setup

A synthetic hourly series with daily and weekly cycles, sized so the training
split has ``--train-windows`` windows (11,881 by default, the size users
reported), is cut exactly as the command cuts a CSV. Each model runs
``--steps`` real training steps (forward, MSE, backward, AdamW) after
``--warmup`` steps, batches drawn from the command's training loader, plus one
pass over the validation loader; the epoch time is the measured time per step
times the batches per epoch plus the validation pass scaled to the validation
size. ``--profile`` prints a torch.profiler table of where the backbone's
steps spend their time.

``--loader window`` uses the per-window path (``Dataset.__getitem__`` +
``default_collate`` through the engine's ``make_loader``), ``batched`` (the
default) the vectorised batch slicing the command uses now. ``--d-model``
defaults to the command's automatic choice for the lookback.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch


def synthetic_frame(rows: int, seed: int = 0) -> Any:
    """An hourly frame with a ``date`` column and a ``load`` column: daily + weekly cycles, trend, noise."""
    import pandas as pd

    t = np.arange(rows)
    rng = np.random.default_rng(seed)
    load = (np.sin(2 * np.pi * t / 24) + 0.6 * np.sin(2 * np.pi * t / 168) + 0.3 * (t % 168 >= 120)
            + 1e-5 * t + 0.2 * rng.standard_normal(rows))
    return pd.DataFrame({"date": pd.date_range("2016-01-04", periods=rows, freq="h"), "load": load})


def _time_steps(model: torch.nn.Module, loader: Any, steps: int, warmup: int) -> tuple[float, float]:
    """(seconds per training step, of which loading) over ``steps`` steps after ``warmup``."""
    from unireplknet.tasks.forecasting import forecast_loss

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    it = iter(loader)
    load_s = 0.0
    t0 = time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            t0, load_s = time.perf_counter(), 0.0
        a = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        load_s += time.perf_counter() - a
        loss = forecast_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - t0) / steps, load_s / steps


@torch.no_grad()
def _time_eval(model: torch.nn.Module, loader: Any, max_batches: int) -> tuple[float, int]:
    """(seconds, windows) for up to ``max_batches`` validation batches."""
    model.eval()
    t0, n = time.perf_counter(), 0
    for i, (x, y) in enumerate(loader):
        if i >= max_batches:
            break
        model(x)
        n += len(y)
    model.train()
    return time.perf_counter() - t0, n


def main(argv: list[str] | None = None) -> int:
    """Build the data and both models, time them, print (and optionally save) the comparison."""
    from unireplknet import engine
    from unireplknet.runner.forecast import auto_d_model
    from unireplknet.modalities.series.datasets import build_forecast_data
    from unireplknet.tasks import forecasting as fc

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq-len", type=int, default=336)
    p.add_argument("--pred-len", type=int, default=96)
    p.add_argument("--train-windows", type=int, default=11881)
    p.add_argument("--d-model", type=int, default=None, help="embedding width (the command's auto choice)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--loader", choices=("batched", "window"), default="batched")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--eval-batches", type=int, default=4)
    p.add_argument("--profile", action="store_true", help="print a torch.profiler table of the backbone's steps")
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train_rows = args.train_windows + args.seq_len + args.pred_len - 1
    rows = int(np.ceil(train_rows / 0.7)) + 1
    data = build_forecast_data(synthetic_frame(rows), target="load", features="S", seq_len=args.seq_len,
                               pred_len=args.pred_len)
    cfg = engine.EngineConfig.from_dict({"batch_size": args.batch_size, "num_workers": 0, "device": "cpu",
                                         "epochs": 1, "seed": 0})
    if args.loader == "batched":
        loaders = fc.forecast_loaders(data, cfg)
    else:
        from unireplknet.engine.loader import make_loader

        loaders = {"train": make_loader(data.train, cfg, train=True), "val": make_loader(data.val, cfg, train=False)}
    d_model = args.d_model or auto_d_model(args.seq_len)
    backbone = fc.build_backbone(depths=[1, 1, 2, 1], dims=[16, 32, 64, 128],
                                 kernel_sizes=((3,), (7,), (7, 3), (7,)))
    model = fc.ForecastModel(backbone, args.seq_len, args.pred_len, n_vars=1, targets=[0], d_model=d_model,
                             n_time_features=data.n_time_features)
    linear = fc.LinearForecast(args.seq_len, args.pred_len, [0])
    n_batches, n_val = len(loaders["train"]), len(data.val)
    print(f"lookback {args.seq_len}, horizon {args.pred_len}: {len(data.train)} training windows "
          f"({n_batches} batches of {args.batch_size}), {n_val} validation windows; {args.threads} thread(s); "
          f"loader {args.loader}; d_model {d_model} -> image {model.image_size[0]}x{model.image_size[1]}")
    results: dict[str, dict[str, float]] = {}
    for name, net in (("UniRepLKNet", model), ("Linear (DLinear-like)", linear)):
        step_s, load_s = _time_steps(net, loaders["train"], args.steps, args.warmup)
        ev_s, ev_n = _time_eval(net, loaders["val"], args.eval_batches)
        epoch_s = step_s * n_batches + ev_s / max(ev_n, 1) * n_val
        results[name] = {"step_ms": step_s * 1e3, "load_ms": load_s * 1e3, "epoch_s": epoch_s}
        print(f"{name:22s} {step_s * 1e3:8.1f} ms/step ({load_s * 1e3:.1f} ms loading)  "
              f"~{epoch_s:7.1f} s/epoch incl. validation")
    ratio = results["UniRepLKNet"]["epoch_s"] / results["Linear (DLinear-like)"]["epoch_s"]
    print(f"backbone / linear: {ratio:.1f}x")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            _time_steps(model, loaders["train"], max(3, args.steps // 4), 1)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "d_model": d_model, "image": list(model.image_size),
                       "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
