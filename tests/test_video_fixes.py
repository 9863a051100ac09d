"""Video lists: labels indexed by the run's class list, start/end kept in every CSV form, segments past the end."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from unireplknet.errors import BadFileError, DataError
from unireplknet.modalities.video import datasets as vd


def _args(data: Path, **kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    vd.add_train_args(parser)
    args = parser.parse_args([])
    args.data, args.val_data, args.seed = str(data), None, 0
    args.num_frames, args.frame_stride, args.frame_size = 2, 1, 16
    args.eval_clips, args.eval_crops, args.aa = 1, 1, "none"
    for key, value in kw.items():
        setattr(args, key, value)
    return args


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _named(splits, records) -> dict[str, str]:
    """``{file name: class name of its target}`` over every split's records."""
    return {Path(r.path).name: splits.classes[r.label] for recs in records.values() for r in recs}


@pytest.mark.parametrize("labels", [("0", "1", "10"), ("1", "2", "3"), ("10", "2", "cat")])
def test_labels_index_the_final_class_list(tmp_path: Path, labels) -> None:
    rows = [f"v/{c}_{i}.mp4,{lab},0.5,2" for c, lab in zip("abc", labels) for i in range(4)]
    splits, records = vd.video_splits(_args(_write(tmp_path / "list.csv", ["path,label,start,end", *rows])))
    expected = sorted(labels, key=lambda s: (0, int(s), "") if s.isdigit() else (1, 0, s))
    assert splits.classes == expected
    assert _named(splits, records) == {f"{c}_{i}.mp4": lab for c, lab in zip("abc", labels) for i in range(4)}
    assert all(0 <= r.label < len(splits.classes) for recs in records.values() for r in recs)


def test_val_data_list_uses_the_same_class_list(tmp_path: Path) -> None:
    train = _write(tmp_path / "train_list.csv", [f"v/{c}{i}.mp4,{lab}" for c, lab in (("a", "10"), ("b", "2"))
                                                for i in range(2)])
    val = _write(tmp_path / "val_list.csv", ["v/x.mp4,10,1,2", "v/y.mp4,2"])
    splits, records = vd.video_splits(_args(train, val_data=str(val)))
    assert splits.classes == ["2", "10"]
    assert _named(splits, {"val": records["val"]}) == {"x.mp4": "10", "y.mp4": "2"}
    assert records["val"][0].start == 1.0


def test_segments_are_kept_in_a_split_column_list(tmp_path: Path) -> None:
    rows = [f"v/{c}{i}.mp4,{c},{'train' if i < 2 else 'VAL' if i == 2 else 'test_b'},{i}.5,{i + 2}"
            for c in "ab" for i in range(4)]
    splits, records = vd.video_splits(_args(_write(tmp_path / "l.csv", ["\ufeffPath,Label,Split,Start,End", *rows])))
    assert sorted(records) == ["test_b", "train", "val"] and sorted(splits.tests) == ["test_b"]
    assert {(Path(r.path).name, r.start, r.end) for r in records["test_b"]} == {("a3.mp4", 3.5, 5.0),
                                                                                ("b3.mp4", 3.5, 5.0)}
    assert all(r.start is not None for recs in records.values() for r in recs)


@pytest.mark.parametrize("header", [True, False])
def test_segments_are_kept_in_per_split_lists(tmp_path: Path, header: bool) -> None:
    d = tmp_path / "k400"
    for split, ids in (("train", range(3)), ("val", [3]), ("test", [4])):
        rows = [f"v/{c}{i}.mp4,{c},1,2.5" for c in "ab" for i in ids]
        _write(d / f"{split}.csv", (["path,label,start,end"] if header else []) + rows)
    splits, records = vd.video_splits(_args(d, data_root=str(tmp_path)))
    assert splits.layout == "split_csvs" and sorted(splits.tests) == ["test"]
    assert [len(records[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    assert all((r.start, r.end) == (1.0, 2.5) for recs in records.values() for r in recs)
    assert all(r.path.startswith(str(tmp_path / "v")) for r in records["train"])
    with pytest.raises(DataError, match="outside the data root"):  # paths resolve under the list's folder
        vd.video_splits(_args(_write(tmp_path / "k2" / "train.csv", ["../v/a.mp4,a", "../v/b.mp4,b"]).parent))


def test_unusable_video_lists_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown column"):
        vd.video_splits(_args(_write(tmp_path / "a.csv", ["path,label,begin", "x.mp4,a,1"])))
    with pytest.raises(DataError, match="must be after its start"):
        vd.video_splits(_args(_write(tmp_path / "b.csv", ["x.mp4,a,3,1", "y.mp4,b"])))


def test_segments_are_kept_in_a_list_beside_split_folders(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"  # split folders beside a segment list: the same reader keeps the segments
    for c in "ab":
        for i in range(2):
            _write(mixed / "train" / c / f"{i}.mp4", ["x"])
    _write(tmp_path / "t" / "x.mp4", ["x"])
    _write(mixed / "test.csv", ["path,label,start,end", "../t/x.mp4,a,1,2"])
    splits, records = vd.video_splits(_args(mixed, allow_outside_root=True))
    assert [(Path(r.path).name, r.start, r.end) for r in records["test"]] == [("x.mp4", 1.0, 2.0)]
    assert all(r.start is None for r in records["train"])


def test_a_video_with_several_segments_is_one_item(tmp_path: Path) -> None:
    rows = [f"v/{c}{i}.mp4,{c},{s},{s + 1}" for c in "ab" for i in range(3) for s in (0, 2)]
    splits, records = vd.video_splits(_args(_write(tmp_path / "l.csv", ["path,label,start,end", *rows])))
    assert len(splits.train) + len(splits.val) == 6  # videos, not segments: no video straddles train and val
    assert len(records["train"]) + len(records["val"]) == 12


def test_segment_starting_after_the_video_is_a_bad_file(tmp_path: Path, caplog) -> None:
    frames = np.zeros((10, 16, 16, 3), np.uint8)
    (tmp_path / "v").mkdir()
    for c in "ab":
        for i in range(3):
            vd.write_video(tmp_path / "v" / f"{c}{i}.mp4", frames + 40 * i, fps=10)  # 1 s each
    rows = [f"v/{c}{i}.mp4,{c},{5 if (c, i) == ('a', 0) else 0},{6 if (c, i) == ('a', 0) else 1}"
            for c in "ab" for i in range(3)]
    data = _write(tmp_path / "list.csv", ["path,label,start,end", *rows])
    with pytest.raises(ValueError, match="at or after the end"):
        vd.check_video(tmp_path / "v" / "a0.mp4", start=5.0)
    vd.check_video(tmp_path / "v" / "a0.mp4", start=0.5)
    with caplog.at_level("WARNING"):
        task = vd.build_task_data(_args(data, val_fraction=0.34))
    assert sum(task.splits.skipped.values(), []) == [str(tmp_path / "v" / "a0.mp4")]
    assert "at or after the end" in caplog.text
    with pytest.raises(BadFileError, match="a0.mp4"):
        vd.build_task_data(_args(data, val_fraction=0.34, skip_bad_files=False))
