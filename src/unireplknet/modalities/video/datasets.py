"""Video files -> clips -> backbone-ready images: decoding, sampling, datasets.

Decoding uses PyAV (FFmpeg bundled in the wheel); when ``torchcodec`` is
importable and ``backend="auto"`` it is used instead. Frames are chosen by
*timestamp*: the frame shown at time ``t`` is the last one whose presentation
time is ``<= t``, so variable-frame-rate files are sampled evenly in time.
Requested times past the end of a short clip get the last frame (padding by
repetition). Decoding seeks once per run of nearby times and decodes forward.

Two samplings: ``"dense"`` (``num_frames`` frames every ``stride`` frames of
the nominal rate, VideoMAE's 16 x 4) and ``"uniform"`` (one frame per equal
segment, TSN-style). Training draws a random window / random frames within
segments; evaluation takes ``num_clips`` evenly placed windows.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..._extras import require
from ...errors import DataError
from ..base import (LABEL_SEPARATOR, NamedFileErrors, Splits, TaskData, natural_key, prescan,
                    resolve_list_path, scan_splits)
from .transforms import (
    IMAGENET_MEAN,
    LAYOUTS,
    IMAGENET_STD,
    ClipAugment,
    clip_eval_crops,
    frames_to_image,
    grid_shape,
    image_size_for,
    image_to_frames,
    layout_channels,
    NORMS,
    normalize_clip,
    normalize_per_clip,
    resize_clip,
)

logger = logging.getLogger(__name__)

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "ClipSampling",
    "VideoRecord",
    "open_video",
    "sample_times",
    "read_clips",
    "read_clips_bytes",
    "write_video",
    "read_video_csv",
    "scan_video_folder",
    "VideoClipDataset",
    "CONFIG_DEFAULTS",
    "RECIPES",
    "add_train_args",
    "build_task_data",
    "load_for_predict",
    "baseline_features",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".gif")
SAMPLING_MODES = ("dense", "uniform")
BACKENDS = ("auto", "pyav", "torchcodec")


# ----------------------------------------------------------------------------- decoding
@dataclass(frozen=True)
class VideoInfo:
    """What a decoder knows about a file: duration (s), nominal fps, frame count (may be estimated), size."""

    duration: float
    fps: float
    num_frames: int
    height: int
    width: int


def _output_size(height: int, width: int, short_side: Optional[int]) -> tuple[int, int]:
    if not short_side or min(height, width) == short_side:
        return height, width
    s = short_side / min(height, width)
    return max(1, int(round(height * s))), max(1, int(round(width * s)))


def _select_at(frames: Iterable[tuple[float, Any]], targets: Sequence[float]) -> list[Any]:
    """For sorted ``targets``, the payload shown at each time: last frame with time <= t (first frame if none).

    ``frames`` yields ``(time, payload)`` in increasing time; it is consumed only as far as needed.
    Targets after the last frame get the last frame.
    """
    out: list[Any] = []
    prev: Optional[Any] = None
    i = 0
    for t, payload in frames:
        while i < len(targets) and targets[i] < t:
            out.append(payload if prev is None else prev)
            i += 1
        prev = payload
        if i == len(targets):
            return out
    if prev is None:
        return out
    out.extend([prev] * (len(targets) - i))
    return out


class _PyAVSource:
    """A video opened with PyAV; ``frames_at`` seeks once per run of close times."""

    def __init__(self, path: str, short_side: Optional[int] = None, seek_gap: float = 2.0) -> None:
        av = require("av", "video", "video decoding")
        self.path, self.short_side, self.seek_gap = path, short_side, seek_gap
        try:
            self._container = av.open(path)
        except av.FFmpegError as e:
            raise ValueError(f"cannot read video {path}: {e}") from e
        if not self._container.streams.video:
            self._container.close()
            raise ValueError(f"{path} has no video stream (audio-only or not a video file)")
        self._stream = s = self._container.streams.video[0]
        s.thread_type = "AUTO"
        tb = float(s.time_base) if s.time_base else 1e-6
        self._start = float(s.start_time * tb) if s.start_time is not None else 0.0
        rate = s.average_rate or s.guessed_rate or s.base_rate
        fps = float(rate) if rate else 0.0
        if s.duration:
            duration = float(s.duration * tb)
        elif self._container.duration:
            duration = self._container.duration / 1e6
        else:
            duration = 0.0
        n = int(s.frames or 0) or int(round(duration * fps))
        if fps <= 0:
            fps = n / duration if duration > 0 else 25.0
        h, w = _output_size(s.codec_context.height, s.codec_context.width, short_side)
        self.info = VideoInfo(duration=duration, fps=fps, num_frames=n, height=h, width=w)
        self._fresh = True

    def _frames(self) -> Iterator[tuple[float, Any]]:
        av = require("av", "video", "video decoding")
        try:
            for frame in self._container.decode(self._stream):
                if frame.time is None:
                    continue
                yield frame.time - self._start, frame
        except av.FFmpegError as e:
            raise ValueError(f"cannot decode video {self.path}: {e}") from e

    def _to_array(self, frame: Any) -> np.ndarray:
        return frame.to_ndarray(format="rgb24", height=self.info.height, width=self.info.width)

    def _rewind(self, seconds: float) -> None:
        """Seek to the keyframe at or before ``seconds`` (no-op on a fresh container asked for the start)."""
        if self._fresh and seconds <= 0:
            return
        offset = int((seconds + self._start) / float(self._stream.time_base))
        self._container.seek(max(offset, 0), stream=self._stream, backward=True, any_frame=False)

    def iter_all(self) -> Iterator[tuple[float, np.ndarray]]:
        """Every frame from the start, as ``(time, H x W x 3 uint8)``."""
        self._rewind(0.0)
        self._fresh = False
        for t, f in self._frames():
            yield t, self._to_array(f)

    def frames_at(self, times: Sequence[float]) -> np.ndarray:
        """``len(times) x H x W x 3`` uint8 frames shown at ``times`` (seconds from the first frame)."""
        order = np.argsort(times, kind="stable")
        targets = [float(times[i]) for i in order]
        picked: list[Any] = []
        i = 0
        while i < len(targets):
            j = i + 1  # a run: consecutive targets close enough to decode through
            while j < len(targets) and targets[j] - targets[j - 1] <= self.seek_gap:
                j += 1
            seek_to = targets[i] if targets[i] > self.seek_gap else 0.0
            self._rewind(seek_to)
            self._fresh = False
            run = _select_at(self._frames(), targets[i:j])
            if not run and seek_to > 0:  # the seek went past the last frame: decode from the start
                self._rewind(0.0)
                run = _select_at(self._frames(), targets[i:j])
            if not run:
                break
            picked.extend(self._to_array(f) for f in run)
            i = j
        if not picked:
            raise ValueError(f"{self.path}: no video frames could be decoded (empty or corrupt clip)")
        out = np.empty((len(times),) + picked[0].shape, dtype=np.uint8)
        for dst, frame in zip(order, picked):
            out[dst] = frame
        return out

    def close(self) -> None:
        self._container.close()


class _TorchCodecSource:
    """A video opened with torchcodec (used when it is installed)."""

    def __init__(self, path: str, short_side: Optional[int] = None) -> None:
        decoders = require("torchcodec.decoders", "video", "video decoding")
        self.path = path
        try:
            self._dec = decoders.VideoDecoder(path, seek_mode="approximate")
        except (RuntimeError, ValueError) as e:
            raise ValueError(f"cannot read video {path} (no video stream, or corrupt): {e}") from e
        m = self._dec.metadata
        self._begin = float(m.begin_stream_seconds or 0.0)
        self._end = float(m.end_stream_seconds or m.duration_seconds or 0.0)
        fps = float(m.average_fps or 25.0)
        n = int(m.num_frames or 0)
        if n == 0:
            raise ValueError(f"{path}: no video frames could be decoded (empty or corrupt clip)")
        h, w = _output_size(m.height, m.width, short_side)
        self.info = VideoInfo(duration=self._end - self._begin, fps=fps, num_frames=n, height=h, width=w)

    def _fit(self, data: torch.Tensor) -> np.ndarray:
        """``N x C x H x W`` uint8 from torchcodec -> ``N x H x W x 3`` at the output size."""
        if tuple(data.shape[-2:]) != (self.info.height, self.info.width):
            data = resize_clip(data, (self.info.height, self.info.width))
        return data.permute(0, 2, 3, 1).numpy()

    def frames_at(self, times: Sequence[float]) -> np.ndarray:
        last = max(self._begin, self._end - 1e-3)
        secs = [min(max(self._begin + float(t), self._begin), last) for t in times]
        return self._fit(self._dec.get_frames_played_at(seconds=secs).data)

    def iter_all(self) -> Iterator[tuple[float, np.ndarray]]:
        """Every frame from the start, as ``(time, H x W x 3 uint8)``."""
        for i in range(self.info.num_frames):
            f = self._dec.get_frame_at(i)
            yield float(f.pts_seconds) - self._begin, self._fit(f.data[None])[0]

    def close(self) -> None:
        self._dec = None


class _CachedSource:
    """All frames of a video, decoded once at ``short_side`` and kept in an ``.npz`` file in ``cache_dir``."""

    def __init__(self, path: str, cache_dir: str, backend: str, short_side: Optional[int]) -> None:
        st = os.stat(path)
        key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{short_side}"
        file = Path(cache_dir) / f"{hashlib.sha1(key.encode()).hexdigest()}.npz"
        if file.exists():
            with np.load(file, allow_pickle=False) as z:
                self._times, self._frames, meta = z["times"], z["frames"], z["meta"]
        else:
            src = _open_decoder(path, backend, short_side)
            try:
                pairs = list(src.iter_all())
                fps = src.info.fps
            finally:
                src.close()
            if not pairs:
                raise ValueError(f"{path}: no video frames could be decoded (empty or corrupt clip)")
            self._times = np.array([t for t, _ in pairs], dtype=np.float64)
            self._frames = np.stack([f for _, f in pairs])
            meta = np.array([fps], dtype=np.float64)
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, times=self._times, frames=self._frames, meta=meta)
            os.replace(tmp, file)  # atomic: DataLoader workers may race on the same video
        fps = float(meta[0])
        n, h, w = self._frames.shape[:3]
        self.info = VideoInfo(duration=float(self._times[-1]) + 1.0 / fps, fps=fps, num_frames=n, height=h, width=w)

    def frames_at(self, times: Sequence[float]) -> np.ndarray:
        order = np.argsort(times, kind="stable")
        picked = _select_at(zip(self._times, range(len(self._times))), [float(times[i]) for i in order])
        idx = np.empty(len(times), dtype=np.int64)
        idx[order] = picked
        return self._frames[idx]

    def close(self) -> None:
        pass


def _torchcodec_available() -> bool:
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception:  # ImportError, or a torchcodec that cannot load its FFmpeg libraries
        return False
    return True


def _open_decoder(path: str, backend: str, short_side: Optional[int]) -> Any:
    if backend == "torchcodec" or (backend == "auto" and _torchcodec_available()):
        return _TorchCodecSource(path, short_side)
    return _PyAVSource(path, short_side)


def open_video(
    path: str | os.PathLike,
    backend: str = "auto",
    short_side: Optional[int] = None,
    cache_dir: Optional[str | os.PathLike] = None,
) -> Any:
    """Open a video for timestamp-based frame access.

    The returned source has ``info`` (:class:`VideoInfo`), ``frames_at(times)``
    (``N x H x W x 3`` uint8, times in seconds from the first frame) and
    ``close()``. ``short_side`` resizes frames while decoding; ``cache_dir``
    keeps all decoded frames on disk (for small datasets read many times).
    """
    path = os.fspath(path)
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; choose one of {BACKENDS}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file not found: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"video file is empty (0 bytes): {path}")
    if cache_dir is not None:
        return _CachedSource(path, os.fspath(cache_dir), backend, short_side)
    return _open_decoder(path, backend, short_side)


# ----------------------------------------------------------------------------- sampling
@dataclass(frozen=True)
class ClipSampling:
    """Which frames make a clip: ``num_frames`` frames, ``stride`` apart (dense) or one per segment (uniform)."""

    num_frames: int = 16
    stride: int = 4
    mode: str = "dense"

    def __post_init__(self) -> None:
        if self.mode not in SAMPLING_MODES:
            raise ValueError(f"unknown sampling mode {self.mode!r}; choose one of {SAMPLING_MODES}")
        if self.num_frames < 1 or self.stride < 1:
            raise ValueError(f"num_frames and stride must be >= 1, got {self.num_frames}, {self.stride}")


def sample_times(
    info: VideoInfo,
    sampling: ClipSampling,
    *,
    start: Optional[float] = None,
    end: Optional[float] = None,
    num_clips: int = 1,
    rng: Optional[random.Random] = None,
) -> np.ndarray:
    """Frame times (seconds) for ``num_clips`` clips: a ``num_clips x num_frames`` array.

    With ``rng`` (training) each clip's window or in-segment positions are
    random; without it (evaluation) the clips are spread evenly over
    ``[start, end)`` and frames sit at segment centres. Windows longer than
    the video start at ``start`` and run past the end (the decoder repeats the
    last frame).
    """
    t0 = max(0.0, start or 0.0)
    t1 = info.duration if end is None or end <= 0 else min(end, info.duration or end)
    if end is not None and start is not None and end <= start:
        raise ValueError(f"clip end ({end}) must be after its start ({start})")
    if info.duration > 0 and t0 >= info.duration:
        raise ValueError(f"clip start {t0:.3f}s is at or after the end of the video ({info.duration:.3f}s)")
    if t1 <= t0:
        t1 = t0 + sampling.num_frames / max(info.fps, 1e-6)  # unknown duration: decode what exists
    span = t1 - t0
    t, n = sampling.num_frames, num_clips
    out = np.empty((n, t), dtype=np.float64)
    if sampling.mode == "dense":
        step = sampling.stride / info.fps
        slack = max(0.0, span - t * step)
        for c in range(n):
            if rng is not None:
                s = rng.uniform(0.0, slack)
            else:
                s = slack * (c / (n - 1) if n > 1 else 0.5)
            out[c] = t0 + s + np.arange(t) * step + 0.5 / info.fps  # mid-frame: robust to rounding
    else:
        seg = span / t
        for c in range(n):
            if rng is not None:
                pos = np.array([rng.random() for _ in range(t)])
            else:
                pos = np.full(t, (c + 0.5) / n)
            out[c] = t0 + (np.arange(t) + pos) * seg
    return out


def read_clips(
    path: str | os.PathLike,
    sampling: ClipSampling = ClipSampling(),
    *,
    start: Optional[float] = None,
    end: Optional[float] = None,
    num_clips: int = 1,
    rng: Optional[random.Random] = None,
    backend: str = "auto",
    short_side: Optional[int] = None,
    cache_dir: Optional[str | os.PathLike] = None,
) -> torch.Tensor:
    """Decode ``num_clips`` clips of a video: uint8 ``num_clips x T x 3 x H x W`` (one open, one pass)."""
    src = open_video(path, backend=backend, short_side=short_side, cache_dir=cache_dir)
    return _clips_of(src, path, sampling, start=start, end=end, num_clips=num_clips, rng=rng)


def read_clips_bytes(
    data: bytes,
    name: str,
    sampling: ClipSampling = ClipSampling(),
    *,
    num_clips: int = 1,
    rng: Optional[random.Random] = None,
    short_side: Optional[int] = None,
) -> torch.Tensor:
    """:func:`read_clips` for the bytes of a video file (a shard member), decoded in memory with PyAV;
    errors name ``name``."""
    import io

    if not data:
        raise ValueError(f"video file is empty (0 bytes): {name}")
    src = _PyAVSource(io.BytesIO(data), short_side)  # type: ignore[arg-type]
    src.path = name
    return _clips_of(src, name, sampling, num_clips=num_clips, rng=rng)


def _clips_of(src: Any, path: Any, sampling: ClipSampling, *, start: Optional[float] = None,
              end: Optional[float] = None, num_clips: int = 1, rng: Optional[random.Random] = None) -> torch.Tensor:
    try:
        times = sample_times(src.info, sampling, start=start, end=end, num_clips=num_clips, rng=rng)
        frames = src.frames_at(times.reshape(-1))
    finally:
        src.close()
    needed = sampling.num_frames * (sampling.stride if sampling.mode == "dense" else 1)
    if 0 < src.info.num_frames < needed:
        logger.debug("%s: %d frames, fewer than the clip spans; the last frame is repeated", path, src.info.num_frames)
    clips = torch.from_numpy(frames).reshape(num_clips, sampling.num_frames, *frames.shape[1:])
    return clips.permute(0, 1, 4, 2, 3).contiguous()


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | torch.Tensor,
    fps: float = 25.0,
    codec: str = "libx264",
    pix_fmt: Optional[str] = None,
    times: Optional[Sequence[float]] = None,
) -> Path:
    """Encode ``T x H x W x 3`` uint8 RGB frames to a video file with PyAV.

    ``times`` (seconds) gives each frame its own timestamp, for variable
    frame rate files; ``pix_fmt`` defaults to ``yuv420p`` (``yuv444p`` when a
    side is odd, which 4:2:0 cannot hold).
    """
    av = require("av", "video", "video encoding")
    arr = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 T x H x W x 3, got {arr.dtype} {arr.shape}")
    h, w = arr.shape[1:3]
    if pix_fmt is None:
        pix_fmt = "yuv444p" if (h % 2 or w % 2) else "yuv420p"
    from fractions import Fraction

    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, img in enumerate(arr):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = int(round(times[i] * 1000)), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# ----------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class VideoRecord:
    """One labelled video (or a ``[start, end)`` segment of it, in seconds)."""

    path: str
    label: int
    start: Optional[float] = None
    end: Optional[float] = None


def _parse_time(value: str, where: str) -> Optional[float]:
    value = value.strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError as e:
        raise ValueError(f"{where}: start/end must be seconds, got {value!r}") from e


#: header names of the columns of a video list (the first name is the canonical one).
_COLUMNS: dict[str, tuple[str, ...]] = {
    "path": ("path", "video", "filename", "file"),
    "label": ("label", "class"),
    "start": ("start", "start_time", "time_start"),
    "end": ("end", "end_time", "time_end"),
    "split": ("split",),
}
_POSITIONAL = ("path", "label", "start", "end")


@dataclass(frozen=True)
class _Row:
    """One row of a video list: the file, its label name, its split (if the list has a ``split`` column)
    and its segment; ``where`` is ``file:line`` for messages."""

    path: str
    label: str
    split: Optional[str]
    start: Optional[float]
    end: Optional[float]
    where: str


def _header_columns(cells: list[str], csv_path: Path) -> Optional[list[str]]:
    """The canonical column names of a header row, or ``None`` when ``cells`` is a data row."""
    names = [c.strip().lower() for c in cells]
    path_named = any(n in _COLUMNS["path"] for n in names)
    label_named = any(n in _COLUMNS["label"] for n in names)
    if not (names[0] in _COLUMNS["path"] or (path_named and label_named)):
        return None
    alias = {a: canon for canon, aliases in _COLUMNS.items() for a in aliases}
    unknown = [c for c, n in zip(cells, names) if n not in alias]
    if unknown:
        raise DataError(f"{csv_path}: unknown column(s) {unknown}; a video list has the columns "
                        f"path,label[,start,end][,split] (start/end in seconds)")
    columns = [alias[n] for n in names]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise DataError(f"{csv_path}: column(s) {twice} appear more than once in the header")
    if "label" not in columns:
        raise DataError(f"{csv_path}: the header has no 'label' column (expected path,label[,start,end][,split])")
    return columns


def _read_rows(
    csv_path: str | os.PathLike, root: Optional[str | os.PathLike] = None, *, allow_outside_root: bool = True
) -> list[_Row]:
    """Rows of a video list (the one reader of every video CSV: a single list, split lists, ``--val-data``).

    With a header its columns are named (``path,label[,start,end][,split]``, any order; BOM and case
    ignored); without one they are ``path,label[,start,end]``. Relative paths resolve under ``root``
    (default: the CSV's folder); with ``allow_outside_root=False`` a path leaving it is an error.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"video list not found: {csv_path}")
    base = Path(root) if root is not None else csv_path.parent
    columns: Optional[list[str]] = None
    rows: list[_Row] = []
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            row = [c.strip() for c in row]
            if not row or not any(row) or row[0].startswith("#"):
                continue
            where = f"{csv_path}:{lineno}"
            if columns is None and not rows:
                columns = _header_columns(row, csv_path)
                if columns is not None:
                    continue
            if columns is not None:
                if len(row) > len(columns):
                    raise DataError(f"{where}: {len(row)} values for the {len(columns)} columns of the header")
                cell = dict(zip(columns, row))
            else:
                if len(row) < 2 or len(row) > 4:
                    raise DataError(f"{where}: expected path,label[,start,end], got {row}")
                cell = dict(zip(_POSITIONAL, row))
            rel, label = cell.get("path", ""), cell.get("label", "")
            if not rel:
                raise DataError(f"{where}: empty path")
            if not label:
                raise DataError(f"{where}: empty label")
            if LABEL_SEPARATOR in label:
                raise DataError(f"{where}: several labels ({label!r}); video classification takes one label per "
                                f"video")
            start = _parse_time(cell.get("start", ""), where)
            end = _parse_time(cell.get("end", ""), where)
            if start is not None and end is not None and end <= start:
                raise DataError(f"{where}: segment end ({end:g}s) must be after its start ({start:g}s)")
            file = resolve_list_path(rel, base, where, allow_outside_root)
            rows.append(_Row(str(file), label, cell.get("split") or None, start, end, where))
    if not rows:
        raise DataError(f"video list {csv_path} has no entries")
    return rows


def read_video_csv(
    csv_path: str | os.PathLike, root: Optional[str | os.PathLike] = None, class_names: Optional[Sequence[str]] = None
) -> tuple[list[VideoRecord], list[str]]:
    """Read a Kinetics-style list ``path,label[,start,end]`` (header optional).

    Labels may be class names or integer indices. Relative paths are resolved
    against ``root`` (default: the CSV's folder). Returns the records and the
    class names (``0..max`` for integer labels, else the names found in natural
    order, unless ``class_names`` is given). Lists with a ``split`` column are
    read by :func:`video_splits`.
    """
    rows = _read_rows(csv_path, root)
    if any(r.split for r in rows):
        raise DataError(f"{csv_path}: has a split column; read it with video_splits (--data)")
    labels = [r.label for r in rows]
    if class_names is None:
        if all(lbl.lstrip("-").isdigit() for lbl in labels):
            k = max(int(lbl) for lbl in labels) + 1
            class_names = [str(i) for i in range(k)]
        else:
            class_names = sorted(set(labels), key=natural_key)  # the order of base.finalize_splits
    index = {n: i for i, n in enumerate(class_names)}
    records = []
    for r in rows:
        if r.label in index:
            y = index[r.label]
        elif r.label.lstrip("-").isdigit() and 0 <= int(r.label) < len(class_names):
            y = int(r.label)
        else:
            raise ValueError(f"{csv_path}: label {r.label!r} is not one of the {len(class_names)} classes")
        records.append(VideoRecord(r.path, y, r.start, r.end))
    return records, list(class_names)


def scan_video_folder(
    root: str | os.PathLike, class_names: Optional[Sequence[str]] = None
) -> tuple[list[VideoRecord], list[str]]:
    """Class-per-folder layout ``root/<class>/<video>``; returns records and (sorted) class names."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder not found: {root}")
    if class_names is None:
        class_names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_names:
        raise ValueError(f"{root} has no class sub-folders (expected root/<class>/<video>)")
    records = []
    for y, name in enumerate(class_names):
        folder = root / name
        if not folder.is_dir():
            continue
        for f in sorted(folder.rglob("*")):
            if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS:
                records.append(VideoRecord(str(f), y))
    if not records:
        raise ValueError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) under {root}")
    return records, list(class_names)


class VideoClipDataset(Dataset):
    """Labelled videos as images: ``(C x H x W, label)`` for training, ``(V x C x H x W, label)`` for evaluation.

    Training (``augment`` given): one random clip, augmented identically over
    its frames. Evaluation: ``num_clips`` temporal clips x ``num_crops``
    spatial crops of ``frame_size`` (``V`` views, clip-major; ``V = 1`` gives
    ``C x H x W``), normalised by ``mean``/``std`` (``norm="imagenet"``) or by each
    clip's own statistics (``norm="clip"``; training takes the augmentation's ``norm``).
    Frames are then laid out as one image (``layout``).
    Decoding happens in ``__getitem__``, i.e. inside DataLoader workers.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        sampling: ClipSampling = ClipSampling(),
        frame_size: tuple[int, int] = (224, 224),
        *,
        augment: Optional[ClipAugment] = None,
        num_clips: int = 1,
        num_crops: int = 1,
        layout: str = "grid",
        grid: Optional[Sequence[int]] = None,
        factor: Optional[int] = None,
        short_side: Optional[int] = None,
        backend: str = "auto",
        cache_dir: Optional[str | os.PathLike] = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        norm: str = "imagenet",
    ) -> None:
        if not records:
            raise ValueError("VideoClipDataset needs at least one video")
        self.records = list(records)
        self.sampling, self.frame_size = sampling, (int(frame_size[0]), int(frame_size[1]))
        self.augment, self.num_clips, self.num_crops = augment, num_clips, num_crops
        self.layout, self.grid, self.factor = layout, grid, factor
        self.short_side, self.backend, self.cache_dir = short_side, backend, cache_dir
        self.mean, self.std = tuple(mean), tuple(std)
        if norm not in NORMS:
            raise ValueError(f"unknown clip normalisation {norm!r}; choose one of {NORMS}")
        self.norm = norm
        self.targets = [r.label for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_views(self) -> int:
        """Views per item in evaluation (``num_clips * num_crops``); 1 in training."""
        return 1 if self.augment is not None else self.num_clips * self.num_crops

    def load_clips(self, index: int) -> torch.Tensor:
        """The decoded uint8 clips of item ``index``: ``clips x T x 3 x H x W``."""
        r = self.records[index]
        train = self.augment is not None
        return read_clips(
            r.path,
            self.sampling,
            start=r.start,
            end=r.end,
            num_clips=1 if train else self.num_clips,
            rng=random.Random(random.getrandbits(64)) if train else None,
            backend=self.backend,
            short_side=self.short_side,
            cache_dir=self.cache_dir,
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        clips = self.load_clips(index)
        label = self.records[index].label
        if self.augment is not None:
            return self._to_image(self.augment(clips[0])), label
        views = [
            self._to_image(self._normalize(crop))
            for clip in clips
            for crop in clip_eval_crops(clip, self.frame_size, self.num_crops)
        ]
        return (views[0] if len(views) == 1 else torch.stack(views)), label

    def _normalize(self, clip: torch.Tensor) -> torch.Tensor:
        return normalize_per_clip(clip) if self.norm == "clip" else normalize_clip(clip, self.mean, self.std)

    def _to_image(self, clip: torch.Tensor) -> torch.Tensor:
        return frames_to_image(clip, self.layout, self.grid, self.factor)



# ----------------------------------------------------------------------------- plug-in for `unireplknet train`
def _original_kernel_sizes() -> list[list[int]]:
    """The original video model's kernels: UniRepLKNet-B's layout with stage-4 kernels 11 instead of 13."""
    from ...model import default_kernel_sizes

    ks = [list(stage) for stage in default_kernel_sizes((3, 3, 27, 3))]
    ks[3] = [11 if k == 13 else k for k in ks[3]]
    return ks


CONFIG_DEFAULTS: dict[str, Any] = {
    "num_frames": 16,
    "frame_stride": 4,
    "sampling": "dense",
    "frame_size": 224,
    "layout": "grid",
    "grid": None,
    "reshape_factor": None,
    "decode_short_side": None,
    "train_scale": [0.08, 1.0],
    "hflip": 0.5,
    "aa": "rand-m7-n4-mstd0.5-inc1",
    "reprob": 0.25,
    "clip_jitter": 0.0,
    "clip_gray": 0.0,
    "clip_blur": 0.0,
    "clip_noise": 0.0,
    "clip_norm": "imagenet",
    "eval_clips": 5,
    "eval_crops": 3,
    "frame_cache": None,
    "video_backend": "auto",
}

_KINETICS = {
    "model": "unireplknet_b",
    "model_args": {"kernel_sizes": _original_kernel_sizes()},
    "drop_path": 0.4,
    "epochs": 90,
    "warmup_epochs": 5,
    "batch_size": 4,
    "accum": 2,  # x 8 processes = 64 videos per update
    "lr": 4e-3,
    "lr_base_batch": 256,  # 4e-3 x 64 / 256 = 1e-3 at the original's total batch
    "min_lr": 2.5e-7,
    "weight_decay": 0.05,
    "layer_decay": 0.75,
    "mixup": 0.8,
    "cutmix": 1.0,
    "smoothing": 0.1,
    "amp": True,
    "num_frames": 16,
    "frame_stride": 4,
    "sampling": "dense",
    "frame_size": 224,
    "train_scale": [0.08, 1.0],
    "aa": "rand-m7-n4-mstd0.5-inc1",
    "reprob": 0.25,
    "eval_clips": 5,
    "eval_crops": 3,
}

#: no built-in demo (examples/video_motion.py makes one).
DEMO_DEFAULTS: dict[str, Any] = {}

RECIPES: dict[str, dict[str, Any]] = {
    # SPEC §5, reproduced: the raw reshape of 16 x 224² frames into 896², B width, stage-4 kernels 11.
    "kinetics400_original": {**_KINETICS, "layout": "reshape"},
    # The same recipe with the paper's described 4 x 4 grid tiling.
    "kinetics400": {**_KINETICS, "layout": "grid"},
}


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """Add the video flags (every default None: the real defaults are :data:`CONFIG_DEFAULTS`)."""
    g = parser.add_argument_group("video (--modality video)")
    g.add_argument("--num-frames", dest="num_frames", type=int, default=None, help="frames per clip (default 16)")
    g.add_argument("--frame-stride", dest="frame_stride", type=int, default=None,
                   help="dense sampling: frames between samples (default 4)")
    g.add_argument("--sampling", dest="sampling", choices=SAMPLING_MODES, default=None,
                   help="dense window (default) or uniform segments")
    g.add_argument("--frame-size", dest="frame_size", type=int, default=None, help="frame crop side (default 224)")
    g.add_argument("--video-layout", "--layout", dest="layout", choices=LAYOUTS, default=None,
                   help="frames -> image: grid (tiled, the paper; default without auto), reshape (the original "
                        "code's raw reshape), channels (frames stacked as T*3 channels, pixel-aligned), diff "
                        "(channels + consecutive frame differences), flow (channels + normal flow of consecutive "
                        "frames, 2 channels per pair; auto's choice)")
    g.add_argument("--grid", dest="grid", default=None, help="grid rows x cols, e.g. 2x4 (default: most square)")
    g.add_argument("--reshape-factor", dest="reshape_factor", type=int, default=None,
                   help="reshape layout: frame rows per output row (default sqrt(num_frames))")
    g.add_argument("--decode-short-side", dest="decode_short_side", type=int, default=None,
                   help="resize frames to this short side while decoding (default: keep)")
    g.add_argument("--train-scale", dest="train_scale", type=float, nargs=2, default=None,
                   help="random-resized-crop area range (default 0.08 1.0)")
    g.add_argument("--hflip", dest="hflip", type=float, default=None, help="horizontal flip probability (default 0.5)")
    g.add_argument("--aa", dest="aa", default=None,
                   help="timm RandAugment string or 'none' (default rand-m7-n4-mstd0.5-inc1)")
    g.add_argument("--reprob", dest="reprob", type=float, default=None,
                   help="random erasing probability (default 0.25)")
    g.add_argument("--clip-jitter", dest="clip_jitter", type=float, default=None,
                   help="colour jitter of each training clip, the same for all its frames: brightness, contrast, "
                        "saturation in [1-j, 1+j], hue up to j*180 degrees (default 0; auto: 0.4)")
    g.add_argument("--clip-gray", dest="clip_gray", type=float, default=None,
                   help="probability of turning a training clip grey (default 0; auto: 0.1)")
    g.add_argument("--clip-blur", dest="clip_blur", type=float, default=None,
                   help="probability of a Gaussian blur (sigma 0.1-2 px) of a training clip (default 0; auto: 0.2)")
    g.add_argument("--clip-noise", dest="clip_noise", type=float, default=None,
                   help="largest std of the pixel noise added to training clips, on the 0-1 scale (default 0; "
                        "auto: 0.03)")
    g.add_argument("--clip-norm", dest="clip_norm", choices=NORMS, default=None,
                   help="normalise frames by the ImageNet mean/std (default; what pretrained stems expect) or by "
                        "each clip's own per-channel mean/std (auto's choice without --pretrained)")
    g.add_argument("--eval-clips", dest="eval_clips", type=int, default=None,
                   help="temporal clips per video in evaluation (default 5)")
    g.add_argument("--eval-crops", dest="eval_crops", type=int, default=None,
                   help="spatial crops per clip in evaluation (default 3)")
    g.add_argument("--frame-cache", dest="frame_cache", default=None,
                   help="directory keeping decoded frames (small data sets read every epoch)")
    g.add_argument("--video-backend", dest="video_backend", choices=BACKENDS, default=None,
                   help="auto (torchcodec when installed, else PyAV), pyav, torchcodec")


def _get(args: argparse.Namespace, key: str) -> Any:
    value = getattr(args, key, None)
    return CONFIG_DEFAULTS[key] if value is None else value


def _parse_grid(value: Any) -> Optional[tuple[int, int]]:
    if value in (None, "", "auto"):
        return None
    if isinstance(value, (list, tuple)):
        rows, cols = value
    else:
        try:
            rows, cols = (int(v) for v in str(value).lower().split("x"))
        except ValueError as e:
            raise ValueError(f"grid must look like ROWSxCOLS (e.g. 4x4), got {value!r}") from e
    return int(rows), int(cols)


def _datasets_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :class:`VideoClipDataset` shared by training, validation and prediction."""
    size = int(_get(args, "frame_size"))
    layout = str(_get(args, "layout"))
    if layout not in LAYOUTS:
        raise ValueError(f"unknown frame layout {layout!r}; choose one of {LAYOUTS}")
    return dict(
        sampling=ClipSampling(
            int(_get(args, "num_frames")), int(_get(args, "frame_stride")), str(_get(args, "sampling"))
        ),
        frame_size=(size, size),
        layout=layout,
        grid=_parse_grid(_get(args, "grid")),
        factor=_get(args, "reshape_factor"),
        short_side=_get(args, "decode_short_side"),
        backend=str(_get(args, "video_backend")),
        cache_dir=_get(args, "frame_cache"),
        num_clips=int(_get(args, "eval_clips")),
        num_crops=int(_get(args, "eval_crops")),
        norm=str(_get(args, "clip_norm")),
    )


def _augment_from_args(args: argparse.Namespace) -> ClipAugment:
    size = int(_get(args, "frame_size"))
    aa = _get(args, "aa")
    scale = _get(args, "train_scale")
    return ClipAugment(
        size=(size, size),
        scale=(float(scale[0]), float(scale[1])),
        hflip=float(_get(args, "hflip")),
        rand_augment=None if aa in (None, "", "none") else str(aa),
        erase_prob=float(_get(args, "reprob")),
        color_jitter=float(_get(args, "clip_jitter")),
        grayscale=float(_get(args, "clip_gray")),
        blur=float(_get(args, "clip_blur")),
        noise=float(_get(args, "clip_noise")),
        norm=str(_get(args, "clip_norm")),
    )


def check_video(path: Path, start: Optional[float] = None) -> None:
    """Open ``path`` and decode its first frame (raises on an empty, truncated or foreign file).

    ``start`` (seconds, the latest segment start of the file's rows) must lie before the end of the
    video as its container states it (the decoder's duration; not checked when that is unknown).
    """
    source = open_video(str(path), backend="auto")
    try:
        info = source.info
        if info.num_frames is not None and info.num_frames < 1:
            raise ValueError("no frames")
        if start is not None and info.duration > 0 and max(start, 0.0) >= info.duration:
            raise ValueError(f"segment start {start:g}s is at or after the end of the video ({info.duration:.3f}s)")
        frames = source.frames_at([0.0])
        if len(frames) < 1:
            raise ValueError("no decodable frame")
    finally:
        source.close()


def _segment_starts(records: dict[str, list[VideoRecord]]) -> dict[str, float]:
    """``{path: latest segment start}`` of the records that have one."""
    starts: dict[str, float] = {}
    for recs in records.values():
        for r in recs:
            if r.start is not None:
                starts[r.path] = max(starts.get(r.path, r.start), r.start)
    return starts


def _prescan_videos(splits: Splits, records: dict[str, list[VideoRecord]], skip_bad: Optional[bool]) -> Splits:
    """:func:`base.prescan` with :func:`check_video`; a file whose segment starts past its end is bad too."""
    starts = _segment_starts(records)

    def check(path: Path) -> None:
        check_video(path, starts.get(str(path)))

    def key(path: Path) -> Optional[str]:
        try:
            st = path.stat()
        except OSError:
            return None
        start = starts.get(str(path))
        return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}" + ("" if start is None else f"|start={start!r}")

    return prescan(splits, check, name="video-first-frame", skip_bad=skip_bad, key=key)


def video_splits(args: argparse.Namespace) -> tuple[Splits, dict[str, list[VideoRecord]]]:
    """Splits of ``args.data`` by the shared rules (:func:`base.scan_splits`), and the :class:`VideoRecord`
    of each split.

    Every video list (one CSV with or without a ``split`` column, ``DATA/{train,val,test}.csv``, a list
    beside split folders, a ``--val-data`` CSV) is read by :func:`_read_rows`, which keeps the
    ``start``/``end`` segment times; a video listed with several segments is one item of the splits (so
    its segments never straddle training and validation) and one record per segment. Records are
    labelled by the final class list (:meth:`Splits.class_index`); videos from folders have no segment.
    """
    root = getattr(args, "data_root", None)
    outside = bool(getattr(args, "allow_outside_root", False))
    segments: dict[tuple[str, str], list[tuple[Optional[float], Optional[float]]]] = {}

    def read_list(path: Path) -> list[tuple[Path, tuple[str, ...], Optional[str]]]:
        rows: list[tuple[Path, tuple[str, ...], Optional[str]]] = []
        seen: set[tuple[str, str, Optional[str]]] = set()
        for r in _read_rows(path, root, allow_outside_root=outside):
            segments.setdefault((r.path, r.label), []).append((r.start, r.end))
            split = r.split.strip().lower() if r.split else None
            if (r.path, r.label, split) not in seen:
                seen.add((r.path, r.label, split))
                rows.append((Path(r.path), (r.label,), split))
        return rows

    splits = scan_splits(args.data, VIDEO_EXTENSIONS, val_data=getattr(args, "val_data", None),
                         val_fraction=float(getattr(args, "val_fraction", None) or 0.1),
                         seed=int(getattr(args, "seed", 0) or 0), data_root=root, allow_outside_root=outside,
                         read_list=read_list)
    index = splits.class_index()
    records = {name: [VideoRecord(str(f), index[lab[0]], start, end)
                      for f, lab in items for start, end in segments.get((str(f), lab[0]), [(None, None)])]
               for name, items in splits.named()}
    return splits, records


def build_task_data(args: argparse.Namespace) -> TaskData:
    """Videos named by ``args.data`` (split/class folders, or ``path,label[,start,end][,split]`` lists) as a
    :class:`TaskData`."""
    if getattr(args, "data", None) is None:
        raise DataError("--modality video has no built-in demo: pass --data (split or class folders, or a CSV "
                        "path,label[,start,end]); examples/video_motion.py generates a small camera-motion set")
    splits, records = video_splits(args)
    _prescan_videos(splits, records, getattr(args, "skip_bad_files", None))
    index = splits.class_index()

    def recs(name: str, items: list) -> list[VideoRecord]:
        if name in records:
            keep = {str(f) for f, _ in items}
            return [r for r in records[name] if r.path in keep]
        return [VideoRecord(str(f), index[lab[0]]) for f, lab in items]

    kw = _datasets_from_args(args)
    train_kw = {k: v for k, v in kw.items() if k not in ("num_clips", "num_crops")}

    def named(ds: VideoClipDataset) -> Dataset:
        return NamedFileErrors(ds, lambda i, r=ds.records: r[i].path)

    train_set = VideoClipDataset(recs("train", splits.train), augment=_augment_from_args(args), **train_kw)
    val_set = VideoClipDataset(recs("val", splits.val), **kw)
    input_size = image_size_for(kw["sampling"].num_frames, kw["frame_size"], kw["layout"], kw["grid"], kw["factor"])
    return TaskData(
        train=named(train_set), val=named(val_set),
        tests={name: named(VideoClipDataset(recs(name, items), **kw)) for name, items in splits.tests.items()},
        num_classes=len(splits.classes), class_names=splits.classes,
        in_chans=layout_channels(kw["layout"], kw["sampling"].num_frames), input_size=input_size,
        eval_views=val_set.num_views, splits=splits,
        meta={"layout": kw["layout"], "num_frames": kw["sampling"].num_frames, "frame_size": kw["frame_size"][0],
              "grid": list(kw["grid"]) if kw["grid"] else None, "reshape_factor": kw["factor"],
              "clip_norm": kw["norm"]},
    )


def _as_grid(x: torch.Tensor, meta: dict) -> torch.Tensor:
    """A model input of any layout (``C' x H' x W'``) as the frame grid the baseline features read."""
    t = int(meta["num_frames"])
    layout = str(meta.get("layout", "grid"))
    if layout == "grid":
        return x
    frames = image_to_frames(x, t, layout, meta.get("grid"), meta.get("reshape_factor"))
    return frames_to_image(frames, "grid", meta.get("grid"))


def baseline_features(task: TaskData) -> dict[str, Any]:
    """Video baselines for the runner (``Modality.baseline_features``): motion and single-frame features.

    ``frame_difference`` (consecutive-frame differences and profile shifts, the optical-flow-like
    baseline) and ``first_frame`` (appearance only) of :mod:`unireplknet.tasks.baselines`, read from
    the model's own inputs whatever their layout (channel layouts are turned back into a grid).
    """
    from ..baseline_features import feature

    meta = dict(task.meta)
    if "num_frames" not in meta:
        return {}
    t = int(meta["num_frames"])
    rows, cols = grid_shape(t, meta.get("grid"))
    diff = feature("frame_difference", frames_grid=(rows, cols), num_frames=t)
    first = feature("first_frame", frames_grid=(rows, cols))

    def frame_difference(x: torch.Tensor) -> np.ndarray:
        """Motion features of one input (see :func:`unireplknet.tasks.baselines.frame_difference`)."""
        return diff(_as_grid(torch.as_tensor(x), meta))

    def first_frame(x: torch.Tensor) -> np.ndarray:
        """The first frame of one input, pooled (see :func:`unireplknet.tasks.baselines.first_frame`)."""
        return first(_as_grid(torch.as_tensor(x), meta))

    out: dict[str, Any] = {"first_frame": first_frame}
    if t >= 2:
        out["frame_difference"] = frame_difference
    return out


def load_for_predict(path: str, args: argparse.Namespace) -> torch.Tensor:
    """One video -> its evaluation views (``V x 3 x H x W``, or ``3 x H x W`` for one view), as in validation."""
    dataset = VideoClipDataset([VideoRecord(str(path), 0)], **_datasets_from_args(args))
    return dataset[0][0]
