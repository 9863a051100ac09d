"""Audio-specific layouts. Everything else (split folders, class folders, CSV lists, the split rules)
is the shared contract of :mod:`unireplknet.modalities.base`; this module adds Speech Commands V2.

Items are ``(path, labels)``, labels being tuples of class names (one name for single-label data, any
number for multi-label data).
"""
from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from ...errors import DataError
from ..base import files_with, label_name, read_file_list
from .io import AUDIO_EXTENSIONS

__all__ = ["AudioSplits", "scan_speech_commands", "read_audio_csv", "check_labels"]

Item = tuple[Path, tuple[str, ...]]
PathLike = Union[str, Path]

logger = logging.getLogger(__name__)


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


def _list_entry(line: str) -> str:
    """A Speech Commands list line as ``word/file`` (``./`` prefixes, ``\\`` separators, blanks and a BOM removed)."""
    entry = line.lstrip("\ufeff").strip().replace("\\", "/")
    return posixpath.normpath(entry) if entry else ""


def scan_speech_commands(root: PathLike) -> AudioSplits:
    """Speech Commands V2: ``ROOT/<word>/*.wav`` with ``validation_list.txt`` and ``testing_list.txt``.

    Files are found by the shared rule of every layout (any case of :data:`~.io.AUDIO_EXTENSIONS`,
    hidden files such as ``._x.wav`` left out). Folders starting with ``_`` (``_background_noise_``)
    or ``.`` are not classes and are left out; files in neither list form the training split.
    List lines are paths relative to ``ROOT`` (``./`` and ``\\`` accepted); lines naming no file
    are reported with a warning, and a list none of whose lines names a file is an error.
    """
    root = Path(root)
    lists: dict[str, dict[str, str]] = {}  # split -> {normalised entry: line as written}
    paths: dict[str, Path] = {}
    for split, name in (("val", "validation_list.txt"), ("test", "testing_list.txt")):
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"Speech Commands layout needs {path}")
        paths[split] = path
        entries = ((_list_entry(line), line.strip()) for line in path.read_text(errors="replace").splitlines())
        lists[split] = {entry: line for entry, line in entries if entry}
    splits: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    found: set[str] = set()
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        for path in files_with(folder, AUDIO_EXTENSIONS):
            rel = path.relative_to(root).as_posix()
            found.add(rel)
            split = "val" if rel in lists["val"] else "test" if rel in lists["test"] else "train"
            splits[split].append((path, (label_name(folder.name),)))
    for split, entries in lists.items():
        missing = [line for entry, line in entries.items() if entry not in found]
        if not missing:
            continue
        first = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        if len(missing) == len(entries):
            raise DataError(f"{paths[split]}: none of its {len(entries)} line(s) names an audio file under {root} "
                            f"(first: {first}); lines must be paths relative to {root}, like <word>/<file>.wav")
        logger.warning("%s: %d of %d line(s) name no audio file under %s and are ignored (first: %s)",
                       paths[split], len(missing), len(entries), root, first)
    if not splits["train"]:
        raise DataError(f"no training audio files ({', '.join(AUDIO_EXTENSIONS)}) found in the word folders of {root}")
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
