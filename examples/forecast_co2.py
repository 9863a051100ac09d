"""Forecast the Mauna Loa CO2 series (shipped with statsmodels, no download) with UniRepLKNet.

Weekly CO2 concentrations 1958-2001 (2284 weeks, 59 missing, filled forward).
Two years of history (104 weeks) forecast the next year (52 weeks); the
series is split 70/10/20 in time, the scaler is fit on the training years, and
the backbone is compared with naive, seasonal-naive and DLinear-like baselines
trained in the same run:

    python examples/forecast_co2.py                       # a few CPU minutes
    python examples/forecast_co2.py --model unireplknet_a --epochs 10

Everything lands in ``--output`` (metrics.json, metrics.csv, forecast.png).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unireplknet._extras import require
from unireplknet.cli import main as cli_main


def write_co2_csv(path: Path) -> Path:
    """Write statsmodels' CO2 data as a CSV with a ``date`` column (NaNs kept: the forecast command fills them)."""
    datasets = require("statsmodels.datasets", "timeseries", "the CO2 example data")
    frame = datasets.co2.load_pandas().data
    frame.index.name = "date"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.reset_index().to_csv(path, index=False)
    return path


def main(argv: list[str] | None = None) -> int:
    """Build the CSV and run ``unireplknet forecast`` on it; extra arguments are passed to the command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="runs/forecast_co2", help="run directory (runs/forecast_co2)")
    parser.add_argument("--model", default="custom", help="backbone variant or custom (custom)")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (8)")
    args, extra = parser.parse_known_args(argv)
    csv_path = write_co2_csv(Path(args.output) / "co2.csv")
    return cli_main([
        "forecast", "--data", str(csv_path), "--target", "co2", "--features", "S",
        "--seq-len", "104", "--pred-len", "52", "--d-model", "16", "--model", args.model,
        "--epochs", str(args.epochs), "--batch-size", "32", "--lr", "1e-3", "--seed", "0",
        "--output", args.output, *extra,
    ])


if __name__ == "__main__":
    sys.exit(main())
