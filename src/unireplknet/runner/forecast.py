"""The forecasting run behind ``unireplknet forecast`` (the command itself only defines flags and prints).

Trains the backbone forecaster and a DLinear-like linear model with the engine (early stopping on
validation, epochs planned from a time budget), evaluates both with the naive and seasonal-naive
baselines (every detected period) on the test split, and writes ``metrics.json``, ``metrics.csv`` and
``forecast.png``.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from ..engine.rundir import set_aside_previous_run
from ..errors import UserError

logger = logging.getLogger(__name__)

from ..tasks.forecast_args import AUTO_IMAGE_PIXELS, FORECAST_DEFAULTS


def resolve_forecast_config(args: argparse.Namespace) -> argparse.Namespace:
    """The run's settings: ``FORECAST_DEFAULTS`` < ``--config`` YAML < flags (on ``--resume`` the checkpoint's
    config < YAML < flags), through the shared resolver; returned as a namespace of every forecasting key."""
    from ..engine.resolve import CLASSIFICATION_ONLY_FLAGS, resolve_run_config

    known = set(FORECAST_DEFAULTS)
    layers = resolve_run_config(
        args, task="forecasting", known=known, base=dict(FORECAST_DEFAULTS), task_defaults={},
        ignored=(*(f for f in CLASSIFICATION_ONLY_FLAGS if f != "time_budget"), "auto"))
    cfg = layers.config
    if cfg.get("data") is None:
        raise UserError("forecasting needs --data: a CSV file with a date column and numeric columns "
                        "(or a directory with --global-weather)")
    cfg.pop("metric_mode", None)
    return argparse.Namespace(**cfg, resume=getattr(args, "resume", None), config=getattr(args, "config", None))


def auto_d_model(seq_len: int, max_pixels: int = AUTO_IMAGE_PIXELS, largest: int = 32, smallest: int = 8) -> int:
    """Embedding width for a lookback: ``largest`` unless the image (seq_len x d_model) would exceed
    ``max_pixels``; never below ``smallest``. Backbone time grows with the image area, and a long
    lookback already gives the image its size."""
    return max(smallest, min(largest, max_pixels // max(seq_len, 1)))


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
    for name in ("seq_len", "pred_len", "epochs", "batch_size", "d_model", "plot_windows", "patience"):
        value = getattr(args, name)
        if value is not None and value < (0 if name in ("plot_windows", "patience") else 1):
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.global_weather is None and not Path(args.data).is_file():
        raise UserError(f"no such data file: {args.data}")
    if args.global_weather is not None and not Path(args.data).is_dir():
        raise UserError(f"--global-weather needs --data to be a directory, got {args.data}")
    if args.period is not None and not 1 <= args.period <= args.seq_len:
        raise UserError(f"--period must be between 1 and --seq-len ({args.seq_len}), got {args.period}")
    if args.time_budget is not None and args.time_budget < 0:
        raise UserError(f"--time-budget must be >= 0 minutes (0: off), got {args.time_budget}")
    _image_size(args.image_size)
    if args.channel_independent and args.group_size not in (None, 1):
        raise UserError("--channel-independent and --group-size are exclusive")


DEFAULT_EPOCHS = 10
#: minutes of the default time budget on a CPU
DEFAULT_CPU_BUDGET = 10.0


def _build_model(args: argparse.Namespace, data: Any, group: int | None, n_static: int, d_model: int,
                 season: int | None = None, layout_period: int | None = None) -> Any:
    from unireplknet.tasks import forecasting as fc

    if args.model == "custom":
        backbone = fc.build_backbone(drop_path_rate=args.drop_path, depths=args.depths, dims=args.dims,
                                     kernel_sizes=_kernel_sizes(args.kernel_sizes))
    else:
        backbone = fc.build_backbone(args.model, drop_path_rate=args.drop_path)
    return fc.ForecastModel(
        backbone, args.seq_len, args.pred_len, n_vars=len(data.columns), targets=data.targets, group_size=group,
        d_model=d_model, image_size=_image_size(args.image_size),
        n_time_features=0 if args.no_time_features else data.n_time_features, n_static=n_static,
        revin=not args.no_revin, dropout=args.dropout, head=args.head, season=season,
        linear_skip=season is None and getattr(args, "linear_skip", "none") == "ridge",
        layout_period=layout_period,
    )


def layout_period_for(periods: list[int], seq_len: int) -> int | None:
    """The period of the ``period`` image layout: the longest detected one that fits at least twice in the lookback."""
    fits = [p for p in periods if p >= 2 and seq_len // p >= 2]
    return max(fits) if fits else None


def choose_anchor(periods: list[int], loader: Any, evaluate: Any, pred_len: int, targets: list[int],
                  seq_len: int) -> tuple[int | None, dict[int, float]]:
    """The period whose seasonal-naive forecast has the lowest validation MSE (None if no periods)."""
    from unireplknet.tasks.forecasting import SeasonalNaiveForecast

    scores = {p: evaluate(SeasonalNaiveForecast(pred_len, p, targets, seq_len), loader)["mse"] for p in periods}
    return (min(scores, key=scores.get) if scores else None), scores


def plan_budget(model: Any, loaders: dict, minutes: float, max_epochs: int, batch_size: int, device: Any,
                choose_threads: bool) -> dict[str, Any]:
    """Epochs (and, if one epoch does not fit, updates per epoch) for ``minutes`` of training.

    Times real training steps of a copy of ``model`` (``runner.auto.budget_epochs``: one warm-up
    step, then a few timed ones). With ``choose_threads`` on a CPU with several threads it also
    times one thread and keeps the faster setting (a loaded machine often runs small convolutions
    faster on one thread). Returns ``epochs``, ``max_train_steps`` (None: whole epochs),
    ``threads`` (None: unchanged) and ``why``.
    """
    import copy

    import torch

    from unireplknet.runner.auto import BUDGET_FRACTION, budget_epochs, probe_step
    from unireplknet.tasks.forecasting import forecast_loss

    n_train = len(loaders["train"].dataset)
    n_eval = len(loaders["val"].dataset)
    # the linear model and the final test pass share the budget: count the test windows as evaluation too
    n_eval += len(loaders["test"].dataset)

    def measure(threads: int | None) -> tuple[int, str, float, float]:
        """(epochs, why, seconds of the timed steps, estimated seconds per epoch)."""
        if threads is not None:
            torch.set_num_threads(threads)
        step = probe_step(copy.deepcopy(model), loaders["train"], forecast_loss, device)
        timed: list[tuple[float, int]] = []

        def timed_step() -> int:
            t0 = time.perf_counter()
            n = step()
            timed.append((time.perf_counter() - t0, n))
            return n

        epochs, why = budget_epochs(timed_step, n_train=n_train, n_eval=n_eval, batch_size=batch_size,
                                    minutes=minutes, max_epochs=max_epochs, min_epochs=1)
        secs = sum(t for t, _ in timed[1:])  # the first call is the warm-up
        per_sample = secs / max(sum(n for _, n in timed[1:]), 1)
        return epochs, why, secs, per_sample * (n_train + n_eval / 3.0)

    start_threads = torch.get_num_threads()
    epochs, why, probe_s, epoch_s = measure(None)
    threads = None
    if choose_threads and device.type == "cpu" and start_threads > 1:
        e1, why1, probe1, epoch1 = measure(1)
        if probe1 < 0.8 * probe_s:  # clearly faster on one thread
            epochs, why, threads, epoch_s = e1, why1 + f" (1 thread: the probe took {probe1:.1f} s vs " \
                                                     f"{probe_s:.1f} s on {start_threads})", 1, epoch1
        else:
            torch.set_num_threads(start_threads)
            why += f" ({start_threads} threads: {probe_s:.1f} s probe vs {probe1:.1f} s on one)"
    steps = None
    if epochs == 1 and epoch_s > minutes * 60 * BUDGET_FRACTION > 0:
        steps = max(1, int(len(loaders["train"]) * minutes * 60 * BUDGET_FRACTION / epoch_s))
        why += f"; one whole epoch does not fit, so it is capped at {steps} of {len(loaders['train'])} updates"
    return {"epochs": epochs, "max_train_steps": steps, "threads": threads, "why": why}


def seasonal_periods(series: Any, seq_len: int, given: int | None = None) -> list[int]:
    """Periods for the seasonal-naive rows: ``given``, else up to two detected ones (daily and weekly scale
    for hourly load), else the single dominant one; never 1 (that is the naive forecast)."""
    from unireplknet.tasks.baselines import detect_periods
    from unireplknet.tasks.forecasting import detect_period

    if given is not None:
        return [given]
    periods = detect_periods(series, max_period=seq_len, top=2)
    if not periods:
        periods = [detect_period(series, max_period=seq_len)]
    return [p for p in periods if p > 1]


def target_periods(values: Any, targets: Sequence[int], seq_len: int, given: int | None = None) -> list[int]:
    """:func:`seasonal_periods` over every target column of the training split (``T x C`` ``values``): the
    periods found in the most targets first (then in column order), at most two, so that the column order of
    the file does not decide which seasonal-naive rows a multi-target run shows."""
    if given is not None:
        return [given]
    votes: dict[int, int] = {}
    for j in targets:
        for p in seasonal_periods(values[:, j], seq_len):
            votes[p] = votes.get(p, 0) + 1  # dicts keep the first-seen order for ties
    return sorted(votes, key=lambda p: -votes[p])[:2]


def _season_word(period: int, dates: Any) -> str:
    """``", daily"`` / ``", weekly"`` / ``", yearly"`` when ``period`` steps span that long, else ``""``."""
    if dates is None or len(dates) < 2:
        return ""
    import numpy as np

    step = float(np.median(np.diff(np.asarray(dates, dtype="datetime64[s]").astype(np.int64)[:1000])))
    days = period * step / 86400.0
    for word, span in (("daily", 1.0), ("weekly", 7.0), ("yearly", 365.25)):
        if abs(days - span) <= 0.02 * span:
            return f", {word}"
    return ""


def run_forecast(args: argparse.Namespace) -> dict[str, Any]:
    """Train, evaluate and save; returns the report (what ``metrics.json`` holds, plus file paths for the CLI)."""
    import copy

    import torch

    from unireplknet import engine
    from unireplknet.engine.distributed import resolve_device
    from unireplknet.modalities.series.datasets import build_forecast_data, build_global_weather_data
    from unireplknet.tasks import forecasting as fc

    args = resolve_forecast_config(args)
    _check_args(args)
    t_run = time.perf_counter()
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
    if args.resume is None:
        set_aside_previous_run(out)  # a new run never mixes its files with an earlier run's
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    budget = args.time_budget
    if budget is None:
        budget = DEFAULT_CPU_BUDGET if (args.epochs is None and device.type == "cpu") else 0.0
    max_epochs = args.epochs or DEFAULT_EPOCHS
    d_model = args.d_model or auto_d_model(args.seq_len)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    cfg_values = {
        "epochs": max_epochs, "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
        "warmup_epochs": args.warmup_epochs, "min_lr": args.lr * 1e-2, "seed": args.seed, "device": args.device,
        "num_workers": args.num_workers, "num_threads": args.num_threads, "metric": "mse", "metric_mode": "min",
        "deploy": False, "drop_path": args.drop_path, "max_train_steps": args.max_train_steps,
        "patience": args.patience,
    }
    loaders = fc.forecast_loaders(data, engine.EngineConfig.from_dict(cfg_values))
    periods = target_periods(data.train.values.numpy(), data.targets, args.seq_len, args.period)
    season, anchor_val = None, {}
    if args.anchor == "auto" and periods:
        season, anchor_val = choose_anchor(
            periods, loaders["val"], lambda net, ld: fc.evaluate_forecaster(net, ld, "cpu"), args.pred_len,
            data.targets, args.seq_len)
        logger.info("anchor: seasonal naive with period %s (validation MSE per period: %s)", season, anchor_val)
    layout_period = None
    if getattr(args, "image_layout", "flat") == "period":
        layout_period = layout_period_for(periods, args.seq_len)
        if layout_period is None:
            logger.info("image layout: no detected period fits twice in the lookback; the flat layout is used")
    torch.manual_seed(args.seed)
    model = _build_model(args, data, group, n_static, d_model, season, layout_period)
    plan: dict[str, Any] = {"epochs": max_epochs, "why": f"--epochs {max_epochs}, no time budget"}
    if budget > 0 and args.resume is None:
        plan = plan_budget(model, loaders, budget, max_epochs, args.batch_size, device,
                           choose_threads=args.num_threads is None)
        cfg_values["epochs"] = plan["epochs"]
        if plan["threads"]:
            cfg_values["num_threads"] = plan["threads"]
        if plan["max_train_steps"] and not args.max_train_steps:
            cfg_values["max_train_steps"] = plan["max_train_steps"]
        cfg_values["warmup_epochs"] = min(args.warmup_epochs, max(plan["epochs"] - 1, 0) or 0.2)
        torch.manual_seed(args.seed)
        model = _build_model(args, data, group, n_static, d_model, season, layout_period)  # the probe trained a copy; start afresh
    skip_fit = fc.fit_linear_skip(model, data.train, data.val) if model.skip is not None else None
    logger.info("time budget: %s", plan["why"])
    plan_line = (f"training plan: {cfg_values['epochs']} epoch(s) at most, patience {args.patience}, d_model {d_model} "
          f"-> image {model.image_size[0]}x{model.image_size[1]}"
          f"{' (one row per period of %d steps)' % layout_period if layout_period else ''}, anchor "
          f"{'seasonal naive period ' + str(season) if season else 'none'}, linear skip "
          f"{'ridge %g (chosen on validation)' % skip_fit['ridge'] if skip_fit else 'none'}; {plan['why']}")
    logger.info("%s", plan_line)
    cfg = engine.EngineConfig.from_dict(cfg_values)
    run_config = {k: v for k, v in vars(args).items() if not callable(v)} | {
        "features": features, "d_model": d_model, "epochs": cfg.epochs, "budget_plan": plan}
    evaluate_fn = fc.make_evaluate_fn(data.scaler, data.targets)

    t0 = time.perf_counter()
    trainer = engine.Trainer(model, loaders["train"], loaders["val"], fc.forecast_loss, evaluate_fn, cfg,
                             out / "unireplknet", full_config=run_config)
    summary = trainer.fit(resume=args.resume)
    model.load_state_dict(trainer.best_model_weights())
    gate = None
    if model.skip is not None or season is not None:  # how much of the backbone's correction to keep
        gate = fc.choose_correction_scale(model, loaders["val"], to_device=trainer.ctx.to_device)
    backbone_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    linear = fc.LinearForecast(args.seq_len, args.pred_len, data.targets)
    lin_values = cfg_values | {"lr": args.linear_lr, "weight_decay": 0.0, "warmup_epochs": 0,
                               "epochs": max_epochs, "max_train_steps": args.max_train_steps}
    lin_cfg = engine.EngineConfig.from_dict(lin_values)
    lin_trainer = engine.Trainer(linear, loaders["train"], loaders["val"], fc.forecast_loss, evaluate_fn, lin_cfg,
                                 out / "linear", full_config=run_config)
    lin_summary = lin_trainer.fit()
    linear.load_state_dict(lin_trainer.best_model_weights())
    linear_s = time.perf_counter() - t0

    models: dict[str, torch.nn.Module] = {
        "UniRepLKNet": model,
        "Linear (DLinear-like)": linear,
        "Naive (last value)": fc.NaiveForecast(args.pred_len, data.targets),
    }
    if model.skip is not None:  # the model without its backbone: what the backbone adds is visible
        skip_only = copy.deepcopy(model)
        skip_only.correction_scale.fill_(0.0)
        models["Ridge (the linear skip alone)"] = skip_only
    for period in periods:
        name = f"Seasonal naive (period {period}{_season_word(period, data.dates)})"
        models[name] = fc.SeasonalNaiveForecast(args.pred_len, period, data.targets, args.seq_len)
    results = {}
    for name, net in models.items():
        results[name] = evaluate_fn(net.to(trainer.device), loaders["test"], trainer.ctx)

    n_params = sum(p.numel() for p in model.parameters())
    wall_s = time.perf_counter() - t_run
    report = {
        "data": data.meta() | {"file": str(args.data)},
        "config": run_config,
        "model": {"backbone": args.model, "params": n_params, "image_size": list(model.image_size),
                  "d_model": d_model, "anchor_period": season, "anchor_val_mse": anchor_val,
                  "linear_skip": skip_fit, "correction_scale": gate, "layout_period": layout_period},
        "seasonal_period": periods[0] if periods else 1,
        "seasonal_periods": periods,
        "best_val": summary.get("best"),
        "training": {
            "plan": plan, "epochs_run": summary.get("epochs"), "stopped_early": summary.get("stopped_early"),
            "backbone_s": backbone_s, "linear_s": linear_s, "linear_epochs_run": lin_summary.get("epochs"),
            "wall_s": wall_s, "threads": torch.get_num_threads(),
        },
        "test": results,
    }
    with open(out / "metrics.json", "w") as f:
        json.dump(report, f, indent=2, default=str)
    _write_csv(out / "metrics.csv", results)
    png = _plot(out / "forecast.png", data, models, args.plot_windows, trainer.device) if args.plot_windows else None

    report["files"] = {"metrics": str(out / "metrics.json"), "csv": str(out / "metrics.csv"), "plot": str(png) if png else None}
    report["plan_line"] = plan_line
    report["summary_lines"] = [
        f"{Path(args.data).name}: features={features} targets={data.target_names} seq_len={args.seq_len} "
        f"pred_len={args.pred_len} test windows={len(data.test)} (normalised scale; *_orig in original units)",
        f"UniRepLKNet: {summary.get('epochs')} epoch(s) in {backbone_s:.0f} s"
        + (f", stopped early (best epoch {summary['best'].get('epoch')})" if summary.get("stopped_early") else "")
        + f"; linear {linear_s:.0f} s; wall time {wall_s:.0f} s",
    ]
    return report


def _write_csv(path: Path, results: dict[str, dict[str, float]]) -> None:
    keys = ["mse", "mae", "mse_orig", "mae_orig", "n"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model"] + keys)
        for name, res in results.items():
            w.writerow([name] + [res.get(k, "") for k in keys])


def format_table(results: dict[str, dict[str, float]]) -> str:
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
