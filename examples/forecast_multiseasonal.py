"""Forecast a real double-seasonal series (daily and weekly cycles) with UniRepLKNet, within a time budget.

The series is Taylor's half-hourly electricity demand of England and Wales,
Monday 5 June to Sunday 27 August 2000 (4032 half-hours, 12 weeks; J. W.
Taylor, "Short-term electricity demand forecasting using double seasonal
exponential smoothing", JORS 2003), shipped with ``pmdarima``
(``pmdarima.datasets.load_taylor``, no download). It has a daily (48 steps)
and a weekly (336 steps) cycle. One week of history (336 half-hours)
forecasts the next day (48) by default; the series is split 70/10/20 in time.

    pip install pmdarima
    python examples/forecast_multiseasonal.py                    # about 3 minutes on 2 CPU cores (budget 10)
    python examples/forecast_multiseasonal.py --pred-len 96 --time-budget 5

The real ``unireplknet forecast`` command runs on a CSV written to a temporary
folder (or ``--csv-dir``); the table prints the backbone next to the naive
forecast, the seasonal naive forecasts with each detected period (daily and
weekly), the DLinear-like linear model trained in the same run and the
model's own linear skip alone (ridge; what the backbone adds to it is the
difference). Everything else lands in ``--output`` (metrics.json,
metrics.csv, forecast.png).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from unireplknet._extras import require
from unireplknet.cli import main as cli_main

#: the first half-hour of the series
TAYLOR_START = "2000-06-05 00:00"


def taylor_frame(rows: int | None = None) -> "object":
    """Taylor's demand series as a DataFrame with a half-hourly ``date`` column and ``demand`` (MW).

    ``rows`` keeps only the first ``rows`` half-hours (whole series when ``None``).
    """
    pd = require("pandas", "timeseries", "the example data")
    datasets = require("pmdarima.datasets", "timeseries", "the Taylor half-hourly demand series (pip install pmdarima)")
    values = datasets.load_taylor(as_series=False)
    values = values[:rows] if rows else values
    dates = pd.date_range(TAYLOR_START, periods=len(values), freq="30min")
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d %H:%M:%S"), "demand": values})


def write_taylor_csv(path: Path, rows: int | None = None) -> Path:
    """Write :func:`taylor_frame` to ``path`` (a CSV the forecast command reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    taylor_frame(rows).to_csv(path, index=False)
    return path


def main(argv: list[str] | None = None) -> int:
    """Write the CSV and run ``unireplknet forecast`` on it; extra arguments are passed to the command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="runs/forecast_multiseasonal", help="run directory")
    parser.add_argument("--seq-len", type=int, default=336, help="lookback in half-hours (336: one week)")
    parser.add_argument("--pred-len", type=int, default=48, help="horizon in half-hours (48: one day)")
    parser.add_argument("--rows", type=int, default=None, help="use only the first ROWS half-hours (CI)")
    parser.add_argument("--csv-dir", default=None, help="write the CSV here (default: a temporary folder)")
    args, extra = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = write_taylor_csv(Path(args.csv_dir or tmp) / "taylor_demand.csv", args.rows)
        return cli_main([
            "forecast", "--data", str(csv_path), "--target", "demand", "--features", "S",
            "--seq-len", str(args.seq_len), "--pred-len", str(args.pred_len), "--seed", "0",
            "--output", args.output, *extra,
        ])


if __name__ == "__main__":
    sys.exit(main())
