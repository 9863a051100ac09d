"""Series fixes: training-format CSV in predict, UTF-8 BOM, unlabelled .ts, one input per series,
one-series-per-file layouts, label column detection."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from unireplknet.errors import DataError
from unireplknet.modalities.series import series_datasets as SD
from unireplknet.modalities.series import ucr


def _series(n: int, seed: int = 0, length: int = 20, classes: tuple[str, ...] = ("1", "2", "3")):
    rng = np.random.default_rng(seed)
    X = [np.sin(np.linspace(0, 3 + i % len(classes), length)) + 0.1 * rng.standard_normal(length) for i in range(n)]
    return X, [classes[i % len(classes)] for i in range(n)]


def _write_rows(path: Path, X, y, sep: str = ",", bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(sep.join([lab] + [f"{v:.4f}" for v in x]) + "\n" for x, lab in zip(X, y))
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


# ----------------------------------------------------------------------------- A: predict reads the training CSV
def test_predict_reads_training_csv_like_training(tmp_path):
    X, y = _series(6)
    f = _write_rows(tmp_path / "Waves_TEST.csv", X, y)
    got = SD.read_predict_series(str(f))
    want = ucr.read_series_file(f)[0]
    assert [g.shape for g in got] == [w.shape for w in want] == [(1, 20)] * 6
    assert np.allclose(got[0], want[0])


def test_predict_csv_numeric_label_column_detected(tmp_path, caplog):
    X, y = _series(6)
    f = _write_rows(tmp_path / "new_data.csv", X, y)  # not UCR-named: the label column is recognised
    got = SD.read_predict_series(str(f))
    assert got[0].shape == (1, 20)
    assert "read as the label" in caplog.text
    values_only = tmp_path / "values.csv"
    values_only.write_text("".join(",".join(f"{v:.4f}" for v in x) + "\n" for x in X))
    assert SD.read_predict_series(str(values_only))[0].shape == (1, 20)


# ----------------------------------------------------------------------------- B: BOM
def test_bom_is_dropped(tmp_path):
    X, y = _series(6)
    _, labels = ucr.read_tsv(_write_rows(tmp_path / "W_TRAIN.tsv", X, y, sep="\t", bom=True))
    assert sorted(set(labels)) == ["1", "2", "3"]
    ts = tmp_path / "W_TRAIN.ts"
    ts.write_bytes(b"\xef\xbb\xbf@problemName W\n@univariate true\n@classLabel true a b\n@data\n1,2,3:a\n3,2,1:b\n")
    assert ucr.read_ts(ts)[1] == ["a", "b"]


# ----------------------------------------------------------------------------- C: unlabelled .ts in predict
def test_unlabelled_ts_predicts_but_does_not_train(tmp_path):
    ts = tmp_path / "new.ts"
    ts.write_text("@problemName W\n@univariate true\n@classLabel false\n@data\n1,2,3,4\n4,3,2,1\n")
    X = SD.read_predict_series(str(ts))
    assert [x.shape for x in X] == [(1, 4), (1, 4)]
    with pytest.raises(DataError, match="classLabel"):
        ucr.read_ts(ts)


# ----------------------------------------------------------------------------- D: one input per series
@pytest.mark.parametrize("ext", [".ts", ".tsv", ".csv", ".arff"])
def test_load_for_predict_one_input_per_series(tmp_path, ext):
    X, y = _series(5, length=40)
    f = tmp_path / f"Toy_TEST{ext}"
    if ext == ".ts":
        f.write_text("@problemName Toy\n@univariate true\n@classLabel true 1 2 3\n@data\n"
                     + "".join(",".join(f"{v:.4f}" for v in x) + f":{lab}\n" for x, lab in zip(X, y)))
    elif ext == ".arff":
        f.write_text("@relation Toy\n" + "".join(f"@attribute t{i} numeric\n" for i in range(40))
                     + "@attribute target {1,2,3}\n@data\n"
                     + "".join(",".join(f"{v:.4f}" for v in x) + f",{lab}\n" for x, lab in zip(X, y)))
    else:
        _write_rows(f, X, y, sep="\t" if ext == ".tsv" else ",")
    args = argparse.Namespace(series_length=32, series_deinterleave=1, series_image="reshape", series_image_size=16,
                              znorm=True, series_norm=None)
    out = SD.load_for_predict(str(f), args)
    assert tuple(out.shape) == (5, 2, 16, 16)
    assert SD.load_for_predict.separate_samples is True
    first = SD.load_for_predict(str(_write_rows(tmp_path / "one.tsv", X[:1], y[:1], sep="\t")), args)
    assert np.allclose(out[0].numpy(), first.numpy(), atol=1e-5)


# ----------------------------------------------------------------------------- E: layouts and label column
def _class_folders(root: Path, n: int = 12) -> None:
    X, y = _series(n, classes=("a", "b"))
    for i, (x, lab) in enumerate(zip(X, y)):
        (root / lab).mkdir(parents=True, exist_ok=True)
        np.savetxt(root / lab / f"s{i}.csv", x[None], delimiter=",")


def test_class_folders_of_series_files(tmp_path):
    _class_folders(tmp_path / "d")
    np.save(tmp_path / "d" / "a" / "extra.npy", np.zeros((20, 1), dtype=np.float32) + 0.5)
    s = ucr.find_ucr_splits(tmp_path / "d", val_fraction=0.2, seed=0)
    assert s.plan.classes == ["a", "b"]
    assert len(s.train[0]) + len(s.val[0]) == 13
    assert {x.shape for x in s.train[0] + s.val[0]} == {(1, 20)}


def test_path_label_list(tmp_path):
    _class_folders(tmp_path / "d")
    rows = ["path,label"] + [f"{p.parent.name}/{p.name},{p.parent.name}" for p in sorted((tmp_path / "d").rglob("*.csv"))]
    (tmp_path / "d" / "list.csv").write_text("\n".join(rows) + "\n")
    s = ucr.find_ucr_splits(tmp_path / "d" / "list.csv", val_fraction=0.2, seed=0)
    assert s.plan.classes == ["a", "b"] and len(s.train[0]) + len(s.val[0]) == 12


def test_table_with_time_by_channels(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("x,y,z\n" + "".join(f"{i},{2 * i},{3 * i}\n" for i in range(10)))
    assert ucr.read_one_series(f).shape == (3, 10)


def test_label_column_named_in_header(tmp_path):
    X, y = _series(12)
    f = tmp_path / "W_TRAIN.csv"
    f.write_text(",".join(f"t{i}" for i in range(20)) + ",label\n"
                 + "".join(",".join(f"{v:.4f}" for v in x) + f",{lab}\n" for x, lab in zip(X, y)))
    Xr, yr = ucr.read_csv_series(f)
    assert yr == y and Xr[0].shape == (1, 20)
    assert SD.read_predict_series(str(f))[0].shape == (1, 20)


def test_too_many_classes_is_a_clear_error(tmp_path):
    X, y = _series(12)
    f = tmp_path / "W_TRAIN.csv"
    f.write_text("".join(",".join(f"{v:.4f}" for v in x) + f",{lab}\n" for x, lab in zip(X, y)))  # label last
    with pytest.raises(DataError, match="label column looks wrong"):
        ucr.find_ucr_splits(f)


def test_empty_folder_error_names_layouts(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.md").write_text("x")
    with pytest.raises(DataError, match="series_classification.md"):
        ucr.find_ucr_splits(tmp_path / "d")


def test_per_file_list_paths_resolve_under_data_root(tmp_path):
    import numpy as np

    from unireplknet.errors import DataError
    from unireplknet.modalities.series.ucr import find_ucr_splits

    rng = np.random.default_rng(0)
    (tmp_path / "series").mkdir()
    rows = ["path,label"]
    for c in ("up", "down"):
        for i in range(4):
            np.save(tmp_path / "series" / f"{c}{i}.npy", rng.normal(size=32).cumsum() * (1 if c == "up" else -1))
            rows.append(f"{c}{i}.npy,{c}")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "all.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises((DataError, FileNotFoundError)):
        find_ucr_splits(tmp_path / "lists" / "all.csv")
    got = find_ucr_splits(tmp_path / "lists" / "all.csv", data_root=tmp_path / "series")
    assert len(got.plan.train) + len(got.plan.val) == 8 and got.plan.classes == ["down", "up"]
