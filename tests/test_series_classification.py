"""Time-series classification (the ``series`` modality): readers, split rules, images, a tiny training run."""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from unireplknet.errors import BadFileError, DataError
from unireplknet.modalities.series import classify as C
from unireplknet.modalities.series import series_datasets as SD
from unireplknet.modalities.series import ucr


# ----------------------------------------------------------------------------- fixtures
TS_UNI = """# a comment
@problemName Toy
@timeStamps false
@missing true
@univariate true
@equalLength false
@classLabel true a b
@data
1,2,3,4:a
4,?,2:b
1,1,1,1,1:a
"""

TS_MULTI = """@problemName Toy2
@timeStamps false
@univariate false
@dimensions 2
@equalLength false
@classLabel true x y
@data
1,2,3:4,5,6:x
1,2:3,4,5,6:y
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def ns(**kw) -> argparse.Namespace:
    base = {"data": None, "val_data": None, "seed": 0, "val_fraction": None}
    base.update(kw)
    return argparse.Namespace(**base)


def ucr_dir(tmp_path: Path, n_per_class: int = 10, classes=("1", "2", "10"), name: str = "Toy") -> Path:
    """A folder Toy/ with Toy_TRAIN.tsv and Toy_TEST.tsv; test rows are offset so they are recognisable."""
    rng = np.random.default_rng(0)
    d = tmp_path / name

    def rows(n: int, offset: float) -> str:
        out = []
        for c in classes:
            for _ in range(n):
                vals = rng.normal(size=40) + float(c) + offset
                out.append("\t".join([c] + [f"{v:.4f}" for v in vals]))
        return "\n".join(out) + "\n"

    write(d / f"{name}_TRAIN.tsv", rows(n_per_class, 0.0))
    write(d / f"{name}_TEST.tsv", rows(4, 1000.0))
    return d


# ----------------------------------------------------------------------------- readers
def test_read_ts_univariate_unequal_and_missing(tmp_path):
    X, y = ucr.read_ts(write(tmp_path / "a.ts", TS_UNI))
    assert y == ["a", "b", "a"]
    assert [x.shape for x in X] == [(1, 4), (1, 3), (1, 5)]
    assert X[0].dtype == np.float32 and np.isnan(X[1][0, 1])


def test_read_ts_multivariate_unequal(tmp_path):
    X, y = ucr.read_ts(write(tmp_path / "m.ts", TS_MULTI))
    assert y == ["x", "y"]
    assert X[0].shape == (2, 3) and X[1].shape == (2, 4)
    assert np.isnan(X[1][0, 2:]).all() and X[1][1, 3] == 6


def test_read_tsv_trims_nan_padding_and_numeric_labels(tmp_path):
    X, y = ucr.read_tsv(write(tmp_path / "a.tsv", "1\t0.5\t1.5\tNaN\tNaN\n-1\t2\t3\t4\t5\n"))
    assert y == ["1", "-1"] and X[0].shape == (1, 2) and X[1].shape == (1, 4)
    X, y = ucr.read_series_file(write(tmp_path / "old.txt", "  1.0000000e+00  2.0 3.0\n  2.0000000e+00  4 5\n"))
    assert y == ["1", "2"] and X[1].tolist() == [[4.0, 5.0]]


def test_read_arff_univariate_and_relational(tmp_path):
    uni = ("@relation toy\n@attribute t1 numeric\n@attribute t2 numeric\n@attribute t3 numeric\n"
           "@attribute target {a,b}\n@data\n1,2,3,a\n4,?,6,b\n")
    X, y = ucr.read_arff(write(tmp_path / "u.arff", uni))
    assert y == ["a", "b"] and X[0].shape == (1, 3) and np.isnan(X[1][0, 1])
    rel = ("@relation toy\n@attribute relationalAtt relational\n@attribute t1 numeric\n@attribute t2 numeric\n"
           "@end relationalAtt\n@attribute activity {w,r}\n@data\n'1,2\\n3,4\\n5,6',w\n'7,8\\n9,10\\n11,12',r\n")
    X, y = ucr.read_arff(write(tmp_path / "r.arff", rel))
    assert y == ["w", "r"] and X[0].shape == (3, 2) and X[1][2, 1] == 12


def test_read_csv_with_and_without_header(tmp_path):
    X, y = ucr.read_csv_series(write(tmp_path / "h.csv", "label,t0,t1,t2\ncat,1,2,3\ndog,4,5,6\n"))
    assert y == ["cat", "dog"] and X[1].tolist() == [[4, 5, 6]]
    X, y = ucr.read_csv_series(write(tmp_path / "n.csv", "0,1,2,3\n1,4,5,?\n"))
    assert y == ["0", "1"] and X[1].shape == (1, 2)  # trailing missing trimmed


@pytest.mark.parametrize("name,text,where", [
    ("bad.ts", "@problemName t\n@univariate false\n@dimensions 2\n@classLabel true a\n@data\n1,2:3,4:a\n1,2:a\n", "bad.ts:7"),
    ("bad2.ts", "@problemName t\n@classLabel true a b\n@data\n1,2,x:a\n", "bad2.ts:4"),
    ("bad3.ts", "@problemName t\n@classLabel true a b\n@data\n1,2:c\n", "bad3.ts:4"),
    ("nodata.ts", "@problemName t\n", "nodata.ts"),
    ("bad.tsv", "1\t2\t3\n2\tfoo\t3\n", "bad.tsv:2"),
    ("bad.csv", "a,1,2\nb,1,zz\n", "bad.csv:2"),
    ("bad.arff", "@relation t\n@attribute a numeric\n@attribute c {x,y}\n@data\n1,2,x\n", "bad.arff:5"),
])
def test_malformed_files_name_file_and_line(tmp_path, name, text, where):
    with pytest.raises(DataError, match=where.replace(".", r"\.")):
        ucr.read_series_file(write(tmp_path / name, text))


def test_unreadable_file_is_bad_file_error(tmp_path):
    p = tmp_path / "bin.ts"
    p.write_bytes(b"\x00\x01\x02garbage")
    with pytest.raises(BadFileError, match="bin.ts"):
        ucr.read_series_file(p)


# ----------------------------------------------------------------------------- split rules
def test_splits_test_never_in_train_or_val_and_val_stratified(tmp_path):
    d = ucr_dir(tmp_path)
    s = ucr.find_ucr_splits(d, val_fraction=0.2, seed=3)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = s.train, s.val, s.tests["test"]
    assert len(Xtr) + len(Xva) == 30 and len(Xte) == 12
    assert all(np.nanmean(x) < 100 for x in Xtr + Xva) and all(np.nanmean(x) > 900 for x in Xte)
    assert sorted(set(yva)) == ["1", "10", "2"] and all(yva.count(c) == 2 for c in set(yva))
    tr_keys = {x.tobytes() for x in Xtr}
    assert not tr_keys & {x.tobytes() for x in Xva}
    assert s.plan.classes == ["1", "2", "10"]  # natural order
    assert s.plan.sources["test"].endswith("Toy_TEST.tsv")
    again = ucr.find_ucr_splits(d, val_fraction=0.2, seed=3)
    assert again.val[1] == yva and [x.tobytes() for x in again.val[0]] == [x.tobytes() for x in Xva]


def test_splits_val_file_val_data_and_single_file(tmp_path):
    d = ucr_dir(tmp_path)
    write(d / "Toy_VALID.csv", "1,1,2,3\n2,1,2,3\n10,4,5,6\n")
    s = ucr.find_ucr_splits(d)
    assert len(s.train[0]) == 30 and len(s.val[0]) == 3
    (d / "Toy_VALID.csv").unlink()
    other = write(tmp_path / "v.csv", "1,1,2\n2,3,4\n")
    s = ucr.find_ucr_splits(d / "Toy_TRAIN.tsv", val_data=other)
    assert len(s.train[0]) == 30 and len(s.val[0]) == 2 and len(s.tests["test"][0]) == 12
    with pytest.raises(DataError, match="TEST"):
        ucr.find_ucr_splits(d / "Toy_TEST.tsv")


def test_splits_prefers_ts_over_arff_and_rejects_mixed_problems(tmp_path):
    d = ucr_dir(tmp_path)
    write(d / "Toy_TRAIN.ts", TS_UNI.replace("@data", "@data").replace("a b", "1 2 10")
          .replace(":a", ":1").replace(":b", ":2") + "5,6,7:10\n")
    s = ucr.find_ucr_splits(d)
    assert len(s.train[0]) + len(s.val[0]) == 4
    write(d / "Other_TRAIN.csv", "1,1,2\n")
    with pytest.raises(DataError, match="several problems"):
        ucr.find_ucr_splits(d)


def test_splits_unknown_test_label_is_an_error(tmp_path):
    d = ucr_dir(tmp_path)
    write(d / "Toy_TEST.tsv", "99\t1\t2\t3\n")
    with pytest.raises(DataError, match="99"):
        ucr.find_ucr_splits(d)


# ----------------------------------------------------------------------------- images
def test_prepare_fills_resamples_znorms():
    x = np.array([[1, np.nan, 3, 4, np.nan]], dtype=np.float32)
    f = C.fill_missing(x)
    assert f[0, 1] == 2 and f[0, 4] == 4
    p = C.prepare_series(x, 32, znorm=True)
    assert p.shape == (1, 32) and abs(p.mean()) < 1e-5 and abs(p.std() - 1) < 1e-3
    assert C.prepare_series(np.ones((2, 5), np.float32), 8).tolist() == [[0.0] * 8] * 2
    batch = np.stack([C.prepare_series(np.array([[1, 2, 3], [10, 20, 30]], np.float32) * k, 6, znorm=False)
                      for k in (1, 2)])
    stats = C.channel_stats(batch)
    std = C.standardize(batch, stats)
    assert abs(std.mean()) < 1e-5 and std[1].max() > std[0].max()  # levels between series are kept
    with pytest.raises(DataError):
        C.standardize(batch, stats[:1])


@pytest.mark.parametrize("kind", C.IMAGE_KINDS)
def test_image_shapes(kind):
    x = torch.randn(3, 100)
    img = C.series_image(x, kind, 32)
    assert img.shape == (C.image_channels(kind, 3), 32, 32) and torch.isfinite(img).all()
    aug = C.augment_series(x, C.AUGMENTATIONS, torch.Generator().manual_seed(0))
    assert aug.shape == x.shape
    with pytest.raises(DataError):
        C.parse_augment("scale,bogus")


def test_resample_shrinks_by_area_and_keeps_short_spikes():
    x = np.zeros((1, 1000), np.float32)
    x[0, 503] = 100.0  # one-sample spike: point sampling at 100 points would miss it
    r = C.resample(x, 100)
    assert r.shape == (1, 100) and abs(r.sum() * 10 - 100.0) < 1e-3  # the area (mean x length) is kept
    assert r[0, 50] == pytest.approx(10.0) and np.count_nonzero(r) == 1
    ramp = np.arange(12, dtype=np.float32)[None]
    assert C.resample(ramp, 4).tolist() == [[1.0, 4.0, 7.0, 10.0]]  # bin means
    assert C.resample(ramp, 23)[0, 0] == 0.0 and C.resample(ramp, 23)[0, -1] == 11.0  # stretching: linear


def test_composite_images_stack_parts_and_z_parts_ignore_level_and_scale():
    x = torch.randn(2, 90)
    both = C.series_image(x, "reshape+zreshape", 32)
    assert both.shape == (C.image_channels("reshape+zreshape", 2), 32, 32) == (8, 32, 32)
    assert torch.equal(both[:4], C.series_image(x, "reshape", 32))
    z1, z2 = C.series_image(x, "zreshape", 32), C.series_image(3.0 * x + 5.0, "zreshape", 32)
    assert torch.allclose(z1, z2, atol=1e-4)  # the z part does not see level and scale...
    assert not torch.allclose(C.series_image(x, "reshape", 32), C.series_image(3.0 * x + 5.0, "reshape", 32))
    assert C.image_parts(" Reshape + zrecurrence ") == ("reshape", "zrecurrence")
    for bad in ("", "reshape+", "reshape+bogus", "zz"):
        with pytest.raises(DataError):
            C.image_parts(bad)
    parser = argparse.ArgumentParser()
    SD.add_train_args(parser)
    assert parser.parse_args(["--series-image", "reshape+zgaf"]).series_image == "reshape+zgaf"
    with pytest.raises(SystemExit):
        parser.parse_args(["--series-image", "bogus"])


def test_eval_views_stack_whole_series_then_windows():
    rng = np.random.default_rng(0)
    series = rng.normal(size=(3, 2, 50)).astype(np.float32)
    views = C.eval_windows(torch.from_numpy(series[0]), 4)
    assert len(views) == 4 and all(v.shape == (2, 50) for v in views)
    assert torch.equal(views[0], torch.from_numpy(series[0]))
    assert torch.allclose(views[1][:, 0], views[0][:, 0]) and torch.allclose(views[-1][:, -1], views[0][:, -1])
    ds = C.SeriesImageDataset(series, [0, 1, 0], "reshape", 16, views=4)
    img, label = ds[1]
    assert img.shape == (4, 4, 16, 16) and label == 1
    assert torch.equal(img[0], C.series_image(torch.from_numpy(series[1]), "reshape", 16))
    assert not torch.equal(img[1], img[0])
    with pytest.raises(DataError):
        C.SeriesImageDataset(series, [0, 1, 0], "reshape", 16, views=0)


def test_build_task_data_from_folder_and_predict(tmp_path):
    d = ucr_dir(tmp_path)
    task = SD.build_task_data(ns(data=str(d), series_image="recurrence", series_image_size=16))
    assert task.class_names == ["1", "2", "10"] and task.num_classes == 3
    assert task.meta["series_length"] == 40 and task.meta["channels"] == 1
    assert task.meta["znorm"] is False and len(task.meta["series_norm"]) == 1
    x, label = task.train[0]
    assert x.shape == (task.in_chans, 16, 16) == (2, 16, 16) and isinstance(label, int)
    assert len(task.tests["test"]) == 12 and task.input_size == (16, 16)
    args = ns(series_length=40, series_image="recurrence", series_image_size=16)
    many = SD.load_for_predict(str(write(tmp_path / "p.csv", "1,2,3,4\n4,3,2,1\n")), args)
    assert many.shape == (2, 2, 16, 16)
    one = SD.load_for_predict(str(write(tmp_path / "q.csv", "label,a,b,c\ncat,1,2,3\n")), args)
    assert one.shape == (2, 16, 16)


def test_auto_config_and_flags(tmp_path):
    assert SD.auto_config({"data": None}) == {}
    d = ucr_dir(tmp_path)
    out = SD.auto_config(None, {"data": str(d)}, "cpu")
    assert out["series_length"][0] == 40 and out["series_image_size"][0] == 32
    task = SD.build_task_data(ns(data=str(d)))
    assert np.allclose(out["series_norm"][0], task.meta["series_norm"])  # auto saw exactly the training part
    assert task.meta["series_image"] == SD.CONFIG_DEFAULTS["series_image"]
    assert "series_norm" not in SD.auto_config({"data": str(d), "znorm": True})
    long = write(tmp_path / "long.csv", "".join(f"{i % 2}," + ",".join(["0.5"] * 900) + "\n" for i in range(6)))
    assert SD.auto_config({"data": str(long)})["series_length"][0] == 512
    assert SD.choose_length([5, 7, 9]) == 32 and SD.choose_length([4000]) == 512
    parser = argparse.ArgumentParser()
    SD.add_train_args(parser)
    assert all(v is None for v in vars(parser.parse_args([])).values())
    from unireplknet.modalities.series.plugin_classify import PLUGIN
    assert PLUGIN.name == "series" and "series_image" in PLUGIN.arg_keys()


def test_build_wires_mixup_and_eval_views(tmp_path):
    d = ucr_dir(tmp_path)
    plain = SD.build_task_data(ns(data=str(d), series_image_size=16))
    assert plain.eval_views == 1 and plain.train_batch_transform is None
    assert plain.in_chans == 4  # default image: the folded series and its z-normalised copy, 2 channels each
    task = SD.build_task_data(ns(data=str(d), series_image_size=16, series_mixup=0.4, series_eval_views=3))
    assert task.eval_views == 3 and task.meta["series_eval_views"] == 3 and task.meta["series_mixup"] == 0.4
    assert task.val[0][0].shape == (3, 4, 16, 16) and task.tests["test"][0][0].shape == (3, 4, 16, 16)
    assert task.train[0][0].shape == (4, 16, 16)
    torch.manual_seed(0)
    xb = torch.stack([task.train[i][0] for i in range(5)])  # odd batch sizes are fine
    yb = torch.tensor([task.train.labels[i] for i in range(5)])
    mixed, target = task.train_batch_transform(xb, yb)
    assert mixed.shape == xb.shape and target.shape == (5, 3) and torch.allclose(target.sum(1), torch.ones(5))
    assert not torch.equal(mixed, xb)
    with pytest.raises(DataError):
        SD.build_task_data(ns(data=str(d), series_eval_views=0))


def test_baseline_features_read_the_series_behind_an_input(tmp_path):
    d = ucr_dir(tmp_path)
    task = SD.build_task_data(ns(data=str(d), series_image_size=16, series_eval_views=2))
    fns = SD.baseline_features(task)
    assert set(fns) == {"series", "zseries"}
    x, _ = task.train[3]  # augmented image, but the baseline sees the prepared series behind it
    assert np.allclose(fns["series"](x), task.train.series[3].numpy().reshape(-1))
    z = fns["zseries"](task.train[3][0])
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-3
    v, _ = task.tests["test"][0]
    assert np.allclose(fns["series"](v[1]), task.tests["test"].series[0].numpy().reshape(-1))  # a view of the stack
    with pytest.raises(ValueError):
        fns["series"](torch.zeros(4, 16, 16))
    from unireplknet.tasks.baselines import run_baselines
    res = run_baselines(task, extra=fns)["results"]["val"]
    assert res["1nn[series]"] >= 0.8 and res["majority_class"] < 0.5  # class levels 1, 2, 10: 1-NN finds them


# ----------------------------------------------------------------------------- training
def test_tiny_training_on_demo_beats_chance():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    task = SD.build_task_data(ns(series_image="gaf", series_image_size=32))
    assert task.num_classes == 4 and len(task.tests["test"]) == 160
    from unireplknet import UniRepLKNet
    model = UniRepLKNet(in_chans=task.in_chans, num_classes=task.num_classes, depths=(1, 1, 1, 1),
                        dims=(8, 16, 32, 64), kernel_sizes=((3,), (5,), (5,), (3,)))
    loader = torch.utils.data.DataLoader(task.train, batch_size=32, shuffle=True)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.05)
    for _ in range(6):
        model.train()
        for xb, yb in loader:
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    test = task.tests["test"]
    xs = torch.stack([test[i][0] for i in range(len(test))])
    with torch.no_grad():
        acc = (model(xs).argmax(1) == torch.tensor(test.labels)).float().mean().item()
    assert acc > 0.6, acc


@pytest.mark.skipif(importlib.util.find_spec("sktime") is None, reason="the example reads sktime's bundled sets")
def test_reduced_example_runs_the_command_and_beats_chance():
    """examples/series_classification.py on BasicMotions (4 classes) for 20 epochs through ``unireplknet train``:
    the command's baseline table and the 1-NN line are printed, and the model is far above chance (0.25)."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "examples" / "series_classification.py"), "--set", "BasicMotions",
                           "--epochs", "20", "--threads", "1"], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "1-NN Euclidean (z-normalised)" in out and "1nn[pixels]" in out and "majority_class" in out
    acc = float(re.search(r"UniRepLKNet \(.*\): ([0-9.]+)", out).group(1))
    assert acc >= 0.7, out


# ----------------------------------------------------------------------------- interleaved phases
def interleaved(n: int, length: int, period: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` series that interleave ``period`` smooth quantities of very different levels, one sample each in turn."""
    t = np.linspace(0, 1, length)
    phases = [np.sin(2 * np.pi * rng.uniform(1, 3) * t + rng.uniform(0, 6)) + 5.0 * k for k in range(period)]
    out = np.empty((n, 1, length * period), np.float32)
    for i in range(n):
        for k, ph in enumerate(phases):
            out[i, 0, k::period] = ph + rng.normal(0, 0.05, length)
    return out


def test_deinterleave_splits_phases_into_channels():
    x = np.arange(2 * 10, dtype=np.float32).reshape(2, 10)
    y = C.deinterleave(x, 3)  # tail of 10 % 3 = 1 sample dropped
    assert y.shape == (6, 3)
    assert np.array_equal(y[0], [0, 3, 6]) and np.array_equal(y[2], [2, 5, 8]) and np.array_equal(y[3], [10, 13, 16])
    assert C.deinterleave(x, 1) is x
    with pytest.raises(DataError):
        C.deinterleave(x, 0)
    with pytest.raises(DataError):
        C.deinterleave(x, 11)
    p = C.prepare_series(np.arange(40, dtype=np.float32)[None], 5, znorm=False, period=4)
    assert p.shape == (4, 5) and np.allclose(p[1], [3, 11, 19, 27, 35])  # phase 1, pairs averaged


def test_detect_interleave_finds_the_period_and_leaves_smooth_or_noisy_series():
    rng = np.random.default_rng(0)
    assert C.detect_interleave(list(interleaved(6, 100, 4, rng))) == 4
    assert C.detect_interleave(list(interleaved(6, 100, 3, rng))) == 3
    t = np.linspace(0, 1, 400)
    smooth = [np.sin(2 * np.pi * rng.uniform(2, 6) * t)[None] for _ in range(6)]  # lag-1 autocorrelation high
    assert C.detect_interleave(smooth) == 1
    assert C.detect_interleave([rng.normal(size=(1, 400)) for _ in range(6)]) == 1  # white noise
    assert C.detect_interleave([np.ones((1, 400))]) == 1 and C.detect_interleave([np.ones((1, 5))]) == 1


def test_auto_build_and_predict_split_interleaved_series(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "Inter"
    for part, n in (("TRAIN", 8), ("TEST", 3)):
        rows = []
        for label in ("a", "b"):
            for s in interleaved(n, 60, 4, rng):
                rows.append("\t".join([label] + [f"{v:.4f}" for v in s[0]]))
        write(d / f"Inter_{part}.tsv", "\n".join(rows) + "\n")
    out = SD.auto_config({"data": str(d)})
    assert out["series_deinterleave"][0] == 4 and out["series_length"][0] == 60
    task = SD.build_task_data(ns(data=str(d), series_image="reshape", series_image_size=16))
    assert task.meta["series_deinterleave"] == 4 and task.meta["channels"] == 4 and task.in_chans == 8
    assert len(task.meta["series_norm"]) == 4 and task.train[0][0].shape == (8, 16, 16)
    off = SD.build_task_data(ns(data=str(d), series_image="reshape", series_image_size=16, series_deinterleave=1))
    assert off.meta["channels"] == 1 and off.meta["series_length"] == 240
    args = ns(series_length=60, series_image="reshape", series_image_size=16, series_deinterleave=4,
              series_norm=task.meta["series_norm"])
    img = SD.load_for_predict(str(d / "Inter_TEST.tsv"), args)
    assert img.shape == (6, 8, 16, 16)
    parser = argparse.ArgumentParser()
    SD.add_train_args(parser)
    assert parser.parse_args(["--series-deinterleave", "4"]).series_deinterleave == 4


def test_example_dev_split_reads_train_only_and_holds_out_each_class(tmp_path):
    """``--dev``: the held-out part is carved per class from the TRAIN file alone, disjoint and complete."""
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("series_example", root / "examples" / "series_classification.py")
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    rows = [f"{i},{i + 1},{i + 2}:{c}" for c in ("a", "b") for i in range(10)] + ["0,0,0:c"] * 3
    train = write(tmp_path / "src" / "Toy_TRAIN.ts", "@problemName Toy\n@classLabel true a b c\n@data\n"
                  + "\n".join(rows) + "\n")
    assert ex.dev_split(train, tmp_path / "dev", 0.3) == (16, 7)  # 3 + 3 + 1 held out
    kept = [l for l in (tmp_path / "dev" / "Toy_TRAIN.ts").read_text().splitlines() if ":" in l]
    held = [l for l in (tmp_path / "dev" / "Toy_TEST.ts").read_text().splitlines() if ":" in l]
    assert sorted(kept + held) == sorted(rows) and {l[-1] for l in held} == {"a", "b", "c"}
    assert not set(kept[:-2]) & set(held)  # the distinct a/b rows are in one part only
    assert ucr.read_series_file(tmp_path / "dev" / "Toy_TEST.ts")[1].count("a") == 3
