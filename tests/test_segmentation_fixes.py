"""Segmentation data fixes: hidden files never read, root classes.txt with split folders, mask values of every
split checked against the class count in the pre-scan (before training)."""
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unireplknet.cli import main
from unireplknet.errors import BadFileError
from unireplknet.tasks.segmentation_data import drop_bad_pairs, find_pairs
from unireplknet.tasks.segmentation_train import SEG_DEFAULTS, _datasets

TINY = json.dumps({"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [5], [5], [3]]})
FAST = ["--model", "custom", "--model-args", TINY, "--crop-size", "32", "--seg-channels", "16", "--aux-channels", "8",
        "--epochs", "1", "--batch-size", "2", "--max-train-steps", "1", "--num-workers", "0",
        "--device", "cpu", "--no-deploy", "--no-auto"]


def _pair(folder: Path, name: str, seed: int, top: int = 3) -> tuple:
    """One random RGB image and an ``L`` mask of classes ``0..top-1`` (every class present)."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    img, msk = folder / "images" / f"{name}.png", folder / "masks" / f"{name}.png"
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(img)
    m = rng.integers(0, top, (32, 32), dtype=np.uint8)
    m[0, :top] = np.arange(top)
    Image.fromarray(m).save(msk)
    return img, msk


def _splits(root: Path) -> None:
    for i in range(4):
        _pair(root / "train", f"tr{i}", i)
    for i in range(2):
        _pair(root / "val", f"va{i}", 10 + i)
        _pair(root / "test", f"te{i}", 20 + i)


def _cfg(data: Path, **kw) -> dict:
    return {**SEG_DEFAULTS, "seed": 0, "crop_size": 32, "data": str(data), **kw}


def test_appledouble_and_hidden_files_are_never_read(tmp_path, caplog):
    root = tmp_path / "d"
    for i in range(2):
        _pair(root, f"img{i}", i)
    (root / "images" / "._img1.png").write_bytes(b"\0\5\x16\x07AppleDouble")
    (root / "masks" / "._img0.png").write_bytes(b"\0\5\x16\x07AppleDouble")
    (root / "images" / ".DS_Store").write_bytes(b"junk")
    with caplog.at_level(logging.WARNING):
        pairs = find_pairs(root)
    assert [p.name for p, _ in pairs] == ["img0.png", "img1.png"]
    assert [m.name for _, m in pairs] == ["img0.png", "img1.png"]
    assert not [r for r in caplog.records if "no image" in r.getMessage()]


def test_root_classes_txt_is_read_with_split_folders(tmp_path):
    root = tmp_path / "d"
    _splits(root)
    (root / "classes.txt").write_text("background\nred\ngreen\nblue\n")
    _, _, _, ncls, names, _ = _datasets(_cfg(root))
    assert ncls == 4 and names == ["background", "red", "green", "blue"]
    (root / "classes.txt").unlink()
    (root / "train" / "classes.txt").write_text("a\nb\nc\nd\ne\n")  # the train folder's, when the root has none
    _, _, _, ncls, names, _ = _datasets(_cfg(root))
    assert ncls == 5 and names == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("with_names", [True, False])
def test_out_of_range_mask_in_val_or_test_is_a_bad_file_before_training(tmp_path, caplog, with_names):
    """Class count from classes.txt / the training masks (never val/test); other splits' masks are checked
    against it in the pre-scan: skipped with the one warning naming the mask and the values."""
    root = tmp_path / "d"
    _splits(root)
    if with_names:
        (root / "classes.txt").write_text("a\nb\nc\n")
    bad_val, bad_test = root / "val" / "masks" / "va1.png", root / "test" / "masks" / "te0.png"
    Image.fromarray(np.full((32, 32), 7, dtype=np.uint8)).save(bad_val)
    Image.fromarray(np.full((32, 32), 3, dtype=np.uint8)).save(bad_test)
    with caplog.at_level(logging.WARNING):
        _, val, tests, ncls, _, skipped = _datasets(_cfg(root))
    assert ncls == 3  # not 8: val/test never configure the model
    assert len(val) == 1 and len(tests["test"]) == 1
    assert skipped == {"val": [str(root / "val" / "images" / "va1.png")],
                       "test": [str(root / "test" / "images" / "te0.png")]}
    text = " ".join(r.getMessage() for r in caplog.records)
    assert f"mask {bad_val} has values [7]" in text and f"mask {bad_test} has values [3]" in text


def test_out_of_range_mask_with_no_skip_is_an_error_before_training(tmp_path, capsys):
    root = tmp_path / "d"
    _splits(root)
    bad = root / "test" / "masks" / "te1.png"
    Image.fromarray(np.full((32, 32), 9, dtype=np.uint8)).save(bad)
    rc = main(["train", "--task", "segmentation", "--data", str(root), "-o", str(tmp_path / "run"), *FAST,
               "--no-skip-bad-files"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and f"mask {bad} has values [9]" in err, err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_drop_bad_pairs_checks_values_only_with_num_classes(tmp_path):
    root = tmp_path / "d"
    _splits(root)
    Image.fromarray(np.full((32, 32), 5, dtype=np.uint8)).save(root / "val" / "masks" / "va0.png")
    pairs = {n: find_pairs(root / n) for n in ("train", "val", "test")}
    assert drop_bad_pairs({k: list(v) for k, v in pairs.items()}, num_classes=None) == {}
    with pytest.raises(BadFileError, match="has values \\[5\\]"):
        drop_bad_pairs({k: list(v) for k, v in pairs.items()}, skip_bad=False, num_classes=3)
    assert drop_bad_pairs({k: list(v) for k, v in pairs.items()}, num_classes=6) == {}


def test_majority_class_baseline_beside_the_model_numbers(tmp_path, caplog):
    """Fitted on the training split only (pixel counts), scored with the model's metric on val and every test split."""
    root = tmp_path / "d"
    _splits(root)
    for i in range(4):  # the training masks: mostly class 2
        m = np.full((32, 32), 2, dtype=np.uint8)
        m[0, :3] = [0, 1, 255]
        Image.fromarray(m).save(root / "train" / "masks" / f"tr{i}.png")
    for i in range(2):  # val all class 2, test all class 0 (a test-majority baseline would score 100 there)
        Image.fromarray(np.full((32, 32), 2, dtype=np.uint8)).save(root / "val" / "masks" / f"va{i}.png")
        Image.fromarray(np.full((32, 32), 0, dtype=np.uint8)).save(root / "test" / "masks" / f"te{i}.png")
    with caplog.at_level(logging.INFO):
        assert main(["train", "--task", "segmentation", "--data", str(root), "-o", str(tmp_path / "run"), *FAST,
                     "--num-classes", "3"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    base = summary["baselines"]
    assert base["majority_class"] == "2"
    assert set(base["results"]) == {"val", "test"}
    assert base["results"]["val"] == {"majority_class[mIoU]": 100.0, "majority_class[mAcc]": 100.0,
                                      "majority_class[aAcc]": 100.0}
    assert base["results"]["test"]["majority_class[aAcc]"] == 0.0
    text = "\n".join(r.getMessage() for r in caplog.records)
    test_miou = summary["evaluation"]["test"]["mIoU"]
    assert f"test: mIoU={test_miou:.2f}" in text and "baseline majority_class (2): mIoU=0.00" in text, text
