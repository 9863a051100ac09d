"""Finding labelled audio files on disk: Speech Commands V2, class-per-folder and CSV layouts.

Every layout is turned into :class:`AudioSplits`: lists of ``(path, labels)``
per split, labels being tuples of class names (one name for single-label
data, any number for multi-label data).
"""
from __future__ import annotations

import csv
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from .io import AUDIO_EXTENSIONS

__all__ = [
    "AudioSplits",
    "LABEL_SEPARATOR",
    "scan_audio_data",
    "scan_speech_commands",
    "scan_class_folders",
    "read_audio_csv",
    "all_items",
    "check_labels",
]

#: Separates several labels of one file in a CSV ``label`` column (multi-label data).
LABEL_SEPARATOR = ";"

Item = tuple[Path, tuple[str, ...]]
PathLike = Union[str, Path]
_VAL_NAMES = ("val", "valid", "validation")


@dataclass
class AudioSplits:
    """Labelled files per split, as found on disk."""

    layout: str
    train: list[Item]
    val: list[Item]
    test: Optional[list[Item]] = None

    @property
    def class_names(self) -> list[str]:
        """Sorted names of every label used in any split."""
        names = {label for split in (self.train, self.val, self.test or []) for _, labels in split for label in labels}
        return sorted(names)

    @property
    def multi_label(self) -> bool:
        """Whether any file carries other than exactly one label."""
        return any(len(labels) != 1 for split in (self.train, self.val, self.test or []) for _, labels in split)


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def _split_off(items: list[Item], fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """Stratified (by first label) seeded split: ``(kept, held_out)`` with ``fraction`` held out per class."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1) when the data has no validation split, got {fraction}")
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[item[1][0] if item[1] else ""].append(item)
    rng = random.Random(seed)
    kept, held = [], []
    for name in sorted(groups):
        group = groups[name]
        rng.shuffle(group)
        n = round(fraction * len(group)) if len(group) > 1 else 0
        held += group[:n]
        kept += group[n:]
    return sorted(kept), sorted(held)


def scan_speech_commands(root: PathLike) -> AudioSplits:
    """Speech Commands V2: ``ROOT/<word>/*.wav`` with ``validation_list.txt`` and ``testing_list.txt``.

    Folders starting with ``_`` (``_background_noise_``) are not classes and
    are left out; files in neither list form the training split.
    """
    root = Path(root)
    lists = {}
    for split, name in (("val", "validation_list.txt"), ("test", "testing_list.txt")):
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"Speech Commands layout needs {path}")
        lists[split] = {line.strip() for line in path.read_text().splitlines() if line.strip()}
    splits: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        for path in sorted(folder.glob("*.wav")):
            rel = f"{folder.name}/{path.name}"
            split = "val" if rel in lists["val"] else "test" if rel in lists["test"] else "train"
            splits[split].append((path, (folder.name,)))
    if not splits["train"]:
        raise ValueError(f"no training .wav files found under {root}")
    return AudioSplits("speech_commands", splits["train"], splits["val"], splits["test"])


def _class_folder_items(root: Path) -> list[Item]:
    items = [(path, (folder.name,)) for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
             for path in _audio_files(folder)]
    if not items:
        raise ValueError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in class folders under {root}")
    return items


def scan_class_folders(root: PathLike, val_fraction: float = 0.1, seed: int = 0) -> AudioSplits:
    """``ROOT/<class>/*.wav`` (split off ``val_fraction`` per class) or ``ROOT/{train,val[,test]}/<class>/*``."""
    root = Path(root)
    if (root / "train").is_dir():
        val_dir = next((root / n for n in _VAL_NAMES if (root / n).is_dir()), None)
        train = _class_folder_items(root / "train")
        if val_dir is None:
            train, val = _split_off(train, val_fraction, seed)
        else:
            val = _class_folder_items(val_dir)
        test = _class_folder_items(root / "test") if (root / "test").is_dir() else None
        return AudioSplits("class_folders", train, val, test)
    train, val = _split_off(_class_folder_items(root), val_fraction, seed)
    return AudioSplits("class_folders", train, val)


def read_audio_csv(path: PathLike) -> list[tuple[Path, tuple[str, ...], Optional[str]]]:
    """Rows of a ``path,label[,split]`` CSV (with that header) as ``(file, labels, split)``.

    Relative file paths are taken relative to the CSV's folder; several labels
    are separated by ``;``. Raises ValueError naming the file and row for a
    missing column, an empty label or a missing audio file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file not found: {path}")
    rows = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"path", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: the header must name the columns 'path' and 'label' (got {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            labels = tuple(s.strip() for s in (row["label"] or "").split(LABEL_SEPARATOR) if s.strip())
            file = path.parent / (row["path"] or "").strip()
            if not labels:
                raise ValueError(f"{path}:{line}: empty label")
            if not file.is_file():
                raise FileNotFoundError(f"{path}:{line}: audio file not found: {file}")
            split = (row.get("split") or "").strip() or None
            rows.append((file, labels, split))
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def _scan_csv_file(path: Path, val_fraction: float, seed: int) -> AudioSplits:
    rows = read_audio_csv(path)
    if any(split for _, _, split in rows):
        by: dict[str, list[Item]] = defaultdict(list)
        for file, labels, split in rows:
            name = "val" if split in _VAL_NAMES else split
            if name not in ("train", "val", "test"):
                raise ValueError(f"{path}: split must be train, val or test, got {split!r} for {file}")
            by[name].append((file, labels))
        if not by["train"] or not by["val"]:
            raise ValueError(f"{path}: the split column must name both train and val rows")
        return AudioSplits("csv", by["train"], by["val"], by["test"] or None)
    train, val = _split_off([(f, labels) for f, labels, _ in rows], val_fraction, seed)
    return AudioSplits("csv", train, val)


def scan_audio_data(path: PathLike, val_fraction: float = 0.1, seed: int = 0) -> AudioSplits:
    """Recognise the layout of ``path`` and list its splits.

    * a ``.csv`` file: :func:`read_audio_csv` (a ``split`` column, or ``val_fraction`` split off);
    * a folder with ``validation_list.txt`` and ``testing_list.txt``: Speech Commands V2;
    * a folder with ``train.csv`` (and ``val.csv``, ``test.csv``): one CSV per split;
    * any other folder: class-per-folder (:func:`scan_class_folders`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio data not found: {path}")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise ValueError(f"audio data must be a folder or a .csv file, got {path}")
        return _scan_csv_file(path, val_fraction, seed)
    if (path / "validation_list.txt").is_file() and (path / "testing_list.txt").is_file():
        return scan_speech_commands(path)
    if (path / "train.csv").is_file():
        train = [(f, labels) for f, labels, _ in read_audio_csv(path / "train.csv")]
        if (path / "val.csv").is_file():
            val = [(f, labels) for f, labels, _ in read_audio_csv(path / "val.csv")]
        else:
            train, val = _split_off(train, val_fraction, seed)
        test = [(f, labels) for f, labels, _ in read_audio_csv(path / "test.csv")] if (path / "test.csv").is_file() else None
        return AudioSplits("csv", train, val, test)
    return scan_class_folders(path, val_fraction, seed)


def all_items(splits: AudioSplits) -> list[Item]:
    """Every file of every split (for a separate validation source)."""
    return splits.train + splits.val + (splits.test or [])


def check_labels(items: Sequence[Item], class_names: Sequence[str], where: str) -> None:
    """Raise ValueError if ``items`` use a label outside ``class_names``."""
    known = set(class_names)
    for file, labels in items:
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise ValueError(f"{where}: {file} has label(s) {unknown} not among the training classes")
