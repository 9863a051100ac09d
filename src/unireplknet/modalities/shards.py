"""WebDataset-style tar shards: writing, indexing and reading them as map-style or streaming datasets.

A **shard** is an uncompressed ``.tar`` whose members are grouped into samples by key (the
member's name up to the first dot of its base name): ``000123.jpg`` + ``000123.cls`` is one
sample with an image and a label. Labels are a ``.cls`` member (a class index as text, or a
class name) or a ``.json`` member ``{"label": ...}`` (an index or a name). The data member is
the first one whose extension is one of the modality's file extensions (``.jpg``/``.png`` for
images, ``.wav``/``.flac`` for audio, ``.mp4`` for video, ``.npy`` for points).

**Splits** follow the folder rules of :mod:`unireplknet.modalities.base`: the shard
``train-000003.tar`` belongs to the split named by its prefix (``train``), ``val-*`` (or
``valid-*``/``validation-*``) to validation, ``test*-*`` to a test split of that name. Without
validation shards, ``val_fraction`` of the training samples is carved out per class (seeded),
exactly as for folders.

**index.json** (written by ``unireplknet shard`` next to the shards) lists every shard with
its split, sample count, byte size and per-class counts, plus the class names::

    {"format": "unireplknet-shards", "version": 1, "classes": ["cat", "dog"],
     "shards": [{"name": "train-000000.tar", "split": "train", "count": 1000,
                 "bytes": 52428800, "classes": {"cat": 497, "dog": 503}}, ...]}

Where ``--data`` may point: a folder holding ``index.json``; a brace pattern
``shards/train-{000000..000127}.tar`` (several patterns separated by ``::``; an
``index.json`` next to the shards is used for class names when present); one ``.tar``.
A ``stream:`` prefix (and shards given by ``http(s)://`` URL) asks for the streaming reader.

**Modalities** plug in through :class:`~unireplknet.modalities.base.ShardCodec` (``Modality.shards``):
member extensions, the decoder (bytes → raw sample, the modality's own reader), the per-sample
transform, the task fields, optionally the modality's own dataset class over a map-style shard,
its own writer and a whole-task builder. :func:`codec_task_data` reads ``--data`` through a codec;
nothing here knows a modality.

Two readers:

* :class:`ShardDataset` (map-style, **the default for local shards**): the tar headers are
  scanned once into an index of member offsets, and sample ``i`` is one ``os.pread``. The
  engine's ``ResumableSampler`` then gives the same shuffling, DDP sharding and exact
  mid-epoch resume as for files.
* :class:`ShardIterableDataset` (streaming, for remote or very large data read sequentially):
  splits the epoch's sample sequence by rank, and within a rank by DataLoader worker in whole
  batches (:attr:`~ShardIterableDataset.batch_size`), shuffles with a seeded buffer, and yields
  exactly ``len(dataset)`` samples per rank and epoch. When the number of samples does not divide
  by the world size, ``pad=True`` (training) repeats the first samples of the epoch's order so
  every rank gets ``ceil(N / world)``; ``pad=False`` drops the tail so every rank gets
  ``floor(N / world)``; ``pad=None`` (evaluation) reads every sample once, ranks differing by at
  most one. Each sample is yielded exactly once per epoch when ``N`` divides. A mid-epoch resume
  leaves out exactly the batches already produced (:meth:`~ShardIterableDataset.set_skip_batches`).
"""
from __future__ import annotations

import argparse
import functools
import io
import itertools
import json
import logging
import math
import os
import random
import re
import tarfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from ..errors import BadFileError, DataError
from .base import VAL_NAMES, ShardSample, Splits, TaskData, carve_val, split_kind

__all__ = [
    "INDEX_NAME", "LABEL_EXTENSIONS", "expand_braces", "is_shard_spec", "shard_split_name", "scan_shard",
    "ShardIndex", "load_shard_index", "build_map_datasets", "ShardDataset", "ShardIterableDataset", "ShardWriter", "write_shards",
    "decode_image", "task_data_from_shards", "DecodeFn", "STREAM_PREFIX", "stream_spec", "map_splits",
    "stream_splits", "codec_task_data", "training_members", "auto_on_sample", "file_samples",
]

logger = logging.getLogger(__name__)

INDEX_NAME = "index.json"
INDEX_FORMAT = "unireplknet-shards"
LABEL_EXTENSIONS = ("cls", "json")
#: ``decode(bytes, extension) -> raw sample`` (a PIL image, a waveform, ...), before the transform.
DecodeFn = Callable[[bytes, str], Any]
_BRACE = re.compile(r"\{([^{}]*)\}")


# ----------------------------------------------------------------------------- names and patterns
def expand_braces(pattern: str) -> list[str]:
    """Expand ``{000..012}`` (zero-padded numeric ranges) and ``{a,b}`` (alternatives), recursively."""
    m = _BRACE.search(pattern)
    if m is None:
        return [pattern]
    body = m.group(1)
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        lo, hi = rng.group(1), rng.group(2)
        width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
        values = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    else:
        values = body.split(",")
    out: list[str] = []
    for v in values:
        out += expand_braces(pattern[:m.start()] + v + pattern[m.end():])
    return out


def _is_url(s: str) -> bool:
    return s.startswith(("http://", "https://", "file://"))


STREAM_PREFIX = "stream:"


def stream_spec(data: Any) -> tuple[str, bool]:
    """``(spec, streaming)``: ``--data stream:SPEC`` asks for the streaming reader; shards given by URL always stream."""
    s = str(data)
    if s.startswith(STREAM_PREFIX):
        return s[len(STREAM_PREFIX):], True
    return s, any(_is_url(part.strip()) for part in s.split("::"))


def is_shard_spec(data: Any) -> bool:
    """Whether ``--data`` names shards: a folder with a shard ``index.json``, a brace pattern of
    ``.tar`` files, a ``.tar`` file, or an http(s) URL of one (each optionally prefixed ``stream:``)."""
    if data is None:
        return False
    s = stream_spec(data)[0]
    if any(part.strip().endswith(".tar") for part in s.split("::")) and ("{" in s or "::" in s or _is_url(s)):
        return True
    p = Path(s)
    if p.is_file() and p.suffix == ".tar":
        return True
    index = p / INDEX_NAME
    if p.is_dir() and index.is_file():
        try:
            return json.loads(index.read_text()).get("format") == INDEX_FORMAT
        except (OSError, ValueError, AttributeError):
            return False
    return False


def shard_split_name(shard: str) -> str:
    """The split a shard belongs to, from its file name: ``train-000001.tar`` → ``train``,
    ``validation-0.tar`` → ``val``, ``test_hard-000000.tar`` → ``test_hard``.

    Raises :class:`DataError` for a prefix that is not ``train``, ``val*`` or ``test*``.
    """
    base = os.path.basename(shard.rstrip("/"))
    stem = base[:-4] if base.endswith(".tar") else base
    prefix = stem.rsplit("-", 1)[0] if "-" in stem else stem.rstrip("0123456789_") or stem
    kind = split_kind(prefix)
    if kind is None:
        raise DataError(f"shard {base}: its name must start with train-, val- or test*- to say its split "
                        f"(got prefix {prefix!r})")
    if kind == "train":
        return "train"
    if kind == "val" and prefix.lower() in VAL_NAMES:
        return "val"
    return prefix


def _split_key(name: str) -> tuple[str, str]:
    """``dir/000123.seg.png`` → (``dir/000123``, ``seg.png``): the WebDataset key/extension rule."""
    head, base = os.path.split(name)
    if "." not in base:
        return name, ""
    stem, ext = base.split(".", 1)
    return (f"{head}/{stem}" if head else stem), ext.lower()


def _label_of(ext: str, raw: bytes, where: str) -> Any:
    text = raw.decode("utf-8").strip()
    if ext == "cls":
        return int(text) if text.lstrip("-").isdigit() else text
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise DataError(f"{where}: bad JSON label ({e})") from None
    if isinstance(obj, dict):
        for k in ("label", "cls", "class"):
            if k in obj:
                return obj[k]
        raise DataError(f"{where}: the JSON label has no 'label' field")
    return obj


# ----------------------------------------------------------------------------- scanning
@dataclass
class ShardScan:
    """The samples of one local shard: key, data member (extension, offset, size) and raw label."""

    path: str
    keys: list[str] = field(default_factory=list)
    exts: list[str] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)


def scan_shard(path: str, extensions: Sequence[str]) -> ShardScan:
    """Read the tar headers of ``path`` (data is skipped, labels are read) into a :class:`ShardScan`.

    A sample without a data member of ``extensions`` or without a label is an error naming it.
    """
    exts = tuple(e.lower().lstrip(".") for e in extensions)
    groups: dict[str, dict[str, tuple[int, int]]] = {}
    labels: dict[str, Any] = {}
    order: list[str] = []
    try:
        with tarfile.open(path, "r:") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                key, ext = _split_key(m.name)
                if key not in groups:
                    groups[key] = {}
                    order.append(key)
                if ext in LABEL_EXTENSIONS and key not in labels:
                    f = tf.extractfile(m)
                    labels[key] = _label_of(ext, f.read() if f else b"", f"{path}#{m.name}")
                else:
                    groups[key][ext] = (m.offset_data, m.size)
                tf.members = []  # keep memory flat on large shards
    except (tarfile.TarError, EOFError) as e:
        raise DataError(f"{path}: not a readable uncompressed tar shard ({e})") from None
    scan = ShardScan(path)
    for key in order:
        data = next(((e, groups[key][e]) for e in groups[key] if e.rsplit(".", 1)[-1] in exts), None)
        if data is None:
            raise DataError(f"{path}#{key}: no data member with an extension of {', '.join(exts)} "
                            f"(has: {', '.join(sorted(groups[key])) or 'nothing'})")
        if key not in labels:
            raise DataError(f"{path}#{key}: no label member (.cls or .json)")
        scan.keys.append(key)
        scan.exts.append(data[0])
        scan.offsets.append(data[1][0])
        scan.sizes.append(data[1][1])
        scan.labels.append(labels[key])
    return scan


# ----------------------------------------------------------------------------- the index
@dataclass
class ShardIndex:
    """Shards (paths or URLs) per split, their sample counts, and the class names (if known)."""

    root: str
    shards: dict[str, list[str]]
    counts: dict[str, int]
    classes: list[str]

    def count(self, split: str) -> int:
        """Samples in ``split``."""
        return sum(self.counts[s] for s in self.shards.get(split, []))


def _read_index(path: Path | str) -> dict[str, Any]:
    try:
        if _is_url(str(path)):
            import urllib.request

            with urllib.request.urlopen(str(path)) as f:  # noqa: S310 - the user's own data URL
                obj = json.loads(f.read().decode("utf-8"))
        else:
            obj = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the shard index ({e})") from None
    if not isinstance(obj, dict) or obj.get("format") != INDEX_FORMAT or not isinstance(obj.get("shards"), list):
        raise DataError(f"{path}: not a shard index (written by `unireplknet shard`)")
    return obj


def load_shard_index(data: str) -> ShardIndex:
    """The :class:`ShardIndex` of a ``--data`` value naming shards (see :func:`is_shard_spec`)."""
    data = stream_spec(data)[0]
    p = Path(data)
    index_obj: Optional[dict[str, Any]] = None
    if p.is_dir():
        index_obj = _read_index(p / INDEX_NAME)
        root = str(p)
        files = [str(p / s["name"]) for s in index_obj["shards"]]
    else:
        files = [f for part in str(data).split("::") for f in expand_braces(part.strip())]
        root = os.path.dirname(files[0]) if files else "."
        if _is_url(files[0]):
            try:
                index_obj = _read_index(f"{root}/{INDEX_NAME}")
            except DataError:
                index_obj = None
        elif (Path(root) / INDEX_NAME).is_file():
            index_obj = _read_index(Path(root) / INDEX_NAME)
    known = {s["name"]: s for s in (index_obj or {}).get("shards", [])}
    shards: dict[str, list[str]] = defaultdict(list)
    counts: dict[str, int] = {}
    for f in files:
        if not _is_url(f) and not Path(f).is_file():
            raise FileNotFoundError(f"shard not found: {f}")
        entry = known.get(os.path.basename(f))
        shards[entry["split"] if entry and entry.get("split") else shard_split_name(f)].append(f)
        if entry is not None:
            counts[f] = int(entry["count"])
    classes = [str(c) for c in (index_obj or {}).get("classes", [])]
    return ShardIndex(root, dict(shards), counts, classes)


# ----------------------------------------------------------------------------- decoding
def decode_image(data: bytes, ext: str, in_chans: int = 3) -> Any:
    """Image bytes → a PIL image in ``RGB`` (3 channels) or ``L`` (1 channel) mode, as files are read."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB" if in_chans == 3 else "L")


def _read_at(fds: dict[str, int], path: str, offset: int, size: int) -> bytes:
    fd = fds.get(path)
    if fd is None:
        fd = fds[path] = os.open(path, os.O_RDONLY)
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise EOFError(f"short read ({len(data)} of {size} bytes)")
    return data


class ShardDataset(Dataset):
    """Map-style dataset over local shards: sample ``i`` is read with one ``pread`` at its member offset,
    decoded with ``decode(bytes, ext)`` and passed through ``transform``; items are ``(input, class index)``.

    File descriptors are opened lazily per process (so the dataset is safe to send to DataLoader workers).
    """

    def __init__(self, shards: Sequence[str], shard_of: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
                 exts: Sequence[str], ext_of: np.ndarray, labels: np.ndarray, keys: Sequence[str],
                 classes: Sequence[str], decode: DecodeFn, transform: Optional[Callable[[Any], Any]] = None) -> None:
        self.shards = list(shards)
        self.shard_of, self.offsets, self.sizes = shard_of, offsets, sizes
        self.exts, self.ext_of = list(exts), ext_of
        self.labels = labels
        self.keys = list(keys)
        self.classes = list(classes)
        self.decode = decode
        self.transform = transform
        self._fds: dict[str, int] = {}
        self._pid = os.getpid()

    def subset(self, indices: Sequence[int], transform: Optional[Callable[[Any], Any]] = None) -> "ShardDataset":
        """The samples at ``indices`` (in that order), with ``transform``."""
        idx = np.asarray(indices, dtype=np.int64)
        return ShardDataset(self.shards, self.shard_of[idx], self.offsets[idx], self.sizes[idx], self.exts,
                            self.ext_of[idx], self.labels[idx], [self.keys[i] for i in idx], self.classes,
                            self.decode, transform)

    def __len__(self) -> int:
        return len(self.labels)

    def name_of(self, index: int) -> str:
        """``shard.tar#key`` of sample ``index`` (how errors name it)."""
        return f"{self.shards[int(self.shard_of[index])]}#{self.keys[index]}"

    def read(self, index: int) -> tuple[bytes, str]:
        """The raw bytes and extension of sample ``index``'s data member."""
        if os.getpid() != self._pid:  # a forked worker: do not share descriptors with the parent
            self._fds, self._pid = {}, os.getpid()
        path = self.shards[int(self.shard_of[index])]
        return _read_at(self._fds, path, int(self.offsets[index]), int(self.sizes[index])), self.exts[int(self.ext_of[index])]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        try:
            data, ext = self.read(index)
            x = self.decode(data, ext)
            if self.transform is not None:
                x = self.transform(x)
        except BadFileError:
            raise
        except Exception as e:
            raise BadFileError(self.name_of(index), (str(e).splitlines() or [type(e).__name__])[0]) from e
        return x, int(self.labels[index])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fds"] = {}
        return state

    def __del__(self) -> None:
        for fd in getattr(self, "_fds", {}).values():
            try:
                os.close(fd)
            except Exception:  # already closed, or the interpreter is shutting down
                pass


def _class_index(labels: Iterable[Any], classes: list[str], where: str) -> tuple[list[str], Callable[[Any], int]]:
    """Class names and a raw-label → index function (labels may be indices or names)."""
    labels = list(labels)
    if any(isinstance(x, (list, tuple)) for x in labels):
        raise DataError(f"{where}: multi-label shard samples are not supported (one label per sample)")
    if not classes:
        names = sorted({str(x) for x in labels}, key=lambda s: (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s))
        if all(isinstance(x, int) for x in labels):
            names = [str(i) for i in range(max(labels) + 1)] if labels else []
        classes = names
    lookup = {c: i for i, c in enumerate(classes)}

    def index(x: Any) -> int:
        if isinstance(x, int):
            if not 0 <= x < len(classes):
                raise DataError(f"{where}: class index {x} outside 0..{len(classes) - 1}")
            return x
        if str(x) not in lookup:
            raise DataError(f"{where}: label {x!r} is not one of the classes in {INDEX_NAME}")
        return lookup[str(x)]

    return classes, index


def build_map_datasets(index: ShardIndex, extensions: Sequence[str], decode: DecodeFn,
                       workers: int = 8) -> tuple[dict[str, ShardDataset], list[str]]:
    """Scan every local shard of ``index`` and build one :class:`ShardDataset` per split (no transform)."""
    from concurrent.futures import ThreadPoolExecutor

    order = [(split, path) for split, paths in index.shards.items() for path in paths]
    if any(_is_url(p) for _, p in order):
        raise DataError("shards given by URL can only be streamed (ShardIterableDataset); copy them locally to train")
    with ThreadPoolExecutor(max(1, min(workers, len(order)))) as pool:
        scans = list(pool.map(lambda sp: scan_shard(sp[1], extensions), order))
    for (_, path), scan in zip(order, scans):
        want = index.counts.get(path)
        if want is not None and want != len(scan.keys):
            raise DataError(f"{path}: {INDEX_NAME} says {want} samples, the shard holds {len(scan.keys)}")
    classes, to_index = _class_index((lab for s in scans for lab in s.labels), list(index.classes), index.root)
    shard_names = [p for _, p in order]
    ext_names = sorted({e for s in scans for e in s.exts})
    ext_id = {e: i for i, e in enumerate(ext_names)}
    out: dict[str, ShardDataset] = {}
    for split in index.shards:
        parts = [(i, s) for i, ((sp, _), s) in enumerate(zip(order, scans)) if sp == split]
        n = sum(len(s.keys) for _, s in parts)
        out[split] = ShardDataset(
            shard_names,
            np.concatenate([np.full(len(s.keys), i, dtype=np.int32) for i, s in parts]) if n else np.zeros(0, np.int32),
            np.array([o for _, s in parts for o in s.offsets], dtype=np.int64),
            np.array([z for _, s in parts for z in s.sizes], dtype=np.int64),
            ext_names, np.array([ext_id[e] for _, s in parts for e in s.exts], dtype=np.int16),
            np.array([to_index(lab) for _, s in parts for lab in s.labels], dtype=np.int64),
            [k for _, s in parts for k in s.keys], classes, decode)
    return out, classes


# ----------------------------------------------------------------------------- streaming
def _open_stream(path: str) -> BinaryIO:
    if _is_url(path):
        import urllib.request

        return urllib.request.urlopen(path)  # noqa: S310 - the user's own data URL
    return open(path, "rb")


def _stream_samples(path: str, extensions: Sequence[str]) -> Iterator[tuple[str, str, bytes, Any]]:
    """``(key, ext, data bytes, raw label)`` of every sample of a shard, read sequentially (members of a
    sample must be adjacent, as WebDataset writes them). A shard that is not a readable tar is a
    :class:`DataError` naming it."""
    try:
        yield from _stream_tar(path, extensions)
    except (tarfile.TarError, EOFError) as e:
        raise DataError(f"{path}: not a readable uncompressed tar shard ({e})") from None


def _stream_tar(path: str, extensions: Sequence[str]) -> Iterator[tuple[str, str, bytes, Any]]:
    exts = tuple(e.lower().lstrip(".") for e in extensions)
    # a local shard is read front to back through a seekable file ("r:"); a URL through the stream mode
    with _open_stream(path) as f, tarfile.open(fileobj=f, mode="r|" if _is_url(path) else "r:") as tf:
        key, data, label = None, None, None
        for m in tf:
            tf.members = []  # keep memory flat on large shards
            if not m.isfile():
                continue
            k, ext = _split_key(m.name)
            if k != key:
                if key is not None:
                    if data is None or label is None:
                        raise DataError(f"{path}#{key}: sample without a data member or a label")
                    yield key, data[0], data[1], label
                key, data, label = k, None, None
            member = tf.extractfile(m)
            raw = member.read() if member else b""
            if ext in LABEL_EXTENSIONS:
                label = _label_of(ext, raw, f"{path}#{m.name}") if label is None else label
            elif data is None and ext.rsplit(".", 1)[-1] in exts:
                data = (ext, raw)
        if key is not None:
            if data is None or label is None:
                raise DataError(f"{path}#{key}: sample without a data member or a label")
            yield key, data[0], data[1], label


class ShardIterableDataset(IterableDataset):
    """Streaming dataset over shards (local paths or URLs), sharded by (rank, worker), shuffled with a
    seeded buffer, exactly :func:`len` samples per rank and epoch (see the module docstring for padding).

    ``counts[i]`` is the number of samples of ``shards[i]`` (from ``index.json``). Call
    :meth:`set_epoch` before each epoch (DataLoader workers must not be persistent). Augmentation
    randomness is seeded per (seed, epoch, position) so it does not depend on the worker count.
    """

    def __init__(self, shards: Sequence[str], counts: Sequence[int], extensions: Sequence[str],
                 decode: DecodeFn, transform: Optional[Callable[[Any], Any]] = None,
                 label_of: Callable[[Any], int] = int, *, shuffle: bool = True, buffer: int = 1000,
                 seed: int = 0, pad: Optional[bool] = True, rank: Optional[int] = None,
                 world_size: Optional[int] = None) -> None:
        if len(shards) != len(counts):
            raise ValueError("one count per shard is needed")
        self.shards, self.counts = list(shards), [int(c) for c in counts]
        self.extensions = tuple(extensions)
        self.decode, self.transform, self.label_of = decode, transform, label_of
        self.shuffle, self.buffer, self.seed = shuffle, int(buffer), int(seed)
        self.pad = None if pad is None else bool(pad)
        self._rank, self._world = rank, world_size
        self.batch_size = 1
        self.skip_batches = 0
        self.epoch = 0

    def for_rank(self, rank: int, world_size: int, *, pad: Any = "same", shuffle: Optional[bool] = None,
                 batch_size: Optional[int] = None) -> "ShardIterableDataset":
        """A copy reading as rank ``rank`` of ``world_size`` (and with other padding, shuffling or batch size)."""
        import copy

        out = copy.copy(self)
        out._rank, out._world = int(rank), int(world_size)
        if pad != "same":
            out.pad = None if pad is None else bool(pad)
        if shuffle is not None:
            out.shuffle = bool(shuffle)
        if batch_size is not None:
            out.batch_size = int(batch_size)
        return out

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (shard order, shuffle buffer and augmentation streams)."""
        self.epoch = int(epoch)

    def _dist(self) -> tuple[int, int]:
        if self._rank is not None and self._world is not None:
            return self._rank, self._world
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))

    @property
    def total(self) -> int:
        """Samples in all shards."""
        return sum(self.counts)

    def per_rank(self, rank: int, world: int) -> int:
        """Samples rank ``rank`` of ``world`` yields per epoch."""
        a, b = self.rank_range(rank, world)
        return b - a

    def rank_range(self, rank: int, world: int) -> tuple[int, int]:
        """Positions ``[start, end)`` of the epoch's (padded) sample sequence read by ``rank``."""
        if self.pad is None:  # exact: every sample once, ranks differ by at most one (evaluation)
            return (self.total * rank) // world, (self.total * (rank + 1)) // world
        per_rank = math.ceil(self.total / world) if self.pad else self.total // world
        return rank * per_rank, (rank + 1) * per_rank

    def __len__(self) -> int:
        return self.per_rank(*self._dist())

    def shard_order(self, epoch: int) -> list[int]:
        """The shard order of ``epoch`` (the same on every rank)."""
        order = list(range(len(self.shards)))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def part_range(self, rank: int, world: int, worker: int, workers: int) -> tuple[int, int]:
        """Positions ``[start, end)`` of the epoch's (padded) sample sequence read by (rank, worker).

        The rank's range is cut between workers in whole batches of :attr:`batch_size` (the remainder,
        less than a batch, goes to the last worker), so a DataLoader with ``drop_last`` yields exactly
        ``len(dataset) // batch_size`` batches whatever the number of workers."""
        a, b = self.rank_range(rank, world)
        bs = max(1, int(self.batch_size))
        batches = (b - a) // bs
        start = a + bs * ((batches * worker) // workers)
        end = b if worker == workers - 1 else a + bs * ((batches * (worker + 1)) // workers)
        return start, end

    def iter_part(self, epoch: int, rank: int, world: int, worker: int = 0,
                  workers: int = 1) -> Iterator[tuple[int, str, Any]]:
        """``(position, shard#key, raw label)``-tagged decoded samples of one (rank, worker) part, unshuffled
        and untransformed: ``(position, name, (ext, bytes, label))``."""
        start, end = self.part_range(rank, world, worker, workers)
        n = self.total
        if n == 0 or end <= start:
            return
        order = self.shard_order(epoch)
        bounds = np.cumsum([0] + [self.counts[i] for i in order])
        # positions >= n wrap to the start of the epoch's order (padding)
        segments = [(start, min(end, n))] + ([(max(start, n) - n, end - n)] if end > n else [])
        for seg_start, seg_end in segments:
            for j, shard_id in enumerate(order):
                lo, hi = int(bounds[j]), int(bounds[j + 1])
                if hi <= seg_start or lo >= seg_end:
                    continue
                skip = max(0, seg_start - lo)
                pos = lo + skip
                for key, ext, data, label in self.part_samples(shard_id, skip):
                    if pos >= min(seg_end, hi):
                        break
                    yield pos, f"{self.shards[shard_id]}#{key}", (ext, data, label)
                    pos += 1
                if pos < min(seg_end, hi):
                    raise DataError(f"{self.shards[shard_id]}: {INDEX_NAME} says {self.counts[shard_id]} samples, "
                                    f"the shard ended after {pos - lo}")

    def part_samples(self, shard_id: int, skip: int = 0) -> Iterator[tuple[str, str, Any, Any]]:
        """``(key, ext, data, raw label)`` of shard ``shard_id`` from its sample ``skip`` on (tar members are
        read sequentially, so skipped samples are read and dropped)."""
        return itertools.islice(_stream_samples(self.shards[shard_id], self.extensions), skip, None)

    def set_skip_batches(self, batches: int) -> None:
        """Resume mid-epoch: the next iteration leaves out the first ``batches`` batches (of :attr:`batch_size`)
        the DataLoader would yield, exactly (same order, same augmentation) whatever the number of workers."""
        self.skip_batches = int(batches)

    def worker_batches(self, rank: int, world: int, workers: int) -> list[int]:
        """Full batches each DataLoader worker yields in an epoch (a worker's partial batch is dropped)."""
        bs = max(1, int(self.batch_size))
        return [(b - a) // bs for a, b in (self.part_range(rank, world, w, workers) for w in range(workers))]

    def worker_skips(self, batches: int, rank: int, world: int, workers: int) -> list[int]:
        """How many of the first ``batches`` batches each worker produced: a DataLoader takes batches from
        its workers in turn, passing over the workers that have run out."""
        left = self.worker_batches(rank, world, workers)
        skips = [0] * workers
        taken = 0
        while taken < batches and any(left):
            for w in range(workers):
                if taken < batches and left[w] > 0:
                    left[w] -= 1
                    skips[w] += 1
                    taken += 1
        return skips

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        rank, world = self._dist()
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch = self.epoch
        stream = self.iter_part(epoch, rank, world, worker, workers)
        if self.shuffle and self.buffer > 1:
            stream = _buffer_shuffle(stream, self.buffer, random.Random(
                ((self.seed * 1_000_003 + epoch) * 1_000_003 + rank) * 1_000_003 + worker))
        skip = getattr(self, "skip_batches", 0)
        if skip:  # the same sequence, the batches already trained on left out undecoded
            stream = itertools.islice(stream, self.worker_skips(skip, rank, world, workers)[worker]
                                      * max(1, int(self.batch_size)), None)
        for pos, name, (ext, data, label) in stream:
            yield self._item(epoch, pos, name, ext, data, label)

    def _item(self, epoch: int, pos: int, name: str, ext: str, data: bytes, label: Any) -> tuple[Any, int]:
        seed = (((self.seed * 1_000_003) + epoch) * 1_000_003 + pos) % (2**31 - 1)
        py, npst, tst = random.getstate(), np.random.get_state(), torch.get_rng_state()
        try:
            random.seed(seed)
            np.random.seed(seed)
            torch.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed also queues CUDA seeding (~0.3 ms)
            x = self.decode(data, ext)
            if self.transform is not None:
                x = self.transform(x)
            return x, self.label_of(label)
        except (BadFileError, DataError):
            raise
        except Exception as e:
            raise BadFileError(name, (str(e).splitlines() or [type(e).__name__])[0]) from e
        finally:
            random.setstate(py)
            np.random.set_state(npst)
            torch.set_rng_state(tst)


def _buffer_shuffle(stream: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    buf: list[Any] = []
    for item in stream:
        if len(buf) < size:
            buf.append(item)
            continue
        j = rng.randrange(len(buf))
        buf[j], item = item, buf[j]
        yield item
    rng.shuffle(buf)
    yield from buf


# ----------------------------------------------------------------------------- writing
class ShardWriter:
    """Write samples into ``{prefix}-{n:06d}.tar`` shards of at most ``max_bytes`` / ``max_count``."""

    def __init__(self, out_dir: str | Path, prefix: str, max_bytes: int = 1 << 30, max_count: int = 100_000) -> None:
        self.out_dir = Path(out_dir)
        self.prefix = prefix
        self.max_bytes, self.max_count = int(max_bytes), int(max_count)
        self.entries: list[dict[str, Any]] = []
        self._tar: Optional[tarfile.TarFile] = None
        self._count = 0
        self._bytes = 0
        self._classes: Counter = Counter()

    def _open(self) -> None:
        name = f"{self.prefix}-{len(self.entries):06d}.tar"
        self._tmp = self.out_dir / (name + ".tmp")
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.USTAR_FORMAT)
        self.entries.append({"name": name, "split": self.prefix, "count": 0, "bytes": 0, "classes": {}})
        self._count, self._bytes, self._classes = 0, 0, Counter()

    def _close(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        final = self.out_dir / self.entries[-1]["name"]
        os.replace(self._tmp, final)
        self.entries[-1].update(count=self._count, bytes=final.stat().st_size, classes=dict(sorted(self._classes.items())))
        self._tar = None

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        assert self._tar is not None
        self._tar.addfile(info, io.BytesIO(data))

    def write(self, key: str, ext: str, data: bytes, label: int, label_name: str) -> None:
        """Add one sample (``key.ext`` with ``data``, ``key.cls`` with ``label``)."""
        size = len(data) + 3 * 512
        if self._tar is not None and (self._count >= self.max_count or
                                      (self._count > 0 and self._bytes + size > self.max_bytes)):
            self._close()
        if self._tar is None:
            self._open()
        self._add(f"{key}.{ext.lstrip('.').lower()}", data)
        self._add(f"{key}.cls", str(int(label)).encode())
        self._count += 1
        self._bytes += size
        self._classes[label_name] += 1

    def close(self) -> list[dict[str, Any]]:
        """Finish the last shard; the index entries of every shard written."""
        self._close()
        return self.entries


def file_samples(splits: Splits) -> dict[str, list[ShardSample]]:
    """The files of ``splits`` as shard samples: each file's bytes as they are, under its own extension."""
    if splits.multi_label:
        raise DataError("multi-label data cannot be written as shards yet (one label per sample)")
    return {name: [(Path(path).suffix.lstrip("."), functools.partial(Path(path).read_bytes), labels[0])
                   for path, labels in items] for name, items in splits.named()}


def write_shards(splits: Splits | dict[str, list[ShardSample]], out_dir: str | Path, *, max_bytes: int = 1 << 30,
                 max_count: int = 100_000, seed: int = 0, modality: str = "image",
                 classes: Optional[Sequence[str]] = None, sources: Optional[dict[str, str]] = None,
                 progress: Optional[Callable[[str, list[dict[str, Any]]], None]] = None) -> dict[str, Any]:
    """Write every split as shards under ``out_dir`` plus ``index.json``; returns the index.

    ``splits`` is a :class:`~.base.Splits` (its files are written as they are) or ``{split: [(ext, bytes
    thunk, label name)]}`` with ``classes`` (a modality's own samples, :class:`~.base.ShardCodec`).
    Training samples are shuffled (seeded) before writing so each shard mixes the classes (a streaming
    shuffle buffer only mixes nearby samples); other splits keep their order. ``progress(split, entries)``
    is called after each split.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(splits, Splits):
        classes, sources = list(splits.classes), dict(splits.sources)
        samples = file_samples(splits)
    else:
        samples = splits
        if classes is None:
            raise ValueError("write_shards needs the class names with a samples dict")
    index = {c: i for i, c in enumerate(classes)}
    entries: list[dict[str, Any]] = []
    for name, items in samples.items():
        items = list(items)
        if name == "train":
            random.Random(seed).shuffle(items)
        writer = ShardWriter(out, name, max_bytes, max_count)
        for i, (ext, read, label) in enumerate(items):
            writer.write(f"{i:08d}", ext, read(), index[label], label)
        written = writer.close()
        entries += written
        if progress is not None:
            progress(name, written)
    obj = {"format": INDEX_FORMAT, "version": 1, "modality": modality, "classes": list(classes),
           "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "sources": dict(sources or {}), "shards": entries}
    tmp = out / (INDEX_NAME + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, out / INDEX_NAME)
    return obj


# ----------------------------------------------------------------------------- the modality hook
def _role(name: str) -> str:
    return "training" if name == "train" else "validation (selection)" if name == "val" else "test (final, once)"


def _sources(index: ShardIndex) -> dict[str, str]:
    return {name: f"{len(paths)} shard(s) {os.path.basename(paths[0])}"
                  + (f" .. {os.path.basename(paths[-1])}" if len(paths) > 1 else "")
            for name, paths in index.shards.items()}


def map_splits(args: argparse.Namespace, keys: Sequence[str], decode: DecodeFn
               ) -> tuple[dict[str, ShardDataset], list[str], list[str]]:
    """The map-style splits of the shards named by ``args.data``: ``({split: ShardDataset}, classes, plan)``.

    Items are ``(decode(bytes, ext), class index)`` (no transform). Without validation shards
    ``args.val_fraction`` of the training samples is carved out per class (seed ``args.seed``).
    """
    data = stream_spec(args.data)[0]
    seed = int(getattr(args, "seed", 0) or 0)
    index = load_shard_index(data)
    if "train" not in index.shards:
        raise DataError(f"{data}: no training shards (train-*.tar); found splits {', '.join(index.shards)}")
    sets, classes = build_map_datasets(index, keys, decode)
    sources = _sources(index)
    train_all = sets["train"]
    if "val" not in sets:
        frac = float(getattr(args, "val_fraction", None) or 0.1)
        items = [(Path(str(i)), (str(int(lab)),)) for i, lab in enumerate(train_all.labels)]
        kept, held = carve_val(items, frac, seed)
        sets["train"] = train_all.subset([int(str(p)) for p, _ in kept])
        sets["val"] = train_all.subset([int(str(p)) for p, _ in held])
        sources["val"] = f"{frac:g} of the training samples per class (seed {seed})"
        sources["train"] += " minus validation"
    named = [("train", sets["train"]), ("val", sets["val"]),
             *[(n, d) for n, d in sets.items() if n not in ("train", "val")]]
    for name, ds in named:
        if len(ds) == 0:
            raise DataError(f"{data}: the {name} split is empty")
    present = sorted({int(x) for x in sets["train"].labels})
    if len(present) < 2:
        raise DataError(f"{data}: the training data has {len(present)} class; classification needs at least 2")
    plan = [f"data layout: shards ({INDEX_NAME if index.counts else 'pattern'}; map-style, random access)"]
    for name, ds in named:
        plan.append(f"  {name:<12} {len(ds):>7} samples {_role(name):<24} from {sources.get(name, '?')}")
    if len(named) == 2:
        plan.append("  (no test split: only validation numbers will be reported)")
    counts = Counter(int(x) for x in sets["train"].labels)
    plan.append("  classes: " + ", ".join(f"{classes[c]} ({counts[c]})" for c in range(min(12, len(classes))))
                + (f", ... ({len(classes)} in all)" if len(classes) > 12 else ""))
    return dict(named), classes, plan


def stream_splits(args: argparse.Namespace, keys: Sequence[str], decode: DecodeFn,
                  transform: Callable[[bool], Optional[Callable[[Any], Any]]], *, buffer: int = 1000
                  ) -> tuple[dict[str, "ShardIterableDataset"], list[str], list[str]]:
    """Streaming splits of the shards named by ``args.data``: ``({split: ShardIterableDataset}, classes, plan)``.

    Counts and classes come from ``index.json`` (no shard is scanned). Training is shuffled (shard order
    and a ``buffer``-sample buffer, seed ``args.seed``) and padded to ``ceil(N / world)`` per rank;
    validation and test splits are read in order, each sample once over all ranks. ``transform(train)``
    gives the per-sample transform of each kind of split.
    """
    data = stream_spec(args.data)[0]
    seed = int(getattr(args, "seed", 0) or 0)
    index = load_shard_index(data)
    for split in ("train", "val"):
        if split not in index.shards:
            raise DataError(f"{data}: streaming needs {split}-*.tar shards (validation cannot be carved from a "
                            f"stream: write it with `unireplknet shard`); found splits {', '.join(index.shards)}")
    missing = [p for paths in index.shards.values() for p in paths if p not in index.counts]
    if missing or not index.classes:
        raise DataError(f"{data}: streaming needs the sample counts and class names of {INDEX_NAME} "
                        f"(written by `unireplknet shard`); {os.path.basename(missing[0]) if missing else 'classes'} "
                        f"not listed")
    classes, to_index = _class_index([], list(index.classes), index.root)
    sources = _sources(index)
    out: dict[str, ShardIterableDataset] = {}
    for split, paths in [("train", index.shards["train"]), ("val", index.shards["val"]),
                         *[(n, p) for n, p in index.shards.items() if n not in ("train", "val")]]:
        train = split == "train"
        out[split] = ShardIterableDataset(paths, [index.counts[p] for p in paths], keys, decode, transform(train),
                                          to_index, shuffle=train, buffer=buffer if train else 0, seed=seed,
                                          pad=True if train else None)
    plan = [f"data layout: shards ({INDEX_NAME}; streaming, sequential reads, shuffle buffer {buffer})"]
    for name, ds in out.items():
        plan.append(f"  {name:<12} {ds.total:>7} samples {_role(name):<24} from {sources.get(name, '?')}")
    if len(out) == 2:
        plan.append("  (no test split: only validation numbers will be reported)")
    plan.append("  classes: " + ", ".join(classes[:12]) + (f", ... ({len(classes)} in all)" if len(classes) > 12 else ""))
    return out, classes, plan


def codec_task_data(args: argparse.Namespace, codec: Any, modality: str = "") -> Optional[TaskData]:
    """A :class:`TaskData` over the shards named by ``args.data`` read through a modality's
    :class:`~unireplknet.modalities.base.ShardCodec`, or ``None`` when ``args.data`` does not name shards.

    Map-style (:class:`ShardDataset`, the default for local shards): the engine's sampler shuffles, shards
    over ranks and resumes mid-epoch exactly as for files. ``--data stream:SHARDS`` (and shards given by
    URL) read with :class:`ShardIterableDataset` instead (:func:`stream_splits`).
    """
    data = getattr(args, "data", None)
    if not is_shard_spec(data):
        return None
    _, streaming = stream_spec(data)
    decode = codec.decoder(args)
    fields = dict(codec.fields(args))
    meta = dict(fields.pop("meta", {}) or {})
    if streaming:
        if not codec.stream:
            raise DataError(f"{modality or 'this modality'}: shards cannot be streamed (its datasets need every "
                            f"sample at once); drop the stream: prefix to read them map-style")
        sets, classes, plan = stream_splits(args, codec.keys, decode, lambda train: codec.transform(args, train))
        task = TaskData(train=sets["train"], val=sets["val"],
                        tests={n: d for n, d in sets.items() if n not in ("train", "val")},
                        num_classes=len(classes), class_names=classes, **fields)
        fmt = "shards (streaming)"
    else:
        raw, classes, plan = map_splits(args, codec.keys, decode)
        task = codec.map_task(args, raw, classes, fields)
        fmt = "shards"
    task.meta = {**meta, **task.meta, "source": str(data), "format": fmt, "plan": plan + list(task.meta.get("plan_extra", []))}
    return task


def task_data_from_shards(args: argparse.Namespace, decode_fn: DecodeFn, train_tf: Any, eval_tf: Any, *,
                          extensions: Sequence[str], in_chans: int, input_size: tuple[int, int],
                          **task_kw: Any) -> Optional[TaskData]:
    """A :class:`TaskData` over the shards named by ``args.data`` (decoded by ``decode_fn``, transformed by
    ``train_tf``/``eval_tf``), or ``None`` when it does not name shards (see :func:`codec_task_data`)."""
    from .base import ShardCodec

    codec = ShardCodec(keys=tuple(e.lstrip(".").lower() for e in extensions), decoder=lambda _a: decode_fn,
                       transform=lambda _a, train: train_tf if train else eval_tf,
                       fields=lambda _a: {"in_chans": in_chans, "input_size": input_size, **task_kw})
    return codec_task_data(args, codec)


# ----------------------------------------------------------------------------- auto on a sample
def training_members(data: str, keys: Sequence[str], n: int, seed: int = 0) -> list[tuple[str, str, bytes, Any]]:
    """Up to ``n`` ``(key, ext, data bytes, raw label)`` of the training shards named by ``data``, read
    sequentially from a seeded choice of shards (the writer shuffles training samples, so the first
    samples of a few shards are a fair sample). Nothing but the training split is read."""
    index = load_shard_index(stream_spec(data)[0])
    paths = list(index.shards.get("train", []))
    random.Random(seed).shuffle(paths)
    out: list[tuple[str, str, bytes, Any]] = []
    per_shard = max(1, math.ceil(n / max(1, min(len(paths), 8))))
    for path in paths:
        for i, sample in enumerate(_stream_samples(path, keys)):
            if i >= per_shard or len(out) >= n:
                break
            out.append(sample)
        if len(out) >= n:
            break
    return out


def auto_on_sample(auto: Callable[[Any], dict], cfg: Any, codec: Any = None, n: int = 200) -> Optional[dict]:
    """Run a modality's ``auto`` on up to ``n`` training samples of shards (or of a Hugging Face data set)
    written to a temporary ``train/<class>/`` folder, so that its rules read files as usual. ``None`` when
    ``cfg['data']`` is neither (the caller then runs ``auto`` itself); ``{}`` when nothing could be sampled."""
    import tempfile

    data = cfg.get("data") if hasattr(cfg, "get") else getattr(cfg, "data", None)
    if data is None:
        return None
    seed = int((cfg.get("seed") if hasattr(cfg, "get") else None) or 0)
    import importlib

    # no more samples than the rules open themselves (``SAMPLE`` of their module: 24 videos, 200 images)
    n = min(n, int(getattr(importlib.import_module(getattr(auto, "__module__", __name__)), "SAMPLE", n)))
    from .hf import is_hf_spec, sample_training_images

    if is_shard_spec(data):
        if codec is None:
            return {}
        samples = [(key, ext, raw, label) for key, ext, raw, label in training_members(str(data), codec.keys, n, seed)]
        index = load_shard_index(stream_spec(data)[0])
        names = list(index.classes)
        label_name = lambda lab: names[lab] if isinstance(lab, int) and 0 <= lab < len(names) else str(lab)  # noqa: E731
    elif is_hf_spec(data):
        samples = sample_training_images(str(data), n, seed, codec)
        label_name = str
    else:
        return None
    if not samples:
        return {}
    with tempfile.TemporaryDirectory(prefix="unireplknet-auto-") as tmp:
        for i, (key, ext, raw, label) in enumerate(samples):
            folder = Path(tmp) / "train" / re.sub(r"[^\w.-]", "_", label_name(label))
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:06d}.{ext.rsplit('.', 1)[-1]}").write_bytes(raw)
        local = dict(cfg) if hasattr(cfg, "items") else dict(vars(cfg))
        local["data"] = tmp
        out = auto(local)
    return {k: (v, f"{why} (on {len(samples)} sampled training samples of {data})") for k, (v, why) in out.items()}


def image_task_data(args: argparse.Namespace, train_tf: Any, eval_tf: Any) -> Optional[TaskData]:
    """:func:`task_data_from_shards` for images (PIL decode with ``args.in_chans``)."""
    from .image.transforms import IMAGE_EXTENSIONS

    in_chans, size = int(args.in_chans), int(args.input_size)
    return task_data_from_shards(args, functools.partial(decode_image, in_chans=in_chans), train_tf, eval_tf,
                                 extensions=IMAGE_EXTENSIONS, in_chans=in_chans, input_size=(size, size))
