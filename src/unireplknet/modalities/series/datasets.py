"""Forecasting data in the conventions of the long-term forecasting literature.

* A CSV with a date column and numeric columns; ``features`` picks M (all
  variables in, all out), S (the target only) or MS (all in, the target out).
* Splits: ETTh1/ETTh2 use 12/4/4 months of hourly rows, ETTm1/ETTm2 the same
  in 15-minute rows; any other file 70/10/20 by row count. The validation and
  test slices start ``seq_len`` rows before their border, so the first forecast
  target lies inside the split.
* The scaler is fit on the training slice only; metrics are reported on that
  normalised scale (original units on request).
* Windows: ``seq_len`` inputs, then ``pred_len`` targets; ``y_mark`` also
  covers the last ``label_len`` input steps (decoder start, 0 by default).
  A split of ``n`` rows gives ``n - seq_len - pred_len + 1`` windows.
* Evaluation keeps every window (the test loader of
  :func:`unireplknet.tasks.forecasting.forecast_loaders` has ``drop_last=False``)
  and :class:`ForecastMeter` averages the metrics per sample.

Missing values (NaN or empty cells) are filled by ``fill``: ``"ffill"``
(default: carry the last observation forward, then back-fill leading gaps),
``"interpolate"`` (linear in time), ``"zero"``, or ``"error"`` (refuse).

Also a loader for the Global Temp / Global Wind station arrays used by the
paper (Corrformer's files, see :func:`load_global_weather`).
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from unireplknet._extras import require

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "FILL_POLICIES",
    "ForecastData",
    "ForecastMeter",
    "ForecastWindows",
    "GlobalWeatherWindows",
    "SeriesTable",
    "StandardScaler",
    "build_forecast_data",
    "build_global_weather_data",
    "infer_freq",
    "load_global_weather",
    "read_series_csv",
    "series_table_from_frame",
    "split_borders",
    "time_features",
]

logger = logging.getLogger(__name__)

FILL_POLICIES = ("ffill", "interpolate", "zero", "error")
HOURS_PER_MONTH = 30 * 24  # the ETT convention: a "month" is 30 days


# ----------------------------------------------------------------------------- reading


@dataclass
class SeriesTable:
    """A regular multivariate series: ``values`` (T x C float32), its ``dates`` and ``columns``."""

    values: np.ndarray
    dates: Any  # pandas.DatetimeIndex
    columns: list[str]
    source: str = "<frame>"

    def __len__(self) -> int:
        return len(self.values)


_DAY_MONTH = r"^\s*\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}"


def _step_spread(dates: Any) -> float:
    """Coefficient of variation of the steps between sorted dates (0 for a perfectly regular series)."""
    steps = np.diff(np.sort(dates.asi8)).astype(np.float64)
    return float(steps.std() / steps.mean()) if len(steps) > 1 and steps.mean() > 0 else 0.0


def parse_dates(raw: Any, where: str) -> Any:
    """A ``DatetimeIndex`` from a date column, without pandas' silent guesses.

    * numbers are not dates: whole numbers 1000-3000 are read as years, anything else (Excel serial
      numbers, Unix times) is an error, where pandas would read them as nanoseconds since 1970;
    * ``dd/mm/yyyy`` vs ``mm/dd/yyyy``: both orders are tried; when both parse, the one giving the more
      regular series is taken, and two equally regular readings are an error (write ISO dates);
    * ISO dates with and without a time of day, and offsets that change with daylight saving (read
      in UTC), are accepted.
    """
    pd = require("pandas", "timeseries", "time-series data")
    series = pd.Series(np.asarray(raw))
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        vals = series.to_numpy(dtype=np.float64)
        whole = np.isfinite(vals).all() and (vals == np.round(vals)).all()
        if whole and len(vals) and 1000 <= vals.min() and vals.max() <= 3000:
            return pd.DatetimeIndex(pd.to_datetime(vals.astype(int).astype(str), format="%Y"))
        raise ValueError(f"{where} are numbers ({vals[0]:g}, ...), not dates: write them as dates (YYYY-MM-DD "
                         f"or YYYY-MM-DD hh:mm); Excel serial numbers and Unix times are not read as dates")
    text = series.astype(str)

    def attempt(**kw: Any) -> Any:
        try:
            with warnings.catch_warnings():  # pandas' "could not infer format" advice: the rules here decide
                warnings.simplefilter("ignore")
                return pd.DatetimeIndex(pd.to_datetime(text, **kw))
        except (ValueError, TypeError):
            return None

    if text.str.match(_DAY_MONTH).all():
        month_first, day_first = attempt(dayfirst=False), attempt(dayfirst=True)
        readings = [d for d in (month_first, day_first) if d is not None]
        if len(readings) == 2 and not month_first.equals(day_first):
            a, b = _step_spread(month_first), _step_spread(day_first)
            if abs(a - b) < 0.05:
                raise ValueError(f"{where} could be day/month or month/day ({text.iloc[0]!r}): write them as "
                                 f"ISO dates (YYYY-MM-DD)")
            logger.info("%s read %s first (the more regular reading)", where, "month" if a < b else "day")
            return month_first if a < b else day_first
        if readings:
            return readings[0]
    for kw in ({}, {"format": "ISO8601"}, {"utc": True}, {"format": "ISO8601", "utc": True}):
        dates = attempt(**kw)
        if dates is not None:
            if dates.tz is not None:  # offsets (daylight saving): one clock, UTC
                dates = dates.tz_convert("UTC").tz_localize(None)
            return dates
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = next((v for v in text if not pd.isna(pd.to_datetime(v, errors="coerce"))), None)
        bad = next((v for v in text if pd.isna(pd.to_datetime(v, errors="coerce", format="mixed"))), text.iloc[0])
    raise ValueError(f"{where} cannot be read as dates (e.g. {bad!r}"
                     + (f"; {first!r} can" if first is not None else "") + "): write them as YYYY-MM-DD[ hh:mm]")


def series_columns(columns: Sequence[Any], source: str) -> list[Any]:
    """The value columns among ``columns``: a saved DataFrame index (``Unnamed: 0``, a row counter that
    pandas' ``to_csv`` writes) is left out, with a warning."""
    index_cols = [c for c in columns if str(c).startswith("Unnamed: ")]
    if index_cols:
        logger.warning("%s: left out the column(s) %s (a saved DataFrame index, not a series)", source, index_cols)
    return [c for c in columns if c not in index_cols]


def _csv_header(path: Path) -> list[str]:
    """The column names of a CSV, with errors that name the file (encoding, separator)."""
    pd = require("pandas", "timeseries", "reading CSV series")
    try:
        header = [str(c) for c in pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns]
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8 CSV") from None
    if len(header) == 1 and ";" in header[0]:
        raise ValueError(f"{path}: the columns are separated by ';' ({header[0]!r}); save it as a comma-separated "
                         f"CSV with '.' as the decimal point")
    return header


def series_table_from_frame(
    frame: pd.DataFrame,
    date_col: str | None = "date",
    columns: Sequence[str] | None = None,
    fill: str = "ffill",
    source: str = "<frame>",
) -> SeriesTable:
    """Validate a DataFrame and turn it into a :class:`SeriesTable`.

    ``date_col=None`` uses the frame's index as the dates. ``columns`` selects
    the value columns (all but the date column when ``None``). Raises
    ``ValueError`` for a missing column, unparseable/unsorted/duplicate dates,
    non-numeric values, and NaNs when ``fill="error"``.
    """
    pd = require("pandas", "timeseries", "time-series data")
    if fill not in FILL_POLICIES:
        raise ValueError(f"unknown fill policy {fill!r}; choose one of {', '.join(FILL_POLICIES)}")
    if date_col is None:
        raw_dates = frame.index
    else:
        if date_col not in frame.columns:
            raise ValueError(f"{source}: no date column {date_col!r}; columns are {list(map(str, frame.columns))}")
        raw_dates = frame[date_col]
    dates = parse_dates(raw_dates, f"{source}: the dates in {date_col or 'the index'!r}")
    if dates.hasnans:
        row = int(np.flatnonzero(dates.isna())[0])
        raise ValueError(f"{source}: missing or invalid timestamp at row {row}")
    if dates.has_duplicates:
        dup = dates[dates.duplicated()][0]
        raise ValueError(f"{source}: duplicate timestamp {dup} (each time step must appear once; several series in "
                         f"one column (id,date,value) must be pivoted to one column per series; a repeated hour "
                         f"of a daylight-saving change needs UTC offsets or UTC times)")
    if not dates.is_monotonic_increasing:
        row = int(np.flatnonzero(np.diff(dates.asi8) < 0)[0]) + 1
        raise ValueError(
            f"{source}: timestamps are not sorted: row {row} ({dates[row]}) comes before row {row - 1} "
            f"({dates[row - 1]}); sort the file by date"
        )
    if len(dates) > 2:  # gaps: windows and seasonal lags count rows, not time
        steps = np.diff(dates.values.astype("datetime64[ns]").astype(np.int64))  # ns, whatever the index's unit
        med = float(np.median(steps))
        gaps = steps > 5 * med  # not weekends or holidays of business-day data
        if med > 0 and gaps.any():
            big = int(np.argmax(steps))
            logger.warning("%s: %d gap(s) in the timestamps (steps over 5x the usual %s; the largest %s, after %s): "
                           "rows are used as consecutive steps", source, int(gaps.sum()), pd.Timedelta(int(med)),
                           pd.Timedelta(int(steps[big])), dates[big])
    value_cols = series_columns([c for c in frame.columns if c != date_col], source) if columns is None \
        else list(columns)
    missing = [c for c in value_cols if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{source}: column(s) {missing} not found; available: {[c for c in frame.columns if c != date_col]}"
        )
    if not value_cols:
        raise ValueError(f"{source}: no value columns besides the date column")
    values = np.empty((len(frame), len(value_cols)), dtype=np.float64)
    for j, col in enumerate(value_cols):
        raw = frame[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad = num.isna().to_numpy() & raw.notna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{source}: non-numeric value {raw.iloc[row]!r} in column {col!r} at data row {row} "
                             f"(file line {row + 2}; missing values are empty cells, NA or NaN)")
        values[:, j] = num.to_numpy(dtype=np.float64, na_value=np.nan)
    filled = ~np.isnan(values).all(1)
    last = int(np.flatnonzero(filled)[-1]) + 1 if filled.any() else 0
    if 0 < last < len(values):  # dates listed for the future are not data: never filled, trained or scored
        logger.warning("%s: dropped the last %d row(s), which have dates but no values (the series ends at %s)",
                       source, len(values) - last, dates[last - 1])
        values, dates = values[:last], dates[:last]
    values = _fill_missing(values, value_cols, fill, source)
    return SeriesTable(values.astype(np.float32), dates, [str(c) for c in value_cols], source)


def _fill_missing(values: np.ndarray, columns: Sequence[str], fill: str, source: str) -> np.ndarray:
    """Apply the documented NaN policy column by column."""
    nan = np.isnan(values)
    if not nan.any():
        return values
    counts = {str(c): int(n) for c, n in zip(columns, nan.sum(0)) if n}
    if fill == "error":
        raise ValueError(f"{source}: missing values (NaN) in {counts}; choose a fill policy other than 'error'")
    empty = [str(c) for c, all_nan in zip(columns, nan.all(0)) if all_nan]
    if empty:
        raise ValueError(f"{source}: column(s) {empty} hold no numeric value at all")
    logger.info("%s: filling missing values with %r: %s", source, fill, counts)
    out = values.copy()
    t = np.arange(len(values))
    for j in range(values.shape[1]):
        col, miss = out[:, j], nan[:, j]
        if not miss.any():
            continue
        if fill == "zero":
            col[miss] = 0.0
        elif fill == "interpolate":
            col[miss] = np.interp(t[miss], t[~miss], col[~miss])
        else:  # ffill, then back-fill the leading gap
            idx = np.where(miss, 0, t)
            np.maximum.accumulate(idx, out=idx)
            first = int(np.flatnonzero(~miss)[0])
            idx[:first] = first
            out[:, j] = col[idx]
    return out


def read_series_csv(
    path: str | Path, date_col: str = "date", columns: Sequence[str] | None = None, fill: str = "ffill"
) -> SeriesTable:
    """Read a CSV with a date column into a validated :class:`SeriesTable` (see :func:`series_table_from_frame`)."""
    pd = require("pandas", "timeseries", "reading CSV series")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path}")
    _csv_header(path)  # encoding and separator problems, named
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable CSV file: {e}") from e
    return series_table_from_frame(frame, date_col=date_col, columns=columns, fill=fill, source=str(path))


# ----------------------------------------------------------------------------- calendar features

_FREQ_STEPS = (  # (upper bound of the median step in seconds, code)
    (60, "s"),
    (3600, "t"),
    (86400, "h"),
    (7 * 86400, "d"),
    (28 * 86400, "w"),
    (89 * 86400, "m"),
    (364 * 86400, "q"),
)


def infer_freq(dates: Any) -> str:
    """Frequency code from the median step: s, t (minutes), h, d, w, m, q or y."""
    if len(dates) < 2:
        raise ValueError("need at least two timestamps to infer the frequency")
    ns = np.asarray(dates.values.astype("datetime64[ns]").astype(np.int64), dtype=np.float64)
    step = float(np.median(np.diff(ns))) / 1e9
    for bound, code in _FREQ_STEPS:
        if step < bound:
            return code
    return "y"


def time_features(dates: Any, freq: str | None = None) -> np.ndarray:
    """Calendar features of ``dates`` scaled to [-0.5, 0.5] (T x F float32; F depends on ``freq``).

    h: hour, weekday, day of month, day of year; t: minute plus those; s:
    second plus those of t; d: weekday, day of month, day of year; w: day of
    month, week of year; m and q: month; y: none (F = 0).
    """
    freq = freq or infer_freq(dates)
    feats = {
        "second": lambda d: d.second / 59.0,
        "minute": lambda d: d.minute / 59.0,
        "hour": lambda d: d.hour / 23.0,
        "weekday": lambda d: d.day_of_week / 6.0,
        "monthday": lambda d: (d.day - 1) / 30.0,
        "yearday": lambda d: (d.day_of_year - 1) / 365.0,
        "week": lambda d: (np.asarray(d.isocalendar().week, dtype=np.float64) - 1) / 52.0,
        "month": lambda d: (d.month - 1) / 11.0,
    }
    plan = {
        "s": ["second", "minute", "hour", "weekday", "monthday", "yearday"],
        "t": ["minute", "hour", "weekday", "monthday", "yearday"],
        "h": ["hour", "weekday", "monthday", "yearday"],
        "d": ["weekday", "monthday", "yearday"],
        "w": ["monthday", "week"],
        "m": ["month"],
        "q": ["month"],
        "y": [],
    }
    if freq not in plan:
        raise ValueError(f"unknown frequency {freq!r}; choose one of {', '.join(plan)}")
    cols = [np.asarray(feats[name](dates), dtype=np.float64) - 0.5 for name in plan[freq]]
    if not cols:
        return np.zeros((len(dates), 0), dtype=np.float32)
    return np.stack(cols, axis=1).astype(np.float32)


# ----------------------------------------------------------------------------- splits and scaling


def split_borders(
    n_rows: int, seq_len: int, scheme: str = "ratio", ratios: Sequence[float] = (0.7, 0.1, 0.2)
) -> list[tuple[int, int]]:
    """Row ranges ``[(start, end)]`` of the train, val and test slices.

    ``scheme`` is ``"etth"`` (12/4/4 months of hourly rows), ``"ettm"`` (the
    same in 15-minute rows) or ``"ratio"`` (``ratios`` of the rows, test and
    train rounded down, val the rest). Val and test start ``seq_len`` rows
    before their border.
    """
    if scheme in ("etth", "ettm"):
        month = HOURS_PER_MONTH * (4 if scheme == "ettm" else 1)
        ends = [12 * month, 16 * month, 20 * month]
        if n_rows < ends[-1]:
            raise ValueError(f"the {scheme.upper()} split needs {ends[-1]} rows (20 months), the series has {n_rows}")
    elif scheme == "ratio":
        if len(ratios) != 3 or any(r <= 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
            raise ValueError(f"split ratios must be three positive numbers summing to 1, got {tuple(ratios)}")
        n_train, n_test = int(n_rows * ratios[0]), int(n_rows * ratios[2])
        ends = [n_train, n_rows - n_test, n_rows]
    else:
        raise ValueError(f"unknown split scheme {scheme!r}; choose etth, ettm or ratio")
    starts = [0, ends[0] - seq_len, ends[1] - seq_len]
    if starts[1] < 0:
        raise ValueError(f"the training slice ({ends[0]} rows) is shorter than seq_len={seq_len}")
    return list(zip(starts, ends))


def _scheme_for(source: str, split: str) -> str:
    if split != "auto":
        return split
    name = Path(source).name.lower()
    if name.startswith("etth"):
        return "etth"
    if name.startswith("ettm"):
        return "ettm"
    return "ratio"


@dataclass
class StandardScaler:
    """Per-column mean/std scaler (numpy); columns with zero spread get std 1."""

    mean: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    std: np.ndarray = field(default_factory=lambda: np.ones(0, dtype=np.float32))

    def fit(self, values: np.ndarray) -> StandardScaler:
        """Fit on ``values`` (T x C) and return self."""
        self.mean = values.mean(0).astype(np.float32)
        std = values.std(0).astype(np.float32)
        self.std = np.where(std > 0, std, 1.0).astype(np.float32)
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scale ``values`` (..., C)."""
        return ((values - self.mean) / self.std).astype(np.float32)

    def inverse_transform(self, values: Any, columns: Sequence[int] | None = None) -> Any:
        """Undo the scaling of ``values`` (..., len(columns)); works on numpy arrays and tensors."""
        mean, std = (self.mean, self.std) if columns is None else (self.mean[list(columns)], self.std[list(columns)])
        if isinstance(values, torch.Tensor):
            mean = torch.as_tensor(mean, device=values.device, dtype=values.dtype)
            std = torch.as_tensor(std, device=values.device, dtype=values.dtype)
        return values * std + mean

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


# ----------------------------------------------------------------------------- windows


class ForecastWindows(Dataset):
    """Sliding windows over one split.

    Item ``i`` is ``(inputs, y)``: ``inputs`` a dict with ``x`` (seq_len x C),
    ``x_mark`` (seq_len x F) and ``y_mark`` (label_len + pred_len x F, the
    calendar of the decoder start and the horizon); ``y`` the targets
    (pred_len x len(targets)). ``len = T - seq_len - pred_len + 1``.
    """

    def __init__(
        self,
        values: np.ndarray,
        marks: np.ndarray,
        seq_len: int,
        pred_len: int,
        label_len: int = 0,
        targets: Sequence[int] | None = None,
    ) -> None:
        if seq_len < 1 or pred_len < 1 or not 0 <= label_len <= seq_len:
            raise ValueError(
                f"need seq_len >= 1, pred_len >= 1, 0 <= label_len <= seq_len; got {seq_len}/{pred_len}/{label_len}"
            )
        if len(values) != len(marks):
            raise ValueError(f"values ({len(values)} rows) and time marks ({len(marks)} rows) differ in length")
        if len(values) < seq_len + pred_len:
            raise ValueError(
                f"a split of {len(values)} rows is shorter than seq_len + pred_len = {seq_len + pred_len}"
            )
        self.values = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        self.marks = torch.from_numpy(np.ascontiguousarray(marks, dtype=np.float32))
        self.seq_len, self.pred_len, self.label_len = seq_len, pred_len, label_len
        self.targets = list(range(values.shape[1])) if targets is None else list(targets)

    def __len__(self) -> int:
        return len(self.values) - self.seq_len - self.pred_len + 1

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        s = i + self.seq_len
        inputs = {
            "x": self.values[i:s],
            "x_mark": self.marks[i:s],
            "y_mark": self.marks[s - self.label_len : s + self.pred_len],
        }
        return inputs, self.values[s : s + self.pred_len, self.targets]

    def batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Windows ``indices`` stacked, as a DataLoader would collate them, in one gather per tensor.

        Same values as ``default_collate([self[i] for i in indices])`` without the per-window
        Python work (the training loader of ``unireplknet forecast`` slices batches this way).
        """
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1, 1)
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise IndexError(f"window indices must be in [0, {len(self)}), got {idx.min().item()}..{idx.max().item()}")
        if not hasattr(self, "_offsets"):
            self._offsets = (torch.arange(self.seq_len), torch.arange(self.seq_len - self.label_len,
                                                                        self.seq_len + self.pred_len))
        x_off, y_off = self._offsets
        x_rows, y_rows = idx + x_off, idx + y_off
        y = self.values[y_rows[:, self.label_len:]]
        if self.targets != list(range(self.values.shape[1])):
            y = y[..., self.targets]
        inputs = {"x": self.values[x_rows], "x_mark": self.marks[x_rows], "y_mark": self.marks[y_rows]}
        return inputs, y


@dataclass
class ForecastData:
    """The three window datasets of one series and what is needed to interpret them."""

    train: Any  # ForecastWindows (or GlobalWeatherWindows)
    val: Any
    test: Any
    columns: list[str]
    targets: list[int]
    scaler: StandardScaler | None
    freq: str
    borders: list[tuple[int, int]]
    seq_len: int
    pred_len: int
    label_len: int
    features: str
    dates: Any = None

    @property
    def target_names(self) -> list[str]:
        """Names of the forecast variables."""
        return [self.columns[t] for t in self.targets]

    @property
    def n_time_features(self) -> int:
        """Calendar features per step."""
        return int(self.train.marks.shape[1])

    def meta(self) -> dict:
        """JSON-friendly description (columns, split borders, scaler) for the run directory."""
        return {
            "columns": self.columns,
            "targets": self.target_names,
            "features": self.features,
            "freq": self.freq,
            "borders": [list(b) for b in self.borders],
            "seq_len": self.seq_len,
            "label_len": self.label_len,
            "pred_len": self.pred_len,
            "windows": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "scaler": self.scaler.to_dict() if self.scaler is not None else None,
        }


def _select(columns: list[str], target: str | None, features: str, source: str) -> tuple[list[str], str | None]:
    if features not in ("M", "S", "MS"):
        raise ValueError(f"features must be M, S or MS, got {features!r}")
    if target is not None and target not in columns:
        raise ValueError(f"{source}: target column {target!r} not found; available: {columns}")
    if features in ("S", "MS") and target is None:
        raise ValueError(f"features={features} needs a target column; available: {columns}")
    return ([target] if features == "S" else columns), target


def build_forecast_data(
    source: str | Path | SeriesTable | pd.DataFrame,
    target: str | None = None,
    features: str = "M",
    seq_len: int = 96,
    pred_len: int = 96,
    label_len: int = 0,
    split: str = "auto",
    ratios: Sequence[float] = (0.7, 0.1, 0.2),
    date_col: str = "date",
    fill: str = "ffill",
    scale: bool = True,
    freq: str | None = None,
) -> ForecastData:
    """Load a series, split it, fit the scaler on train and cut windows.

    ``source`` is a CSV path, a DataFrame (with ``date_col``, or dates as the
    index when ``date_col`` is absent) or a :class:`SeriesTable`. ``split`` is
    ``"auto"`` (ETTh*/ETTm* file names get the month split, others ``ratios``),
    ``"etth"``, ``"ettm"`` or ``"ratio"``.
    """
    if isinstance(source, SeriesTable):
        table = source
        wanted, _ = _select(table.columns, target, features, table.source)
        if wanted != table.columns:
            idx = [table.columns.index(c) for c in wanted]
            table = SeriesTable(table.values[:, idx], table.dates, wanted, table.source)
    elif isinstance(source, (str, Path)):
        pd = require("pandas", "timeseries", "reading CSV series")
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no such CSV file: {path}")
        header = _csv_header(path)
        if date_col not in header:
            raise ValueError(f"{path}: no date column {date_col!r}; columns are {header}")
        wanted, _ = _select(series_columns([c for c in header if c != date_col], str(path)), target, features,
                            str(path))
        table = read_series_csv(path, date_col=date_col, columns=wanted, fill=fill)
    else:
        dcol = date_col if date_col in source.columns else None
        wanted, _ = _select(series_columns([str(c) for c in source.columns if c != dcol], "<frame>"), target,
                            features, "<frame>")
        table = series_table_from_frame(source, date_col=dcol, columns=wanted, fill=fill)

    n = len(table)
    if n < seq_len + pred_len:
        raise ValueError(
            f"{table.source}: the series has {n} rows, shorter than seq_len + pred_len = {seq_len + pred_len}"
        )
    targets = list(range(len(table.columns))) if features == "M" else [table.columns.index(target)]
    scheme = _scheme_for(table.source, split)
    borders = split_borders(n, seq_len, scheme, ratios)
    for name, (b0, b1) in zip(("train", "val", "test"), borders):
        if b1 - b0 < seq_len + pred_len:
            raise ValueError(
                f"{table.source}: the {name} split has {b1 - b0} rows (with its seq_len lookback), fewer than "
                f"seq_len + pred_len = {seq_len + pred_len}; use a longer series or shorter windows"
            )
    values = table.values
    scaler = None
    if scale:
        scaler = StandardScaler().fit(values[borders[0][0] : borders[0][1]])
        values = scaler.transform(values)
    freq = freq or infer_freq(table.dates)
    marks = time_features(table.dates, freq)
    sets = [ForecastWindows(values[b0:b1], marks[b0:b1], seq_len, pred_len, label_len, targets) for b0, b1 in borders]
    logger.info(
        "%s: %d rows, split %s %s, windows train/val/test = %d/%d/%d",
        table.source, n, scheme, borders, *(len(s) for s in sets),
    )
    return ForecastData(
        *sets, columns=list(table.columns), targets=targets, scaler=scaler, freq=freq, borders=borders,
        seq_len=seq_len, pred_len=pred_len, label_len=label_len, features=features, dates=table.dates,
    )


# ----------------------------------------------------------------------------- metrics


class ForecastMeter:
    """MSE and MAE averaged per sample (each window weighs the same, whatever the batch sizes).

    With a ``scaler`` and ``columns`` (the target columns), :meth:`compute`
    also reports ``mse_orig``/``mae_orig`` in the original units.
    """

    def __init__(self, scaler: StandardScaler | None = None, columns: Sequence[int] | None = None) -> None:
        self.scaler, self.columns = scaler, columns
        self.n = 0
        self.sums = {"mse": 0.0, "mae": 0.0, "mse_orig": 0.0, "mae_orig": 0.0}

    @torch.no_grad()
    def update(self, pred: torch.Tensor, true: torch.Tensor) -> None:
        """Add a batch of forecasts and truths (B x P x V, same shape)."""
        if pred.shape != true.shape:
            raise ValueError(f"forecast shape {tuple(pred.shape)} differs from target shape {tuple(true.shape)}")
        pred, true = pred.detach().double(), true.detach().double()
        dims = tuple(range(1, pred.ndim))
        self.sums["mse"] += ((pred - true) ** 2).mean(dims).sum().item()
        self.sums["mae"] += (pred - true).abs().mean(dims).sum().item()
        if self.scaler is not None:
            p = self.scaler.inverse_transform(pred, self.columns)
            t = self.scaler.inverse_transform(true, self.columns)
            self.sums["mse_orig"] += ((p - t) ** 2).mean(dims).sum().item()
            self.sums["mae_orig"] += (p - t).abs().mean(dims).sum().item()
        self.n += pred.shape[0]

    def compute(self) -> dict[str, float]:
        """The averages so far (``n`` is the number of windows)."""
        if self.n == 0:
            raise ValueError("no forecasts were added to the meter")
        keys = ["mse", "mae"] + (["mse_orig", "mae_orig"] if self.scaler is not None else [])
        out = {k: self.sums[k] / self.n for k in keys}
        out["n"] = self.n
        return out


# ----------------------------------------------------------------------------- Global Temp / Wind


class GlobalWeatherWindows(Dataset):
    """Windows over the Global Temp / Global Wind station arrays (SPEC: Corrformer's task).

    ``values`` is T x N (stations), ``marks`` T x F, ``coords`` N x K station
    coordinates. Stations are grouped into nodes of ``group_size`` consecutive
    stations; ``static`` gives each node the standardised coordinates of its
    stations (n_nodes x group_size*K), matching a forecast model built with
    ``group_size`` and ``n_static = group_size * K``. Values are not rescaled.
    """

    def __init__(
        self, values: np.ndarray, marks: np.ndarray, coords: np.ndarray, seq_len: int = 48,
        pred_len: int = 24, label_len: int = 24, group_size: int = 11,
    ) -> None:
        if values.ndim == 3 and values.shape[-1] == 1:
            values = values[..., 0]
        if values.ndim != 2:
            raise ValueError(f"station data must be T x N (or T x N x 1), got shape {values.shape}")
        n_st = values.shape[1]
        if coords.ndim != 2 or coords.shape[0] != n_st:
            raise ValueError(f"coordinates must be N x K with N = {n_st} stations, got shape {coords.shape}")
        if n_st % group_size:
            raise ValueError(f"{n_st} stations cannot be grouped into nodes of {group_size}")
        self.windows = ForecastWindows(values, marks, seq_len, pred_len, label_len)
        spread = coords.std(0)
        z = (coords - coords.mean(0)) / np.where(spread > 0, spread, 1.0)
        self.static = torch.from_numpy(z.reshape(n_st // group_size, group_size * coords.shape[1]).astype(np.float32))
        self.group_size = group_size

    @property
    def values(self) -> torch.Tensor:
        """The station series (T x N)."""
        return self.windows.values

    @property
    def marks(self) -> torch.Tensor:
        """The calendar features (T x F)."""
        return self.windows.marks

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        inputs, y = self.windows[i]
        inputs["static"] = self.static
        return inputs, y

    def batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Windows ``indices`` stacked (see :meth:`ForecastWindows.batch`), with the per-node ``static``."""
        inputs, y = self.windows.batch(indices)
        inputs["static"] = self.static.unsqueeze(0).expand(len(y), *self.static.shape)
        return inputs, y


def load_global_weather(
    root: str | Path, name: str = "temp", flag: str = "train", seq_len: int = 48, pred_len: int = 24,
    label_len: int = 24, group_size: int = 11,
) -> GlobalWeatherWindows:
    """Windows of ``{name}_global_hourly_{flag}.npy`` with ``data_time_{flag}.npy`` and ``stations_sorted.npy``.

    ``name`` is ``temp`` or ``wind``, ``flag`` ``train``, ``val`` or ``test``.
    The time file may hold calendar features (T x F numbers) or timestamps
    (turned into hourly features). The paper's task: 48 → 24 steps, 350 nodes
    of 11 stations, raw (×10) units, batch size 1.
    """
    if name not in ("temp", "wind") or flag not in ("train", "val", "test"):
        raise ValueError(f"name must be temp or wind and flag train, val or test; got {name!r}, {flag!r}")
    root = Path(root)
    files = [root / f"{name}_global_hourly_{flag}.npy", root / f"data_time_{flag}.npy", root / "stations_sorted.npy"]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"missing Global {name} file: {f}")
    values, stamps, coords = (np.load(f, allow_pickle=False) for f in files)
    if stamps.dtype.kind in "fiu" and stamps.ndim == 2:
        marks = stamps.astype(np.float32)
    else:
        pd = require("pandas", "timeseries", "time stamps")
        marks = time_features(pd.DatetimeIndex(pd.to_datetime(stamps.reshape(-1))), "h")
    return GlobalWeatherWindows(values.astype(np.float32), marks, coords.astype(np.float64), seq_len, pred_len,
                                label_len, group_size)


def build_global_weather_data(
    root: str | Path, name: str = "temp", seq_len: int = 48, pred_len: int = 24, label_len: int = 24,
    group_size: int = 11,
) -> ForecastData:
    """The train/val/test splits of Global Temp or Global Wind as a :class:`ForecastData`.

    Every station is a target, values stay in the files' units (no scaler),
    and items carry the per-node ``static`` coordinates.
    """
    sets = [load_global_weather(root, name, flag, seq_len, pred_len, label_len, group_size)
            for flag in ("train", "val", "test")]
    n_st = int(sets[0].values.shape[1])
    return ForecastData(
        *sets, columns=[f"station_{i}" for i in range(n_st)], targets=list(range(n_st)), scaler=None, freq="h",
        borders=[], seq_len=seq_len, pred_len=pred_len, label_len=label_len, features="M",
    )


# ----------------------------------------------------------------------------- `unireplknet train --modality timeseries`


def build_task_data(args: Any) -> Any:
    """Refuse clearly: forecasting is trained with ``unireplknet forecast``, not the classification ``train``."""
    from unireplknet.errors import UserError

    raise UserError(
        "time series are forecast, not classified: use `unireplknet forecast --data FILE.csv --target COL ...`"
    )
