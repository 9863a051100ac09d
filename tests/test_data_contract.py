"""The shared data contract in every modality: layouts, split rules, bad files, and the final test evaluation.

Data-level tests build each modality's TaskData for every layout; command-level tests run
``unireplknet train`` for real (tiny model, one short epoch) and check what was read and written.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unireplknet.cli import main
from unireplknet.errors import DataError
from unireplknet.modalities import get_modality
from unireplknet.modalities.base import NamedFileErrors, split_kind

CLASSES = ("a", "b")
TINY = json.dumps({"depths": [1, 1, 1, 1], "dims": [8, 16, 24, 32], "kernel_sizes": [[3], [5], [5], [3]]})


# ----------------------------------------------------------------------------- writing files of each modality
def _write(modality: str, path: Path, label: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if modality == "image":
        from PIL import Image

        path = path.with_suffix(".png")
        img = np.full((12, 12), 40 + 170 * label, np.uint8) + rng.integers(0, 30, (12, 12), dtype=np.uint8)
        Image.fromarray(img, mode="L").save(path)
    elif modality == "audio":
        import soundfile as sf

        path = path.with_suffix(".wav")
        t = np.arange(3200) / 16000
        wave = 0.3 * np.sin(2 * np.pi * (300 + 900 * label) * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(path, wave.astype(np.float32), 16000)
    elif modality == "point":
        path = path.with_suffix(".npy")
        pts = rng.standard_normal((64, 3)).astype(np.float32)
        pts[:, 0] *= 1 + 3 * label
        np.save(path, pts)
    elif modality == "video":
        from unireplknet.modalities.video.datasets import write_video

        path = path.with_suffix(".mp4")
        frames = np.full((4, 16, 16, 3), 30 + 180 * label, np.uint8)
        write_video(path, frames, fps=4)
    return path


def _bad(modality: str, folder: Path, kind: str) -> Path:
    """An unreadable file of ``kind``: empty, truncated, random bytes, or (points) the wrong shape."""
    ext = {"image": ".png", "audio": ".wav", "point": ".npy", "video": ".mp4"}[modality]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bad_{kind}{ext}"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        good = _write(modality, folder / "tmp_good", 0, 5)
        data = good.read_bytes()
        good.unlink()
        path.write_bytes(data[: max(8, len(data) // 3)])
    elif kind == "shape":
        np.save(path, np.zeros((3, 50), np.float32))
    return path


def make_layout(modality: str, root: Path, layout: str, n: int = 6) -> Path:
    """Write ``layout`` (split_folders, train_test, train_test_ab, class_folders, csv) under ``root``."""
    counter = iter(range(10_000))

    def split(name: str, folder: Path, k: int = n) -> list[tuple[Path, str]]:
        rows = []
        for label, c in enumerate(CLASSES):
            for i in range(k):
                rows.append((_write(modality, folder / c / f"{name}_{c}{i}", label, next(counter)), c))
        return rows

    if layout == "split_folders":
        split("train", root / "train"), split("val", root / "val", 2), split("test", root / "test", 2)
    elif layout == "train_test":
        split("train", root / "train"), split("test", root / "test", 2)
    elif layout == "train_test_ab":
        split("train", root / "train"), split("ta", root / "test_a", 2), split("tb", root / "test_b", 2)
    elif layout == "class_folders":
        split("train", root)
    elif layout == "csv":
        rows = [(p, c, "train") for p, c in split("train", root / "files")]
        rows += [(p, c, "test") for p, c in split("test", root / "files_test", 2)]
        with open(root / "list.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label", "split"])
            for p, c, s in rows:
                w.writerow([p.relative_to(root).as_posix(), c, s])
        return root / "list.csv"
    return root


def _args(modality: str, data: Path, **kw) -> argparse.Namespace:
    plugin = get_modality(modality)
    cfg = {**plugin.config_defaults, "data": str(data), "val_data": None, "seed": 0, "val_fraction": 0.25,
           "output": str(data.parent / "run"), **kw}
    if modality == "image":
        cfg.update(input_size=16, in_chans=1, transform="light")
    if modality == "video":
        cfg.update(num_frames=2, frame_stride=1, frame_size=16, eval_clips=1, eval_crops=1, aa="")
    if modality == "point":
        cfg.update(num_points=32, input_size=16)
    return argparse.Namespace(**cfg)


MODALITIES = ["image", "audio", "point", "video"]
LAYOUTS = {"split_folders": ["test"], "train_test": ["test"], "train_test_ab": ["test_a", "test_b"],
           "class_folders": [], "csv": ["test"]}


def _files(ds) -> set[str]:
    while not isinstance(ds, NamedFileErrors):
        ds = ds.dataset
    return {str(Path(ds.path_of(i)).resolve()) for i in range(len(ds))}


# ----------------------------------------------------------------------------- data level
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("modality", MODALITIES)
def test_layouts_give_disjoint_splits_and_named_tests(modality, layout, tmp_path):
    data = make_layout(modality, tmp_path / "data", layout)
    task = get_modality(modality).build(_args(modality, data))
    assert list(task.class_names) == list(CLASSES)  # split folders are never classes
    assert sorted(task.tests) == LAYOUTS[layout]
    files = {"train": _files(task.train), "val": _files(task.val), **{k: _files(v) for k, v in task.tests.items()}}
    names = list(files)
    for i, a in enumerate(names):
        assert files[a], f"{a} is empty"
        for b in names[i + 1:]:
            assert not files[a] & files[b], f"{a} and {b} share files"
    for name in task.tests:  # test files come from the test split only
        assert all("test" in f or "_t" in Path(f).name for f in files[name])
    assert len(task.val) >= 2  # carved (stratified: one per class at least) or the val folder


BAD_KINDS = [(m, k) for m in MODALITIES for k in ("empty", "truncated", "random")] + [("point", "shape")]


@pytest.mark.parametrize("modality, kind", BAD_KINDS)
def test_bad_files_are_skipped_with_one_warning(modality, kind, tmp_path, caplog):
    data = make_layout(modality, tmp_path / "data", "train_test")
    bad = _bad(modality, data / "train" / "a", kind)
    with caplog.at_level("WARNING"):
        task = get_modality(modality).build(_args(modality, data))
    warnings = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and bad.name in warnings[0].getMessage()
    assert str(bad.resolve()) not in _files(task.train) | _files(task.val)
    with pytest.raises(DataError, match=bad.name):
        get_modality(modality).build(_args(modality, data, skip_bad_files=False))


def test_split_names():
    assert [split_kind(n) for n in ("train", "Training", "val", "valid", "validation", "val_clean", "test",
                                    "test_voices", "testing", "cat")] == \
        ["train", "train", "val", "val", "val", "val", "test", "test", "test", None]


@pytest.mark.parametrize("make, message", [
    (lambda r: (r / "test" / "a").mkdir(parents=True), "no train/"),
    (lambda r: [(r / d / "a").mkdir(parents=True) for d in ("train", "cats")], "mixes split folders"),
    (lambda r: [(r / d / "a").mkdir(parents=True) for d in ("train", "val", "validation")], "several validation"),
])
def test_ambiguous_layouts_are_errors_with_the_fix(make, message, tmp_path):
    root = tmp_path / "d"
    make(root)
    for p in root.rglob("*"):
        if p.is_dir() and not any(p.iterdir()):
            _write("image", p / "x", 0, 0)
    with pytest.raises(DataError, match=message):
        get_modality("image").build(_args("image", root))


def test_one_class_and_empty_split_are_errors(tmp_path):
    root = tmp_path / "d"
    for i in range(4):
        _write("image", root / "train" / "a" / f"{i}", 0, i)
    with pytest.raises(DataError, match="classification needs at least 2"):
        get_modality("image").build(_args("image", root))


def test_csv_paths_outside_the_data_root_are_refused(tmp_path):
    outside = _write("image", tmp_path / "elsewhere" / "x", 0, 0)
    root = tmp_path / "d"
    root.mkdir()
    rows = [f"{_write('image', root / c / str(i), k, i).name if False else (c + '/' + str(i) + '.png')},{c}"
            for k, c in enumerate(CLASSES) for i in range(3)]
    for k, c in enumerate(CLASSES):
        for i in range(3):
            _write("image", root / c / str(i), k, i)
    (root / "list.csv").write_text("path,label\n" + "\n".join(rows) + f"\n../elsewhere/{outside.name},a\n")
    with pytest.raises(DataError, match="outside the data root"):
        get_modality("image").build(_args("image", root / "list.csv"))
    task = get_modality("image").build(_args("image", root / "list.csv", allow_outside_root=True))
    assert len(task.train) + len(task.val) == 7


def test_transposed_point_array_is_named(tmp_path):
    from unireplknet.modalities.point.io import read_points

    np.save(tmp_path / "t.npy", np.zeros((3, 100), np.float32))
    with pytest.raises(ValueError, match="transposed"):
        read_points(tmp_path / "t.npy")


# ----------------------------------------------------------------------------- through the command
def _train(modality: str, data: Path, out: Path, *extra: str) -> int:
    argv = ["train", "--modality", modality, "--data", str(data), "-o", str(out), "--model", "custom",
            "--model-args", TINY, "--epochs", "2", "--batch-size", "4", "--num-workers", "0", "--no-deploy",
            "--no-baselines", "--val-fraction", "0.25", "--warmup-epochs", "0", "--num-threads", "1"]
    if modality == "image":
        argv += ["--input-size", "16", "--in-chans", "1", "--transform", "light"]
    if modality == "video":
        argv += ["--num-frames", "2", "--frame-stride", "1", "--frame-size", "16", "--eval-clips", "1",
                 "--eval-crops", "1", "--aa", ""]
    if modality == "point":
        argv += ["--num-points", "32", "--input-size", "16"]
    return main(argv + list(extra))


@pytest.mark.parametrize("modality", MODALITIES)
def test_train_never_reads_test_files_before_the_final_evaluation(modality, tmp_path, monkeypatch):
    from unireplknet.engine import trainer as trainer_mod

    data = make_layout(modality, tmp_path / "data", "train_test_ab")
    reads: list[tuple[str, bool]] = []
    fitting = {"on": False}
    original_get = NamedFileErrors.__getitem__
    original_fit = trainer_mod.Trainer.fit

    def get(self, index):
        reads.append((str(Path(self.path_of(index)).resolve()), fitting["on"]))
        return original_get(self, index)

    def fit(self, *a, **k):
        fitting["on"] = True
        try:
            return original_fit(self, *a, **k)
        finally:
            fitting["on"] = False

    from unireplknet.runner import train as runner_train

    original_final = runner_train.final_evaluation

    def final(*a, **k):  # the end-of-run hook: training and selection are over
        fitting["on"] = False
        return original_final(*a, **k)

    monkeypatch.setattr(NamedFileErrors, "__getitem__", get)
    monkeypatch.setattr(trainer_mod.Trainer, "fit", fit)
    monkeypatch.setattr(runner_train, "final_evaluation", final)
    out = tmp_path / "run"
    assert _train(modality, data, out) == 0
    test_files = {str(p.resolve()) for d in ("test_a", "test_b") for p in (data / d).rglob("*") if p.is_file()}
    assert not [f for f, during in reads if during and f in test_files], "a test file was read while training"
    assert {f for f, during in reads if not during} >= test_files  # evaluated once at the end
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test"]) == {"test_a", "test_b"} and summary["test"]["test_a"]["n"] == 4
    assert "acc1" in summary["evaluation"]["val"]
    lists = {p.stem: {r["path"] for r in csv.DictReader(open(p))} for p in (out / "splits").glob("*.csv")}
    assert set(lists) == {"train", "val", "test_a", "test_b"}
    assert not lists["train"] & lists["val"] and not (lists["train"] | lists["val"]) & test_files


@pytest.mark.parametrize("modality", MODALITIES)
def test_no_skip_bad_files_is_one_line_and_exit_2(modality, tmp_path, capsys):
    data = make_layout(modality, tmp_path / "data", "train_test")
    bad = _bad(modality, data / "train" / "b", "random")
    code = _train(modality, data, tmp_path / "run", "--no-skip-bad-files")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and bad.name in err[0]


def test_unreadable_file_in_a_worker_is_one_line(tmp_path, capsys, monkeypatch):
    """A file that breaks after the pre-scan (it passed, then changed) is named in one line from a worker."""
    data = make_layout("image", tmp_path / "data", "train_test")
    victim = sorted((data / "train" / "a").glob("*.png"))[0]
    from unireplknet.modalities import base

    monkeypatch.setattr(base, "prescan", lambda splits, *a, **k: splits)
    from unireplknet.modalities.image import datasets as image_datasets

    monkeypatch.setattr(image_datasets, "prescan", lambda splits, *a, **k: splits)
    victim.write_bytes(b"broken after the scan")
    code = _train("image", data, tmp_path / "run", "--num-workers", "1", "--batch-size", "2")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and victim.name in err[0], err


def test_train_summary_counts_skipped_files(tmp_path):
    """The classification command records the skipped unreadable files per split in summary.json, as the
    segmentation and detection commands do (``skipped_files``)."""
    data = make_layout("image", tmp_path / "data", "train_test")
    _bad("image", data / "train" / "a", "truncated")
    out = tmp_path / "run"
    tiny = json.dumps({"depths": [1, 1, 1, 1], "dims": [8, 8, 8, 8], "kernel_sizes": [[3], [5], [5], [3]]})
    assert main(["train", "--modality", "image", "--data", str(data), "-o", str(out), "--epochs", "1",
                 "--max-train-steps", "1", "--model", "unireplknet_a", "--model-args", tiny, "--no-deploy",
                 "--no-baselines", "--num-threads", "1", "--num-workers", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_files"] == {"train": 1}
