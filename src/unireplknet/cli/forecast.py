"""``unireplknet forecast --data file.csv --target OT --seq-len 96 --pred-len 96``.

Trains the backbone forecaster (and the DLinear-like baseline) with the
engine, evaluates both and the naive / seasonal-naive baselines on the test
split, writes ``metrics.json``, ``metrics.csv`` and ``forecast.png`` to
``--output`` and prints the comparison table.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from unireplknet.cli import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``forecast`` sub-command."""
    p = subparsers.add_parser(
        "forecast",
        help="time-series forecasting on a CSV: UniRepLKNet next to naive, seasonal-naive and linear baselines",
        description="Embed each window as a 1xHxW image, train UniRepLKNet to forecast pred_len steps, and "
        "compare it on the test split with naive, seasonal-naive and DLinear-like baselines trained in the same run.",
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True,
                   help="CSV file with a date column and numeric columns (a directory with --global-weather)")
    d.add_argument("--global-weather", choices=("temp", "wind"), default=None,
                   help="--data is a directory of Global Temp/Wind station arrays (the paper's task: "
                   "--seq-len 48 --pred-len 24 --label-len 24, nodes of --group-size 11 stations with geo embedding)")
    d.add_argument("--target", default=None, help="target column (needed for S and MS)")
    d.add_argument("--features", choices=("M", "S", "MS"), default=None,
                   help="M: all columns in and out; S: target only; MS: all in, target out "
                   "(default: S with --target, else M)")
    d.add_argument("--date-col", default="date", help="name of the date column (date)")
    d.add_argument("--seq-len", type=int, default=96, help="input window length (96)")
    d.add_argument("--label-len", type=int, default=0, help="decoder start steps kept in y_mark (0)")
    d.add_argument("--pred-len", type=int, default=96, help="forecast horizon (96)")
    d.add_argument("--split", choices=("auto", "etth", "ettm", "ratio"), default="auto",
                   help="auto: ETTh*/ETTm* names get 12/4/4 months, others 70/10/20 (auto)")
    d.add_argument("--fill", choices=("ffill", "interpolate", "zero", "error"), default="ffill",
                   help="missing-value policy (ffill: last value forward, leading gap back-filled)")
    d.add_argument("--freq", default=None, help="calendar frequency s/t/h/d/w/m/q/y (inferred)")
    d.add_argument("--no-time-features", action="store_true", help="do not embed calendar features")

    m = p.add_argument_group("model")
    m.add_argument("--model", default="custom",
                   help="backbone variant (unireplknet_a ... unireplknet_xl) or 'custom' "
                   "(--depths/--dims/--kernel-sizes)")
    m.add_argument("--depths", type=int, nargs=4, default=[1, 1, 2, 1], help="custom: blocks per stage (1 1 2 1)")
    m.add_argument("--dims", type=int, nargs=4, default=[16, 32, 64, 128], help="custom: channels (16 32 64 128)")
    m.add_argument("--kernel-sizes", nargs=4, default=["3", "7", "7,3", "7"], metavar="K[,K...]",
                   help="custom: per-block kernel sizes per stage, comma-separated (3 7 7,3 7)")
    m.add_argument("--d-model", type=int, default=32, help="embedding width; image holds seq_len*d_model values (32)")
    m.add_argument("--image-size", default=None, metavar="HxW", help="image shape (most square by default)")
    m.add_argument("--channel-independent", action="store_true", help="one image per variable, shared weights")
    m.add_argument("--group-size", type=int, default=None, help="variables per image in grouped mode")
    m.add_argument("--head", choices=("pooled", "flatten"), default="pooled", help="head input (pooled)")
    m.add_argument("--no-revin", action="store_true", help="disable instance normalisation")
    m.add_argument("--dropout", type=float, default=0.05, help="embedding dropout (0.05)")
    m.add_argument("--drop-path", type=float, default=0.0, help="stochastic depth (0)")

    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=10, help="epochs (10)")
    t.add_argument("--batch-size", type=int, default=32, help="batch size (32)")
    t.add_argument("--lr", type=float, default=1e-3, help="peak learning rate, cosine schedule (1e-3)")
    t.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (0.05)")
    t.add_argument("--warmup-epochs", type=float, default=1, help="linear warm-up epochs (1)")
    t.add_argument("--linear-lr", type=float, default=5e-3, help="learning rate of the linear baseline (5e-3)")
    t.add_argument("--max-train-steps", type=int, default=None, help="cap updates per epoch (smoke tests)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 (auto)")
    t.add_argument("--seed", type=int, default=0, help="random seed (0)")
    t.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (0)")
    t.add_argument("--num-threads", type=int, default=None, help="torch CPU threads (torch's choice)")
    t.add_argument("--resume", default=None, help="resume the backbone run from this last.pt")

    o = p.add_argument_group("evaluation and output")
    o.add_argument("--period", type=int, default=None, help="seasonal period (detected on the train split)")
    o.add_argument("--plot-windows", type=int, default=4, help="test windows drawn in forecast.png (4)")
    o.add_argument("-o", "--output", default="runs/forecast", help="run directory (runs/forecast)")
    p.set_defaults(func=run)


def _kernel_sizes(specs: list[str]) -> tuple[tuple[int, ...], ...]:
    try:
        return tuple(tuple(int(k) for k in s.split(",")) for s in specs)
    except ValueError as e:
        raise UserError(f"--kernel-sizes takes comma-separated integers per stage, got {specs}") from e


def _image_size(spec: str | None) -> tuple[int, int] | None:
    if spec is None:
        return None
    try:
        h, w = (int(v) for v in spec.lower().split("x"))
    except ValueError as e:
        raise UserError(f"--image-size must look like 64x96, got {spec!r}") from e
    return h, w


def _check_args(args: argparse.Namespace) -> None:
    for name in ("seq_len", "pred_len", "epochs", "batch_size", "d_model", "plot_windows"):
        if getattr(args, name) < (0 if name == "plot_windows" else 1):
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.global_weather is None and not Path(args.data).is_file():
        raise UserError(f"no such data file: {args.data}")
    if args.global_weather is not None and not Path(args.data).is_dir():
        raise UserError(f"--global-weather needs --data to be a directory, got {args.data}")
    if args.period is not None and not 1 <= args.period <= args.seq_len:
        raise UserError(f"--period must be between 1 and --seq-len ({args.seq_len}), got {args.period}")
    _image_size(args.image_size)
    if args.channel_independent and args.group_size not in (None, 1):
        raise UserError("--channel-independent and --group-size are exclusive")


def run(args: argparse.Namespace) -> int:
    """Train, evaluate, save and print the comparison table."""
    import torch

    from unireplknet import engine
    from unireplknet.modalities.series.datasets import build_forecast_data, build_global_weather_data
    from unireplknet.tasks import forecasting as fc

    _check_args(args)
    group = 1 if args.channel_independent else args.group_size
    n_static = 0
    if args.global_weather is not None:
        features, group = "M", group or 11
        data = build_global_weather_data(args.data, args.global_weather, args.seq_len, args.pred_len,
                                         args.label_len, group)
        n_static = int(data.train.static.shape[1])
    else:
        features = args.features or ("S" if args.target else "M")
        data = build_forecast_data(
            args.data, target=args.target, features=features, seq_len=args.seq_len, pred_len=args.pred_len,
            label_len=args.label_len, split=args.split, date_col=args.date_col, fill=args.fill, freq=args.freq,
        )
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    cfg_values = {
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
        "warmup_epochs": args.warmup_epochs, "min_lr": args.lr * 1e-2, "seed": args.seed, "device": args.device,
        "num_workers": args.num_workers, "num_threads": args.num_threads, "metric": "mse", "metric_mode": "min",
        "deploy": False, "drop_path": args.drop_path, "max_train_steps": args.max_train_steps,
    }
    cfg = engine.EngineConfig.from_dict(cfg_values)
    run_config = {k: v for k, v in vars(args).items() if not callable(v)} | {"features": features}

    torch.manual_seed(args.seed)
    if args.model == "custom":
        backbone = fc.build_backbone(drop_path_rate=args.drop_path, depths=args.depths, dims=args.dims,
                                     kernel_sizes=_kernel_sizes(args.kernel_sizes))
    else:
        backbone = fc.build_backbone(args.model, drop_path_rate=args.drop_path)
    model = fc.ForecastModel(
        backbone, args.seq_len, args.pred_len, n_vars=len(data.columns), targets=data.targets, group_size=group,
        d_model=args.d_model, image_size=_image_size(args.image_size),
        n_time_features=0 if args.no_time_features else data.n_time_features, n_static=n_static,
        revin=not args.no_revin, dropout=args.dropout, head=args.head,
    )
    loaders = fc.forecast_loaders(data, cfg)
    evaluate_fn = fc.make_evaluate_fn(data.scaler, data.targets)

    trainer = engine.Trainer(model, loaders["train"], loaders["val"], fc.forecast_loss, evaluate_fn, cfg,
                             out / "unireplknet", full_config=run_config)
    summary = trainer.fit(resume=args.resume)
    model.load_state_dict(trainer.best_model_weights())

    linear = fc.LinearForecast(args.seq_len, args.pred_len, data.targets)
    lin_values = cfg_values | {"lr": args.linear_lr, "weight_decay": 0.0, "warmup_epochs": 0}
    lin_cfg = engine.EngineConfig.from_dict(lin_values)
    lin_trainer = engine.Trainer(linear, loaders["train"], loaders["val"], fc.forecast_loss, evaluate_fn, lin_cfg,
                                 out / "linear", full_config=run_config)
    lin_trainer.fit()
    linear.load_state_dict(lin_trainer.best_model_weights())

    train_slice = data.train.values[:, data.targets[0]].numpy()
    period = args.period or fc.detect_period(train_slice, max_period=args.seq_len)
    models: dict[str, torch.nn.Module] = {
        "UniRepLKNet": model,
        "Linear (DLinear-like)": linear,
        "Naive (last value)": fc.NaiveForecast(args.pred_len, data.targets),
        f"Seasonal naive (period {period})": fc.SeasonalNaiveForecast(
            args.pred_len, period, data.targets, args.seq_len
        ),
    }
    results = {}
    for name, net in models.items():
        results[name] = evaluate_fn(net.to(trainer.device), loaders["test"], trainer.ctx)

    n_params = sum(p.numel() for p in model.parameters())
    report = {
        "data": data.meta() | {"file": str(args.data)},
        "config": run_config,
        "model": {"backbone": args.model, "params": n_params, "image_size": list(model.image_size)},
        "seasonal_period": period,
        "best_val": summary.get("best"),
        "test": results,
    }
    with open(out / "metrics.json", "w") as f:
        json.dump(report, f, indent=2, default=str)
    _write_csv(out / "metrics.csv", results)
    png = _plot(out / "forecast.png", data, models, args.plot_windows, trainer.device) if args.plot_windows else None

    print(f"{Path(args.data).name}: features={features} targets={data.target_names} seq_len={args.seq_len} "
          f"pred_len={args.pred_len} test windows={len(data.test)} (normalised scale; *_orig in original units)")
    print(_table(results))
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.csv'}" + (f", {png}" if png else ""))
    return 0


def _write_csv(path: Path, results: dict[str, dict[str, float]]) -> None:
    keys = ["mse", "mae", "mse_orig", "mae_orig", "n"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model"] + keys)
        for name, res in results.items():
            w.writerow([name] + [res.get(k, "") for k in keys])


def _table(results: dict[str, dict[str, float]]) -> str:
    orig = all("mse_orig" in r for r in results.values())
    head = ["model", "MSE", "MAE"] + (["MSE (orig)", "MAE (orig)"] if orig else [])
    rows = []
    for name, r in results.items():
        extra = [f"{r['mse_orig']:.4g}", f"{r['mae_orig']:.4g}"] if orig else []
        rows.append([name, f"{r['mse']:.4f}", f"{r['mae']:.4f}", *extra])
    widths = [max(len(row[i]) for row in rows + [head]) for i in range(len(head))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def _plot(path: Path, data: Any, models: dict, n_windows: int, device: Any) -> Path:
    """Truth and forecasts (original units, first target) for a few evenly spaced test windows."""
    import numpy as np

    from unireplknet._extras import require
    from unireplknet.tasks.forecasting import predict

    matplotlib = require("matplotlib", "train", "plotting forecasts")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.unique(np.linspace(0, len(data.test) - 1, n_windows).round().astype(int)).tolist()
    unscale = (lambda a: data.scaler.inverse_transform(a, data.targets)) if data.scaler is not None else (lambda a: a)
    preds = {name: unscale(predict(net, data.test, idx, device).numpy()) for name, net in models.items()}
    fig, axes = plt.subplots(len(idx), 1, figsize=(9, 2.4 * len(idx)), squeeze=False)
    col = data.targets[0]
    for row, i in enumerate(idx):
        ax = axes[row, 0]
        inputs, y = data.test[i]
        x = inputs["x"].numpy()
        hist = (data.scaler.inverse_transform(x) if data.scaler is not None else x)[:, col]
        truth = unscale(y.numpy())[:, 0]
        t_hist = np.arange(-len(hist), 0)
        t_pred = np.arange(len(truth))
        ax.plot(t_hist, hist, color="0.5", lw=1, label="history")
        ax.plot(t_pred, truth, color="k", lw=1.5, label="truth")
        for name, p in preds.items():
            ax.plot(t_pred, p[row, :, 0], lw=1, label=name)
        ax.set_title(f"test window {i} ({data.columns[col]})", fontsize=9)
        if row == 0:
            ax.legend(fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("steps relative to the forecast start")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
