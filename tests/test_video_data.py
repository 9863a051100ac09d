"""Video decoding, sampling, datasets and bad input; every video is written during the test."""
from __future__ import annotations

import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from unireplknet.modalities.video import datasets as vd
from unireplknet.modalities.video.datasets import (
    ClipSampling,
    VideoClipDataset,
    VideoRecord,
    open_video,
    read_clips,
    read_video_csv,
    scan_video_folder,
    write_video,
)
from unireplknet.modalities.video.transforms import ClipAugment

STEP = 6  # frame i is filled with the value STEP * i (lossless codec: exact)


def _numbered(n: int, h: int = 16, w: int = 24) -> np.ndarray:
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i] = STEP * i
    return frames


def _ids(clip: torch.Tensor | np.ndarray) -> list[int]:
    x = torch.as_tensor(clip).float()
    return [int(round(f.mean().item() / STEP)) for f in x]


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 frames at 10 fps, lossless (ffv1 in mkv)."""
    return write_video(tmp_path_factory.mktemp("v") / "n.mkv", _numbered(40), fps=10, codec="ffv1")


def test_dense_sampling_eval_clips_are_evenly_spread(numbered_video: Path) -> None:
    clips = read_clips(numbered_video, ClipSampling(8, 4), num_clips=3, backend="pyav")
    assert clips.shape == (3, 8, 3, 16, 24) and clips.dtype == torch.uint8
    assert [_ids(c) for c in clips] == [list(range(s, s + 32, 4)) for s in (0, 4, 8)]


def test_dense_sampling_train_window_is_random_but_contiguous(numbered_video: Path) -> None:
    starts = set()
    for seed in range(6):
        ids = _ids(read_clips(numbered_video, ClipSampling(8, 2), rng=random.Random(seed))[0])
        assert np.all(np.diff(ids) == 2)
        starts.add(ids[0])
    assert len(starts) > 1 and max(starts) <= 40 - 16


def test_uniform_sampling_takes_segment_centres(numbered_video: Path) -> None:
    clip = read_clips(numbered_video, ClipSampling(8, mode="uniform"))[0]
    assert _ids(clip) == [2, 7, 12, 17, 22, 27, 32, 37]
    rand = _ids(read_clips(numbered_video, ClipSampling(8, mode="uniform"), rng=random.Random(0))[0])
    assert all(5 * k <= i < 5 * (k + 1) for k, i in enumerate(rand))


def test_segment_start_end_from_csv_limits_sampling(numbered_video: Path) -> None:
    clip = read_clips(numbered_video, ClipSampling(4, mode="uniform"), start=1.0, end=2.0)[0]
    assert all(10 <= i < 20 for i in _ids(clip))
    with pytest.raises(ValueError, match="after its start"):
        read_clips(numbered_video, ClipSampling(4), start=2.0, end=1.0)
    with pytest.raises(ValueError, match="after the end of the video"):
        read_clips(numbered_video, ClipSampling(4), start=9.0)


def test_short_clip_is_padded_by_repeating_the_last_frame(tmp_path: Path) -> None:
    path = write_video(tmp_path / "short.mkv", _numbered(5), fps=10, codec="ffv1")
    assert _ids(read_clips(path, ClipSampling(8, 2))[0]) == [0, 2, 4, 4, 4, 4, 4, 4]
    centres = [int((k + 0.5) / 8 * 0.5 * 10) for k in range(8)]  # segment centres of 0.5 s at 10 fps
    assert _ids(read_clips(path, ClipSampling(8, mode="uniform"))[0]) == centres


def test_variable_frame_rate_is_sampled_by_timestamp(tmp_path: Path) -> None:
    # 20 frames 0.05 s apart, then 20 frames 0.2 s apart
    times = np.cumsum(np.r_[0, np.where(np.arange(39) < 20, 0.05, 0.2)])
    path = write_video(tmp_path / "vfr.mkv", _numbered(40), fps=10, codec="ffv1", times=times)
    src = open_video(path, backend="pyav")
    try:
        got = _ids(src.frames_at([0.0, 0.5, 0.99, 1.0, 1.2, 1.45, 2.0, 99.0, 0.02]))
    finally:
        src.close()
    assert got == [0, 10, 19, 20, 21, 22, 25, 39, 0]


def test_seeking_matches_decoding_everything(tmp_path: Path) -> None:
    frames = np.zeros((240, 8, 8, 3), np.uint8)
    frames[..., 0] = (np.arange(240) % 40 * STEP)[:, None, None]
    frames[..., 1] = (np.arange(240) // 40 * 40)[:, None, None]
    path = write_video(tmp_path / "long.mkv", frames, fps=30, codec="ffv1")
    src = open_video(path)
    src.seek_gap = 0.5  # force several seeks
    times = [7.9, 0.0, 2.5, 5.0, 5.01, 1.0]
    try:
        got = src.frames_at(times)
    finally:
        src.close()
    expected = frames[[int(t * 30 + 1e-6) for t in times]]
    assert np.abs(got.astype(int) - expected).max() <= 3  # colour conversion rounding only


def test_frame_cache_gives_the_same_clips(tmp_path: Path, numbered_video: Path) -> None:
    cache = tmp_path / "cache"
    s = ClipSampling(6, 3)
    direct = read_clips(numbered_video, s, num_clips=2, short_side=8)
    cached = read_clips(numbered_video, s, num_clips=2, short_side=8, cache_dir=cache)
    again = read_clips(numbered_video, s, num_clips=2, short_side=8, cache_dir=cache)
    assert direct.shape == (2, 6, 3, 8, 12)
    assert torch.equal(direct, cached) and torch.equal(cached, again)
    assert len(list(cache.glob("*.npz"))) == 1


def test_odd_resolution_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 33, 47, 3), dtype=np.uint8)
    path = write_video(tmp_path / "odd.mkv", frames, fps=5, codec="ffv1")
    clip = read_clips(path, ClipSampling(6, 1))[0]
    assert clip.shape == (6, 3, 33, 47)
    err = (clip.permute(0, 2, 3, 1).int() - torch.from_numpy(frames).int()).abs()
    assert err.max() <= 2  # ffv1 is lossless; only the RGB <-> YUV 4:4:4 rounding remains
    mp4 = write_video(tmp_path / "odd.mp4", frames, fps=5)  # lossy, 4:4:4 because the sides are odd
    assert read_clips(mp4, ClipSampling(4, 1), short_side=11)[0].shape == (4, 3, 11, 16)


# ----------------------------------------------------------------------------- bad input
def test_missing_empty_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_clips(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_clips(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="junk.mp4"):
        read_clips(tmp_path / "junk.mp4")


def test_truncated_file_fails_clearly_or_returns_what_decodes(tmp_path: Path) -> None:
    good = write_video(tmp_path / "good.mp4", np.full((30, 16, 16, 3), 100, np.uint8), fps=10)
    data = good.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    try:
        clip = read_clips(tmp_path / "cut.mp4", ClipSampling(4, 2))
    except ValueError as e:
        assert "cut.mp4" in str(e)
    else:
        assert clip.shape == (1, 4, 3, 16, 16)


def test_audio_only_file(tmp_path: Path) -> None:
    import av

    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        samples = (np.sin(np.arange(8000) / 5) * 3000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(ValueError, match="no video stream"):
        read_clips(path)


def test_zero_length_clip(tmp_path: Path) -> None:
    import av

    for name, codec in (("zero.mkv", "ffv1"), ("zero.mp4", "libx264")):
        path = tmp_path / name
        with av.open(str(path), "w") as out:  # a valid header, no frames
            stream = out.add_stream(codec, rate=10)
            stream.width, stream.height = 16, 16
            out.start_encoding()
        with pytest.raises(ValueError, match=name):
            read_clips(path)


def test_write_video_rejects_bad_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8 T x H x W x 3"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8), np.uint8))


def test_sampling_and_backend_validation(numbered_video: Path) -> None:
    with pytest.raises(ValueError, match="sampling mode"):
        ClipSampling(mode="sparse")
    with pytest.raises(ValueError, match=">= 1"):
        ClipSampling(num_frames=0)
    with pytest.raises(ValueError, match="backend"):
        open_video(numbered_video, backend="decord")


def test_torchcodec_is_used_when_importable(
    monkeypatch: pytest.MonkeyPatch, numbered_video: Path, tmp_path: Path
) -> None:
    calls = {}

    class FakeDecoder:
        def __init__(self, path: str, seek_mode: str) -> None:
            calls["path"] = path
            self.metadata = types.SimpleNamespace(
                begin_stream_seconds=0.0, end_stream_seconds=4.0, duration_seconds=4.0,
                average_fps=10.0, num_frames=40, height=16, width=24,
            )

        def get_frames_played_at(self, seconds: list[float]) -> types.SimpleNamespace:
            calls["seconds"] = seconds
            data = torch.stack([torch.full((3, 16, 24), STEP * int(s * 10), dtype=torch.uint8) for s in seconds])
            return types.SimpleNamespace(data=data)

        def get_frame_at(self, index: int) -> types.SimpleNamespace:
            return types.SimpleNamespace(data=torch.full((3, 16, 24), STEP * index, dtype=torch.uint8),
                                         pts_seconds=index / 10)

    pkg = types.ModuleType("torchcodec")
    dec = types.ModuleType("torchcodec.decoders")
    dec.VideoDecoder = FakeDecoder
    pkg.decoders = dec
    monkeypatch.setitem(sys.modules, "torchcodec", pkg)
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", dec)
    clip = read_clips(numbered_video, ClipSampling(4, 4))
    assert calls["path"] == str(numbered_video)
    assert _ids(clip[0]) == [12, 16, 20, 24]  # centred 16-frame window of 40 frames
    assert _ids(read_clips(numbered_video, ClipSampling(4, 4), backend="pyav")[0]) == [12, 16, 20, 24]
    cached = read_clips(numbered_video, ClipSampling(4, 4), short_side=8, cache_dir=tmp_path / "c")
    assert cached.shape == (1, 4, 3, 8, 12) and _ids(cached[0]) == [12, 16, 20, 24]


# ----------------------------------------------------------------------------- datasets
def _class_folder(root: Path) -> Path:
    for c, name in enumerate(["bright", "dark"]):
        (root / name).mkdir(parents=True)
        for i in range(2):
            value = 200 if c == 0 else 30
            write_video(root / name / f"{i}.mp4", np.full((10, 20, 28, 3), value + i, np.uint8), fps=5)
    (root / "dark" / "notes.txt").write_text("not a video")
    return root


def test_folder_dataset_train_and_eval_views(tmp_path: Path) -> None:
    records, classes = scan_video_folder(_class_folder(tmp_path / "clips"))
    assert classes == ["bright", "dark"] and [r.label for r in records] == [0, 0, 1, 1]
    train = VideoClipDataset(records, ClipSampling(4, 2), (16, 16), augment=ClipAugment(size=(16, 16)))
    x, y = train[2]
    assert x.shape == (3, 32, 32) and y == 1  # 4 frames of 16² in a 2 x 2 grid
    val = VideoClipDataset(records, ClipSampling(4, 2), (16, 16), num_clips=2, num_crops=3, layout="reshape")
    v, y = val[0]
    assert v.shape == (6, 3, 32, 32) and y == 0 and val.num_views == 6
    assert v.mean() > 0.5  # a bright video, ImageNet-normalised
    loader = torch.utils.data.DataLoader(val, batch_size=2, num_workers=1)  # decoding in a worker
    xb, yb = next(iter(loader))
    assert xb.shape == (2, 6, 3, 32, 32) and yb.tolist() == [0, 0]


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_video_folder(tmp_path / "missing")
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="no video files"):
        scan_video_folder(tmp_path)


def test_kinetics_csv(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text(
        "path,label,start,end\nclips/a.mp4,juggling,1.5,4\n/abs/b.mp4,abseiling,,\nc.mp4,juggling\n"
    )
    records, classes = read_video_csv(tmp_path / "list.csv")
    assert classes == ["abseiling", "juggling"]
    assert records[0] == VideoRecord(str(tmp_path / "clips/a.mp4"), 1, 1.5, 4.0)
    assert records[1] == VideoRecord("/abs/b.mp4", 0, None, None)
    (tmp_path / "ints.csv").write_text("x.mp4 ,2\ny.mp4,0\n")
    records, classes = read_video_csv(tmp_path / "ints.csv", root="/data")
    assert classes == ["0", "1", "2"] and records[0] == VideoRecord("/data/x.mp4", 2)
    (tmp_path / "bad.csv").write_text("x.mp4,cat,soon\n")
    with pytest.raises(ValueError, match="seconds"):
        read_video_csv(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="not one of"):
        read_video_csv(tmp_path / "list.csv", class_names=["juggling"])
    with pytest.raises(FileNotFoundError):
        read_video_csv(tmp_path / "none.csv")
    assert vd.VIDEO_EXTENSIONS[0] == ".mp4"
