"""Forecasting CSVs as people export them: day-first dates, numeric dates, trailing dates without values, a
saved DataFrame index, separators and encodings, a constant series."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unireplknet.modalities.series.datasets import build_forecast_data, parse_dates, read_series_csv


def test_day_first_monthly_dates_are_read_as_months():
    raw = pd.Series([f"01/{m:02d}/{y}" for y in (2000, 2001) for m in range(1, 13)])
    dates = parse_dates(raw, "x")
    assert list(dates[:3].month) == [1, 2, 3] and (dates.day == 1).all()


def test_unreadable_day_month_order_and_numeric_dates_are_errors():
    with pytest.raises(ValueError, match="day/month or month/day"):
        parse_dates(pd.Series(["01/02/2020", "02/02/2020", "03/02/2020"]).iloc[[0, 1]], "x")
    with pytest.raises(ValueError, match="are numbers"):
        parse_dates(pd.Series([43831, 43832, 43833]), "x")
    assert list(parse_dates(pd.Series([1990, 1991]), "x").year) == [1990, 1991]


def test_mixed_iso_times_and_daylight_saving_offsets_are_read():
    mixed = parse_dates(pd.Series(["2021-01-01", "2021-01-01 01:00:00"]), "x")
    assert list(mixed.hour) == [0, 1]
    dst = parse_dates(pd.Series(["2021-03-28T01:00:00+01:00", "2021-03-28T03:00:00+02:00"]), "x")
    assert dst.tz is None and (dst[1] - dst[0]) == pd.Timedelta(hours=1)


def test_trailing_dates_without_values_are_dropped_not_filled(tmp_path, caplog):
    d = pd.date_range("2020-01-01", periods=50, freq="D")
    v = np.arange(50, dtype=float)
    v[40:] = np.nan
    pd.DataFrame({"date": d, "value": v}).to_csv(tmp_path / "s.csv", index=False)
    table = read_series_csv(tmp_path / "s.csv", date_col="date")
    assert len(table) == 40 and table.values[-1, 0] == 39.0 and "dropped the last 10 row(s)" in caplog.text


def test_a_saved_dataframe_index_is_not_a_series(tmp_path, caplog):
    d = pd.date_range("2020-01-01", periods=200, freq="D")
    frame = pd.DataFrame({"date": d.strftime("%Y-%m-%d"), "a": np.sin(np.arange(200)), "b": np.cos(np.arange(200))})
    frame.to_csv(tmp_path / "idx.csv")  # pandas writes its index as 'Unnamed: 0'
    data = build_forecast_data(tmp_path / "idx.csv", seq_len=24, pred_len=6, features="M")
    assert data.target_names == ["a", "b"] and list(data.columns) == ["a", "b"]
    assert "left out the column(s) ['Unnamed: 0']" in caplog.text


def test_separator_and_encoding_errors_name_the_problem(tmp_path):
    (tmp_path / "euro.csv").write_text("date;value\n2020-01-01;10,0\n")
    with pytest.raises(ValueError, match="separated by ';'"):
        read_series_csv(tmp_path / "euro.csv", date_col="date")
    (tmp_path / "latin.csv").write_bytes("date,Temp\xe9rature\n2020-01-01,1\n".encode("cp1252"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_series_csv(tmp_path / "latin.csv", date_col="date")


def test_gaps_are_warned_about_but_business_days_are_not(tmp_path, caplog):
    bdays = pd.bdate_range("2020-01-01", periods=60)
    pd.DataFrame({"date": bdays, "v": np.arange(60.0)}).to_csv(tmp_path / "b.csv", index=False)
    read_series_csv(tmp_path / "b.csv", date_col="date")
    assert "gap(s)" not in caplog.text
    days = pd.date_range("2020-01-01", periods=60).delete(range(20, 40))
    pd.DataFrame({"date": days, "v": np.arange(40.0)}).to_csv(tmp_path / "g.csv", index=False)
    read_series_csv(tmp_path / "g.csv", date_col="date")
    assert "1 gap(s) in the timestamps" in caplog.text and "21 days" in caplog.text


def test_a_tie_in_test_mse_is_not_credited_to_the_backbone(capsys):
    from unireplknet.cli.forecast import print_report

    row = {"mse": 0.5, "mae": 0.4, "mse_orig": 1.0, "mae_orig": 1.0}
    print_report({"test": {"UniRepLKNet": dict(row), "Ridge": dict(row)}, "plan_line": "", "summary_lines": [],
                  "files": {"metrics": "m.json", "csv": "m.csv", "plot": None}})
    assert "lowest test MSE: Ridge" in capsys.readouterr().out


def test_seasonal_periods_come_from_every_target_not_the_first_column():
    from unireplknet.runner.forecast import target_periods

    rng = np.random.default_rng(0)
    t = np.arange(400)
    walk = rng.normal(size=400).cumsum()
    weekly = 10 + 3 * np.sin(2 * np.pi * t / 7) + 0.1 * rng.normal(size=400)
    first = np.stack([walk, weekly, weekly + 1], 1)
    last = np.stack([weekly, weekly + 1, walk], 1)
    assert target_periods(first, [0, 1, 2], 28) == target_periods(last, [0, 1, 2], 28) == [7]
    assert target_periods(first, [0], 28, given=12) == [12]
