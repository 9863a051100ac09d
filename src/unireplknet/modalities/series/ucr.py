"""Readers for the UCR/UEA time-series classification archives, and their split rules.

Every reader returns ``(X, y)``: ``X`` a list of ``float32`` arrays of shape
``channels x length`` (lengths may differ between series; a missing value is ``NaN``)
and ``y`` a list of class-label strings. Supported files:

* ``.ts`` (the sktime/UEA format): ``@problemName``, ``@univariate``, ``@dimensions``,
  ``@equalLength``, ``@classLabel true ...``, ``@data``; in a data line the dimensions
  are separated by ``:`` and the values by ``,``; the class label is the last field; ``?``
  or ``NaN`` is a missing value. ``#`` lines are comments.
* ``.tsv`` (UCR 2018): one series per line, the label first, values tab-separated
  (the trailing ``NaN`` padding of unequal-length sets is removed). Comma- or
  space-separated ``.txt`` files of the older archive read the same way.
* ``.arff``: univariate (numeric attributes, then the class attribute) and the relational
  multivariate form of the UEA archive (``'dim1 values\\ndim2 values',label``).
* ``.csv``: one series per line, the label in the first column, a header row optional.

A malformed line raises :class:`~unireplknet.errors.DataError` naming ``file:line``; a file
that cannot be opened or decoded raises :class:`~unireplknet.errors.BadFileError`.

Split rules (:func:`find_ucr_splits`): a folder ``Name/`` with ``Name_TRAIN.*`` and
``Name_TEST.*`` (any format above; a ``Name_VAL*.*`` file is the validation split), or a
single file (its ``_TEST`` sibling, if any, is the test split). TEST files are evaluated
once at the end and never trained on nor used for selection; without a validation file,
``val_fraction`` of TRAIN is carved out per class with a fixed seed.
"""
from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ...errors import BadFileError, DataError
from ..base import Splits, carve_val, finalize_splits, split_kind

__all__ = [
    "SERIES_EXTENSIONS", "SeriesSet", "UCRSplits", "read_ts", "read_tsv", "read_arff", "read_csv_series",
    "read_series_file", "find_ucr_splits", "locate_split_files", "normalize_label",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
#: ``(X, y)``: ``channels x length`` float32 arrays and their label strings.
SeriesSet = tuple[list[np.ndarray], list[str]]

#: file extensions the readers understand, in order of preference when one split has several.
SERIES_EXTENSIONS: tuple[str, ...] = (".ts", ".arff", ".tsv", ".csv", ".txt")
_MISSING = {"?", "nan", "NaN", "NAN", ""}


# ----------------------------------------------------------------------------- helpers
def _lines(path: Path) -> list[str]:
    """The file's lines (BadFileError when it cannot be opened or is not text)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise BadFileError(str(path), e.strerror or str(e)) from e
    if b"\x00" in raw[:4096]:
        raise BadFileError(str(path), "binary content, not a text series file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.splitlines()


def _floats(fields: Sequence[str], where: str) -> np.ndarray:
    """Parse value strings (``?``/empty/NaN → NaN) into a float32 vector."""
    out = np.empty(len(fields), dtype=np.float32)
    for i, s in enumerate(fields):
        s = s.strip()
        if s in _MISSING:
            out[i] = np.nan
            continue
        try:
            out[i] = float(s)
        except ValueError:
            raise DataError(f"{where}: value {i + 1} is {s[:30]!r}, not a number") from None
    return out


def normalize_label(label: str) -> str:
    """A label string without quotes; ``'1.0000000e+00'`` → ``'1'`` (numeric labels of the old UCR files)."""
    s = label.strip().strip("'\"").strip()
    try:
        v = float(s)
    except ValueError:
        return s
    if math.isfinite(v) and v == int(v) and not re.fullmatch(r"-?\d+", s):
        return str(int(v))
    return s


def _stack(dims: list[np.ndarray]) -> np.ndarray:
    """Dimensions of one case → ``C x L`` (shorter dimensions padded with NaN)."""
    length = max(len(d) for d in dims)
    out = np.full((len(dims), length), np.nan, dtype=np.float32)
    for i, d in enumerate(dims):
        out[i, : len(d)] = d
    return out


def _trim_trailing_nan(x: np.ndarray) -> np.ndarray:
    """Drop time steps at the end that are NaN in every channel (UCR pads unequal lengths so)."""
    valid = ~np.isnan(x).all(axis=0)
    if not valid.any():
        return x
    last = int(np.nonzero(valid)[0][-1]) + 1
    return x[:, :last]


def _check_nonempty(path: Path, X: list[np.ndarray]) -> None:
    if not X:
        raise DataError(f"{path}: no series found")


# ----------------------------------------------------------------------------- .ts
def read_ts(path: PathLike) -> SeriesSet:
    """Read a sktime/UEA ``.ts`` file (see the module docstring)."""
    path = Path(path)
    lines = _lines(path)
    header: dict[str, str] = {}
    in_data = False
    X: list[np.ndarray] = []
    y: list[str] = []
    n_dims: Optional[int] = None
    labels: Optional[set[str]] = None
    for lineno, line in enumerate(lines, start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        where = f"{path}:{lineno}"
        if not in_data:
            if not s.startswith("@"):
                raise DataError(f"{where}: expected a @keyword header line or @data, got {s[:40]!r}")
            key, _, value = s[1:].partition(" ")
            key = key.lower()
            header[key] = value.strip()
            if key == "data":
                in_data = True
                if header.get("timestamps", "false").lower() == "true":
                    raise DataError(f"{path}: @timeStamps true is not supported (values must be plain numbers)")
                if "dimensions" in header:
                    try:
                        n_dims = int(header["dimensions"])
                    except ValueError:
                        raise DataError(f"{path}: @dimensions {header['dimensions']!r} is not an integer") from None
                elif header.get("univariate", "").lower() == "true":
                    n_dims = 1
                cl = header.get("classlabel", "false").split()
                if not cl or cl[0].lower() != "true":
                    raise DataError(f"{path}: @classLabel is not 'true': a classification file needs labels")
                labels = {normalize_label(c) for c in cl[1:]} or None
            continue
        fields = s.split(":")
        if len(fields) < 2:
            raise DataError(f"{where}: expected dimension values then ':label', got no ':'")
        label = normalize_label(fields[-1])
        if not label:
            raise DataError(f"{where}: empty class label")
        if labels is not None and label not in labels:
            raise DataError(f"{where}: label {label!r} is not among @classLabel {sorted(labels)}")
        dims = [_floats(f.split(","), f"{where} dimension {i + 1}") for i, f in enumerate(fields[:-1])]
        if n_dims is None:
            n_dims = len(dims)
        if len(dims) != n_dims:
            raise DataError(f"{where}: {len(dims)} dimension(s), expected {n_dims}")
        X.append(_stack(dims))
        y.append(label)
    if not in_data:
        raise DataError(f"{path}: no @data line: not a .ts file")
    _check_nonempty(path, X)
    return X, y


# ----------------------------------------------------------------------------- .tsv / .txt / .csv
def _read_rows(path: Path, delimiter: Optional[str], header_allowed: bool) -> SeriesSet:
    lines = _lines(path)
    X: list[np.ndarray] = []
    y: list[str] = []
    first_data = True
    for lineno, line in enumerate(lines, start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        where = f"{path}:{lineno}"
        if delimiter is None:
            fields = re.split(r"[\t,]" if ("\t" in s or "," in s) else r"\s+", s)
        elif delimiter == ",":
            fields = next(csv.reader([s]))
        else:
            fields = s.split(delimiter)
        if len(fields) < 2:
            raise DataError(f"{where}: expected a label and at least one value, got {len(fields)} field(s)")
        if first_data and header_allowed:
            first_data = False
            if not _numeric_or_missing(fields[1]):
                continue  # a header row
        first_data = False
        label = normalize_label(fields[0])
        if not label:
            raise DataError(f"{where}: empty class label in the first column")
        x = _trim_trailing_nan(_floats(fields[1:], where)[None, :])
        if np.isnan(x).all():
            raise DataError(f"{where}: the series has no values")
        X.append(x)
        y.append(label)
    _check_nonempty(path, X)
    return X, y


def _numeric_or_missing(s: str) -> bool:
    s = s.strip()
    if s in _MISSING:
        return True
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_tsv(path: PathLike) -> SeriesSet:
    """Read a UCR 2018 ``.tsv`` (label, then tab-separated values) or an old comma/space ``.txt``."""
    path = Path(path)
    return _read_rows(path, "\t" if path.suffix.lower() == ".tsv" else None, header_allowed=False)


def read_csv_series(path: PathLike) -> SeriesSet:
    """Read a CSV with one series per line, the label in the first column (a header row is skipped)."""
    return _read_rows(Path(path), ",", header_allowed=True)


# ----------------------------------------------------------------------------- .arff
def _split_arff_fields(s: str) -> list[str]:
    """Comma-split an ARFF data line, keeping quoted fields (the relational value) whole."""
    return next(csv.reader([s], quotechar="'", skipinitialspace=True))


def read_arff(path: PathLike) -> SeriesSet:
    """Read a univariate ARFF (numeric attributes, then the class) or the relational multivariate UEA form."""
    path = Path(path)
    lines = _lines(path)
    attrs: list[str] = []  # "numeric", "relational", "nominal"
    in_data = False
    in_relational = False
    X: list[np.ndarray] = []
    y: list[str] = []
    for lineno, line in enumerate(lines, start=1):
        s = line.strip()
        if not s or s.startswith("%"):
            continue
        where = f"{path}:{lineno}"
        low = s.lower()
        if not in_data:
            if low.startswith("@attribute"):
                if in_relational:
                    continue  # the attributes inside the relational attribute
                kind = low.split(None, 2)[2] if len(low.split(None, 2)) > 2 else ""
                if kind.startswith("relational"):
                    attrs.append("relational")
                    in_relational = True
                elif kind.startswith("{"):
                    attrs.append("nominal")
                elif kind.split()[0] in ("numeric", "real", "integer"):
                    attrs.append("numeric")
                else:
                    attrs.append("other")
            elif low.startswith("@end"):
                in_relational = False
            elif low.startswith("@data"):
                in_data = True
                if len(attrs) < 2:
                    raise DataError(f"{path}: needs at least one series attribute and a class attribute")
                if attrs[-1] not in ("nominal", "other", "numeric"):
                    raise DataError(f"{path}: the last attribute must be the class")
                if "relational" in attrs[:-1] and len(attrs) != 2:
                    raise DataError(f"{path}: a relational ARFF must have exactly one relational attribute and the class")
            elif not low.startswith("@relation"):
                raise DataError(f"{where}: unexpected header line {s[:40]!r}")
            continue
        if s.startswith("{"):
            raise DataError(f"{where}: sparse ARFF rows are not supported")
        try:
            fields = _split_arff_fields(s)
        except csv.Error as e:
            raise DataError(f"{where}: {e}") from None
        label = normalize_label(fields[-1]) if fields else ""
        if not label or label == "?":
            raise DataError(f"{where}: missing class label")
        if attrs[0] == "relational":
            if len(fields) != 2:
                raise DataError(f"{where}: expected 'values',label, got {len(fields)} fields")
            dims = [_floats(d.split(","), f"{where} dimension {i + 1}")
                    for i, d in enumerate(re.split(r"\\n|\n", fields[0]))]
            x = _stack(dims)
            if X and x.shape[0] != X[0].shape[0]:
                raise DataError(f"{where}: {x.shape[0]} dimension(s), expected {X[0].shape[0]}")
        else:
            if len(fields) != len(attrs):
                raise DataError(f"{where}: {len(fields)} fields, the header declares {len(attrs)} attributes")
            x = _trim_trailing_nan(_floats(fields[:-1], where)[None, :])
        X.append(x)
        y.append(label)
    if not in_data:
        raise DataError(f"{path}: no @data line: not an ARFF file")
    _check_nonempty(path, X)
    return X, y


# ----------------------------------------------------------------------------- dispatch
def read_series_file(path: PathLike) -> SeriesSet:
    """Read any supported file, chosen by its extension."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"series file not found: {path}")
    ext = path.suffix.lower()
    readers = {".ts": read_ts, ".tsv": read_tsv, ".txt": read_tsv, ".arff": read_arff, ".csv": read_csv_series}
    if ext not in readers:
        raise DataError(f"{path}: unknown series file type {ext!r} (use {', '.join(SERIES_EXTENSIONS)})")
    X, y = readers[ext](path)
    logger.debug("read %d series from %s", len(X), path)
    return X, y


# ----------------------------------------------------------------------------- splits
@dataclass
class UCRSplits:
    """The series of each split, with the file-level plan (:class:`~unireplknet.modalities.base.Splits`)."""

    train: SeriesSet
    val: SeriesSet
    tests: dict[str, SeriesSet]
    plan: Splits
    files: dict[str, str] = field(default_factory=dict)

    def named(self) -> list[tuple[str, SeriesSet]]:
        """``[(split name, (X, y))]``: train, val, then the test splits."""
        return [("train", self.train), ("val", self.val), *self.tests.items()]


_SPLIT_RE = re.compile(r"^(?:(?P<name>.*)[_\-])?(?P<split>train(?:ing)?|val\w*|test\w*)$", re.IGNORECASE)


def _split_of(p: Path) -> tuple[str, Optional[str]]:
    """``(problem name, 'train'|'val'|'test'|None)`` of a file name like ``Name_TRAIN.ts``."""
    m = _SPLIT_RE.match(p.stem)
    if not m:
        return p.stem, None
    return m.group("name") or "", split_kind(m.group("split"))


def _pick(files: list[Path], what: str) -> Path:
    """The preferred format among several files of one split (e.g. ``.ts`` over ``.arff``)."""
    files = sorted(files, key=lambda p: SERIES_EXTENSIONS.index(p.suffix.lower()))
    if len({p.stem.lower() for p in files}) > 1:
        raise DataError(f"several {what} files: {', '.join(p.name for p in files)}; keep one")
    if len(files) > 1:
        logger.info("%s: using %s (also present: %s)", what, files[0].name, ", ".join(p.name for p in files[1:]))
    return files[0]


def _series_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SERIES_EXTENSIONS
                  and not p.name.startswith("."))


def locate_split_files(data: Path) -> tuple[Path, Optional[Path], list[Path]]:
    """``(train file, val file or None, test files)`` of a folder or a single file."""
    if data.is_file():
        name, kind = _split_of(data)
        if kind == "test":
            raise DataError(f"{data} is a TEST file: pass the TRAIN file or the folder (test data is never trained on)")
        tests: list[Path] = []
        if kind == "train":
            sibs = [p for p in _series_files(data.parent) if _split_of(p) == (name, "test")]
            if sibs:
                tests = [_pick(sibs, f"{name} TEST")]
        return data, None, tests
    files = _series_files(data)
    if not files:
        raise DataError(f"{data} holds no series files ({', '.join(SERIES_EXTENSIONS)})")
    by_kind: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    for p in files:
        _, kind = _split_of(p)
        if kind is not None:
            by_kind[kind].append(p)
    if not by_kind["train"]:
        if len(files) == 1:
            return files[0], None, []
        raise DataError(f"{data} has no *_TRAIN file (found {', '.join(p.name for p in files[:6])})")
    names = {_split_of(p)[0].lower() for ps in by_kind.values() for p in ps}
    if len(names) > 1:
        raise DataError(f"{data} holds files of several problems ({', '.join(sorted(names))}); keep one per folder")
    train = _pick(by_kind["train"], f"{data} TRAIN")
    val = _pick(by_kind["val"], f"{data} VAL") if by_kind["val"] else None
    tests = [_pick(by_kind["test"], f"{data} TEST")] if by_kind["test"] else []
    return train, val, tests


def _items(file: Path, y: list[str]) -> list:
    """Pseudo-file items ``(file#row, (label,))`` so the shared split checks apply per series."""
    return [(Path(f"{file}#{i + 1:07d}"), (lab,)) for i, lab in enumerate(y)]


def find_ucr_splits(
    data: PathLike,
    val_data: Optional[PathLike] = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> UCRSplits:
    """Read the splits of a UCR/UEA problem (folder or file; see the module docstring).

    ``val_data`` (a file) is the validation split; otherwise a ``*_VAL*`` file, otherwise
    ``val_fraction`` of TRAIN per class (seeded, stratified, as
    :func:`~unireplknet.modalities.base.carve_val`). The TEST file is the ``test`` split.
    """
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"data not found: {data}")
    train_file, val_file, test_files = locate_split_files(data)
    if val_data is not None:
        val_file = Path(val_data)
        if not val_file.is_file():
            raise FileNotFoundError(f"validation data not found: {val_file}")
    Xtr, ytr = read_series_file(train_file)
    sources = {"train": str(train_file)}
    files = {"train": str(train_file)}
    train_items = _items(train_file, ytr)
    if val_file is not None:
        Xva, yva = read_series_file(val_file)
        val_items = _items(val_file, yva)
        sources["val"] = str(val_file) + (" (--val-data)" if val_data is not None else "")
        files["val"] = str(val_file)
    else:
        kept, held = carve_val(train_items, val_fraction, seed)
        index = {str(p): i for i, (p, _) in enumerate(train_items)}
        keep_i = [index[str(p)] for p, _ in kept]
        held_i = [index[str(p)] for p, _ in held]
        Xva, yva = [Xtr[i] for i in held_i], [ytr[i] for i in held_i]
        Xtr, ytr = [Xtr[i] for i in keep_i], [ytr[i] for i in keep_i]
        val_items, train_items = held, kept
        sources["val"] = f"{val_fraction:g} of {train_file.name} per class (seed {seed})"
        sources["train"] += " minus validation"
    tests: dict[str, SeriesSet] = {}
    test_items: dict[str, list] = {}
    for tf in test_files:
        Xte, yte = read_series_file(tf)
        tests["test"] = (Xte, yte)
        test_items["test"] = _items(tf, yte)
        sources["test"] = str(tf)
        files["test"] = str(tf)
    plan = finalize_splits(Splits("ucr", train_items, val_items, test_items, sources), str(data))
    channels = {x.shape[0] for X, _ in [(Xtr, ytr), (Xva, yva), *tests.values()] for x in X}
    if len(channels) > 1:
        raise DataError(f"{data}: the splits' series have different channel counts {sorted(channels)}")
    return UCRSplits((Xtr, ytr), (Xva, yva), tests, plan, files)
