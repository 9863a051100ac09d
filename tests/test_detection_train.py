"""``unireplknet train --task detection``: data layouts, splits, the AP metric and bad input, through the real command."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unireplknet.cli import main
from unireplknet.tasks.detection_metrics import detection_map
from unireplknet.tasks.detection_train import load_detection_splits

TINY = json.dumps({"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "kernel_sizes": [[3], [5], [5], [3]]})
# the smallest sensible run: 64 px, one update per epoch, a narrow FPN and box head
FAST = ["--model", "custom", "--model-args", TINY, "--min-size", "64", "--max-size", "64",
        "--anchor-sizes", "8", "16", "32", "64", "128", "--fpn-channels", "16", "--representation-size", "32",
        "--epochs", "1", "--batch-size", "2", "--max-train-steps", "1", "--num-workers", "0", "--lr", "1e-3"]


def _image(path: Path, seed: int, size: int = 64) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def _coco(folder: Path, n: int, seed: int, missing: int = 0) -> Path:
    """``n`` images with one or two boxes (the last one without boxes) and ``annotations.json``."""
    images, anns = [], []
    for i in range(n):
        name = f"img_{seed}_{i}.png"
        if i >= missing:
            _image(folder / name, seed * 100 + i)
        images.append({"id": i + 1, "file_name": name, "width": 64, "height": 64})
        if i < n - 1:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "bbox": [4, 6, 20, 30], "category_id": 3})
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "bbox": [30, 30, 25, 20], "category_id": 7})
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]}
    path = folder / "annotations.json"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _run(capsys, *argv):
    code = main(["train", "--task", "detection", *argv])
    return code, capsys.readouterr()


# ------------------------------------------------------------------------------------------- AP metric
def _t(boxes, labels, scores=None):
    d = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64)}
    if scores is not None:
        d["scores"] = torch.tensor(scores, dtype=torch.float32)
    return d


def test_ap_perfect_predictions_is_one():
    targets = [_t([[0, 0, 10, 10], [20, 20, 40, 40]], [1, 2]), _t([[5, 5, 15, 25]], [1]), _t([], [])]
    dets = [dict(t, scores=torch.ones(len(t["labels"]))) for t in targets]
    res = detection_map(dets, targets, num_classes=3)
    assert res["map50"] == pytest.approx(1.0) and res["map"] == pytest.approx(1.0) and res["map75"] == pytest.approx(1.0)
    assert res["per_class"] == {1: pytest.approx(1.0), 2: pytest.approx(1.0)}


def test_ap_no_predictions_is_zero_and_no_ground_truth_is_nan():
    targets = [_t([[0, 0, 10, 10]], [1])]
    assert detection_map([_t([], [], [])], targets, 2)["map50"] == 0.0
    assert np.isnan(detection_map([_t([[0, 0, 5, 5]], [1], [0.9])], [_t([], [])], 2)["map50"])


def test_ap_hand_computed_case():
    # 2 ground-truth boxes; detections by score: hit, miss (no overlap), hit.
    # precision/recall: (1, .5), (.5, .5), (.667, 1) -> envelope 1 up to recall .5, 2/3 above.
    targets = [_t([[0, 0, 10, 10], [50, 50, 60, 60]], [1, 1])]
    dets = [_t([[0, 0, 10, 10], [100, 100, 110, 110], [50, 50, 60, 61]], [1, 1, 1], [0.9, 0.8, 0.7])]
    voc = detection_map(dets, targets, 2, interpolation="voc")
    assert voc["map50"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    coco = detection_map(dets, targets, 2)
    assert coco["map50"] == pytest.approx((51 * 1 + 50 * 2 / 3) / 101)  # recall points 0..0.50 and 0.51..1
    # the third box has IoU 100/110 = 0.909: a hit up to threshold 0.90, a miss at 0.95 (9 of 10 thresholds)
    at95 = (51 * 1 + 50 * 0) / 101  # only the first box counts: recall .5 with precision 1
    assert coco["map"] == pytest.approx((9 * coco["map50"] + at95) / 10)


def test_ap_duplicates_are_false_positives_and_classes_do_not_mix():
    targets = [_t([[0, 0, 10, 10]], [1])]
    dets = [_t([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [1, 1, 2], [0.9, 0.95, 0.99])]
    res = detection_map(dets, targets, 3, interpolation="voc")
    assert res["map50"] == pytest.approx(1.0)  # the best-scored class-1 box hits first; class 2 has no ground truth
    dets = [_t([[0, 0, 10, 10]], [2], [0.9])]
    assert detection_map(dets, targets, 3)["map50"] == 0.0


# ------------------------------------------------------------------------------------------- data reading
def test_csv_splits_negatives_and_val_fraction(tmp_path):
    for i in range(6):
        _image(tmp_path / "im" / f"{i}.png", i)
    rows = [["image", "x1", "y1", "x2", "y2", "label", "split"]]
    for i in range(5):
        rows.append([f"im/{i}.png", 1, 2, 30, 40, "b" if i % 2 else "a", "train"])
    rows.append(["im/0.png", 10, 10, 20, 20, "b", "train"])
    rows.append(["im/5.png", "", "", "", "", "", "test"])  # a negative test image
    with open(tmp_path / "boxes.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    s = load_detection_splits(str(tmp_path / "boxes.csv"), val_fraction=0.2, seed=0)
    assert s.classes == ["a", "b"] and s.num_classes == 3
    assert len(s.train) == 4 and len(s.val) == 1 and list(s.tests) == ["test"]
    assert s.tests["test"][0][1] == [] and s.tests["test"][0][2] == []
    first = {p.name: (b, lab) for p, b, lab in s.train + s.val}["0.png"]
    assert first == ([[1.0, 2.0, 30.0, 40.0], [10.0, 10.0, 20.0, 20.0]], [1, 2])
    again = load_detection_splits(str(tmp_path / "boxes.csv"), val_fraction=0.2, seed=0)
    assert [p for p, _, _ in again.val] == [p for p, _, _ in s.val]  # seeded


def test_same_image_in_two_splits_is_refused(tmp_path):
    _coco(tmp_path / "train", 3, 0)
    _coco(tmp_path / "test", 3, 0)  # same file names, but different folders: fine
    load_detection_splits(str(tmp_path))
    with open(tmp_path / "b.csv", "w") as f:
        f.write("image,x1,y1,x2,y2,label,split\ntrain/img_0_0.png,1,1,5,5,a,train\ntrain/img_0_0.png,1,1,5,5,a,test\n")
    with pytest.raises(ValueError, match="splits"):
        load_detection_splits(str(tmp_path / "b.csv"))


# ------------------------------------------------------------------------------------------- the command
@pytest.mark.slow  # the first run pays for building the photo scenes
def test_demo_runs_through_the_command(tmp_path, capsys):
    out = tmp_path / "run"
    code, cap = _run(capsys, "-o", str(out), "--demo-size", "4", "--demo-image-size", "64", *FAST)
    assert code == 0, cap.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["metric"] == "map50" and 0.0 <= summary["best"]["value"] <= 1.0
    assert set(summary["test"]) == {"test"} and "map" in summary["test"]["test"]
    assert (out / "model.json").is_file() and (out / "config.yaml").is_file() and (out / "best.pt").is_file()
    assert json.loads((out / "model.json").read_text())["class_names"] == ["background", "circle", "square", "triangle"]
    assert "mAP@0.5" in cap.out and "test" in cap.out


def test_coco_split_folders_train_and_test(tmp_path, capsys):
    data = tmp_path / "data"
    _coco(data / "train", 6, 1)
    _coco(data / "test", 3, 2)
    out = tmp_path / "run"
    code, cap = _run(capsys, "--data", str(data), "-o", str(out), "--val-fraction", "0.34", *FAST)
    assert code == 0, cap.err
    split_files = {}
    for name in ("train", "val", "test"):
        with open(out / "splits" / f"{name}.csv") as f:
            split_files[name] = {row["image"] for row in csv.DictReader(f)}
    assert [len(split_files[k]) for k in ("train", "val", "test")] == [4, 2, 3]
    assert not (split_files["train"] & split_files["val"]) and not (split_files["test"] & (split_files["train"] | split_files["val"]))
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test"]) == {"test"} and summary["test"]["test"]["n"] == 3
    assert summary["skipped_files"] == {}
    assert set(summary["evaluation"]) == {"val", "test"}
    record = json.loads((out / "model.json").read_text())
    assert record["class_names"] == ["background", "cat", "dog"] and record["splits"] == {"train": 4, "val": 2, "test": 3}


def test_csv_of_boxes_through_the_command(tmp_path, capsys):
    data = tmp_path / "csvdata"
    data.mkdir()
    with open(data / "boxes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "x1", "y1", "x2", "y2", "label", "split"])
        for i in range(7):
            _image(data / "images" / f"{i}.png", 50 + i)
            split = "test" if i == 6 else ("val" if i == 5 else "train")
            w.writerow([f"images/{i}.png", 5, 5, 30, 40, "thing", split])
        _image(data / "images" / "neg.png", 99)
        w.writerow(["images/neg.png", "", "", "", "", "", "train"])
    out = tmp_path / "run"
    code, cap = _run(capsys, "--data", str(data / "boxes.csv"), "-o", str(out), *FAST)
    assert code == 0, cap.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["splits"] == {"train": 6, "val": 1, "test": 1}
    assert summary["test"]["test"]["n"] == 1


# ------------------------------------------------------------------------------------------- bad input
def test_missing_annotations_file_is_one_error_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, cap = _run(capsys, "--data", str(tmp_path / "empty"), "-o", str(tmp_path / "run"), *FAST)
    assert code == 2
    lines = [ln for ln in cap.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "annotations.json" in lines[0]
    code, cap = _run(capsys, "--data", str(tmp_path / "nope.json"), "-o", str(tmp_path / "run"), *FAST)
    assert code == 2 and cap.err.startswith("error:")


def test_annotation_naming_unknown_image_is_an_error(tmp_path, capsys):
    path = _coco(tmp_path / "d", 3, 3)
    doc = json.loads(path.read_text())
    doc["annotations"].append({"id": 99, "image_id": 42, "bbox": [1, 1, 5, 5], "category_id": 3})
    path.write_text(json.dumps(doc))
    code, cap = _run(capsys, "--data", str(path), "-o", str(tmp_path / "run"), *FAST)
    assert code == 2 and cap.err.startswith("error:") and "image_id 42" in cap.err


def test_missing_image_file_is_skipped_or_an_error(tmp_path, capsys, caplog):
    _coco(tmp_path / "d" / "train", 4, 4, missing=1)  # img_4_0.png is listed but not on disk
    _coco(tmp_path / "d" / "val", 2, 5)
    s = load_detection_splits(str(tmp_path / "d"))
    assert (len(s.train), len(s.val)) == (4, 2)
    code, cap = _run(capsys, "--data", str(tmp_path / "d"), "-o", str(tmp_path / "strict"), "--no-skip-bad-files", *FAST)
    assert code == 2 and "img_4_0.png" in cap.err and cap.err.startswith("error:")
    from unireplknet.tasks.detection_train import _drop_bad_images

    skipped = _drop_bad_images(s, skip_bad=True)
    assert sum(len(v) for v in skipped.values()) == 1
    assert len(s.train) == 3 and "img_4_0.png" not in {p.name for p, _, _ in s.train}
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    code, cap = _run(capsys, "--data", str(tmp_path / "d"), "-o", str(tmp_path / "skip"), *FAST)
    assert code == 0, cap.err
    assert json.loads((tmp_path / "skip" / "summary.json").read_text())["skipped_files"] == {"train": 1}
