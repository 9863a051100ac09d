"""``unireplknet forecast --data file.csv --target OT --seq-len 96 --pred-len 96``.

Trains the backbone forecaster (and the DLinear-like baseline) with the
engine, evaluates both and the naive / seasonal-naive baselines on the test
split, writes ``metrics.json``, ``metrics.csv`` and ``forecast.png`` to
``--output`` and prints the comparison table.
"""
from __future__ import annotations

import argparse

from ..runner.forecast import AUTO_IMAGE_PIXELS  # stdlib-only at import time



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
    m.add_argument("--d-model", type=int, default=None,
                   help="embedding width; the image holds seq_len*d_model values (auto: 32, fewer for long "
                   f"lookbacks so the image stays near {AUTO_IMAGE_PIXELS} pixels, at least 8)")
    m.add_argument("--image-size", default=None, metavar="HxW", help="image shape (most square by default)")
    m.add_argument("--channel-independent", action="store_true", help="one image per variable, shared weights")
    m.add_argument("--group-size", type=int, default=None, help="variables per image in grouped mode")
    m.add_argument("--head", choices=("pooled", "flatten"), default="pooled", help="head input (pooled)")
    m.add_argument("--no-revin", action="store_true", help="disable instance normalisation")
    m.add_argument("--anchor", choices=("auto", "none"), default="none",
                   help="auto: the network forecasts a correction to the seasonal-naive forecast with the "
                   "detected period that does best on the validation split (none when nothing is periodic); "
                   "none: the network forecasts on its own (none; auto did worse on the Taylor demand series)")
    m.add_argument("--dropout", type=float, default=0.05, help="embedding dropout (0.05)")
    m.add_argument("--drop-path", type=float, default=0.0, help="stochastic depth (0)")

    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=None,
                   help="epochs (10; with a time budget, the most it may choose)")
    t.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="fit the training into about this many minutes: epochs (at most --epochs) and, if one "
                   "epoch does not fit, steps per epoch from the measured time of a few real steps "
                   "(default 10 on a CPU when --epochs is not given; 0: off)")
    t.add_argument("--patience", type=int, default=3,
                   help="early stopping: stop when the validation MSE has not improved for this many epochs "
                   "and keep the best epoch (3; 0: off)")
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



def run(args: argparse.Namespace) -> int:
    """Run the forecast (:func:`unireplknet.runner.forecast.run_forecast`) and print the comparison table."""
    from ..runner.forecast import format_table, run_forecast

    report = run_forecast(args)
    results = report["test"]
    print(report["plan_line"])
    for line in report["summary_lines"]:
        print(line)
    print(format_table(results))
    print(f"lowest test MSE: {min(results, key=lambda k: results[k]['mse'])}")
    files = report["files"]
    print(f"wrote {files['metrics']}, {files['csv']}" + (f", {files['plot']}" if files["plot"] else ""))
    return 0
