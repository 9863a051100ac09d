"""Shards for every modality: `unireplknet shard` on data the test writes (wav, mp4, npy), then the
modality's datasets read from the shards give the same inputs as from the files; streaming reads the
same samples; `auto` reads a sample of shard members."""
from __future__ import annotations

import argparse
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from unireplknet.cli import main
from unireplknet.errors import BadFileError
from unireplknet.modalities import get_modality
from unireplknet.modalities.shards import STREAM_PREFIX, ShardIterableDataset

torch.set_num_threads(1)


def _cfg(modality: str, data: Path, **kw) -> argparse.Namespace:
    plugin = get_modality(modality)
    return argparse.Namespace(**{**plugin.config_defaults, "data": str(data), "seed": 0, "val_fraction": 0.25,
                                 "skip_bad_files": True, **kw})


def _same_eval_items(modality: str, folder: Path, shards: Path, **kw) -> tuple:
    build = get_modality(modality).build
    a = build(_cfg(modality, folder, **kw))
    b = build(_cfg(modality, shards, **kw))
    assert b.meta["format"] == "shards" and a.class_names == b.class_names
    assert (len(a.train), len(a.val)) == (len(b.train), len(b.val))
    assert (a.in_chans, tuple(a.input_size), a.eval_views) == (b.in_chans, tuple(b.input_size), b.eval_views)
    for i in range(len(a.val)):  # validation keeps its order in the shards, and evaluation is deterministic
        xa, ya = a.val[i]
        xb, yb = b.val[i]
        assert ya == yb and torch.equal(xa, xb)
    xs, _ = b.train[0]  # training items: the modality's own augmentation, same shape
    assert xs.shape == a.train[0][0].shape
    return a, b


def _shard(modality: str, data: Path, out: Path) -> dict:
    assert main(["shard", "--modality", modality, "--data", str(data), "-o", str(out), "--max-count", "5"]) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["modality"] == modality
    return index


# ----------------------------------------------------------------------------- audio
def _write_wav(path: Path, freq: float, rate: int = 8000, seconds: float = 0.25, seed: int = 0) -> None:
    t = np.arange(int(rate * seconds)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.05, t.size)
    x = (0.5 * np.sin(2 * np.pi * freq * t) + noise).clip(-1, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())


def write_tones(root: Path, train: int = 6, val: int = 2, test: int = 0) -> Path:
    """low (300-500 Hz) vs high (1500-2500 Hz) tones at 8 kHz: train/, val/ (and test/) class folders."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val), ("test", test)):
        for cls, (lo, hi) in (("high", (1500, 2500)), ("low", (300, 500))):
            for i in range(n):
                _write_wav(root / split / cls / f"{cls}{i:03d}.wav", rng.uniform(lo, hi), seed=int(rng.integers(1 << 30)))
    return root


AUDIO_KW = dict(sample_rate=8000, num_mel_bins=32, target_frames=32, per_utterance_norm=True)


def test_audio_shard_round_trip(tmp_path):
    data = write_tones(tmp_path / "tones")
    index = _shard("audio", data, tmp_path / "shards")
    assert index["classes"] == ["high", "low"]
    assert sum(s["count"] for s in index["shards"] if s["split"] == "train") == 12
    assert {s["name"] for s in index["shards"]} >= {"train-000000.tar", "train-000001.tar", "val-000000.tar"}
    _, b = _same_eval_items("audio", data, tmp_path / "shards", **AUDIO_KW)
    assert tuple(b.val[0][0].shape) == (1, 32, 32)
    # streaming: the same validation inputs, in the same order
    s = get_modality("audio").build(_cfg("audio", f"{STREAM_PREFIX}{tmp_path / 'shards'}", **AUDIO_KW))
    assert isinstance(s.train, ShardIterableDataset) and s.meta["format"] == "shards (streaming)"
    assert s.train.total == 12 and s.val.total == 4
    streamed = [x for x, _ in s.val.for_rank(0, 1)]
    assert len(streamed) == 4 and all(torch.equal(x, b.val[i][0]) for i, x in enumerate(streamed))
    labels = sorted(int(y) for _, y in s.train.for_rank(0, 1))
    assert labels == [0] * 6 + [1] * 6


def test_audio_corrupt_member_names_its_shard_and_key(tmp_path):
    data = write_tones(tmp_path / "tones", train=3, val=1)
    _shard("audio", data, tmp_path / "shards")
    task = get_modality("audio").build(_cfg("audio", tmp_path / "shards", **AUDIO_KW))
    source = task.val.source
    source.sizes[0] = 10  # the first member now reads as 10 bytes of a WAV header
    with pytest.raises(BadFileError, match=r"val-000000\.tar#00000000"):
        task.val[0]


def test_audio_auto_reads_a_sample_of_shard_members(tmp_path):
    data = write_tones(tmp_path / "tones")
    _shard("audio", data, tmp_path / "shards")
    auto = get_modality("audio").auto
    on_files = auto({"data": str(data), "seed": 0, "sample_rate": 8000})
    on_shards = auto({"data": str(tmp_path / "shards"), "seed": 0, "sample_rate": 8000})
    assert on_shards["target_frames"][0] == on_files["target_frames"][0]  # 0.25 s clips either way
    assert "sampled training samples" in on_shards["target_frames"][1]
    assert on_shards["audio_mean"][0] == pytest.approx(on_files["audio_mean"][0], rel=0.05)


# ----------------------------------------------------------------------------- video
def write_videos(root: Path, per_class: int = 3) -> Path:
    """Tiny 16x16 mp4 clips: a bright bar moving right vs left; train/ and val/ class folders."""
    from unireplknet.modalities.video.datasets import write_video

    for split, n in (("train", per_class), ("val", 1)):
        for cls, step in (("left", -2), ("right", 2)):
            for i in range(n):
                frames = np.zeros((8, 16, 16, 3), np.uint8)
                for t in range(8):
                    frames[t, :, (i + 4 + step * t) % 16] = 255
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                write_video(root / split / cls / f"{cls}{i}.mp4", frames, fps=8)
    return root


VIDEO_KW = dict(num_frames=4, frame_stride=1, frame_size=16, eval_clips=2, eval_crops=1, video_backend="pyav")


def test_video_shard_round_trip(tmp_path):
    pytest.importorskip("av")
    data = write_videos(tmp_path / "videos")
    index = _shard("video", data, tmp_path / "shards")
    assert index["classes"] == ["left", "right"] and all(m.endswith(".tar") for m in (s["name"] for s in index["shards"]))
    _, b = _same_eval_items("video", data, tmp_path / "shards", **VIDEO_KW)
    assert b.eval_views == 2 and tuple(b.val[0][0].shape) == (2, 3, 32, 32)  # 2 clips of a 2x2 grid of 16 px
    s = get_modality("video").build(_cfg("video", f"{STREAM_PREFIX}{tmp_path / 'shards'}", **VIDEO_KW))
    streamed = [x for x, _ in s.val.for_rank(0, 1)]
    assert all(torch.equal(x, b.val[i][0]) for i, x in enumerate(streamed)) and len(streamed) == 2


# ----------------------------------------------------------------------------- point
def write_clouds(root: Path, per_class: int = 4) -> Path:
    """npy clouds: points on a sphere vs on a cube's surface; train/ and val/ class folders."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", 2)):
        for cls in ("cube", "sphere"):
            for i in range(n):
                p = rng.normal(size=(256, 3))
                if cls == "sphere":
                    p /= np.linalg.norm(p, axis=1, keepdims=True)
                else:
                    p /= np.abs(p).max(axis=1, keepdims=True)
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                np.save(root / split / cls / f"{cls}{i}.npy", (p * rng.uniform(0.5, 2)).astype(np.float32))
    return root


POINT_KW = dict(num_points=64, input_size=32)


def test_point_shard_round_trip(tmp_path):
    data = write_clouds(tmp_path / "clouds")
    index = _shard("point", data, tmp_path / "shards")
    assert index["classes"] == ["cube", "sphere"]
    _, b = _same_eval_items("point", data, tmp_path / "shards", **POINT_KW)
    s = get_modality("point").build(_cfg("point", f"{STREAM_PREFIX}{tmp_path / 'shards'}", **POINT_KW))
    streamed = [x for x, _ in s.val.for_rank(0, 1)]
    assert len(streamed) == 4 and all(torch.allclose(x, b.val[i][0]) for i, x in enumerate(streamed))


# ----------------------------------------------------------------------------- series
def write_series(root: Path) -> Path:
    """A UCR-style problem (tab-separated, label first): noisy sines vs squares of random phase."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("TRAIN", 10), ("TEST", 4)):
        rows = []
        for cls in ("1", "2"):
            for _ in range(n):
                t = np.linspace(0, 4 * np.pi, 60) + rng.uniform(0, 2 * np.pi)
                x = np.sin(t) if cls == "1" else np.sign(np.sin(t))
                rows.append("\t".join([cls, *(f"{v:.5f}" for v in x + rng.normal(0, 0.1, x.size))]))
        (root / f"Waves_{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_series_shard_round_trip(tmp_path):
    data = write_series(tmp_path / "waves")
    index = _shard("series", data, tmp_path / "shards")
    splits = {s["split"] for s in index["shards"]}
    assert index["classes"] == ["1", "2"] and splits == {"train", "val", "test"}
    build = get_modality("series").build
    a = build(_cfg("series", data, val_fraction=0.1))  # as `unireplknet shard` carved it (its default)
    b = build(_cfg("series", tmp_path / "shards"))
    assert b.meta["format"] == "shards" and a.class_names == b.class_names
    assert (len(a.train), len(a.val), len(a.test)) == (len(b.train), len(b.val), len(b.test)) == (18, 2, 8)
    assert a.meta["series_length"] == b.meta["series_length"]
    for ds_a, ds_b in ((a.val, b.val), (a.test, b.test)):
        for i in range(len(ds_a)):
            (xa, ya), (xb, yb) = ds_a[i], ds_b[i]
            assert ya == yb and torch.allclose(xa, xb, atol=1e-5)
    with pytest.raises(Exception, match="cannot be streamed"):
        build(_cfg("series", f"{STREAM_PREFIX}{tmp_path / 'shards'}"))


def test_point_and_video_auto_on_shards_match_the_files(tmp_path):
    pytest.importorskip("av")
    for modality, data, keys in (("point", write_clouds(tmp_path / "clouds"), ("input_size", "canonical_pose")),
                                 ("video", write_videos(tmp_path / "videos"), ("frame_size", "layout"))):
        _shard(modality, data, tmp_path / f"{modality}-shards")
        auto = get_modality(modality).auto
        on_files = auto({"data": str(data), "seed": 0})
        on_shards = auto({"data": str(tmp_path / f"{modality}-shards"), "seed": 0})
        assert on_files and {k: v[0] for k, v in on_files.items()} == {k: v[0] for k, v in on_shards.items()}
        assert all(k in on_shards or k not in on_files for k in keys)
