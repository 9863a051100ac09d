"""``train --task segmentation``: the bad-file rule on (image, mask) pairs (pre-scan, one warning, or an error)."""
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unireplknet.cli import main
from unireplknet.errors import BadFileError, ConfigError, DataError
from unireplknet.tasks.segmentation_data import drop_bad_pairs, find_pairs

TINY = json.dumps({"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [5], [5], [3]]})
FAST = ["--model", "custom", "--model-args", TINY, "--crop-size", "32", "--seg-channels", "16", "--aux-channels", "8",
        "--num-classes", "3", "--epochs", "1", "--batch-size", "2", "--max-train-steps", "1", "--num-workers", "0",
        "--device", "cpu", "--no-deploy", "--no-auto"]


def _pair(folder: Path, name: str, seed: int, size=(32, 32), mask_size=None) -> tuple:
    """One random RGB image and an ``L`` mask of classes 0..2 (``mask_size``: a different mask size)."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    img, msk = folder / "images" / f"{name}.png", folder / "masks" / f"{name}.png"
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(img)
    Image.fromarray(rng.integers(0, 3, mask_size or size, dtype=np.uint8)).save(msk)
    return img, msk


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _dataset(root: Path) -> dict:
    """train/val/test with one bad pair each: a truncated image, a truncated mask, a size mismatch."""
    for i in range(6):
        _pair(root / "train", f"tr{i}", i)
    for i in range(3):
        _pair(root / "val", f"va{i}", 10 + i)
        _pair(root / "test", f"te{i}", 20 + i)
    bad = {"train": root / "train" / "images" / "tr1.png", "val": root / "val" / "masks" / "va1.png",
           "test": root / "test" / "masks" / "te2.png"}
    _truncate(bad["train"])
    _truncate(bad["val"])
    _pair(root / "test", "te2", 22, size=(32, 32), mask_size=(24, 32))
    return bad


def _train(tmp_path: Path, data: Path, *extra: str) -> int:
    return main(["train", "--task", "segmentation", "--data", str(data), "-o", str(tmp_path / "run"), *FAST, *extra])


def test_bad_pairs_are_skipped_with_one_warning_and_counted(tmp_path, caplog):
    bad = _dataset(tmp_path / "d")
    with caplog.at_level(logging.WARNING):
        assert _train(tmp_path, tmp_path / "d") == 0
    warnings = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1, warnings
    msg = warnings[0]
    assert "skipped 3 " in msg
    for path in bad.values():  # the truncated image, the truncated mask, the mismatched mask are all named
        assert str(path) in msg, (path, msg)
    assert "24x32" in msg and "32x32" in msg  # the mismatch gives both sizes
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["skipped_files"] == {"train": 1, "val": 1, "test": 1}
    assert summary["splits"] == {"train": 5, "val": 2, "test": 2}
    assert "mIoU" in summary["test"]["test"]


@pytest.mark.parametrize("how", ["flag", "yaml"])
def test_no_skip_bad_files_stops_naming_the_file(tmp_path, capsys, how):
    _dataset(tmp_path / "d")
    if how == "flag":
        extra = ["--no-skip-bad-files"]
    else:
        (tmp_path / "c.yaml").write_text("skip_bad_files: false\n")
        extra = ["--config", str(tmp_path / "c.yaml")]
    assert _train(tmp_path, tmp_path / "d", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:"), err
    # the first bad pair in path order: test/te2, whose mask is the wrong size
    assert str(tmp_path / "d" / "test" / "images" / "te2.png") in err and "te2.png is 24x32" in err
    assert "(and 2 more)" in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_each_kind_of_bad_pair_names_the_file_at_fault(tmp_path):
    root = tmp_path / "d"
    good = [_pair(root, f"g{i}", i) for i in range(2)]
    for kind in ("image", "mask", "size"):
        img, msk = _pair(tmp_path / kind, "x", 5, mask_size=(16, 32) if kind == "size" else None)
        if kind == "image":
            _truncate(img)
        elif kind == "mask":
            _truncate(msk)
        splits = {"train": [*good, (img, msk)], "val": list(good)}
        with pytest.raises(BadFileError) as e:
            drop_bad_pairs(splits, skip_bad=False)
        assert e.value.path == str(img)
        if kind == "mask":
            assert f"mask {msk}" in e.value.reason
        if kind == "size":
            assert "32x32" in e.value.reason and "16x32" in e.value.reason and str(msk) in e.value.reason
        assert len(splits["train"]) == 3  # an error changes nothing
        skipped = drop_bad_pairs(splits, skip_bad=True)
        assert skipped == {"train": [str(img)]} and splits["train"] == good


def test_a_split_left_empty_is_the_clear_empty_data_error(tmp_path, capsys):
    root = tmp_path / "d"
    for i in range(4):
        _pair(root / "train", f"tr{i}", i)
    for i in range(2):
        _truncate(_pair(root / "val", f"va{i}", 10 + i)[1])
    assert _train(tmp_path, root) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "every file of the val split is unreadable" in err
    pairs = {"train": find_pairs(root / "train"), "val": find_pairs(root / "val")}
    with pytest.raises(DataError, match="val split"):
        drop_bad_pairs(pairs)


def test_the_cache_sees_a_fixed_or_newly_broken_mask(tmp_path):
    """The pre-scan cache key covers the mask too: a mask fixed or broken later is scanned again."""
    root = tmp_path / "d"
    pairs = [_pair(root, f"p{i}", i) for i in range(3)]
    img, msk = pairs[0]
    good_mask = msk.read_bytes()
    _truncate(msk)
    splits = {"train": list(pairs), "val": pairs[1:]}
    assert drop_bad_pairs(splits) == {"train": [str(img)]}
    msk.write_bytes(good_mask)  # fixed: the image did not change, the pair is good again
    splits = {"train": list(pairs), "val": pairs[1:]}
    assert drop_bad_pairs(splits) == {} and len(splits["train"]) == 3
    _truncate(msk)  # broken again after a clean, cached scan
    st = msk.stat()
    os.utime(msk, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    splits = {"train": list(pairs), "val": pairs[1:]}
    assert drop_bad_pairs(splits) == {"train": [str(img)]}


def test_the_flag_and_yaml_key_are_accepted_for_segmentation(tmp_path):
    from unireplknet.cli.train import register
    from unireplknet.tasks.segmentation_train import add_segmentation_args, resolve_segmentation_config
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register(sub)
    add_segmentation_args(sub.choices["train"])
    args = parser.parse_args(["train", "--task", "segmentation", "--data", "d", "--device", "cpu"])
    assert resolve_segmentation_config(args)["skip_bad_files"] is True
    args = parser.parse_args(["train", "--task", "segmentation", "--data", "d", "--device", "cpu",
                              "--no-skip-bad-files"])
    assert resolve_segmentation_config(args)["skip_bad_files"] is False
    (tmp_path / "c.yaml").write_text("skip_bad_files: false\n")
    args = parser.parse_args(["train", "--task", "segmentation", "--config", str(tmp_path / "c.yaml")])
    assert resolve_segmentation_config(args)["skip_bad_files"] is False
    with pytest.raises(ConfigError, match="--mixup does not apply"):  # other classification flags still refused
        resolve_segmentation_config(parser.parse_args(["train", "--task", "segmentation", "--mixup", "0.5"]))


def test_a_mask_that_fails_while_training_is_one_error_naming_it(tmp_path, capsys):
    """Mask values outside the classes pass the decode pre-scan; the run stops with one line naming the mask."""
    root = tmp_path / "d"
    for i in range(4):
        _pair(root / "train", f"tr{i}", i)
        _pair(root / "val", f"va{i}", 10 + i)
    bad = root / "val" / "masks" / "va0.png"
    Image.fromarray(np.full((32, 32), 7, dtype=np.uint8)).save(bad)
    assert _train(tmp_path, root, "--no-skip-bad-files") == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and f"mask {bad} has values [7]" in err, err


def test_a_pair_that_breaks_after_the_scan_is_one_error_naming_it(tmp_path, capsys, monkeypatch):
    """A file that fails inside the data loader (here: the pre-scan is bypassed) is one error line naming it."""
    import unireplknet.tasks.segmentation_data as sd

    monkeypatch.setattr(sd, "drop_bad_pairs", lambda splits, *a, **k: {})
    root = tmp_path / "d"
    for i in range(2):
        _pair(root / "train", f"tr{i}", i)
        _pair(root / "val", f"va{i}", 10 + i)
    bad = root / "train" / "masks" / "tr0.png"
    _truncate(bad)
    assert _train(tmp_path, root) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(root / "train" / "images" / "tr0.png") in err and f"mask {bad}" in err, err


def test_a_new_segmentation_run_sets_an_earlier_one_aside(tmp_path):
    root = tmp_path / "data"
    for i in range(4):
        _pair(root / "train", f"tr{i}", i)
    for i in range(2):
        _pair(root / "val", f"va{i}", 10 + i)
    assert _train(tmp_path, root) == 0 and _train(tmp_path, root) == 0
    old = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(old) == 1 and (old[0] / "summary.json").is_file() and (tmp_path / "run" / "summary.json").is_file()
