"""Time-series classification data: UCR/UEA archives, CSV series, and a synthetic shapes demo.

This is the ``series`` implementation of the modality plug-in contract (docs/engine.md,
docs/series_classification.md). Files are read by :mod:`.ucr`; each series becomes an
image by :mod:`.classify`.
"""
from __future__ import annotations

import argparse
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ...errors import DataError
from ..base import Splits, TaskData, finalize_splits, plan_lines
from ..baseline_features import raw_sample_lookup
from .classify import (AUGMENTATIONS, IMAGE_KINDS, SeriesImageDataset, SeriesMixup, channel_stats, detect_interleave,
                       image_channels, image_parts, parse_augment, prepare_all, prepare_series, series_image, standardize,
                       znormalize)
from .ucr import (SERIES_EXTENSIONS, _floats, _label_column, _lines, find_ucr_splits, locate_split_files,
                  per_file_layout, per_file_plan, read_items, read_one_series, read_series_file)

__all__ = [
    "CONFIG_DEFAULTS", "DEMO_DEFAULTS", "RECIPES", "SERIES_EXTENSIONS", "add_train_args", "build_task_data",
    "load_for_predict", "auto_config", "baseline_features", "choose_length", "shapes_demo", "read_predict_series",
    "task_from_series",
]

logger = logging.getLogger(__name__)

#: defaults of the keys added by :func:`add_train_args` (``series_length`` None: chosen from the data).
CONFIG_DEFAULTS: dict[str, Any] = {
    "series_length": None,
    "series_deinterleave": None,  # interleaved phases split into channels (None: detected from the training series)
    "series_image": "reshape+zreshape",  # the folded series and its z-normalised copy (each with its difference)
    "series_image_size": 64,
    "znorm": False,
    "series_norm": None,  # per-channel [mean, std] of the training series (computed when None; no flag)
    "series_augment": "scale,jitter,crop",
    "series_mixup": 0.0,  # mixup alpha on the series images (0: off); any batch size
    "series_eval_views": 1,  # evaluation views: the whole series, then windows (scores averaged)
}

#: a small custom UniRepLKNet that beats 1-NN Euclidean on small UCR/UEA sets in minutes on a CPU
#: (see docs/series_classification.md for the numbers); also the synthetic-shapes demo's setup.
SMALL_MODEL: dict[str, Any] = {
    "model": "custom",
    "model_args": {"depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128], "kernel_sizes": [[3], [7], [7, 3], [7]]},
}

#: the demo's shapes have random phase, frequency, amplitude and offset: a z-normalised recurrence plot
#: (phase-invariant) reaches ~0.98 test accuracy in 15 epochs where the folded series reaches ~0.78.
DEMO_DEFAULTS: dict[str, Any] = {
    **SMALL_MODEL,
    "series_image": "recurrence",
    "znorm": True,
    "series_image_size": 64,
    "epochs": 15,
    "batch_size": 32,
    "lr": 2e-3,
    "warmup_epochs": 1,
    "weight_decay": 0.05,
    "smoothing": 0.1,
    "drop_path": 0.1,
    "num_workers": 0,
    "num_threads": 1,
}

#: ``small``: the demo's model and schedule for real UCR/UEA sets (more epochs: they are small).
RECIPES: dict[str, dict[str, Any]] = {
    "small": {**SMALL_MODEL, "epochs": 60, "batch_size": 16, "lr": 2e-3, "warmup_epochs": 3,
              "weight_decay": 0.05, "smoothing": 0.1, "drop_path": 0.1, "num_workers": 0},
    "demo": dict(DEMO_DEFAULTS),
}

DEMO_CLASSES = ("sine", "square", "sawtooth", "chirp")
DEMO_LENGTH = 128
MIN_LENGTH, MAX_LENGTH = 32, 512


# ----------------------------------------------------------------------------- config access
def _get(args: Any, key: str, demo: bool = False) -> Any:
    """``args.key`` (Namespace or mapping), else the default (of :data:`DEMO_DEFAULTS` first when ``demo``)."""
    value = args.get(key) if isinstance(args, Mapping) else getattr(args, key, None)
    if value is not None:
        return value
    if demo and key in DEMO_DEFAULTS:
        return DEMO_DEFAULTS[key]
    return CONFIG_DEFAULTS.get(key)


def choose_length(lengths: Sequence[int]) -> int:
    """The fixed series length: the median length, clipped to ``[32, 512]``."""
    if not len(lengths):
        raise DataError("no series to choose a length from")
    return int(np.clip(int(round(float(np.median(lengths)))), MIN_LENGTH, MAX_LENGTH))


# ----------------------------------------------------------------------------- the demo
def _shape(kind: str, length: int, rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0.0, 1.0, length)
    cycles = rng.uniform(2.0, 5.0)
    phase = rng.uniform(0.0, 2 * np.pi)
    arg = 2 * np.pi * cycles * t + phase
    if kind == "sine":
        x = np.sin(arg)
    elif kind == "square":
        x = np.sign(np.sin(arg))
    elif kind == "sawtooth":
        x = 2 * ((arg / (2 * np.pi)) % 1.0) - 1
    else:  # chirp: frequency rising over the window
        x = np.sin(2 * np.pi * (1.0 + cycles * t) * t * 2 + phase)
    x = rng.uniform(0.5, 2.0) * x + rng.uniform(-1.0, 1.0)
    return (x + rng.normal(0.0, 0.3, length)).astype(np.float32)[None, :]


def shapes_demo(n_per_class: int, seed: int, length: int = DEMO_LENGTH) -> tuple[list[np.ndarray], list[str]]:
    """Synthetic univariate series of 4 shapes (sine/square/sawtooth/chirp), random frequency,
    phase, amplitude, offset and Gaussian noise; ``n_per_class`` each, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n_per_class):
        for kind in DEMO_CLASSES:
            X.append(_shape(kind, length, rng))
            y.append(kind)
    return X, y


# ----------------------------------------------------------------------------- flags
def _image_kind(value: str) -> str:
    """argparse type of ``--series-image``: a known kind or several joined by ``+``."""
    try:
        return "+".join(image_parts(value))
    except DataError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """Time-series classification flags (all default to None; real defaults in :data:`CONFIG_DEFAULTS`)."""
    g = parser.add_argument_group("time-series classification")
    g.add_argument("--series-length", type=int, default=None,
                   help="resample every series to this length (default: the median training length, in [32, 512])")
    g.add_argument("--series-deinterleave", type=int, default=None, metavar="P",
                   help="split each series into its P interleaved phases (samples k, k+P, ...) as channels "
                        "before resampling (1: off; default: detected from the training series' autocorrelation)")
    g.add_argument("--series-image", default=None, type=_image_kind,
                   help="series → image mapping: Gramian angular fields, recurrence plot, or row-wise reshape; "
                        "a 'z' prefix applies it to the per-series z-normalised series; several joined by '+' "
                        f"are stacked as channels (choose from {', '.join(IMAGE_KINDS)}; "
                        f"default {CONFIG_DEFAULTS['series_image']})")
    g.add_argument("--series-image-size", type=int, default=None, help="image side in pixels (default 64)")
    g.add_argument("--znorm", action=argparse.BooleanOptionalAction, default=None,
                   help="z-normalise each series on its own per channel (default off: standardise with the "
                        "training set's per-channel mean and std, which keeps level differences between series)")
    g.add_argument("--series-mixup", type=float, default=None,
                   help="mixup alpha on the series images, any batch size (0: off; "
                        f"default {CONFIG_DEFAULTS['series_mixup']:g})")
    g.add_argument("--series-eval-views", type=int, default=None,
                   help="evaluation views averaged per series: the whole series, then windows of 90%% of it "
                        f"(default {CONFIG_DEFAULTS['series_eval_views']})")
    g.add_argument("--series-augment", default=None,
                   help=f"train-time augmentations, comma-separated from {', '.join(AUGMENTATIONS)}, or none "
                        f"(default {CONFIG_DEFAULTS['series_augment']})")


# ----------------------------------------------------------------------------- build
def _demo_splits(seed: int, val_fraction: float) -> tuple[dict[str, tuple[list, list]], Splits]:
    from ..base import carve_val
    Xtr, ytr = shapes_demo(60, seed=1234)
    Xte, yte = shapes_demo(40, seed=4321)
    items = [(Path(f"demo-train#{i + 1:07d}"), (lab,)) for i, lab in enumerate(ytr)]
    kept, held = carve_val(items, val_fraction, seed)
    pos = {str(p): i for i, (p, _) in enumerate(items)}
    k = [pos[str(p)] for p, _ in kept]
    h = [pos[str(p)] for p, _ in held]
    test_items = [(Path(f"demo-test#{i + 1:07d}"), (lab,)) for i, lab in enumerate(yte)]
    sources = {"train": "synthetic shapes (seed 1234) minus validation",
               "val": f"{val_fraction:g} of the training series per class (seed {seed})",
               "test": "synthetic shapes (seed 4321)"}
    plan = finalize_splits(Splits("synthetic shapes (demo)", kept, held, {"test": test_items}, sources), "demo")
    data = {"train": ([Xtr[i] for i in k], [ytr[i] for i in k]), "val": ([Xtr[i] for i in h], [ytr[i] for i in h]),
            "test": (Xte, yte)}
    return data, plan


def build_task_data(args: argparse.Namespace) -> TaskData:
    """Datasets for ``args.data`` (a UCR/UEA folder or file, see :mod:`.ucr`); the synthetic
    shapes demo when ``args.data`` is None."""
    seed = int(getattr(args, "seed", 0) or 0)
    val_fraction = float(getattr(args, "val_fraction", None) or 0.1)
    data = getattr(args, "data", None)
    if data is None:
        sets, plan = _demo_splits(seed, val_fraction)
        source = "synthetic shapes (demo)"
        files = None
    else:
        ucr = find_ucr_splits(data, getattr(args, "val_data", None), val_fraction=val_fraction, seed=seed,
                              data_root=getattr(args, "data_root", None),
                              allow_outside_root=bool(getattr(args, "allow_outside_root", False)))
        sets = {name: s for name, s in ucr.named()}
        plan = ucr.plan
        source = str(data)
        files = ucr
    return task_from_series(args, sets, plan, source, files.files if files is not None else None)


def task_from_series(args: argparse.Namespace, sets: dict[str, tuple[list, list]], plan: Splits, source: str,
                     files: Any = None) -> TaskData:
    """The :class:`TaskData` of series already read: ``sets[split] = (series C x L, label names)`` with the
    file-level ``plan`` (split rules applied, classes filled); used for files and for shards alike."""
    data = getattr(args, "data", None) if not isinstance(args, Mapping) else args.get("data")
    demo = data is None
    kind = str(_get(args, "series_image", demo))
    size = int(_get(args, "series_image_size", demo))
    znorm = bool(_get(args, "znorm", demo))
    augment = parse_augment(_get(args, "series_augment", demo))
    mixup = float(_get(args, "series_mixup", demo) or 0.0)
    views = int(_get(args, "series_eval_views", demo))
    if views < 1:
        raise DataError(f"series_eval_views must be at least 1, got {views}")
    train_lengths = [x.shape[1] for x in sets["train"][0]]
    period = _get(args, "series_deinterleave")
    period = detect_interleave(sets["train"][0]) if period is None else int(period)
    if period < 1:
        raise DataError(f"series_deinterleave must be at least 1, got {period}")
    length = _get(args, "series_length")
    length = choose_length([n // period for n in train_lengths]) if length is None else int(length)
    if length < 2:
        raise DataError(f"series_length must be at least 2, got {length}")
    channels = int(sets["train"][0][0].shape[0]) * period
    if size < 8:
        raise DataError(f"series_image_size must be at least 8, got {size}")
    index = plan.class_index()
    prepared = {name: prepare_all(X, length, znorm, period) for name, (X, _) in sets.items()}
    norm = None
    if not znorm:
        norm = getattr(args, "series_norm", None) if not isinstance(args, Mapping) else args.get("series_norm")
        norm = channel_stats(prepared["train"]) if norm is None else [list(map(float, v)) for v in norm]
        prepared = {name: standardize(p, norm) for name, p in prepared.items()}

    def dataset(name: str, train: bool) -> SeriesImageDataset:
        return SeriesImageDataset(prepared[name], [index[v] for v in sets[name][1]], kind, size,
                                  augment if train else (), plan.classes, views=1 if train else views)

    tests = {name: dataset(name, False) for name in sets if name not in ("train", "val")}
    in_chans = image_channels(kind, channels)
    meta = {
        "source": source, "series_length": length, "series_deinterleave": period, "channels": channels,
        "series_image": kind,
        "series_image_size": size, "znorm": znorm, "series_norm": norm, "series_augment": list(augment),
        "series_mixup": mixup, "series_eval_views": views,
        "train_lengths": [int(min(train_lengths)), int(np.median(train_lengths)), int(max(train_lengths))],
        "plan": plan_lines(plan) + [f"  series: {channels} channel(s)"
                                    + (f" ({channels // period} split into {period} interleaved phases)"
                                       if period > 1 else "") + f", resampled to {length}, "
                                    f"{kind} image {in_chans}x{size}x{size}, znorm {'on' if znorm else 'off'}"],
    }
    if files is not None:
        meta["files"] = files
    logger.info("series data: %d train / %d val / %s test series, length %d, %d channel(s)",
                len(sets["train"][0]), len(sets["val"][0]),
                "/".join(str(len(sets[n][0])) for n in tests) or "0", length, channels)
    return TaskData(train=dataset("train", True), val=dataset("val", False), tests=tests,
                    num_classes=len(plan.classes), class_names=list(plan.classes), in_chans=in_chans,
                    input_size=(size, size), meta=meta, splits=plan if data is not None else None, eval_views=views,
                    train_batch_transform=(SeriesMixup(mixup, len(plan.classes), float(_get(args, "smoothing") or 0.0))
                                           if mixup > 0 else None))


# ----------------------------------------------------------------------------- baselines
def baseline_features(task: TaskData) -> dict[str, Any]:
    """Series baselines for the runner (``Modality.baseline_features``): ``{"series": fn, "zseries": fn}``.

    ``series``: the prepared series behind an input (resampled to ``series_length``, standardised
    with the training statistics, before augmentation), flattened; ``zseries``: the same series
    z-normalised per channel (the usual UCR 1-NN setting). The runner fits 1-NN and logistic
    regression on them (after its per-feature standardisation). ``fn`` looks the series up as the
    last item of one of the task's datasets; any other tensor raises ``ValueError`` (the runner then
    skips the baselines with a warning).
    """
    series_of = raw_sample_lookup(task, "series baseline")

    def series(x: Any) -> np.ndarray:
        """The prepared series behind input ``x``, flattened."""
        return series_of(x).numpy().reshape(-1)

    def zseries(x: Any) -> np.ndarray:
        """The prepared series behind input ``x``, z-normalised per channel, flattened."""
        return znormalize(series_of(x).numpy()).reshape(-1)

    return {"series": series, "zseries": zseries}


# ----------------------------------------------------------------------------- predict
def _numeric(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return s.strip() in ("?", "", "nan", "NaN")


def _whole(s: str) -> bool:
    try:
        v = float(s)
    except ValueError:
        return False
    return math.isfinite(v) and v == int(v)


def _looks_like_labels(rows: list[list[str]]) -> bool:
    """Whether the first column of value rows looks like class ids: whole numbers, at most half as many
    distinct values as rows, while the other values are not all whole numbers (training's CSV layout)."""
    if len(rows) < 2 or any(len(r) < 2 for r in rows):
        return False
    first = [r[0].strip() for r in rows]
    if not all(_whole(c) for c in first) or len(set(first)) > len(rows) / 2:
        return False
    return not all(_whole(c) for r in rows for c in r[1:] if c.strip() not in ("?", "", "nan", "NaN"))


def read_predict_series(path: str, per_file: bool = False) -> list[np.ndarray]:
    """The series of a file to predict, one ``C x L`` array per series in file order.

    ``.ts``/``.arff`` as in training, labelled or not (``@classLabel false``, ``?`` classes);
    ``.tsv``/``.txt`` as in training (label first, ignored); ``.npy``, and any file when
    ``per_file`` (the run was trained on one series per file): one series
    (:func:`.ucr.read_one_series`). A ``.csv`` holds one series per line; its label column is
    dropped: a header column named ``label``/``class``/``target``/``y``, the first column of a
    UCR-named file (``Name_TRAIN.csv``/``Name_TEST.csv``, read exactly as training reads it), or a
    first column that is non-numeric or holds whole-number class ids (a warning says so).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"series file not found: {p}")
    ext = p.suffix.lower()
    if per_file or ext == ".npy":
        return [read_one_series(p)]
    if ext in (".ts", ".tsv", ".txt", ".arff"):
        return read_series_file(p, require_labels=False)[0]
    if ext != ".csv":
        raise DataError(f"{p}: unknown series file type {ext!r} (use {', '.join(SERIES_EXTENSIONS + ('.npy',))})")
    if re.search(r"[_-](train|test|val|valid|validation)$", p.stem, re.IGNORECASE):  # UCR-named: label first
        return read_series_file(p)[0]
    import csv
    try:
        rows = [r for r in csv.reader(_lines(p)) if r and any(c.strip() for c in r)]
    except csv.Error as e:
        from ...errors import BadFileError
        raise BadFileError(str(p), str(e)) from e
    if not rows:
        raise DataError(f"{p}: no series")
    label_col = None
    named = _label_column(rows[0])
    if named is not None or not all(_numeric(c) for c in rows[0][1:]):  # a header
        label_col = named
        rows = rows[1:]
    if rows and label_col is None:
        if all(not _numeric(r[0]) for r in rows):
            label_col = 0
        elif _looks_like_labels(rows):
            label_col = 0
            logger.warning("%s: the first column holds whole numbers with few distinct values, as class labels "
                           "do in the training layout: it is read as the label, not as a value (give a header "
                           "row to say which column, if any, is the label)", p)
    out = []
    for i, r in enumerate(rows, start=1):
        vals = r if label_col is None else r[:label_col] + r[label_col + 1:]
        if not vals:
            raise DataError(f"{p}: row {i} has no values")
        out.append(_floats(vals, f"{p} row {i}")[None, :])
    if not out:
        raise DataError(f"{p}: no series")
    return out


def load_for_predict(path: str, args: argparse.Namespace) -> torch.Tensor:
    """A series file → the image(s) the model was validated on: ``C x H x W`` for one series,
    ``N x C x H x W`` (one per series, in file order) for several.

    The ``N`` inputs are separate series, not views of one: ``predict`` gives one prediction per
    row (this function's ``separate_samples`` attribute is True; other modalities' 4-D results are
    views to average). A run trained on one series per file (``args.data`` such a layout, when it
    still exists) reads each file as one series (a ``T x C`` table is one multichannel series).
    """
    X = read_predict_series(path, per_file=_trained_per_file(args))
    period = getattr(args, "series_deinterleave", None)
    if period is None:
        period = detect_interleave(X)
        logger.warning("series_deinterleave is not set: using %d detected on %s (set it to the training value)",
                       period, path)
    period = int(period)
    length = getattr(args, "series_length", None)
    if length is None:
        length = choose_length([x.shape[1] // period for x in X])
        logger.warning("series_length is not set: using %d from %s (set it to the training value)", length, path)
    kind = str(_get(args, "series_image"))
    size = int(_get(args, "series_image_size"))
    znorm = bool(_get(args, "znorm"))
    prepared = [prepare_series(x, int(length), znorm, period) for x in X]
    if not znorm:
        norm = _get(args, "series_norm")
        if norm is None:
            norm = channel_stats(np.stack(prepared))
            logger.warning("series_norm is not set: standardising with the statistics of %s itself "
                           "(set it to the training value, in the run's config)", path)
        prepared = [standardize(p, norm) for p in prepared]
    images = [series_image(torch.from_numpy(p), kind, size) for p in prepared]
    return images[0] if len(images) == 1 else torch.stack(images)


#: the rows of a 4-D :func:`load_for_predict` result are separate series (one prediction each), not views.
load_for_predict.separate_samples = True  # type: ignore[attr-defined]


def _trained_per_file(args: Any) -> bool:
    """Whether the run's training data (``args.data``, if it still exists) held one series per file."""
    data = getattr(args, "data", None) if not isinstance(args, Mapping) else args.get("data")
    if not data or not isinstance(data, (str, Path)):
        return False
    try:
        return Path(data).exists() and per_file_layout(Path(data))
    except (OSError, DataError):
        return False


# ----------------------------------------------------------------------------- auto
def auto_config(*args: Any, **kwargs: Any) -> dict[str, tuple[Any, str]]:
    """Config values chosen from the data, each with a reason: ``{key: (value, why)}``.

    Called as ``auto_config(config)`` or ``auto_config(task, config[, device])``. Reads only the
    TRAIN file (never TEST). Chooses ``series_deinterleave`` (:func:`.classify.detect_interleave`:
    the period of series that interleave several quantities sample by sample, else 1),
    ``series_length`` (the median training length, after that split, clipped to
    ``[32, 512]``), ``series_norm`` (per-channel statistics of the training part, unless
    ``znorm``), ``series_image_size`` (32 for short series, else 64) and a batch size that gives
    several steps per epoch on small sets. Returns ``{}`` without data.
    """
    cfg = kwargs.get("config")
    if cfg is None:
        cfg = next((a for a in args if isinstance(a, (Mapping, argparse.Namespace))), None)
    if cfg is None:
        return {}
    get = (lambda k: cfg.get(k)) if isinstance(cfg, Mapping) else (lambda k: getattr(cfg, k, None))
    data = get("data")
    if data is None:
        return {}
    if not Path(data).exists():
        return {}
    if per_file_layout(Path(data)):  # one series per file: the training part of the shared split rules
        plan = per_file_plan(data, get("val_data"), val_fraction=float(get("val_fraction") or 0.1),
                             seed=int(get("seed") or 0), data_root=get("data_root"),
                             allow_outside_root=bool(get("allow_outside_root")))
        X, y = read_items(plan.train)
        val_file = Path(data)  # the validation part is already set apart (not carved again below)
    else:
        train_file, val_file, _ = locate_split_files(Path(data))
        X, y = read_series_file(train_file)
    out: dict[str, tuple[Any, str]] = {}
    period = get("series_deinterleave")
    if period is None:
        period = detect_interleave(X)
        out["series_deinterleave"] = (period, (
            f"the training series interleave {period} quantities (autocorrelation high at lag {period}, "
            "low at lag 1): each phase becomes a channel") if period > 1 else
            "no interleaved phases (autocorrelation at lag 1 high, or no strong short period)")
    period = int(period)
    lengths = [x.shape[1] // period for x in X]
    length = get("series_length")
    if length is None:
        length = choose_length(lengths)
        out["series_length"] = (length, f"median training length {int(np.median(lengths))}"
                                        + (f" (after splitting {period} phases)" if period > 1 else "")
                                        + f" (min {min(lengths)}, max {max(lengths)}) clipped to "
                                          f"[{MIN_LENGTH}, {MAX_LENGTH}]")
    znorm = get("znorm")
    if get("series_norm") is None and not (CONFIG_DEFAULTS["znorm"] if znorm is None else znorm):
        train_only = X
        if val_file is None:  # the validation part is carved out later; use the same carve here
            from ..base import carve_val
            items = [(Path(f"{i:09d}"), (lab,)) for i, lab in enumerate(y)]
            vf = get("val_fraction") or 0.1
            kept, _ = carve_val(items, float(vf), int(get("seed") or 0))
            train_only = [X[int(p.name)] for p, _ in kept]
        stats = channel_stats(prepare_all(train_only, int(length), False, period))
        out["series_norm"] = (stats, "per-channel mean and std of the training series (kept with the run for predict)")
    if get("series_image_size") is None:
        size = 32 if int(length) < 64 else 64
        out["series_image_size"] = (size, f"series of length {length}: a {size}x{size} image keeps every point")
    n = len(X)
    if get("batch_size") is None and n < 400:
        bs = 16 if n < 200 else 32
        out["batch_size"] = (bs, f"{n} training series: batch {bs} gives {max(1, n // bs)} steps per epoch")
    return out
