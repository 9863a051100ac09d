"""``unireplknet forecast --data file.csv --target OT --seq-len 96 --pred-len 96``.

Flags: :mod:`unireplknet.tasks.forecast_args` (config = defaults < ``--config`` YAML < flags, as in
``unireplknet train``; ``unireplknet train --task forecasting`` is the same run). Trains the backbone forecaster (and the DLinear-like baseline) with the
engine, evaluates both and the naive / seasonal-naive baselines on the test
split, writes ``metrics.json``, ``metrics.csv`` and ``forecast.png`` to
``--output`` and prints the comparison table.
"""
from __future__ import annotations

import argparse

from ..tasks.forecast_args import add_forecast_args  # stdlib only: --help stays fast


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``forecast`` sub-command."""
    p = subparsers.add_parser(
        "forecast",
        help="time-series forecasting on a CSV: UniRepLKNet next to naive, seasonal-naive and linear baselines",
        description="Embed each window as a 1xHxW image, train UniRepLKNet to forecast pred_len steps, and "
        "compare it on the test split with naive, seasonal-naive and DLinear-like baselines trained in the same run.",
    )
    add_forecast_args(p)  # the flags live with the task: the same ones serve `train --task forecasting`
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the forecast (:func:`unireplknet.runner.forecast.run_forecast`) and print the comparison table."""
    from ..runner.forecast import run_forecast

    print_report(run_forecast(args))
    return 0


def print_report(report: dict) -> None:
    """The lines a forecasting run prints: the plan, the data, the test table of every model, the files."""
    from ..runner.forecast import format_table

    results = report["test"]
    print(report["plan_line"])
    for line in report["summary_lines"]:
        print(line)
    print(format_table(results))
    # a tie goes to the simpler model (the baselines follow the model in the table): the backbone must beat them
    best = min(results, key=lambda k: (results[k]["mse"], list(results).index(k) == 0))
    print(f"lowest test MSE: {best}")
    files = report["files"]
    print(f"wrote {files['metrics']}, {files['csv']}" + (f", {files['plot']}" if files["plot"] else ""))
