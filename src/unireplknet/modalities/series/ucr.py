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
* ``.csv``: one series per line, the label in the first column, a header row optional; a header
  naming ``label``/``class``/``target``/``y`` in another column makes that column the label.

Text files are decoded as UTF-8 (a byte-order mark is dropped), else Latin-1. Files to predict
may be unlabelled (``@classLabel false`` in ``.ts``, ``?`` labels in ``.arff``: ``require_labels=False``).

Beside these series tables, :func:`find_ucr_splits` reads the layouts every modality shares
(``modalities/base.py:scan_splits``) with **one series per file** (``.csv``/``.txt``/``.npy``, see
:func:`read_one_series`): class folders ``DATA/<class>/<file>``, split folders
``DATA/{train,val,test}/<class>/<file>`` and ``path,label[,split]`` CSV lists.

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
from typing import Any, Optional, Sequence, Union

import numpy as np

from ...errors import BadFileError, DataError
from ..base import Splits, carve_val, finalize_splits, scan_splits, split_kind, visible_dirs

__all__ = [
    "SERIES_EXTENSIONS", "SeriesSet", "UCRSplits", "read_ts", "read_tsv", "read_arff", "read_csv_series",
    "read_series_file", "find_ucr_splits", "locate_split_files", "normalize_label", "LABEL_COLUMNS",
    "PER_FILE_EXTENSIONS", "read_one_series", "is_file_list", "per_file_layout", "per_file_plan", "read_items",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
#: ``(X, y)``: ``channels x length`` float32 arrays and their label strings.
SeriesSet = tuple[list[np.ndarray], list[str]]

#: file extensions the readers understand, in order of preference when one split has several.
SERIES_EXTENSIONS: tuple[str, ...] = (".ts", ".arff", ".tsv", ".csv", ".txt")
#: extensions of one-series-per-file layouts (class folders, split folders, ``path,label`` lists).
PER_FILE_EXTENSIONS: tuple[str, ...] = (".csv", ".txt", ".npy")
#: header names that mark the label column of a ``.csv``.
LABEL_COLUMNS: tuple[str, ...] = ("label", "class", "target", "y")
#: the supported layouts, for error messages.
LAYOUTS_HINT = ("series layouts: UCR/UEA files Name_TRAIN/Name_TEST (.ts, .arff, .tsv, .csv, .txt: one series "
                "per row), or one series per file (.csv, .txt, .npy) in class folders DATA/<class>/ or listed in a "
                "path,label CSV; see docs/series_classification.md")
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
        text = raw.decode("utf-8-sig")  # drops a byte-order mark (Excel/Notepad "UTF-8 with BOM")
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
def read_ts(path: PathLike, *, require_labels: bool = True) -> SeriesSet:
    """Read a sktime/UEA ``.ts`` file (see the module docstring).

    With ``require_labels=False`` (files to predict) ``@classLabel false`` is accepted: every
    field of a data line is a dimension and the labels are ``""``.
    """
    path = Path(path)
    lines = _lines(path)
    header: dict[str, str] = {}
    in_data = False
    X: list[np.ndarray] = []
    y: list[str] = []
    n_dims: Optional[int] = None
    labels: Optional[set[str]] = None
    labelled = True
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
                labelled = bool(cl) and cl[0].lower() == "true"
                if not labelled and require_labels:
                    raise DataError(f"{path}: @classLabel is not 'true': a classification file needs labels")
                labels = {normalize_label(c) for c in cl[1:]} or None
            continue
        fields = s.split(":")
        if not labelled:
            fields.append("")
        elif len(fields) < 2:
            raise DataError(f"{where}: expected dimension values then ':label', got no ':'")
        label = normalize_label(fields[-1])
        if not require_labels and label in ("", "?"):
            label = ""
        elif not label:
            raise DataError(f"{where}: empty class label")
        if labels is not None and require_labels and label not in labels:
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
def _label_column(fields: Sequence[str]) -> Optional[int]:
    """The index of the header field naming the label (``label``/``class``/``target``/``y``), if any."""
    names = [f.strip().strip("'\"").lower() for f in fields]
    return next((i for i, n in enumerate(names) if n in LABEL_COLUMNS), None)


def _read_rows(path: Path, delimiter: Optional[str], header_allowed: bool) -> SeriesSet:
    lines = _lines(path)
    X: list[np.ndarray] = []
    y: list[str] = []
    first_data = True
    label_col = 0
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
            named = _label_column(fields)
            if not _numeric_or_missing(fields[1]) or named is not None:  # a header row
                if named is not None and named != 0:
                    label_col = named
                    logger.info("%s: the header names column %d (%r) as the label", path, named + 1,
                                fields[named].strip())
                continue
        first_data = False
        if label_col >= len(fields):
            raise DataError(f"{where}: {len(fields)} field(s), no label column {label_col + 1}")
        label = normalize_label(fields[label_col])
        if not label:
            raise DataError(f"{where}: empty class label in column {label_col + 1}")
        x = _trim_trailing_nan(_floats(fields[:label_col] + fields[label_col + 1:], where)[None, :])
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
    """Read a CSV with one series per line, the label in the first column (a header row is skipped;
    a header naming ``label``/``class``/``target``/``y`` in another column makes that column the label)."""
    return _read_rows(Path(path), ",", header_allowed=True)


# ----------------------------------------------------------------------------- .arff
def _split_arff_fields(s: str) -> list[str]:
    """Comma-split an ARFF data line, keeping quoted fields (the relational value) whole."""
    return next(csv.reader([s], quotechar="'", skipinitialspace=True))


def read_arff(path: PathLike, *, require_labels: bool = True) -> SeriesSet:
    """Read a univariate ARFF (numeric attributes, then the class) or the relational multivariate UEA form
    (``require_labels=False``, for files to predict: a missing ``?`` class is ``""``)."""
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
        if not require_labels and label == "?":
            label = ""
        elif not label or label == "?":
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
def read_series_file(path: PathLike, *, require_labels: bool = True) -> SeriesSet:
    """Read any supported file, chosen by its extension (``require_labels=False``: unlabelled ``.ts``
    and ``.arff`` files are accepted, their labels are ``""``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"series file not found: {path}")
    ext = path.suffix.lower()
    readers = {".ts": read_ts, ".tsv": read_tsv, ".txt": read_tsv, ".arff": read_arff, ".csv": read_csv_series}
    if ext not in readers:
        raise DataError(f"{path}: unknown series file type {ext!r} (use {', '.join(SERIES_EXTENSIONS)})")
    X, y = (readers[ext](path) if require_labels or ext not in (".ts", ".arff")
            else readers[ext](path, require_labels=False))
    logger.debug("read %d series from %s", len(X), path)
    return X, y


# ----------------------------------------------------------------------------- one series per file
def read_one_series(path: PathLike) -> np.ndarray:
    """One series from its own file → ``C x L``: ``.npy`` (1-D, or ``T x C``), ``.csv``/``.txt``
    (one row or one column of values: univariate; a table: rows are time steps, columns channels;
    a non-numeric header row is skipped)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise BadFileError(str(path), str(e)) from e
        a = np.asarray(a, dtype=np.float32)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or a.size == 0:
            raise DataError(f"{path}: expected a 1-D series or a T x C array, got shape {a.shape}")
    else:
        rows: list[np.ndarray] = []
        for lineno, line in enumerate(_lines(path), start=1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            fields = re.split(r"[\t,;]" if re.search(r"[\t,;]", s) else r"\s+", s)
            if not rows and not all(_numeric_or_missing(f) for f in fields):
                continue  # a header row
            rows.append(_floats(fields, f"{path}:{lineno}"))
        if not rows:
            raise DataError(f"{path}: no values")
        if len({len(r) for r in rows}) > 1:
            raise DataError(f"{path}: rows of different lengths ({sorted({len(r) for r in rows})}): "
                            f"a series file holds one row, one column, or a time x channels table")
        a = np.stack(rows)
        if a.shape[0] == 1:
            a = a.T  # one row: a univariate series
    x = np.ascontiguousarray(a.T, dtype=np.float32)
    if np.isnan(x).all():
        raise DataError(f"{path}: the series has no values")
    return x


def is_file_list(path: Path) -> bool:
    """Whether ``path`` is a ``path,label[,split]`` CSV list (its header names ``path`` and ``label``)."""
    if not path.is_file() or path.suffix.lower() != ".csv":
        return False
    first = next((ln for ln in _lines(path) if ln.strip()), "")
    names = {f.strip().strip("'\"").lower() for f in next(csv.reader([first]), [])}
    return {"path", "label"} <= names


def per_file_layout(data: Path) -> bool:
    """Whether ``data`` is a one-series-per-file layout: a ``path,label`` list, a folder of
    ``{train,val,test}.csv`` lists, or a folder with (class or split) sub-folders and no series tables."""
    if data.is_file():
        return is_file_list(data)
    if not data.is_dir():
        return False
    tables = _series_files(data)
    if tables:
        return all(is_file_list(p) for p in tables if p.suffix.lower() == ".csv") and \
            any(is_file_list(p) for p in tables)
    return bool(visible_dirs(data))


def per_file_plan(data: PathLike, val_data: Optional[PathLike] = None, *, val_fraction: float = 0.1,
                  seed: int = 0, data_root: Optional[PathLike] = None, allow_outside_root: bool = False) -> Splits:
    """The file-level splits of a one-series-per-file layout (the shared rules of ``scan_splits``, with
    ``data_root`` / ``allow_outside_root`` for the paths of a list)."""
    try:
        return scan_splits(data, PER_FILE_EXTENSIONS, val_data=val_data, val_fraction=val_fraction, seed=seed,
                           data_root=data_root, allow_outside_root=allow_outside_root)
    except DataError as e:
        if "no files" in str(e) or "no files with a known extension" in str(e):
            raise DataError(f"{e}; {LAYOUTS_HINT}") from None
        raise


def read_items(items: Sequence[tuple[Path, tuple[str, ...]]]) -> SeriesSet:
    """The series and first labels of ``(file, labels)`` items, one series per file."""
    return [read_one_series(f) for f, _ in items], [lab[0] for _, lab in items]


def _check_label_column(file: Path, y: list[str]) -> None:
    """A clear error when the labels look like values: more classes than half the rows (from 10 rows
    on; on fewer, when a label is a fractional number)."""
    n_classes = len(set(y))
    fractional = any(not re.fullmatch(r"-?\d+", lab) and _numeric_or_missing(lab) for lab in y)
    if n_classes > len(y) / 2 and (len(y) >= 10 or fractional):
        examples = ", ".join(repr(c) for c in sorted(set(y))[:4])
        raise DataError(f"{file}: {n_classes} classes for {len(y)} series (e.g. {examples}): the label column looks "
                        f"wrong. Series tables take the label in the first column (.csv/.tsv/.txt; a .csv header "
                        f"may name it label/class/target/y in any column) or last (.ts/.arff); with about one "
                        f"series per class, give the validation split as a file (--val-data). {LAYOUTS_HINT}")


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
        raise DataError(f"{data} holds no series files ({', '.join(SERIES_EXTENSIONS)}); {LAYOUTS_HINT}")
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
    data_root: Optional[PathLike] = None,
    allow_outside_root: bool = False,
) -> UCRSplits:
    """Read the splits of a UCR/UEA problem (folder or file; see the module docstring).

    ``val_data`` (a file) is the validation split; otherwise a ``*_VAL*`` file, otherwise
    ``val_fraction`` of TRAIN per class (seeded, stratified, as
    :func:`~unireplknet.modalities.base.carve_val`). The TEST file is the ``test`` split.
    """
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"data not found: {data}")
    if per_file_layout(data):
        return _per_file_splits(data, val_data, val_fraction=val_fraction, seed=seed, data_root=data_root,
                                allow_outside_root=allow_outside_root)
    train_file, val_file, test_files = locate_split_files(data)
    if val_data is not None:
        val_file = Path(val_data)
        if not val_file.is_file():
            raise FileNotFoundError(f"validation data not found: {val_file}")
    Xtr, ytr = read_series_file(train_file)
    if val_file is None:
        _check_label_column(train_file, ytr)
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


def _per_file_splits(data: Path, val_data: Optional[PathLike], *, val_fraction: float, seed: int,
                     **roots: Any) -> UCRSplits:
    """:func:`find_ucr_splits` for a one-series-per-file layout."""
    plan = per_file_plan(data, val_data, val_fraction=val_fraction, seed=seed, **roots)
    read = {name: read_items(items) for name, items in plan.named()}
    channels = {x.shape[0] for X, _ in read.values() for x in X}
    if len(channels) > 1:
        raise DataError(f"{data}: the series files have different channel counts {sorted(channels)} "
                        f"(a table is read as time steps x channels)")
    logger.info("%s: one series per file (%s layout)", data, plan.layout)
    return UCRSplits(read["train"], read["val"], {n: read[n] for n in plan.tests}, plan, dict(plan.sources))
