"""The data contract every modality shares.

A modality (one folder under ``unireplknet/modalities/``) turns raw files into a
:class:`TaskData`: backbone-ready ``C x H x W`` tensors per split. This module holds
what is the same for all of them, so the rules hold in every modality and command:

* **split rules** (:func:`split_kind`, :func:`scan_splits`): which folders are splits,
  where validation comes from, how it is carved from training (stratified, seeded);
* **checks** (:func:`finalize_splits`): disjoint splits, no empty split, at least two
  classes, no validation/test label outside the training classes;
* **the plan** (:func:`plan_lines`, :func:`save_split_lists`): what is logged first and
  saved in the run directory;
* **bad files** (:func:`prescan`): a parallel pre-scan, cached per path/size/mtime, that
  skips unreadable files with one warning (or fails with one line);
* **the plug-in** (:class:`Modality`): what a modality registers.

Split table (documented in docs/data.md):

====================================  =============================================
folder or CSV ``split`` value          role
====================================  =============================================
``train``, ``training``                training
``val``, ``valid``, ``validation``,    validation (best-epoch selection, early stop)
any name starting with ``val``
``test``, any name starting with       test: evaluated once at the end, never
``test``                               trained on nor used for selection
====================================  =============================================

Without a validation split, ``val_fraction`` (default 0.1) of the training files is
carved out per class with a fixed seed. A test split is never used as validation.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import random
import unicodedata
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import torch
from torch.utils.data import Dataset

from ..errors import BadFileError, DataError

__all__ = [
    "TaskData", "Modality", "Splits", "Item", "split_kind", "scan_splits", "finalize_splits", "carve_val",
    "read_file_list", "plan_lines", "save_split_lists", "prescan", "NamedFileErrors", "LABEL_SEPARATOR",
    "VAL_NAMES", "ShardCodec", "ShardSample", "NOT_DATA_DIRS", "files_with", "label_name", "natural_key",
    "sample_training_files", "ListReader", "resolve_list_path", "visible_dirs",
]

logger = logging.getLogger(__name__)

BatchTransform = Callable[[torch.Tensor, torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]
PathLike = Union[str, Path]
#: one labelled file: its path and its labels (one name for single-label data).
Item = tuple[Path, tuple[str, ...]]

#: separates several labels of one file in a CSV ``label`` column (multi-label data).
LABEL_SEPARATOR = ";"
VAL_NAMES = ("val", "valid", "validation")
_TRAIN_NAMES = ("train", "training")


# ----------------------------------------------------------------------------- what a modality returns
@dataclass
class TaskData:
    """Datasets and metadata for one classification problem.

    Items of ``train``/``val``/``tests[name]`` are ``(input, target)`` with ``input`` a
    ``C x H x W`` float tensor and ``target`` an ``int`` class index or a float vector of
    length ``num_classes`` (soft or multi-label targets). When ``eval_views > 1`` the
    val/test inputs are ``V x C x H x W`` stacks of views whose scores are averaged.
    ``tests`` maps each test split's name to its dataset; ``test`` is the first of them
    (kept for callers that know one test split).
    """

    train: Optional[Dataset]
    val: Optional[Dataset]
    num_classes: int
    class_names: Sequence[str]
    in_chans: int
    input_size: tuple[int, int]
    test: Optional[Dataset] = None
    multi_label: bool = False
    eval_views: int = 1
    train_batch_transform: Optional[BatchTransform] = None
    collate_fn: Optional[Callable[[list], Any]] = None
    meta: dict = field(default_factory=dict)
    tests: dict = field(default_factory=dict)
    splits: Optional["Splits"] = None  # the file-level plan, when the data came from files

    def __post_init__(self) -> None:
        if self.test is not None and not self.tests:
            self.tests = {"test": self.test}
        if self.test is None and self.tests:
            self.test = next(iter(self.tests.values()))

    def split(self, name: str) -> Dataset:
        """The dataset of split ``name`` (``train``, ``val`` or a test split's name)."""
        if name == "train" and self.train is not None:
            return self.train
        if name == "val" and self.val is not None:
            return self.val
        if name in self.tests:
            return self.tests[name]
        have = [n for n, d in (("train", self.train), ("val", self.val)) if d is not None] + list(self.tests)
        raise DataError(f"the data has no split {name!r}; it has: {', '.join(have)}")


# ----------------------------------------------------------------------------- the plug-in
#: one sample to write into a shard: ``(data member extension, bytes of the member, label name)``; the
#: bytes are a thunk so a split is never held in memory.
ShardSample = tuple[str, Callable[[], bytes], str]


@dataclass(frozen=True)
class ShardCodec:
    """How a modality's samples are written to and read from tar shards (:mod:`.shards`, docs/scale.md).

    * ``keys``: member extensions holding a sample's data (``("wav", "flac")``);
    * ``decoder(args)``: ``decode(bytes, ext) -> raw sample`` (a waveform, a cloud, ...), the modality's own reader;
    * ``transform(args, train)``: raw sample -> model input (the modality's own transform; streaming uses it);
    * ``fields(args)``: the :class:`TaskData` fields that depend on the options (``in_chans``, ``input_size``,
      ``eval_views``, ``meta``, ...);
    * ``dataset(args, source, train)`` (optional): the modality's own dataset class over a map-style
      :class:`~.shards.ShardDataset` ``source`` (whose items are ``(raw sample, class index)``), for what a
      per-sample transform cannot do (mixup partners, cached sampling); default ``source`` with ``transform``;
    * ``samples(args)`` (optional): for ``unireplknet shard``, ``({split: [ShardSample]}, classes, sources)``
      from the modality's own layouts; default: the files found by :func:`scan_splits`, written as they are;
    * ``tasks(args, sets, classes)`` (optional): the whole :class:`TaskData` from the map-style splits
      (for modalities whose datasets need all samples at once, e.g. training-set statistics);
    * ``stream``: whether :class:`~.shards.ShardIterableDataset` can read it (a per-sample transform suffices);
    * ``hf_columns``: the Hugging Face ``datasets`` columns that may hold a sample's data, in order of
      preference (:mod:`.hf` turns a row's value into ``(bytes, ext)`` for ``decoder``); empty: the modality
      reads Hugging Face data itself, or not at all.
    """

    keys: tuple[str, ...]
    decoder: Callable[[argparse.Namespace], Callable[[bytes, str], Any]]
    transform: Callable[[argparse.Namespace, bool], Callable[[Any], Any]]
    fields: Callable[[argparse.Namespace], dict[str, Any]]
    dataset: Optional[Callable[[argparse.Namespace, Dataset, bool], Dataset]] = None
    samples: Optional[Callable[[argparse.Namespace], tuple[dict[str, list[ShardSample]], list[str], dict[str, str]]]] = None
    tasks: Optional[Callable[[argparse.Namespace, dict[str, Dataset], list[str]], TaskData]] = None
    stream: bool = True
    hf_columns: tuple[str, ...] = ()

    def map_task(self, args: argparse.Namespace, sets: dict[str, Any], classes: list[str],
                 fields: dict[str, Any]) -> TaskData:
        """The :class:`TaskData` of map-style splits ``sets`` (``train``, ``val`` and test splits, items
        ``(raw sample, class index)``, shards or Hugging Face rows): ``tasks`` when the modality has it, else
        ``dataset`` or ``transform`` over each split; ``fields`` from :attr:`fields` without ``meta``."""
        if self.tasks is not None:
            return self.tasks(args, sets, classes)

        def wrap(ds: Any, train: bool) -> Dataset:
            if self.dataset is not None:
                return self.dataset(args, ds, train)
            return ds.subset(range(len(ds)), self.transform(args, train))

        return TaskData(train=wrap(sets["train"], True), val=wrap(sets["val"], False),
                        tests={n: wrap(d, False) for n, d in sets.items() if n not in ("train", "val")},
                        num_classes=len(classes), class_names=classes, **fields)


def _with_shards(build: Callable[[argparse.Namespace], TaskData], codec: ShardCodec,
                 name: str) -> Callable[[argparse.Namespace], TaskData]:
    """``build`` preceded by the shard reader: ``--data`` naming shards is read through ``codec``."""

    def build_or_shards(args: argparse.Namespace) -> TaskData:
        from .shards import codec_task_data  # imported here: shards.py imports this module

        task = codec_task_data(args, codec, name)
        if task is None and codec.hf_columns:  # a Hugging Face data set, read through the same codec
            from .hf import codec_hf_task_data

            task = codec_hf_task_data(args, codec, name)
        return task if task is not None else build(args)

    build_or_shards.__doc__ = build.__doc__
    return build_or_shards


def _with_shard_auto(auto: Callable[[Mapping[str, Any]], dict], codec: Optional[ShardCodec]) -> Callable:
    """``auto`` that, for shards or a Hugging Face data set, runs on a sample of training members extracted to
    a temporary folder (class folders), so every modality's own rules apply unchanged."""

    def auto_or_sampled(cfg: Mapping[str, Any]) -> dict:
        from .shards import auto_on_sample  # imported here: shards.py imports this module

        out = auto_on_sample(auto, cfg, codec)
        return auto(cfg) if out is None else out

    auto_or_sampled.__doc__ = auto.__doc__
    return auto_or_sampled


@dataclass(frozen=True)
class Modality:
    """What a modality registers (see ``modalities/__init__.py``).

    ``auto(config)`` returns the config values ``auto`` chooses for this data (read from a sample
    of its files) and a reason for each (``{key: (value, why)}``); the runner applies them below
    recipe, YAML and flags.
    """

    name: str
    description: str
    config_defaults: Mapping[str, Any]
    demo_defaults: Mapping[str, Any]
    recipes: Mapping[str, Mapping[str, Any]]
    add_args: Callable[[argparse.ArgumentParser], None]
    build: Callable[[argparse.Namespace], TaskData]
    load_for_predict: Callable[[str, argparse.Namespace], torch.Tensor]
    auto: Optional[Callable[[Mapping[str, Any]], dict[str, tuple[Any, str]]]] = None
    extensions: tuple[str, ...] = ()
    #: ``baseline_features(task) -> {name: feature function}``: extra simple-baseline features (optional)
    baseline_features: Optional[Callable[[TaskData], dict[str, Callable]]] = None
    #: how this modality's samples live in tar shards (``unireplknet shard``, ``--data SHARDS``); None: not shardable
    shards: Optional[ShardCodec] = None

    @classmethod
    def from_module(cls, name: str, description: str, module: Any, *, auto: Optional[Callable] = None,
                    extensions: Sequence[str] = (), baseline_features: Optional[Callable] = None,
                    shards: Optional[ShardCodec] = None) -> "Modality":
        """The plug-in of a modality whose ``datasets`` module follows the convention: ``CONFIG_DEFAULTS``,
        ``DEMO_DEFAULTS``, ``RECIPES``, ``add_train_args``, ``build_task_data``, ``load_for_predict``.

        With ``shards``, ``build`` reads ``--data`` naming tar shards through it (:mod:`.shards`), and ``auto``
        runs on a sample of the shards' (or a Hugging Face data set's) training members."""
        build = module.build_task_data if shards is None else _with_shards(module.build_task_data, shards, name)
        if auto is not None:
            auto = _with_shard_auto(auto, shards)
        return cls(name=name, description=description, config_defaults=module.CONFIG_DEFAULTS,
                   demo_defaults=module.DEMO_DEFAULTS, recipes=module.RECIPES, add_args=module.add_train_args,
                   build=build, load_for_predict=module.load_for_predict, auto=auto,
                   extensions=tuple(extensions), baseline_features=baseline_features, shards=shards)

    def arg_keys(self) -> set[str]:
        """The config keys (argparse dests) that :attr:`add_args` defines."""
        parser = argparse.ArgumentParser(add_help=False)
        self.add_args(parser)
        return {a.dest for a in parser._actions} | set(self.config_defaults)


# ----------------------------------------------------------------------------- split rules
def split_kind(name: str) -> Optional[str]:
    """``'train'``, ``'val'`` or ``'test'`` for a folder/CSV split name, ``None`` for anything else."""
    n = name.strip().lower()
    if n in _TRAIN_NAMES:
        return "train"
    if n in VAL_NAMES or n.startswith("val"):
        return "val"
    if n.startswith("test"):
        return "test"
    return None


@dataclass
class Splits:
    """Labelled files per split, with where each split came from."""

    layout: str
    train: list[Item]
    val: list[Item]
    tests: dict[str, list[Item]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def multi_label(self) -> bool:
        """Whether any file carries other than exactly one label."""
        return any(len(lab) != 1 for _, items in self.named() for _, lab in items)

    def named(self) -> list[tuple[str, list[Item]]]:
        """``[(split name, items)]``: train, val, then the test splits."""
        return [("train", self.train), ("val", self.val), *self.tests.items()]

    def class_index(self) -> dict[str, int]:
        """Class name → index."""
        return {c: i for i, c in enumerate(self.classes)}


def natural_key(s: str) -> tuple:
    """Sort key of class names: integers by value first, then the other names."""
    return (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s)


#: folder names that never hold data or classes (case-insensitive): archive and tool leftovers, and Speech
#: Commands' background-noise recordings. Hidden folders (a leading ``.``) are skipped as well.
NOT_DATA_DIRS = frozenset({"__macosx", "__pycache__", "_background_noise_"})


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in NOT_DATA_DIRS


def label_name(name: str) -> str:
    """A class name as the splits use it: stripped, Unicode NFC (macOS writes file names in NFD)."""
    return unicodedata.normalize("NFC", name.strip())


def _visible_files(folder: Path, recursive: bool = True) -> Iterable[Path]:
    """Every visible file under ``folder`` (only its own files unless ``recursive``): symlinked folders followed
    once, hidden files and folders and :data:`NOT_DATA_DIRS` left out."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop, or a folder linked twice
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not _hidden(d)] if recursive else []
        yield from (Path(dirpath) / f for f in filenames if not f.startswith("."))


def files_with(folder: Path, extensions: Sequence[str], recursive: bool = True) -> list[Path]:
    """Files under ``folder`` (any depth unless ``recursive=False``, following symlinked folders) whose suffix is
    one of ``extensions`` (case-insensitive); hidden files and folders (``.DS_Store``, ``._x.jpg``) and
    :data:`NOT_DATA_DIRS` are left out. Sorted."""
    exts = tuple(e.lower() for e in extensions)
    return sorted(p for p in _visible_files(folder, recursive) if p.suffix.lower() in exts and p.is_file())


def visible_dirs(folder: Path) -> list[Path]:
    """The sub-folders of ``folder`` that can hold data (not hidden, not :data:`NOT_DATA_DIRS`), sorted."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _hidden(p.name))


def items_or_none(folder: Path) -> bool:
    """Whether ``folder`` holds any visible file at any depth."""
    return any(p.is_file() for p in _visible_files(folder))


def class_folder_items(root: Path, extensions: Sequence[str]) -> list[Item]:
    """``root/<class>/**/<file>`` → items; clear errors for files outside class folders or none at all."""
    exts = ", ".join(extensions)
    dirs = visible_dirs(root)
    items: list[Item] = []
    for d in dirs:
        if split_kind(d.name) is not None:
            raise DataError(f"{root} has a class folder named {d.name!r}, which is a split name: "
                            f"splits go at the top level ({root.parent}/{{train,val,test}}/<class>/...)")
        files = files_with(d, extensions)
        if not files and items_or_none(d):
            raise DataError(f"class folder {d} has no files with a known extension ({exts})")
        items += [(p, (label_name(d.name),)) for p in files]
    if not items:
        loose = files_with(root, extensions)
        if loose:
            raise DataError(f"{root} holds {len(loose)} file(s) ({exts}) but no class folders: "
                            f"put each class's files in {root}/<class>/")
        raise DataError(f"no files ({exts}) in class folders under {root}")
    return items


def resolve_list_path(rel: str, root: Path, where: str, allow_outside_root: bool = False) -> Path:
    """A path written in a list (``rel``, relative to ``root`` unless absolute); one that leaves ``root`` is an
    error naming ``where`` (``file:line``) unless ``allow_outside_root``."""
    file = Path(rel) if Path(rel).is_absolute() else root / rel
    if not allow_outside_root:
        try:
            file.resolve().relative_to(root.resolve())
        except ValueError:
            raise DataError(f"{where}: {rel} is outside the data root {root} "
                            f"(pass --data-root DIR or --allow-outside-root)") from None
    return file


def read_file_list(path: PathLike, extensions: Sequence[str] = (), *, data_root: Optional[PathLike] = None,
                   allow_outside_root: bool = False) -> list[tuple[Path, tuple[str, ...], Optional[str]]]:
    """Rows of a ``path,label[,split]`` CSV (with that header) as ``(file, labels, split)``.

    Relative paths resolve under ``data_root`` (default: the CSV's folder); a path that leaves
    that folder (absolute elsewhere, ``..``) is an error unless ``allow_outside_root``. Several
    labels of one file are separated by ``;``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file not found: {path}")
    root = Path(data_root) if data_root is not None else path.parent
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark (Excel, Notepad) is not data
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"path", "label"} <= {c.strip().lower() for c in reader.fieldnames}:
            raise DataError(f"{path}: the header must name the columns 'path' and 'label' (got {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): v for k, v in row.items()}
            labels = tuple(label_name(s) for s in (row.get("label") or "").split(LABEL_SEPARATOR) if s.strip())
            rel = (row.get("path") or "").strip()
            if not rel:
                raise DataError(f"{path}:{line}: empty path")
            file = resolve_list_path(rel, root, f"{path}:{line}", allow_outside_root)
            if not labels:
                raise DataError(f"{path}:{line}: empty label")
            if not file.is_file():
                raise FileNotFoundError(f"{path}:{line}: file not found: {file}")
            split = (row.get("split") or "").strip().lower() or None  # split names are case-insensitive
            rows.append((file, labels, split))
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def carve_val(items: list[Item], fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """Stratified (by first label), seeded split: ``(kept, held_out)`` with ``fraction`` held out per class.

    Classes with one file keep it for training; every class with two or more files gives at
    least one to validation.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1) when the data has no validation split, got {fraction}")
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[item[1][0] if item[1] else ""].append(item)
    rng = random.Random(seed)
    kept, held = [], []
    for name in sorted(groups):
        group = sorted(groups[name])
        rng.shuffle(group)
        n = max(1, round(fraction * len(group))) if len(group) > 1 else 0
        held += group[:n]
        kept += group[n:]
    return sorted(kept), sorted(held)


#: reads one CSV list into ``(file, labels, split or None)`` rows (:func:`read_file_list` or a modality's own).
ListReader = Callable[[Path], "list[tuple[Path, tuple[str, ...], Optional[str]]]"]


def _csv_splits(path: Path, read_list: ListReader) -> tuple[list[Item], dict[str, list[Item]]]:
    """A CSV's rows as training items and ``{split name: items}`` for its other splits."""
    rows = read_list(path)
    train: list[Item] = []
    others: dict[str, list[Item]] = defaultdict(list)
    for file, labels, split in rows:
        kind = split_kind(split) if split else "train"
        if kind is None:
            raise DataError(f"{path}: split {split!r} of {file} is not train, val* or test*")
        if kind == "train":
            train.append((file, labels))
        else:
            others["val" if split.lower() in VAL_NAMES else split].append((file, labels))
    return train, dict(others)


def scan_splits(
    data: PathLike,
    extensions: Sequence[str],
    *,
    val_data: Optional[PathLike] = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    data_root: Optional[PathLike] = None,
    allow_outside_root: bool = False,
    items_of: Optional[Callable[[Path], list[Item]]] = None,
    read_list: Optional[ListReader] = None,
) -> Splits:
    """Find the splits of ``data`` (a folder or a CSV list) by the rules in this module's docstring.

    Layouts: ``DATA/{train,val*,test*}/<class>/...``; ``DATA/<class>/...`` (flat); a CSV
    ``path,label[,split]``; ``DATA/{train,val*,test*}.csv``. ``items_of(folder)`` lists the
    items of one split folder (default: class folders with ``extensions``); ``read_list(csv)`` reads every
    CSV list, ``--val-data`` included (default: :func:`read_file_list` with ``data_root`` and
    ``allow_outside_root``; a modality with extra columns, such as video segments, passes its own reader).
    """
    items_of = items_of or (lambda folder: class_folder_items(folder, extensions))
    csv_kw = {"data_root": data_root, "allow_outside_root": allow_outside_root}
    read_list = read_list or (lambda path: read_file_list(path, extensions, **csv_kw))
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"data not found: {data}")
    sources: dict[str, str] = {}
    tests: dict[str, list[Item]] = {}
    val: Optional[list[Item]] = None
    if data.is_file():
        if data.suffix.lower() != ".csv":
            raise DataError(f"data must be a folder or a .csv list, got {data}")
        train, others = _csv_splits(data, read_list)
        layout = "csv"
        for name, items in others.items():
            if split_kind(name) == "val":
                if val is not None:
                    raise DataError(f"{data}: more than one validation split ({', '.join(others)}); keep one")
                val, sources["val"] = items, f"{data} rows with split={name}"
            else:
                tests[name], sources[name] = items, f"{data} rows with split={name}"
        sources["train"] = f"{data}" + (" rows with split=train" if others else "")
    else:
        if not any(p for p in data.iterdir() if not p.name.startswith(".")):
            raise DataError(f"data directory is empty: {data}")
        split_csvs = {p.stem: p for p in data.glob("*.csv") if split_kind(p.stem) is not None}
        split_dirs = {p.name: p for p in visible_dirs(data) if split_kind(p.name) is not None}
        other_dirs = [p.name for p in visible_dirs(data) if split_kind(p.name) is None]
        if split_dirs or (split_csvs and not other_dirs):
            found = {**{n: p for n, p in split_csvs.items() if n not in split_dirs}, **split_dirs}
            trains = [n for n in found if split_kind(n) == "train"]
            if not trains:
                raise DataError(f"{data} has split folder(s) {', '.join(sorted(found))} but no train/: "
                                f"rename the training folder to train/, or pass the class-folder root itself")
            if len(trains) > 1:
                raise DataError(f"{data} has several training splits ({', '.join(trains)}); keep one")
            if split_dirs and other_dirs:
                raise DataError(f"{data} mixes split folders ({', '.join(sorted(split_dirs))}) with other folders "
                                f"({', '.join(other_dirs[:5])}); move those into a split or out of {data}")
            vals = sorted(n for n in found if split_kind(n) == "val")
            if len(vals) > 1:
                raise DataError(f"{data} has several validation folders ({', '.join(vals)}); keep one and "
                                f"rename the others test_<name> to evaluate them as test splits")

            def read(name: str) -> list[Item]:
                p = found[name]
                if p.is_file():
                    return [(f, lab) for f, lab, _ in read_list(p)]
                return items_of(p)

            train = read(trains[0])
            sources["train"] = str(found[trains[0]])
            if vals:
                val, sources["val"] = read(vals[0]), str(found[vals[0]])
            for name in sorted(n for n in found if split_kind(n) == "test"):
                tests[name], sources[name] = read(name), str(found[name])
            layout = "split_folders" if split_dirs else "split_csvs"
        else:
            train = items_of(data)
            sources["train"] = str(data)
            layout = "class_folders"
    if val_data is not None:
        vd = Path(val_data)
        if not vd.exists():
            raise FileNotFoundError(f"validation data not found: {vd}")
        val = [(f, lab) for f, lab, _ in read_list(vd)] if vd.is_file() else items_of(vd)
        sources["val"] = f"{vd} (--val-data)"
    if val is None:
        train, val = carve_val(train, val_fraction, seed)
        sources["val"] = f"{val_fraction:g} of the training files per class (seed {seed})"
        sources["train"] += " minus validation"
    return finalize_splits(Splits(layout, train, val, tests, sources), str(data))


def finalize_splits(splits: Splits, where: str) -> Splits:
    """Check a :class:`Splits` and fill its classes.

    Raises :class:`DataError` for an empty split, a file in two splits, fewer than two
    classes, or a validation/test label that training never saw.
    """
    for name, items in splits.named():
        if not items:
            raise DataError(f"{where}: the {name} split is empty ({splits.sources.get(name, '')})")
    seen: dict[str, str] = {}
    for name, items in splits.named():
        for file, _ in items:
            key = str(Path(file).resolve())
            if key in seen and seen[key] != name:
                raise DataError(f"{where}: {file} is in both the {seen[key]} and the {name} split")
            seen[key] = name
    classes = sorted({lab for _, labels in splits.train for lab in labels}, key=natural_key)
    if len(classes) < 2:
        raise DataError(f"{where}: the training data has {len(classes)} class ({', '.join(classes)}); "
                        f"classification needs at least 2")
    known = set(classes)
    for name, items in splits.named()[1:]:
        for file, labels in items:
            unknown = [lab for lab in labels if lab not in known]
            if unknown:
                raise DataError(f"{where}: {file} in the {name} split has label(s) {unknown} "
                                f"that no training file has")
    in_val = {lab for _, labels in splits.val for lab in labels}
    unseen = [c for c in classes if c not in in_val]
    if unseen and not splits.multi_label:
        logger.warning("%s: %d class(es) have no validation file (%s%s): validation accuracy does not cover them; "
                       "a class needs at least 2 training files for one to be held out", where, len(unseen),
                       ", ".join(unseen[:5]), ", ..." if len(unseen) > 5 else "")
    splits.classes = classes
    return splits


def sample_training_files(scan: Callable[[], Splits], n: int, seed: int) -> list[Path]:
    """A seeded sample of at most ``n`` training files of the splits that ``scan()`` finds, for ``auto`` rules to
    measure the data. ``scan`` applies the run's own split rules (layouts, ``--data-root``, carved validation),
    so no validation or test file is ever looked at. ``[]`` when the data cannot be scanned: the run itself
    reports why, with its own message."""
    try:
        splits = scan()
    except (DataError, OSError, ValueError) as e:
        logger.info("auto: the data was not measured (%s)", e)
        return []
    files = sorted({Path(f) for f, _ in splits.train})
    random.Random(seed).shuffle(files)
    return files[:n]


def plan_lines(splits: Splits) -> list[str]:
    """The plan, as logged before training: each split, where it came from, its count; the classes."""
    lines = [f"data layout: {splits.layout}"]
    for name, items in splits.named():
        role = "training" if name == "train" else "validation (selection)" if name == "val" else "test (final, once)"
        skipped = splits.skipped.get(name)
        extra = f", {len(skipped)} unreadable skipped" if skipped else ""
        lines.append(f"  {name:<12} {len(items):>7} files  {role:<24} from {splits.sources.get(name, '?')}{extra}")
    if not splits.tests:
        lines.append("  (no test split: only validation numbers will be reported)")
    counts = Counter(labels[0] for _, labels in splits.train if labels)
    shown = ", ".join(f"{c} ({counts[c]})" for c in splits.classes[:12])
    more = f", ... ({len(splits.classes)} in all)" if len(splits.classes) > 12 else ""
    lines.append(f"  classes: {shown}{more}")
    return lines


def save_split_lists(splits: Splits, run_dir: PathLike) -> Path:
    """Write ``RUN/splits/<split>.csv`` (``path,label``) for every split; returns the folder."""
    out = Path(run_dir) / "splits"
    out.mkdir(parents=True, exist_ok=True)
    for name, items in splits.named():
        with open(out / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label"])
            for file, labels in items:
                w.writerow([str(Path(file).resolve()), LABEL_SEPARATOR.join(labels)])
    return out


# ----------------------------------------------------------------------------- bad files
def _cache_dir() -> Path:
    base = os.environ.get("UNIREPLKNET_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "unireplknet")
    return Path(base)


def _file_key(path: Path) -> Optional[str]:
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def prescan(
    splits: Splits,
    check: Callable[[Path], None],
    *,
    name: str,
    skip_bad: Optional[bool] = True,
    workers: Optional[int] = None,
    cache: bool = True,
    key: Optional[Callable[[Path], Optional[str]]] = None,
) -> Splits:
    """Open every file once with ``check`` (raises on an unreadable file), in parallel.

    Results are cached per (path, size, mtime) under ``~/.cache/unireplknet`` (``UNIREPLKNET_CACHE``),
    keyed by ``name`` (the modality and the check's options); ``key(path)`` replaces the per-file cache key
    when the check reads more than ``path`` (an image and its mask; a ``None`` key is checked every time).
    Unreadable files are removed from their split with one warning (count and first paths; ``skip_bad`` None, the config's unset value, is True), or,
    with ``skip_bad=False``, raise
    :class:`BadFileError` for the first. A split left empty raises :class:`DataError`.
    """
    cache_file = _cache_dir() / f"prescan-{hashlib.sha1(name.encode()).hexdigest()[:12]}.json"
    known: dict[str, str] = {}
    if cache and cache_file.is_file():
        try:
            known = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            known = {}
    files = sorted({Path(f) for _, items in splits.named() for f, _ in items})
    keys = {f: (key or _file_key)(f) for f in files}
    todo = [f for f in files if keys[f] is None or keys[f] not in known]

    def run(path: Path) -> tuple[Path, str]:
        try:
            check(path)
            return path, ""
        except Exception as e:  # any failure to read is a bad file
            reason = (str(e).splitlines() or [type(e).__name__])[0] or type(e).__name__
            return path, reason.removeprefix(f"{path}: ")  # the warning names the file itself

    n_workers = workers or min(8, 2 * (os.cpu_count() or 1))
    if todo:
        with ThreadPoolExecutor(n_workers) as pool:
            for path, reason in pool.map(run, todo):
                if keys[path] is not None:
                    known[keys[path]] = reason
                else:
                    known[f"missing|{path}"] = reason or "file vanished"
    if cache and todo:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known))
            os.replace(tmp, cache_file)
        except OSError:  # a read-only home: the scan still worked, it is just not cached
            pass
    bad = {f: known.get(keys[f] or "", "") or known.get(f"missing|{f}", "") for f in files}
    bad = {f: r for f, r in bad.items() if r}
    if not bad:
        return splits
    first = sorted(bad)[:3]
    if skip_bad is False:
        f = first[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise BadFileError(str(f), bad[f] + more)
    logger.warning("skipped %d unreadable file(s): %s%s (--no-skip-bad-files makes this an error)", len(bad),
                   "; ".join(f"{f}: {bad[f]}" for f in first), " ..." if len(bad) > 3 else "")
    for name_, items in splits.named():
        dropped = [str(f) for f, _ in items if Path(f) in bad]
        if dropped:
            splits.skipped[name_] = dropped
            items[:] = [(f, lab) for f, lab in items if Path(f) not in bad]
    for name_, items in splits.named():
        if not items:
            raise DataError(f"every file of the {name_} split is unreadable (first: {first[0]}: {bad[first[0]]})")
    return splits


class NamedFileErrors(Dataset):
    """Wrap a dataset so that a failure to read sample ``i`` raises :class:`BadFileError` naming its file.

    ``path_of(i)`` gives the file of sample ``i``. Attributes of the wrapped dataset stay reachable.
    """

    def __init__(self, dataset: Dataset, path_of: Callable[[int], Any]) -> None:
        self.dataset = dataset
        self.path_of = path_of

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except BadFileError:
            raise
        except (OSError, ValueError, RuntimeError, EOFError, KeyError, IndexError) as e:
            raise BadFileError(str(self.path_of(index)), (str(e).splitlines() or [type(e).__name__])[0]) from e

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "path_of"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def iter_items(splits: Splits) -> Iterable[tuple[str, Item]]:
    """Every ``(split name, item)``."""
    for name, items in splits.named():
        for item in items:
            yield name, item
