"""Hugging Face data sets for audio, video and point clouds, read through each modality's ShardCodec: a
``save_to_disk`` folder written here (from the same files as a class-folder tree) gives the same evaluation
inputs as the folders (map-style, and streamed with ``stream:``); the real ``train --modality audio`` command
learns on a Hugging Face data set above chance."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

datasets = pytest.importorskip("datasets")

from unireplknet.cli import main  # noqa: E402
from unireplknet.modalities import get_modality  # noqa: E402
from unireplknet.modalities.hf import HFStreamDataset, value_bytes  # noqa: E402

from test_shards_modalities import (AUDIO_KW, POINT_KW, VIDEO_KW, _cfg, write_clouds, write_tones,  # noqa: E402
                                    write_videos)
from test_shards_streaming import AUDIO_TRAIN  # noqa: E402

torch.set_num_threads(1)


def folder_to_hf(folder: Path, out: Path, column: str, value: Callable[[Path], Any],
                 cast: Any = None) -> Path:
    """The class folders ``folder/<split>/<class>/*`` as a ``DatasetDict`` (train/validation/test) saved to
    ``out``: one row per file, ``column`` = ``value(path)``, ``label`` a ClassLabel; rows in folder order."""
    classes = sorted(p.name for p in (folder / "train").iterdir())
    parts = {}
    for split, name in (("train", "train"), ("val", "validation"), ("test", "test")):
        files = [(f, c) for c, cls in enumerate(classes) for f in sorted((folder / split / cls).glob("*"))] \
            if (folder / split).is_dir() else []
        if not files:
            continue
        ds = datasets.Dataset.from_dict({column: [value(f) for f, _ in files], "label": [c for _, c in files]})
        ds = ds.cast_column("label", datasets.ClassLabel(names=classes))
        parts[name] = ds.cast_column(column, cast) if cast is not None else ds
    datasets.DatasetDict(parts).save_to_disk(out)
    return out


def _same_as_folders(modality: str, folder: Path, hf: Path, **kw: Any):
    build = get_modality(modality).build
    a = build(_cfg(modality, folder, **kw))
    b = build(_cfg(modality, hf, **kw))
    assert b.meta["format"] == "huggingface" and a.class_names == b.class_names
    assert (len(a.train), len(a.val)) == (len(b.train), len(b.val)) and len(a.val) >= 2
    assert (a.in_chans, tuple(a.input_size), a.eval_views) == (b.in_chans, tuple(b.input_size), b.eval_views)
    for i in range(len(a.val)):
        (xa, ya), (xb, yb) = a.val[i], b.val[i]
        assert ya == yb and torch.allclose(xa, xb, atol=1e-6), (modality, i)
    assert b.train[0][0].shape == a.train[0][0].shape
    s = build(_cfg(modality, f"stream:{hf}", **kw))
    assert isinstance(s.train, HFStreamDataset) and s.meta["format"] == "huggingface (streaming)"
    streamed = [x for x, _ in s.val.for_rank(0, 1)]
    assert len(streamed) == len(a.val) and all(torch.allclose(x, a.val[i][0], atol=1e-6) for i, x in enumerate(streamed))
    labels = [int(y) for _, y in s.train.for_rank(0, 1)]  # every training row once (balanced classes)
    assert len(labels) == len(a.train) and labels.count(0) == labels.count(1) == len(labels) // 2
    return a, b


def test_audio_column_of_wav_bytes_and_of_arrays(tmp_path):
    folder = write_tones(tmp_path / "tones", train=4, val=2)
    wav = lambda p: {"bytes": p.read_bytes(), "path": p.name}  # noqa: E731  (as Audio(decode=False) stores it)
    hf = folder_to_hf(folder, tmp_path / "hf", "audio", wav, datasets.Audio(decode=False))
    assert isinstance(datasets.load_from_disk(str(hf))["train"].features["audio"], datasets.Audio)
    a, _ = _same_as_folders("audio", folder, hf, **AUDIO_KW)
    # a decoded Audio value ({"array", "sampling_rate"}) is written as a float WAV in memory: the same input
    import soundfile

    def array(p: Path) -> dict:
        x, rate = soundfile.read(str(p), dtype="float32")
        return {"array": x.tolist(), "sampling_rate": rate}

    hf2 = folder_to_hf(folder, tmp_path / "hf2", "audio", array)
    b = get_modality("audio").build(_cfg("audio", hf2, **AUDIO_KW))
    assert all(torch.allclose(a.val[i][0], b.val[i][0], atol=1e-5) for i in range(len(a.val)))


def test_video_column_of_mp4_bytes(tmp_path):
    pytest.importorskip("av")
    folder = write_videos(tmp_path / "videos", per_class=2)
    hf = folder_to_hf(folder, tmp_path / "hf", "video", lambda p: p.read_bytes())
    _, b = _same_as_folders("video", folder, hf, **VIDEO_KW)
    assert b.eval_views == 2 and tuple(b.val[0][0].shape) == (2, 3, 32, 32)


def test_point_column_of_nested_lists(tmp_path):
    folder = write_clouds(tmp_path / "clouds", per_class=3)
    hf = folder_to_hf(folder, tmp_path / "hf", "points", lambda p: np.load(p).tolist())
    _same_as_folders("point", folder, hf, **POINT_KW)


def test_value_bytes_forms(tmp_path):
    (tmp_path / "clip.flac").write_bytes(b"fLaC")
    assert value_bytes({"bytes": None, "path": str(tmp_path / "clip.flac")}, "wav") == (b"fLaC", "flac")
    assert value_bytes(b"\x00\x01", "mp4") == (b"\x00\x01", "mp4")
    data, ext = value_bytes([[0.0, 1.0, 2.0]], "npy")
    assert ext == "npy" and np.load(__import__("io").BytesIO(data)).tolist() == [[0.0, 1.0, 2.0]]
    with pytest.raises(ValueError):
        value_bytes({"other": 1}, "wav")


def test_audio_train_command_on_a_hf_dataset_learns(tmp_path):
    folder = write_tones(tmp_path / "tones", train=16, val=6, test=6)
    hf = folder_to_hf(folder, tmp_path / "hf", "audio", lambda p: {"bytes": p.read_bytes(), "path": p.name},
                      datasets.Audio(decode=False))
    run = tmp_path / "run"
    args = [*AUDIO_TRAIN[:AUDIO_TRAIN.index("--epochs") + 1], "15", *AUDIO_TRAIN[AUDIO_TRAIN.index("--epochs") + 2:]]
    assert main(["train", "--modality", "audio", "--data", str(hf), "-o", str(run), *args]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["splits"] == {"train": 32, "val": 12, "test": 12}
    test = summary["evaluation"]["test"]
    assert test["n"] == 12 and test["acc1"] >= 0.9, summary["evaluation"]  # chance is 0.5 (two balanced classes)
    assert summary["baselines"]["results"]["test"]  # simple baselines stand beside it on the same split
    assert "Hugging Face" in summary["plan"][0]


def test_series_column_map_style_only(tmp_path):
    from test_shards_modalities import write_series

    folder = write_series(tmp_path / "waves")
    parts = {}
    for split, name in (("TRAIN", "train"), ("TEST", "test")):
        rows = [line.split("\t") for line in (folder / f"Waves_{split}.tsv").read_text().splitlines()]
        ds = datasets.Dataset.from_dict({"series": [[float(v) for v in r[1:]] for r in rows],
                                         "label": [r[0] for r in rows]})
        parts[name] = ds.cast_column("label", datasets.ClassLabel(names=["1", "2"]))
    datasets.DatasetDict(parts).save_to_disk(tmp_path / "hf")
    build = get_modality("series").build
    a = build(_cfg("series", folder, val_fraction=0.1))
    b = build(_cfg("series", tmp_path / "hf", val_fraction=0.1))
    assert b.meta["format"] == "huggingface" and a.class_names == b.class_names
    assert (len(a.train) + len(a.val), len(a.test)) == (len(b.train) + len(b.val), len(b.test)) == (20, 8)
    assert a.meta["series_length"] == b.meta["series_length"]
    same = [torch.allclose(a.test[i][0], b.test[i][0], atol=1e-4) for i in range(len(a.test))]
    assert all(same), same  # the test split's inputs (normalised by training statistics)
    with pytest.raises(Exception, match="cannot be streamed"):
        build(_cfg("series", f"stream:{tmp_path / 'hf'}"))
