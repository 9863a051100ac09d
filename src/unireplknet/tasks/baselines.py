"""Simple baselines, measured on the same splits as the model and reported beside its number.

A ConvNet's accuracy means little without the accuracy of something simple on the same
data. This module measures such baselines for every classification modality, because it
works on the model's own input tensors (pixels for images, log-mel images for audio,
depth views for point clouds, frame grids for video):

* :func:`input_features`: each item's input adaptive-average-pooled to at most
  ``pool x pool`` per channel and flattened (the views of a ``V x C x H x W`` evaluation
  item are averaged);
* per-modality features registered by name in :data:`FEATURES` (get one with its
  parameters bound through :func:`feature`): ``pixels``, ``frame_difference`` and
  ``first_frame`` (video frame grids), ``d2_histogram`` (raw point clouds);
* :func:`fit_baselines`: standardisation, PCA to at most 256 dimensions, logistic
  regression with ``C`` chosen by cross-validation on the training split only, and 1-NN,
  all fitted on the training split only;
* :func:`run_baselines`: all of that for a :class:`~unireplknet.modalities.base.TaskData`,
  plus the majority-class accuracy; :func:`format_table` puts the model's number beside them.

Forecasting has its own pure-numpy baselines: :func:`naive_forecast`,
:func:`seasonal_naive` (with :func:`detect_periods`), :func:`linear_forecast_fit`
(closed-form ridge, lookback → horizon, one map shared by all channels), and the
:func:`mse` / :func:`mae` metrics.

Validation and test labels are read only to score predictions: nothing is fitted on them.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import random
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import torch

from unireplknet.modalities.base import TaskData
from unireplknet.modalities.baseline_features import (  # noqa: F401  (re-exported)
    FEATURES,
    FeatureFn,
    d2_histogram,
    feature,
    first_frame,
    frame_difference,
    pixel_features,
    register_feature,
)

__all__ = [
    "FEATURES",
    "LinearForecaster",
    "d2_histogram",
    "detect_periods",
    "feature",
    "first_frame",
    "fit_baselines",
    "fit_models",
    "format_table",
    "frame_difference",
    "input_features",
    "linear_forecast_fit",
    "mae",
    "mse",
    "naive_forecast",
    "pixel_features",
    "register_feature",
    "run_baselines",
    "seasonal_naive",
]

logger = logging.getLogger(__name__)

#: ``(X, y)``: features ``n x d`` and integer labels ``n``.
XY = tuple[np.ndarray, np.ndarray]

#: logistic-regression ``C`` values tried by the internal cross-validation on the training split.
LOGREG_CS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)

#: feature dimensions above this are reduced by PCA (fitted on the training split).
MAX_DIMS = 256

# ----------------------------------------------------------------------------- reading datasets
def _label(y: Any) -> int:
    """An integer class from an int target or the argmax of a soft/one-hot target vector."""
    if isinstance(y, torch.Tensor):
        return int(y.argmax()) if y.numel() > 1 else int(y.reshape(-1)[0].item())
    if isinstance(y, (np.ndarray, list, tuple)):
        a = np.asarray(y)
        return int(a.argmax()) if a.size > 1 else int(a.reshape(-1)[0])
    return int(y)


def _known_labels(dataset: Any) -> Optional[np.ndarray]:
    """Labels a dataset exposes without loading its items (``targets``, ``labels``, ``samples``...), else ``None``."""
    n = len(dataset)
    if isinstance(dataset, torch.utils.data.Subset):
        base = _known_labels(dataset.dataset)
        return None if base is None else base[np.asarray(dataset.indices, dtype=np.int64)]
    candidates = [getattr(dataset, "targets", None), getattr(dataset, "labels", None),
                  getattr(getattr(dataset, "split", None), "labels", None)]
    samples = getattr(dataset, "samples", None)
    if (isinstance(samples, Sequence) and len(samples) == n
            and all(isinstance(s, tuple) and len(s) >= 2 for s in samples)):
        candidates.append([s[1] for s in samples])
    for cand in candidates:
        if cand is None:
            continue
        try:
            arr = np.asarray(cand)
        except Exception:  # noqa: BLE001 - anything unusual: not usable as labels
            continue
        if arr.ndim == 1 and len(arr) == n and np.issubdtype(arr.dtype, np.integer):
            return arr.astype(np.int64)
    return None


def _stratified_subset(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Sorted indices of ``k`` items drawn per class in proportion (largest remainder), seeded."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (k / len(labels))
    quota = np.floor(exact).astype(int)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: k - quota.sum()]] += 1
    if k >= len(classes):  # every class at least once, taken from the largest quotas
        for c in np.flatnonzero(quota == 0):
            quota[int(np.argmax(quota))] -= 1
            quota[c] = 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _select(dataset: Any, max_items: Optional[int], seed: int) -> np.ndarray:
    n = len(dataset)
    if max_items is None or n <= max_items:
        return np.arange(n, dtype=np.int64)
    labels = _known_labels(dataset)
    if labels is not None:
        return _stratified_subset(labels, int(max_items), seed)
    logger.info("dataset exposes no labels; drawing %d of %d items uniformly (seed %d)", max_items, n, seed)
    return np.sort(np.random.default_rng(seed).choice(n, int(max_items), replace=False)).astype(np.int64)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Fixed torch / numpy / python RNG state and one torch thread inside (training augmentation becomes
    repeatable); all restored after."""
    py_state, np_state, threads = random.getstate(), np.random.get_state(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.set_num_threads(1)  # per-item work is tiny: intra-op threads only add overhead
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            random.setstate(py_state)
            np.random.set_state(np_state)


def _view_mean(fn: FeatureFn, x: Any) -> np.ndarray:
    """``fn`` of a ``C x H x W`` input, or the mean of ``fn`` over the views of a ``V x C x H x W`` one."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.dim() == 4:
        return np.mean([np.asarray(fn(v), dtype=np.float64).reshape(-1) for v in t], axis=0)
    return np.asarray(fn(t), dtype=np.float64).reshape(-1)


def _read(dataset: Any, fns: Mapping[str, FeatureFn], max_items: Optional[int], seed: int
          ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Read (a seeded subset of) ``dataset`` once and compute every feature in ``fns`` per item."""
    idx = _select(dataset, max_items, seed)
    feats: dict[str, list[np.ndarray]] = {name: [] for name in fns}
    ys: list[int] = []
    with _seeded(seed):
        for i in idx:
            x, y = dataset[int(i)]
            ys.append(_label(y))
            for name, fn in fns.items():
                feats[name].append(_view_mean(fn, x))
    out = {}
    for name, rows in feats.items():
        out[name] = np.stack(rows) if rows else np.zeros((0, 0))
    return out, np.asarray(ys, dtype=np.int64)


def input_features(dataset: Any, *, max_items: Optional[int] = None, pool: int = 16, seed: int = 0) -> XY:
    """``(X, y)``: each item's input pooled to at most ``pool x pool`` per channel and flattened.

    Items are read once; a ``V x C x H x W`` item (evaluation views) gets the mean of its
    views' features. Above ``max_items`` items a stratified subset is drawn with ``seed``
    (uniform when the dataset does not expose its labels). Soft / one-hot targets become
    their argmax.
    """
    feats, y = _read(dataset, {"pixels": functools.partial(pixel_features, pool=pool)}, max_items, seed)
    return feats["pixels"], y


# ----------------------------------------------------------------------------- fitting
@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS/OpenMP limited to one thread: these fits are small, and threads mostly fight over shared cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
        yield
        return
    with threadpool_limits(limits=1):
        yield


def _logreg(c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, solver="lbfgs", max_iter=1000, random_state=seed)


def _choose_c(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    """Logistic-regression ``C`` by stratified k-fold (k <= 3) cross-validation on the training data only."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = min(3, int(np.min(np.unique(y, return_counts=True)[1])))
    if folds < 2:
        return 1.0
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = [float(np.mean(cross_val_score(_logreg(c, seed), x, y, cv=cv))) for c in LOGREG_CS]
    best = LOGREG_CS[int(np.argmax(scores))]  # first (smallest C) among ties
    logger.debug("logreg C by %d-fold CV on train: %s -> %g", folds, dict(zip(LOGREG_CS, scores)), best)
    return best


def fit_models(x: np.ndarray, y: np.ndarray, methods: Sequence[str] = ("logreg", "1nn"), *, seed: int = 0
               ) -> dict[str, Any]:
    """Fitted sklearn pipelines ``{method: model}`` (standardise → PCA to <= 256 dims → classifier).

    ``methods``: ``"logreg"`` (lbfgs; ``C`` from :data:`LOGREG_CS` by cross-validation on
    ``(x, y)``), ``"1nn"`` (Euclidean nearest neighbour), ``"majority"`` (most frequent
    class). Only ``(x, y)`` is seen; the result is deterministic.
    """
    from sklearn.decomposition import PCA
    from sklearn.dummy import DummyClassifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
        raise ValueError(f"need training features n x d and n labels, got {x.shape} and {y.shape}")
    unknown = set(methods) - {"logreg", "1nn", "majority"}
    if unknown:
        raise ValueError(f"unknown baseline methods {sorted(unknown)}; choose from logreg, 1nn, majority")
    steps: list[Any] = [StandardScaler()]
    if x.shape[1] > MAX_DIMS and len(x) > 1:
        steps.append(PCA(n_components=min(MAX_DIMS, len(x) - 1), svd_solver="full", random_state=seed))
    prep: Pipeline = make_pipeline(*steps).fit(x)
    z = prep.transform(x)
    models: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for m in methods:
            if m == "majority":
                clf: Any = DummyClassifier(strategy="most_frequent")
            elif m == "1nn":
                clf = KNeighborsClassifier(n_neighbors=1, metric="euclidean", algorithm="brute")
            elif len(np.unique(y)) < 2:
                clf = DummyClassifier(strategy="most_frequent")
            else:
                clf = _logreg(_choose_c(z, y, seed), seed)
            models[m] = Pipeline([("prep", prep), ("clf", clf.fit(z, y))])
    return models


def fit_baselines(
    train: XY,
    evals: Mapping[str, XY],
    methods: Sequence[str] = ("logreg", "1nn"),
    *,
    seed: int = 0,
    return_predictions: bool = False,
) -> Union[dict[str, dict[str, float]], tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]]:
    """Fit ``methods`` on ``train`` only (see :func:`fit_models`); accuracy ``{split: {method: acc}}`` on ``evals``.

    Evaluation labels are used only to score. With ``return_predictions`` the result is
    ``(accuracies, {split: {method: predicted labels}})``.
    """
    results: dict[str, dict[str, float]] = {}
    preds: dict[str, dict[str, np.ndarray]] = {}
    with _one_blas_thread():
        models = fit_models(train[0], train[1], methods, seed=seed)
        for split, (x, y) in evals.items():
            x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
            results[split], preds[split] = {}, {}
            for m, model in models.items():
                p = model.predict(x) if len(x) else np.zeros(0, dtype=np.int64)
                preds[split][m] = p
                results[split][m] = float(np.mean(p == y)) if len(y) else float("nan")
    return (results, preds) if return_predictions else results


def _read_multi(dataset: Any, fns: Mapping[str, FeatureFn], max_items: Optional[int], seed: int
                ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """:func:`_read` for multi-label data: features and the ``N x K`` boolean label matrix of a seeded subset."""
    n = len(dataset)
    idx = np.random.default_rng(seed).permutation(n)[:max_items] if max_items is not None and n > max_items \
        else np.arange(n)
    feats: dict[str, list[np.ndarray]] = {name: [] for name in fns}
    ys: list[np.ndarray] = []
    with _seeded(seed):
        for i in idx:
            x, y = dataset[int(i)]
            y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
            ys.append(np.asarray(y, dtype=np.float64).reshape(-1) > 0.5)
            for name, fn in fns.items():
                feats[name].append(_view_mean(fn, x))
    out = {name: np.stack(rows) if rows else np.zeros((0, 0)) for name, rows in feats.items()}
    return out, np.stack(ys) if ys else np.zeros((0, 0), dtype=bool)


def _one_vs_rest_scores(x_train: np.ndarray, y_train: np.ndarray, x: np.ndarray, seed: int) -> np.ndarray:
    """Per-label logistic-regression scores (standardised features); a label constant in training scores its
    training frequency."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    xt, xe = scaler.transform(x_train), scaler.transform(x)
    scores = np.tile(y_train.mean(0), (len(x), 1))
    for c in range(y_train.shape[1]):
        if 0 < y_train[:, c].sum() < len(y_train):
            model = LogisticRegression(max_iter=1000, random_state=seed).fit(xt, y_train[:, c])
            scores[:, c] = model.predict_proba(xe)[:, 1]
    return scores


def _multi_label_baselines(task: TaskData, fns: Mapping[str, FeatureFn], available: Mapping[str, Any],
                           wanted: Sequence[str], max_train: int, max_eval: Optional[int], seed: int
                           ) -> tuple[dict[str, dict[str, float]], int]:
    """``{split: {"label_prevalence": mAP of a random ranking, "logreg[feature]": mAP}}`` (the model's mAP)."""
    from .classification import mean_average_precision

    train_feats, y_train = _read_multi(task.train, fns, max_train, seed)
    logger.info("baselines (multi-label): %d training items, features %s", len(y_train), ", ".join(fns))
    results: dict[str, dict[str, float]] = {}
    with _one_blas_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of tiny fits
        for name in wanted:
            feats, y = (train_feats, y_train) if name == "train" else _read_multi(available[name], fns, max_eval, seed)
            has = y.any(0) if len(y) else np.zeros(0, dtype=bool)
            per = {"label_prevalence": float(y.mean(0)[has].mean()) if has.any() else float("nan")}
            target = torch.as_tensor(y.astype(np.float32))
            for fname in fns:
                scores = _one_vs_rest_scores(train_feats[fname], y_train, feats[fname], seed)
                per[f"logreg[{fname}]"] = mean_average_precision(torch.as_tensor(scores), target)
            results[name] = per
    return results, int(len(y_train))


def run_baselines(
    task: TaskData,
    *,
    extra: Optional[Mapping[str, FeatureFn]] = None,
    max_train: int = 4000,
    splits: Optional[Sequence[str]] = None,
    pool: int = 16,
    methods: Sequence[str] = ("logreg", "1nn"),
    seed: int = 0,
    max_eval: Optional[int] = None,
) -> dict[str, Any]:
    """Baselines for a classification task, fitted on ``task.train`` and scored on its other splits.

    Features: ``pixels`` (:func:`input_features` with ``pool``) and each ``extra``
    feature (``{name: fn}``, ``fn`` mapping one ``C x H x W`` input to a vector, e.g.
    ``feature("frame_difference", frames_grid=(4, 4))``), all computed in one pass per
    split. Training is subsampled (stratified, seeded) to ``max_train`` items; ``splits``
    (default: ``val`` and every test split) picks the scored splits (``"train"`` scores the
    fitted subset). ``max_eval`` caps scored splits too (default: all items, the model's splits).

    Returns ``{"features": {name: description}, "results": {split: {"logreg[pixels]": acc,
    "1nn[pixels]": acc, ..., "majority_class": acc}}, "n_train": n, "seconds": t}``. A multi-label task
    gets mAP (the model's metric) instead: ``logreg[feature]`` (one logistic regression per label) and
    ``label_prevalence`` (the mAP of a random ranking); a task without training data returns empty results
    and a ``"skipped"`` reason.
    """
    t0 = time.perf_counter()
    fns: dict[str, FeatureFn] = {"pixels": functools.partial(pixel_features, pool=pool)}
    desc = {"pixels": f"input tensor average-pooled to <= {pool}x{pool} per channel, flattened "
                      "(views averaged)"}
    for name, fn in (extra or {}).items():
        if name in fns:
            raise ValueError(f"extra feature name {name!r} is taken")
        fns[name] = fn
        base = getattr(fn, "func", fn)
        kw = getattr(fn, "keywords", None)
        args = f"({', '.join(f'{k}={v}' for k, v in kw.items())})" if kw else ""
        desc[name] = getattr(base, "__name__", name) + args

    def done(reason: str) -> dict[str, Any]:
        logger.warning("baselines skipped: %s", reason)
        return {"features": desc, "results": {}, "n_train": 0, "seconds": time.perf_counter() - t0,
                "skipped": reason}

    if task.train is None or len(task.train) == 0:
        return done("the task has no training split")
    available = {"val": task.val, **dict(task.tests)}
    wanted = [n for n, d in available.items() if d is not None] if splits is None else list(splits)
    for name in wanted:
        if name != "train" and available.get(name) is None:
            raise ValueError(f"the task has no split {name!r}; it has: "
                             f"{', '.join(n for n, d in available.items() if d is not None)}")
    if task.multi_label:
        results, n_train = _multi_label_baselines(task, fns, available, wanted, max_train, max_eval, seed)
        seconds = time.perf_counter() - t0
        logger.info("multi-label baselines done in %.1fs", seconds)
        return {"features": desc, "results": results, "n_train": n_train, "seconds": seconds}

    train_feats, y_train = _read(task.train, fns, max_train, seed)
    logger.info("baselines: %d training items, features %s", len(y_train), ", ".join(fns))
    eval_feats: dict[str, tuple[dict[str, np.ndarray], np.ndarray]] = {}
    for name in wanted:
        eval_feats[name] = (train_feats, y_train) if name == "train" else _read(available[name], fns, max_eval, seed)

    results: dict[str, dict[str, float]] = {name: {} for name in wanted}
    for fname in fns:
        accs = fit_baselines((train_feats[fname], y_train),
                             {s: (f[fname], y) for s, (f, y) in eval_feats.items()}, methods, seed=seed)
        for split, per in accs.items():
            for m, acc in per.items():
                results[split][f"{m}[{fname}]"] = acc
    majority = int(np.bincount(y_train).argmax())
    for split, (_, y) in eval_feats.items():
        results[split]["majority_class"] = float(np.mean(y == majority)) if len(y) else float("nan")
    seconds = time.perf_counter() - t0
    logger.info("baselines done in %.1fs", seconds)
    return {"features": desc, "results": results, "n_train": int(len(y_train)), "seconds": seconds}


def format_table(model_results: Mapping[str, float], baselines: Mapping[str, Any]) -> str:
    """Plain-text table: one row per split, columns ``model`` then each baseline; accuracy in % (one decimal).

    ``model_results`` maps split → accuracy as a fraction; ``baselines`` is the result of
    :func:`run_baselines` (or its ``"results"`` entry). Missing values show as ``-``.
    """
    results = baselines.get("results", baselines) if isinstance(baselines, Mapping) else {}
    splits = list(model_results) + [s for s in results if s not in model_results]
    methods: list[str] = []
    for s in splits:
        for m in results.get(s, {}):
            if m not in methods:
                methods.append(m)

    def cell(v: Optional[float]) -> str:
        return "-" if v is None or not np.isfinite(v) else f"{100.0 * v:.1f}"

    header = ["split", "model", *methods]
    rows = [[s, cell(model_results.get(s)), *(cell(results.get(s, {}).get(m)) for m in methods)] for s in splits]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))

    lines = [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)]
    skipped = baselines.get("skipped") if isinstance(baselines, Mapping) else None
    if skipped:
        lines.append(f"(baselines skipped: {skipped})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- forecasting baselines
def _time_axis(a: np.ndarray) -> int:
    """Time is axis 0 of a 1-D series and axis -2 otherwise (``L x C`` or ``B x L x C``)."""
    return 0 if a.ndim == 1 else a.ndim - 2


def naive_forecast(history: np.ndarray, horizon: int) -> np.ndarray:
    """The last observed value repeated ``horizon`` times.

    ``history``: ``L``, ``L x C`` or ``B x L x C`` (time on axis 0 of a 1-D series, else axis -2);
    the forecast has the same shape with ``horizon`` steps instead of ``L``.
    """
    h = np.asarray(history, dtype=np.float64)
    ax = _time_axis(h)
    if h.shape[ax] < 1:
        raise ValueError("naive_forecast needs at least one observed step")
    last = np.take(h, [-1], axis=ax)
    return np.repeat(last, int(horizon), axis=ax)


def seasonal_naive(history: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """The last ``period`` steps repeated: each step forecast as the value one period earlier.

    Shapes as in :func:`naive_forecast`; needs at least one period of history.
    """
    h = np.asarray(history, dtype=np.float64)
    ax = _time_axis(h)
    length, period = h.shape[ax], int(period)
    if period < 1 or length < period:
        raise ValueError(f"seasonal_naive needs period >= 1 and at least one period of history "
                         f"(period {period}, history {length})")
    idx = length - period + (np.arange(int(horizon)) % period)
    return np.take(h, idx, axis=ax)


def _acf(y: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation at lags ``0..max_lag`` (each lag normalised by its number of pairs)."""
    n = len(y)
    spec = np.fft.rfft(y, 2 * n)
    raw = np.fft.irfft(spec * np.conj(spec))[: max_lag + 1]
    raw = raw / (n - np.arange(max_lag + 1))
    return raw / raw[0] if raw[0] > 0 else np.zeros_like(raw)


def detect_periods(series: np.ndarray, max_period: int, top: int = 2, *, min_acf: float = 0.1,
                   margin: float = 0.05) -> list[int]:
    """Seasonal periods of a 1-D series from its autocorrelation peaks, strongest first (at most ``top``).

    After removing a straight-line trend, a candidate is a lag in ``2..max_period`` whose
    autocorrelation is the highest within ``±max(1, lag // 10)``, reaches ``min_acf`` and
    rises at least ``min_acf`` above the lowest value at a shorter lag (so the slow decay
    of a trend or random walk does not count). Candidates are taken shortest first; one
    at a multiple ``k*q`` of an accepted period ``q`` counts only when it beats the
    autocorrelation at every shorter multiple of ``q`` by ``margin``: hourly data with
    daily and weekly cycles gives ``[168, 24]``, a purely daily series ``[24]`` (48, 72...
    are its repeats). Empty when nothing is periodic.
    """
    y = np.asarray(series, dtype=np.float64).reshape(-1)
    y = y[np.isfinite(y)]
    n = len(y)
    max_period = min(int(max_period), n // 2)
    if max_period < 2:
        return []
    t = np.arange(n)
    y = y - np.polyval(np.polyfit(t, y, 1), t)
    acf = _acf(y, max_period + max(1, max_period // 10))
    accepted: list[int] = []
    for lag in range(2, max_period + 1):
        r = max(1, lag // 10)
        window = acf[max(1, lag - r): min(len(acf) - 1, lag + r) + 1]
        if acf[lag] < min_acf or acf[lag] < window.max() or acf[lag] - acf[1:lag].min() < min_acf:
            continue
        tol = max(1, round(0.02 * lag))
        if any(abs(lag - a) <= tol for a in accepted):
            continue
        repeat = False
        for q in accepted:
            k = round(lag / q)
            if k >= 2 and abs(lag - k * q) <= tol:
                shorter = max(acf[max(1, j * q - tol): j * q + tol + 1].max() for j in range(1, k))
                if acf[lag] < shorter + margin:
                    repeat = True
                    break
        if not repeat:
            accepted.append(lag)
    accepted.sort(key=lambda p: (-acf[p], p))
    return [int(p) for p in accepted[: max(0, int(top))]]


@dataclass(frozen=True)
class LinearForecaster:
    """A lookback → horizon linear map shared by all channels: ``y = x @ weight + bias``."""

    weight: np.ndarray  # lookback x horizon
    bias: np.ndarray  # horizon

    def predict(self, windows_x: np.ndarray) -> np.ndarray:
        """Forecasts for windows ``N x L`` (→ ``N x H``) or ``N x L x C`` (→ ``N x H x C``)."""
        x = np.asarray(windows_x, dtype=np.float64)
        if x.ndim == 2:
            return x @ self.weight + self.bias
        if x.ndim == 3:
            return np.einsum("nlc,lh->nhc", x, self.weight) + self.bias[None, :, None]
        raise ValueError(f"windows must be N x L or N x L x C, got shape {x.shape}")


def linear_forecast_fit(windows_x: np.ndarray, windows_y: np.ndarray, ridge: float = 1e-3) -> LinearForecaster:
    """Closed-form ridge regression from lookback windows to horizon windows, one map for all channels.

    ``windows_x``: ``N x L`` or ``N x L x C``; ``windows_y``: ``N x H`` or ``N x H x C``.
    Every (window, channel) pair is one sample. The penalty is ``ridge`` times the mean
    diagonal of ``X^T X`` (scale-free); the bias is not penalised.
    """
    x = np.asarray(windows_x, dtype=np.float64)
    y = np.asarray(windows_y, dtype=np.float64)
    if x.ndim == 3 and y.ndim == 3:
        x, y = x.transpose(0, 2, 1).reshape(-1, x.shape[1]), y.transpose(0, 2, 1).reshape(-1, y.shape[1])
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need windows N x L (x C) and N x H (x C) with the same N and C, got {np.shape(windows_x)} "
                         f"and {np.shape(windows_y)}")
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    gram = xc.T @ xc
    lam = float(ridge) * max(float(np.trace(gram)) / gram.shape[0], 1e-12)
    weight = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), xc.T @ yc)
    return LinearForecaster(weight=weight, bias=my - mx @ weight)


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error."""
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    return float(np.mean((p - t) ** 2))


def mae(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute error."""
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    return float(np.mean(np.abs(p - t)))
