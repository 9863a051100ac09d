"""Hugging Face ``datasets`` as training data: ``--data hf:NAME[:CONFIG]`` or a ``save_to_disk`` folder.

* ``hf:NAME[:CONFIG]`` loads with ``datasets.load_dataset`` (from the local cache when offline: a
  data set that is neither reachable nor cached is a one-line error).
* A folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (it holds
  ``dataset_dict.json``, ``state.json`` or ``dataset_info.json``) loads with ``datasets.load_from_disk``.

Columns: the input is ``image`` or ``img`` (a ``datasets.Image`` feature, or a ``{"bytes": ...}``
dict), the target ``label`` (or ``labels``/``fine_label``); class names come from a ``ClassLabel``
feature, else from the sorted label values. Splits are named by the split rules of
:mod:`unireplknet.modalities.base` (``train``, ``validation``/``val*``, ``test*``); other splits
are ignored with a warning, and a test split without labels (all ``-1``, as on many hub data sets)
is dropped with a warning. Without validation, ``val_fraction`` of ``train`` is carved out per class.
The data are read map-style (Arrow, memory-mapped), so the engine's sampler shuffles, shards and
resumes mid-epoch exactly as for files. Needs ``pip install datasets``.

Other modalities read a Hugging Face data set through their :class:`~.base.ShardCodec`
(:func:`codec_hf_task_data`): the codec's ``hf_columns`` name the data column (``audio``; ``video``;
``points``/``point_cloud``; ``series``/``values``), each value becomes ``(bytes, ext)`` by
:func:`value_bytes` (a ``{"bytes", "path"}`` dict as ``Audio``/``Video(decode=False)`` store it, raw bytes,
a path, an ``{"array", "sampling_rate"}`` dict as WAV, a nested list/array as ``.npy``) and is decoded and
transformed exactly as a shard member of that modality. Decoding features are read with ``decode=False``
(no torchcodec needed). ``stream:`` works for every codec that streams (not series).
"""
from __future__ import annotations

import argparse
import io
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from torch.utils.data import Dataset

from ..errors import BadFileError, DataError, MissingExtraError
from .base import VAL_NAMES, TaskData, carve_val, split_kind
from .shards import ShardIterableDataset

__all__ = ["is_hf_spec", "load_hf_splits", "HFImageDataset", "task_data_from_hf", "image_task_data",
           "sample_training_images", "stream_task_data", "HFStreamDataset", "value_bytes", "CodecValueDecode",
           "HFRowDataset", "codec_hf_task_data"]

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image", "img")
LABEL_COLUMNS = ("label", "labels", "fine_label")
_DISK_MARKERS = ("dataset_dict.json", "state.json", "dataset_info.json")


def is_hf_spec(data: Any) -> bool:
    """Whether ``--data`` names a Hugging Face data set (``hf:NAME`` or a ``save_to_disk`` folder)."""
    if data is None:
        return False
    s = _unstream(str(data))[0]
    if s.startswith("hf:"):
        return True
    p = Path(s)
    return p.is_dir() and any((p / m).is_file() for m in _DISK_MARKERS)


def _unstream(data: str) -> tuple[str, bool]:
    """``(spec, streaming)`` of ``--data`` (``stream:hf:NAME`` / ``stream:DIR`` ask for streaming)."""
    return (data[len("stream:"):], True) if data.startswith("stream:") else (data, False)


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise MissingExtraError("Hugging Face data needs the datasets package: pip install datasets") from None
    return datasets


def load_hf_splits(data: str) -> dict[str, Any]:
    """``{split name: datasets.Dataset}`` of ``data`` (a single saved ``Dataset`` is the ``train`` split)."""
    datasets = _datasets()
    s = _unstream(str(data))[0]
    if s.startswith("hf:"):
        name, _, config = s[3:].partition(":")
        if not name:
            raise DataError("--data hf:NAME needs a data set name (hf:NAME or hf:NAME:CONFIG)")
        try:
            obj = datasets.load_dataset(name, config or None)
        except Exception as e:  # offline and not cached, unknown name, gated, ...
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DataError(f"hf:{s[3:]}: cannot load the Hugging Face data set (not cached and not reachable, or "
                            f"unknown): {type(e).__name__}: {first[:200]}") from None
    else:
        try:
            obj = datasets.load_from_disk(s)
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DataError(f"{s}: not a readable save_to_disk folder: {first[:200]}") from None
    if isinstance(obj, datasets.Dataset):
        return {"train": obj}
    return dict(obj)


def _column(ds: Any, names: Sequence[str], what: str, where: str) -> str:
    for n in names:
        if n in ds.column_names:
            return n
    raise DataError(f"{where}: no {what} column ({' or '.join(names)}); columns: {', '.join(ds.column_names)}")


def _to_pil(value: Any, in_chans: int) -> Any:
    from PIL import Image

    if isinstance(value, dict):
        if value.get("bytes"):
            value = Image.open(io.BytesIO(value["bytes"]))
        elif value.get("path"):
            value = Image.open(value["path"])
    elif isinstance(value, (bytes, bytearray)):
        value = Image.open(io.BytesIO(value))
    elif not isinstance(value, Image.Image):
        import numpy as np

        value = Image.fromarray(np.asarray(value, dtype=np.uint8))
    return value.convert("RGB" if in_chans == 3 else "L")


class HFImageDataset(Dataset):
    """Rows ``indices`` of a ``datasets.Dataset``: ``(transform(image), class index)``."""

    def __init__(self, ds: Any, indices: Sequence[int], image_col: str, labels: Sequence[int],
                 classes: Sequence[str], transform: Any, in_chans: int, name: str) -> None:
        self.ds = ds
        self.indices = list(indices)
        self.image_col = image_col
        self.labels = list(labels)
        self.classes = list(classes)
        self.transform = transform
        self.in_chans = in_chans
        self.name = name

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = self.indices[index]
        try:
            img = _to_pil(self.ds[row][self.image_col], self.in_chans)
            x = self.transform(img) if self.transform is not None else img
        except Exception as e:
            raise BadFileError(f"{self.name}[{row}]", (str(e).splitlines() or [type(e).__name__])[0]) from e
        return x, int(self.labels[index])


def _labels(ds: Any, col: str) -> tuple[list[Any], Optional[list[str]]]:
    feature = ds.features.get(col)
    names = list(feature.names) if hasattr(feature, "names") else None
    return list(ds[col]), names


def _map_sets(args: argparse.Namespace, columns: Sequence[str], what: str
              ) -> tuple[dict[str, tuple[Any, list[int], list[int], str]], list[str], dict[str, str], str]:
    """The map-style splits of the Hugging Face data set named by ``args.data``: ``({role: (datasets.Dataset,
    rows, class indices, name)}, class names, sources, data column)``; roles ``train``, ``val`` (carved from
    ``train`` per class when the data set has none) and the test splits' names."""
    data = getattr(args, "data", None)
    parts = load_hf_splits(str(data))
    seed = int(getattr(args, "seed", 0) or 0)
    roles = _roles(list(parts), str(data))
    if "train" not in roles.values():
        raise DataError(f"{data}: no train split (splits: {', '.join(parts)})")
    train_name = next(n for n, r in roles.items() if r == "train")
    data_col = _column(parts[train_name], columns, what, str(data))
    label_col = _column(parts[train_name], LABEL_COLUMNS, "label", str(data))
    raw_train, names = _labels(parts[train_name], label_col)
    if names is None:
        values = sorted({v for v in raw_train}, key=lambda v: (str(type(v)), v))
        names = [str(v) for v in values]
        lookup = {v: i for i, v in enumerate(values)}
        to_index: Callable[[Any], int] = lambda v: lookup.get(v, -1)  # noqa: E731
    else:
        to_index = int
    sets: dict[str, tuple[Any, list[int], list[int], str]] = {}
    for name, role in roles.items():
        ds = parts[name]
        if label_col not in ds.column_names or data_col not in ds.column_names:
            logger.warning("%s: split %r lacks the %s/%s columns: ignored", data, name, data_col, label_col)
            continue
        labels = [to_index(v) for v in (raw_train if name == train_name else ds[label_col])]
        keep = [i for i, lab in enumerate(labels) if 0 <= lab < len(names)]
        if role != "train" and not keep:
            logger.warning("%s: split %r has no labels (all -1 or unknown): ignored", data, name)
            continue
        if len(keep) < len(labels):
            if role == "train":
                raise DataError(f"{data}: {len(labels) - len(keep)} training rows have no valid label")
            logger.warning("%s: %d row(s) of split %r have a label training never saw: skipped",
                           data, len(labels) - len(keep), name)
        sets[role] = (ds, keep, [labels[i] for i in keep], f"{data}:{train_name if role == 'train' else role}")
    sources = {r: f"{data} split {n!r}" for n, r in roles.items()}
    if "val" not in sets:
        tr_ds, tr_idx, tr_lab, tr_name = sets["train"]
        frac = float(getattr(args, "val_fraction", None) or 0.1)
        items = [(Path(str(i)), (str(lab),)) for i, lab in zip(tr_idx, tr_lab)]
        kept, held = carve_val(items, frac, seed)
        pick = lambda its: ([int(str(p)) for p, _ in its], [int(lab[0]) for _, lab in its])  # noqa: E731
        (ki, kl), (hi, hl) = pick(kept), pick(held)
        sets["train"] = (tr_ds, ki, kl, tr_name)
        sets["val"] = (tr_ds, hi, hl, tr_name)
        sources["val"] = f"{frac:g} of the training rows per class (seed {seed})"
        sources["train"] = sources["train"] + " minus validation"
    if len(set(sets["train"][2])) < 2:
        raise DataError(f"{data}: the training data has fewer than 2 classes")
    order = ["train", "val", *[r for r in sets if r not in ("train", "val")]]
    return {r: sets[r] for r in order}, names, sources, data_col


def _map_plan(sets: dict[str, Any], names: Sequence[str], sources: dict[str, str], train_labels: Sequence[int]
              ) -> list[str]:
    """The plan lines of map-style splits ``{role: dataset}``."""
    plan = ["data layout: Hugging Face datasets (map-style, Arrow)"]
    for name, ds in sets.items():
        role = "training" if name == "train" else "validation (selection)" if name == "val" else "test (final, once)"
        plan.append(f"  {name:<12} {len(ds):>7} rows    {role:<24} from {sources.get(name, '?')}")
    if len(sets) == 2:
        plan.append("  (no test split: only validation numbers will be reported)")
    counts = Counter(train_labels)
    plan.append("  classes: " + ", ".join(f"{names[c]} ({counts[c]})" for c in range(min(12, len(names))))
                + (f", ... ({len(names)} in all)" if len(names) > 12 else ""))
    return plan


def task_data_from_hf(args: argparse.Namespace, train_tf: Any, eval_tf: Any, *, in_chans: int,
                      input_size: tuple[int, int]) -> Optional[TaskData]:
    """A :class:`TaskData` over the Hugging Face image data set named by ``args.data``, or ``None``."""
    data = getattr(args, "data", None)
    if not is_hf_spec(data):
        return None
    if _unstream(str(data))[1]:
        return stream_task_data(args, train_tf, eval_tf, in_chans=in_chans, input_size=input_size)
    raw, names, sources, image_col = _map_sets(args, IMAGE_COLUMNS, "image")
    sets = {r: HFImageDataset(ds, idx, image_col, lab, names, train_tf if r == "train" else eval_tf, in_chans, name)
            for r, (ds, idx, lab, name) in raw.items()}
    plan = _map_plan(sets, names, sources, sets["train"].labels)
    return TaskData(train=sets["train"], val=sets["val"], tests={r: d for r, d in sets.items() if r not in ("train", "val")},
                    num_classes=len(names), class_names=names, in_chans=in_chans, input_size=input_size,
                    meta={"source": str(data), "format": "huggingface", "plan": plan})


# ----------------------------------------------------------------------------- streaming
def _roles(names: Sequence[str], data: str) -> dict[str, str]:
    """Split name → role (``train``, ``val`` or the split's own name, evaluated once at the end) by the split
    rules, for map-style and streamed data alike: the first ``val*`` split (or one named exactly
    ``val``/``valid``/``validation``) validates, a further one is evaluated like a test split; others are ignored."""
    roles: dict[str, str] = {}
    for name in names:
        kind = split_kind(name)
        if kind is None:
            logger.warning("%s: split %r is not train, val* or test*: ignored", data, name)
            continue
        first_val = kind == "val" and (name.lower() in VAL_NAMES or "val" not in roles.values())
        role = "train" if kind == "train" else "val" if first_val else name
        if role in roles.values() and role in ("train", "val"):
            raise DataError(f"{data}: several {role} splits ({', '.join(names)}); keep one")
        roles[name] = role
    return roles


class HFStreamDataset(ShardIterableDataset):
    """A Hugging Face split read as a stream: the rows of a ``save_to_disk`` split in contiguous parts
    (each part a "shard" with an exact count), or a hub split loaded with ``streaming=True`` (one part,
    its count from the data set's info). Same rank/worker cutting, padding, shuffle buffer and seeding
    as :class:`~unireplknet.modalities.shards.ShardIterableDataset`."""

    def __init__(self, spec: str, split: str, ranges: Sequence[tuple[int, int]], image_col: str, label_col: str,
                 label_of: Callable[[Any], int], in_chans: int, transform: Any,
                 value_decode: Optional[Callable[[Any, str], Any]] = None, **kw: Any) -> None:
        names = [f"{spec}:{split}[{a}:{b}]" for a, b in ranges]
        super().__init__(names, [b - a for a, b in ranges], (), value_decode or self._decode, transform, label_of,
                         **kw)
        self.spec, self.split, self.ranges = spec, split, list(ranges)
        self.image_col, self.label_col, self.in_chans = image_col, label_col, in_chans
        self._hf: Any = None

    def _decode(self, value: Any, ext: str) -> Any:
        return _to_pil(value, self.in_chans)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_hf"] = None  # each worker opens the data set itself
        return state

    def _open(self) -> Any:
        if self._hf is None:
            if self.spec.startswith("hf:"):
                name, _, config = self.spec[3:].partition(":")
                self._hf = _datasets().load_dataset(name, config or None, split=self.split, streaming=True)
            else:
                self._hf = load_hf_splits(self.spec)[self.split]
            if self.decode != self._decode:  # a codec reads the stored bytes: no feature decoding
                self._hf = _undecoded(self._hf, self.image_col)
        return self._hf

    def part_samples(self, shard_id: int, skip: int = 0) -> Any:
        """``(row, "", image value, label value)`` of part ``shard_id`` from its row ``skip`` on."""
        ds = self._open()
        a, b = self.ranges[shard_id]
        if self.spec.startswith("hf:"):  # one part: the whole hub stream
            for i, row in enumerate(ds.skip(skip) if skip else ds, start=skip):
                yield str(i), "", row[self.image_col], row[self.label_col]
            return
        for r in range(a + skip, b):
            row = ds[r]
            yield str(r), "", row[self.image_col], row[self.label_col]


def _split_counts(spec: str, names: Sequence[str]) -> tuple[dict[str, int], Any]:
    """Rows per split and the features: from the saved data set, or from a hub data set's info (no download)."""
    datasets = _datasets()
    if spec.startswith("hf:"):
        name, _, config = spec[3:].partition(":")
        try:
            builder = datasets.load_dataset_builder(name, config or None)
        except Exception as e:  # offline and not cached, unknown name, ...
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DataError(f"{spec}: cannot load the Hugging Face data set info: {first[:200]}") from None
        splits = builder.info.splits or {}
        counts = {n: int(splits[n].num_examples) for n in names if n in splits and splits[n].num_examples}
        return counts, builder.info.features
    parts = load_hf_splits(spec)
    return {n: len(ds) for n, ds in parts.items()}, next(iter(parts.values())).features


def stream_task_data(args: argparse.Namespace, train_tf: Any, eval_tf: Any, *, in_chans: int,
                     input_size: tuple[int, int], rows_per_part: int = 2000, buffer: int = 1000,
                     columns: Sequence[str] = IMAGE_COLUMNS, what: str = "image",
                     value_decode: Optional[Callable[[Any, str], Any]] = None, **task_kw: Any) -> TaskData:
    """A :class:`TaskData` whose splits stream from the Hugging Face data set named by ``args.data``
    (``stream:hf:NAME[:CONFIG]`` or ``stream:DIR``), read by the runner's streaming loaders.

    Counts come from the saved data set or the hub data set's info, class names from a ``ClassLabel``
    feature (no scan); training is shuffled (part order and a ``buffer``-row buffer) and padded to
    ``ceil(N / world)`` per rank, validation and tests are read once over all ranks. Validation must be
    a split of its own (a stream cannot be carved per class). ``columns``/``what``/``value_decode``: the data
    column and its decoder for other modalities (:func:`codec_hf_task_data`); ``task_kw``: more TaskData fields.
    """
    data = str(args.data)
    spec = _unstream(data)[0]
    seed = int(getattr(args, "seed", 0) or 0)
    if spec.startswith("hf:"):
        name, _, config = spec[3:].partition(":")
        try:
            names = list(_datasets().get_dataset_split_names(name, config or None))
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DataError(f"{spec}: cannot list the splits of the Hugging Face data set: {first[:200]}") from None
    else:
        names = list(load_hf_splits(spec))
    roles = _roles(names, data)
    for need in ("train", "val"):
        if need not in roles.values():
            raise DataError(f"{data}: streaming needs a {need} split of its own (splits: {', '.join(names)}); "
                            f"drop the stream: prefix to carve validation from training")
    counts, features = _split_counts(spec, list(roles))
    image_col = next((c for c in columns if c in features), None)
    label_col = next((c for c in LABEL_COLUMNS if c in features), None)
    if image_col is None or label_col is None:
        raise DataError(f"{data}: needs an {what} ({'/'.join(columns)}) and a label ({'/'.join(LABEL_COLUMNS)}) "
                        f"column; columns: {', '.join(features)}")
    feature = features[label_col]
    if not hasattr(feature, "names"):
        raise DataError(f"{data}: streaming needs a ClassLabel label column (its class names); "
                        f"drop the stream: prefix to read the label values")
    classes = list(feature.names)

    def label_of(value: Any) -> int:
        if not isinstance(value, int) or not 0 <= value < len(classes):
            raise DataError(f"{data}: label {value!r} is not a class index of the ClassLabel feature")
        return value

    cls = HFStreamDataset
    sets: dict[str, Any] = {}
    for split, role in roles.items():
        if split not in counts:
            raise DataError(f"{data}: the number of rows of split {split!r} is not known: cannot stream it exactly")
        n = counts[split]
        k = 1 if spec.startswith("hf:") else max(1, -(-n // rows_per_part))
        ranges = [((n * i) // k, (n * (i + 1)) // k) for i in range(k)]
        train = role == "train"
        sets[role] = cls(spec, split, ranges, image_col, label_col, label_of, in_chans,
                         train_tf if train else eval_tf, value_decode=value_decode, shuffle=train, buffer=buffer if train else 0, seed=seed,
                         pad=True if train else None)
    plan = [f"data layout: Hugging Face datasets (streaming, shuffle buffer {buffer})"]
    for role, ds in [("train", sets["train"]), ("val", sets["val"]),
                     *[(r, d) for r, d in sets.items() if r not in ("train", "val")]]:
        kind = "training" if role == "train" else "validation (selection)" if role == "val" else "test (final, once)"
        split = next(n for n, r in roles.items() if r == role)
        plan.append(f"  {role:<12} {ds.total:>7} rows    {kind:<24} from {spec} split {split!r}")
    if len(sets) == 2:
        plan.append("  (no test split: only validation numbers will be reported)")
    plan.append("  classes: " + ", ".join(classes[:12]) + (f", ... ({len(classes)} in all)" if len(classes) > 12 else ""))
    extra = dict(task_kw)
    meta = dict(extra.pop("meta", None) or {})
    return TaskData(train=sets["train"], val=sets["val"],
                    tests={r: d for r, d in sets.items() if r not in ("train", "val")}, num_classes=len(classes),
                    class_names=classes, in_chans=in_chans, input_size=input_size, **extra,
                    meta={**meta, "source": data, "format": "huggingface (streaming)", "plan": plan})


# ----------------------------------------------------------------------------- other modalities: through the codec
def value_bytes(value: Any, default_ext: str) -> tuple[bytes, str]:
    """``(bytes, extension)`` of one data-column value, for a :class:`~.base.ShardCodec` decoder.

    * ``{"bytes": ..., "path": ...}`` (an ``Audio``/``Video``/``Image`` feature read with ``decode=False``):
      the bytes, the extension of ``path`` (else ``default_ext``); without bytes the file at ``path`` is read;
    * ``{"array": ..., "sampling_rate": ...}`` (a decoded ``Audio`` value): a float32 WAV file in memory;
    * raw ``bytes``: as they are, under ``default_ext``; a ``str``: the file it names;
    * anything else (a nested list, an array: a point cloud, a series): a float32 ``.npy`` file in memory.
    """
    import numpy as np

    def ext_of(path: Any) -> str:
        return (Path(str(path)).suffix.lstrip(".").lower() if path else "") or default_ext

    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"]), ext_of(value.get("path"))
        if value.get("path"):
            return Path(value["path"]).read_bytes(), ext_of(value["path"])
        if value.get("array") is not None and value.get("sampling_rate"):
            return _wav_bytes(np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"])), "wav"
        raise ValueError(f"a value with keys {sorted(value)} has neither bytes, a path nor an array")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), default_ext
    if isinstance(value, str):
        return Path(value).read_bytes(), ext_of(value)
    if value is None:
        raise ValueError("the data column is empty (None)")
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(np.asarray(value, dtype=np.float32)), allow_pickle=False)
    return buf.getvalue(), "npy"


def _wav_bytes(wave: Any, rate: int) -> bytes:
    """A float32 WAV file (``samples`` or ``channels x samples``, as ``datasets`` gives it) in memory."""
    try:
        import soundfile
    except ImportError:
        raise MissingExtraError("audio arrays need the soundfile package: pip install soundfile") from None
    buf = io.BytesIO()
    soundfile.write(buf, wave.T if wave.ndim == 2 else wave, rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def _undecoded(ds: Any, col: str) -> Any:
    """``ds`` with column ``col`` read as stored (``decode=False``) when its feature decodes (``Audio``,
    ``Video``, ``Image``): the codec decodes the bytes itself, and no torchcodec is needed."""
    import dataclasses

    feature = (getattr(ds, "features", None) or {}).get(col)
    if getattr(feature, "decode", False) and dataclasses.is_dataclass(feature):
        return ds.cast_column(col, dataclasses.replace(feature, decode=False))
    return ds


class CodecValueDecode:
    """``decode(value, ext)`` of a data-column value: :func:`value_bytes` then the codec's own decoder
    (picklable, for DataLoader workers)."""

    def __init__(self, decode: Callable[[bytes, str], Any], default_ext: str) -> None:
        self.decode, self.default_ext = decode, default_ext

    def __call__(self, value: Any, ext: str = "") -> Any:
        return self.decode(*value_bytes(value, self.default_ext))


class HFRowDataset(Dataset):
    """Rows ``indices`` of a ``datasets.Dataset`` read through a codec: items ``(transform(decode(value)),
    class index)``; the interface of a map-style :class:`~.shards.ShardDataset` (``labels``, ``classes``,
    ``name_of``, ``subset``), so a codec's ``dataset`` and ``tasks`` hooks take it as their source."""

    def __init__(self, ds: Any, indices: Sequence[int], column: str, labels: Sequence[int], classes: Sequence[str],
                 decode: Callable[[Any, str], Any], transform: Optional[Callable[[Any], Any]], name: str) -> None:
        import numpy as np

        self.ds = ds
        self.indices = list(indices)
        self.column = column
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = list(classes)
        self.decode, self.transform, self.name = decode, transform, name

    def __len__(self) -> int:
        return len(self.indices)

    def name_of(self, index: int) -> str:
        """``NAME[row]`` of item ``index`` (how errors name it)."""
        return f"{self.name}[{self.indices[index]}]"

    def subset(self, indices: Sequence[int], transform: Optional[Callable[[Any], Any]] = None) -> "HFRowDataset":
        """The items at ``indices`` (in that order), with ``transform``."""
        return HFRowDataset(self.ds, [self.indices[i] for i in indices], self.column,
                            [int(self.labels[i]) for i in indices], self.classes, self.decode, transform, self.name)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        try:
            x = self.decode(self.ds[self.indices[index]][self.column], "")
            if self.transform is not None:
                x = self.transform(x)
        except (BadFileError, DataError):
            raise
        except Exception as e:
            raise BadFileError(self.name_of(index), (str(e).splitlines() or [type(e).__name__])[0]) from e
        return x, int(self.labels[index])


def codec_hf_task_data(args: argparse.Namespace, codec: Any, modality: str = "") -> Optional[TaskData]:
    """A :class:`TaskData` over the Hugging Face data set named by ``args.data`` read through a modality's
    :class:`~.base.ShardCodec` (its ``hf_columns`` name the data column), or ``None`` when ``args.data``
    names none (or the codec has no ``hf_columns``).

    Each row's value becomes ``(bytes, ext)`` (:func:`value_bytes`; the codec's first key is the default
    extension) and goes through the codec exactly as a shard member does: map-style through its ``tasks``
    or ``dataset`` hook (else its ``transform``), ``stream:`` through :class:`HFStreamDataset` and its
    per-sample ``transform`` (codecs with ``stream=False`` are map-style only).
    """
    data = getattr(args, "data", None)
    columns = tuple(getattr(codec, "hf_columns", ()) or ())
    if not columns or not is_hf_spec(data):
        return None
    what = f"{modality or 'data'} ({'/'.join(columns)})"
    decode = CodecValueDecode(codec.decoder(args), codec.keys[0] if codec.keys else "")
    fields = dict(codec.fields(args))
    meta = dict(fields.pop("meta", {}) or {})
    if _unstream(str(data))[1]:
        if not codec.stream:
            raise DataError(f"{modality or 'this modality'}: a Hugging Face data set cannot be streamed for it (its "
                            f"datasets need every sample at once); drop the stream: prefix to read it map-style")
        in_chans, size = fields.pop("in_chans"), fields.pop("input_size")
        task = stream_task_data(args, codec.transform(args, True), codec.transform(args, False), in_chans=in_chans,
                                input_size=size, columns=columns, what=what, value_decode=decode, **fields)
        task.meta = {**meta, **task.meta}
        return task
    raw, names, sources, col = _map_sets(args, columns, what)
    sets = {r: HFRowDataset(_undecoded(ds, col), idx, col, lab, names, decode, None, name)
            for r, (ds, idx, lab, name) in raw.items()}
    plan = _map_plan(sets, names, sources, [int(x) for x in sets["train"].labels])
    task = codec.map_task(args, sets, names, fields)
    task.meta = {**meta, **task.meta, "source": str(data), "format": "huggingface",
                 "plan": plan + list(task.meta.get("plan_extra", []))}
    return task


def sample_training_images(data: str, n: int, seed: int = 0, codec: Any = None) -> list[tuple[str, str, bytes, str]]:
    """Up to ``n`` seeded rows of the training split of ``data`` as ``(key, "png", PNG bytes, label name)``,
    for ``auto``'s rules (which read image files). Only the training split is read; counts and class
    names come from the data set's features, not from a scan. With a ``codec`` that has ``hf_columns``
    (audio, video, point, ...), rows are ``(key, ext, bytes, label name)`` of its data column instead
    (:func:`value_bytes`), the files its modality's rules read."""
    import random

    columns = tuple(getattr(codec, "hf_columns", ()) or ())
    spec, streaming = _unstream(str(data))
    if streaming and spec.startswith("hf:"):  # a hub stream: its first rows (nothing else is downloaded)
        import itertools

        name, _, config = spec[3:].partition(":")
        train_name = next((s for s in _datasets().get_dataset_split_names(name, config or None)
                           if split_kind(s) == "train"), None)
        if train_name is None:
            return []
        ds = _datasets().load_dataset(name, config or None, split=train_name, streaming=True)
        features = ds.features or {}
        col = next((c for c in columns if c in features), None)
        ds = _undecoded(ds, col) if col else ds
        items = list(itertools.islice(iter(ds), n))
    else:
        parts = load_hf_splits(spec)
        train_name = next((name for name in parts if split_kind(name) == "train"), None)
        if train_name is None:
            return []
        ds = parts[train_name]
        features = ds.features
        col = next((c for c in columns if c in features), None)
        ds = _undecoded(ds, col) if col else ds
        rows = list(range(len(ds)))
        random.Random(seed).shuffle(rows)
        items = (ds[r] for r in rows[:n])
    image_col = next((c for c in IMAGE_COLUMNS if c in features), None) if not columns else col
    label_col = next((c for c in LABEL_COLUMNS if c in features), None)
    if image_col is None or label_col is None:
        return []
    feature = features.get(label_col)
    names = list(feature.names) if hasattr(feature, "names") else None
    out = []
    for row, item in enumerate(items):
        try:
            if columns:
                raw_bytes, ext = value_bytes(item[image_col], codec.keys[0] if codec.keys else "")
            else:
                img = _to_pil(item[image_col], 3)
                raw = _to_pil(item[image_col], 1) if _is_gray(item[image_col]) else img
                buf = io.BytesIO()
                raw.save(buf, format="PNG")
                raw_bytes, ext = buf.getvalue(), "png"
        except Exception:  # an unreadable row is reported when it is trained on
            continue
        label = item[label_col]
        out.append((str(row), ext, raw_bytes, names[label] if names and isinstance(label, int)
                    and 0 <= label < len(names) else str(label)))
    return out


def _is_gray(value: Any) -> bool:
    from PIL import Image

    try:
        if isinstance(value, dict) and value.get("bytes"):
            value = Image.open(io.BytesIO(value["bytes"]))
        elif isinstance(value, (bytes, bytearray)):
            value = Image.open(io.BytesIO(value))
        return isinstance(value, Image.Image) and value.mode in ("L", "1", "I;16", "I", "F", "LA")
    except Exception:
        return False


def image_task_data(args: argparse.Namespace, train_tf: Any, eval_tf: Any) -> Optional[TaskData]:
    """:func:`task_data_from_hf` with the image options of ``args``."""
    size = int(args.input_size)
    return task_data_from_hf(args, train_tf, eval_tf, in_chans=int(args.in_chans), input_size=(size, size))
