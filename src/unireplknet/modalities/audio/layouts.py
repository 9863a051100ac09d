"""Audio-specific layouts. Everything else (split folders, class folders, CSV lists, the split rules)
is the shared contract of :mod:`unireplknet.modalities.base`; this module adds Speech Commands V2.

Items are ``(path, labels)``, labels being tuples of class names (one name for single-label data, any
number for multi-label data).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from ..base import read_file_list
from .io import AUDIO_EXTENSIONS

__all__ = ["AudioSplits", "scan_speech_commands", "read_audio_csv", "check_labels"]

Item = tuple[Path, tuple[str, ...]]
PathLike = Union[str, Path]


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


def read_audio_csv(path: PathLike) -> list[tuple[Path, tuple[str, ...], Optional[str]]]:
    """Rows of a ``path,label[,split]`` CSV as ``(file, labels, split)`` (the shared reader, audio extensions)."""
    return read_file_list(path, AUDIO_EXTENSIONS)


def check_labels(items: Sequence[Item], class_names: Sequence[str], where: str) -> None:
    """Raise ValueError if ``items`` use a label outside ``class_names``."""
    known = set(class_names)
    for file, labels in items:
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise ValueError(f"{where}: {file} has label(s) {unknown} not among the training classes")
