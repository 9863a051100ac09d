"""Config keys and flags of the forecasting task (stdlib only: ``--help`` stays fast).

The same flags serve ``unireplknet forecast`` and ``unireplknet train --task forecasting``. Every flag
defaults to ``None``; the values come from :data:`FORECAST_DEFAULTS` < ``--config`` YAML < flags (on
``--resume``: the checkpoint's config < YAML < flags), resolved by
:func:`unireplknet.engine.resolve.resolve_run_config`.
"""
from __future__ import annotations

import argparse
from typing import Any

__all__ = ["FORECAST_DEFAULTS", "AUTO_IMAGE_PIXELS", "add_forecast_args"]

#: pixels the automatic ``--d-model`` aims at (64 x 64): lookback 96 -> d_model 32, 336 -> 12.
AUTO_IMAGE_PIXELS = 4096

#: every config key of a forecasting run and its default.
FORECAST_DEFAULTS: dict[str, Any] = {
    # data
    "data": None, "global_weather": None, "target": None, "features": None, "date_col": "date", "seq_len": 96,
    "label_len": 0, "pred_len": 96, "split": "auto", "fill": "ffill", "freq": None, "no_time_features": False,
    # model
    "model": "custom", "depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128], "kernel_sizes": ["3", "7", "7,3", "7"],
    "d_model": None, "image_size": None, "channel_independent": False, "group_size": None, "head": "pooled",
    "no_revin": False, "anchor": "none", "linear_skip": "ridge", "image_layout": "flat", "dropout": 0.05,
    "drop_path": 0.0,
    # training
    "epochs": None, "time_budget": None, "patience": 3, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.05,
    "warmup_epochs": 1.0, "linear_lr": 5e-3, "max_train_steps": None, "device": "auto", "seed": 0,
    "num_workers": 0, "num_threads": None,
    # evaluation and output
    "period": None, "plot_windows": 4, "output": "runs/forecast",
}

_FLAGS: list[tuple[str, tuple[tuple[str, ...], dict[str, Any]]]] = [
    ("data", (("--data",), dict(help="CSV file with a date column and numeric columns (a directory with --global-weather)"))),
    ("data", (("--global-weather",), dict(choices=("temp", "wind"), help=(
        "--data is a directory of Global Temp/Wind station arrays (the paper's task: --seq-len 48 --pred-len 24 "
        "--label-len 24, nodes of --group-size 11 stations with geo embedding)")))),
    ("data", (("--target",), dict(help="target column (needed for S and MS)"))),
    ("data", (("--features",), dict(choices=("M", "S", "MS"), help=(
        "M: all columns in and out; S: target only; MS: all in, target out (default: S with --target, else M)")))),
    ("data", (("--date-col",), dict(help="name of the date column (date)"))),
    ("data", (("--seq-len",), dict(type=int, help="input window length (96)"))),
    ("data", (("--label-len",), dict(type=int, help="decoder start steps kept in y_mark (0)"))),
    ("data", (("--pred-len",), dict(type=int, help="forecast horizon (96)"))),
    ("data", (("--split",), dict(choices=("auto", "etth", "ettm", "ratio"),
                                 help="auto: ETTh*/ETTm* names get 12/4/4 months, others 70/10/20 (auto)"))),
    ("data", (("--fill",), dict(choices=("ffill", "interpolate", "zero", "error"),
                                help="missing-value policy (ffill: last value forward, leading gap back-filled)"))),
    ("data", (("--freq",), dict(help="calendar frequency s/t/h/d/w/m/q/y (inferred)"))),
    ("data", (("--no-time-features",), dict(action="store_const", const=True, help="do not embed calendar features"))),
    ("model", (("--model",), dict(help="backbone variant (unireplknet_a ... unireplknet_xl) or 'custom' "
                                       "(--depths/--dims/--kernel-sizes; default custom)"))),
    ("model", (("--depths",), dict(type=int, nargs=4, help="custom: blocks per stage (1 1 2 1)"))),
    ("model", (("--dims",), dict(type=int, nargs=4, help="custom: channels (16 32 64 128)"))),
    ("model", (("--kernel-sizes",), dict(nargs=4, metavar="K[,K...]",
                                         help="custom: per-block kernel sizes per stage, comma-separated (3 7 7,3 7)"))),
    ("model", (("--d-model",), dict(type=int, help=(
        "embedding width; the image holds seq_len*d_model values (auto: 32, fewer for long lookbacks so the "
        f"image stays near {AUTO_IMAGE_PIXELS} pixels, at least 8)")))),
    ("model", (("--image-size",), dict(metavar="HxW", help="image shape (most square by default)"))),
    ("model", (("--channel-independent",), dict(action="store_const", const=True,
                                                help="one image per variable, shared weights"))),
    ("model", (("--group-size",), dict(type=int, help="variables per image in grouped mode"))),
    ("model", (("--head",), dict(choices=("pooled", "flatten"), help="head input (pooled)"))),
    ("model", (("--no-revin",), dict(action="store_const", const=True, help="disable instance normalisation"))),
    ("model", (("--anchor",), dict(choices=("auto", "none"), help=(
        "auto: the network forecasts a correction to the seasonal-naive forecast with the detected period that "
        "does best on the validation split (none when nothing is periodic); none: the network forecasts on its own")))),
    ("model", (("--linear-skip",), dict(choices=("ridge", "none"), help=(
        "ridge: add a linear map lookback -> horizon (ridge regression in closed form on the training windows, "
        "penalty chosen on validation) and train the backbone to correct it, keeping the share of the correction "
        "that is best on validation; none: the backbone alone (ridge; ignored with --anchor auto)")))),
    ("model", (("--image-layout",), dict(choices=("flat", "period"), help=(
        "flat: the embedded window reshaped row-major (--image-size); period: one row per cycle of the longest "
        "detected period that fits twice in the lookback, so vertical neighbours are one period apart (flat)")))),
    ("model", (("--dropout",), dict(type=float, help="embedding dropout (0.05)"))),
    ("model", (("--drop-path",), dict(type=float, help="stochastic depth (0)"))),
    ("training", (("--epochs",), dict(type=int, help="epochs (10; with a time budget, the most it may choose)"))),
    ("training", (("--time-budget",), dict(type=float, metavar="MINUTES", help=(
        "fit the training into about this many minutes: epochs (at most --epochs) and, if one epoch does not fit, "
        "steps per epoch from the measured time of a few real steps (default 10 on a CPU when --epochs is not "
        "given; 0: off)")))),
    ("training", (("--patience",), dict(type=int, help=(
        "early stopping: stop when the validation MSE has not improved for this many epochs and keep the best "
        "epoch (3; 0: off)")))),
    ("training", (("--batch-size",), dict(type=int, help="batch size (32)"))),
    ("training", (("--lr",), dict(type=float, help="peak learning rate, cosine schedule (1e-3)"))),
    ("training", (("--weight-decay",), dict(type=float, help="AdamW weight decay (0.05)"))),
    ("training", (("--warmup-epochs",), dict(type=float, help="linear warm-up epochs (1)"))),
    ("training", (("--linear-lr",), dict(type=float, help="learning rate of the linear baseline (5e-3)"))),
    ("training", (("--max-train-steps",), dict(type=int, help="cap updates per epoch (smoke tests)"))),
    ("training", (("--device",), dict(help="auto, cpu, cuda, cuda:1 (auto)"))),
    ("training", (("--seed",), dict(type=int, help="random seed (0)"))),
    ("training", (("--num-workers",), dict(type=int, help="DataLoader workers (0)"))),
    ("training", (("--num-threads",), dict(type=int, help="torch CPU threads (torch's choice)"))),
    ("run", (("--resume",), dict(help="continue the backbone run from its last.pt (its config is the base)"))),
    ("run", (("--config",), dict(help="YAML file of config keys (the flags' names with underscores)"))),
    ("output", (("--period",), dict(type=int, help="seasonal period (detected on the train split)"))),
    ("output", (("--plot-windows",), dict(type=int, help="test windows drawn in forecast.png (4)"))),
    ("output", (("-o", "--output", "--out"), dict(dest="output", help="run directory (runs/forecast)"))),
]


def add_forecast_args(parser: argparse.ArgumentParser) -> None:
    """Add the forecasting flags (all ``default=None``) in groups, skipping options the parser already has."""
    existing = set(getattr(parser, "_option_string_actions", {}))
    groups: dict[str, Any] = {}
    for group, (names, kw) in _FLAGS:
        if any(n in existing for n in names):
            continue
        if group not in groups:
            groups[group] = parser.add_argument_group(f"forecasting {group}")
        groups[group].add_argument(*names, default=None, **kw)
