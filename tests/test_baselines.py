"""Simple baselines (unireplknet.tasks.baselines): features, fitting, the table, forecasting baselines."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from unireplknet.modalities.base import TaskData
from unireplknet.tasks import baselines as B


class ListDataset(Dataset):
    """``(x, y)`` items from lists; ``targets`` exposes the labels like the modalities' datasets."""

    def __init__(self, xs, ys, expose_targets: bool = True):
        self.xs, self.ys = list(xs), list(ys)
        if expose_targets:
            self.targets = [int(y) if not isinstance(y, torch.Tensor) else int(y.argmax()) for y in ys]

    def __len__(self):
        return len(self.xs)

    def __getitem__(self, i):
        return self.xs[i], self.ys[i]


def blobs(n: int, seed: int, noise: float = 1.0):
    """3 classes of Gaussian blobs as 1 x 16 x 16 tensors (fixed class templates, per-item noise)."""
    templates = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(123))
    g = torch.Generator().manual_seed(seed)
    ys = [i % 3 for i in range(n)]
    xs = [templates[y] + noise * torch.randn(1, 16, 16, generator=g) for y in ys]
    return xs, ys


def blob_task(**kw) -> TaskData:
    tr, va, te = blobs(150, 1), blobs(60, 2), blobs(60, 3)
    return TaskData(train=ListDataset(*tr), val=ListDataset(*va), num_classes=3, class_names=["a", "b", "c"],
                    in_chans=1, input_size=(16, 16), tests={"test": ListDataset(*te)}, **kw)


def test_learns_separable_blobs_well_above_chance():
    out = B.run_baselines(blob_task())
    assert set(out["results"]) == {"val", "test"}
    for split in ("val", "test"):
        r = out["results"][split]
        assert r["logreg[pixels]"] >= 0.9 and r["1nn[pixels]"] >= 0.9
        assert r["majority_class"] == pytest.approx(1 / 3, abs=0.02)
    assert out["n_train"] == 150 and out["seconds"] >= 0 and "pixels" in out["features"]


def test_fit_never_touches_test_labels():
    tr = B.input_features(ListDataset(*blobs(90, 1)))
    va = B.input_features(ListDataset(*blobs(30, 2)))
    xt, yt = B.input_features(ListDataset(*blobs(60, 3)))
    perm = np.random.default_rng(0).permutation(yt)
    garbage = np.full_like(yt, 7)  # labels no model could predict
    runs = [B.fit_baselines(tr, {"val": va, "test": (xt, labels)}, ("logreg", "1nn", "majority"),
                            return_predictions=True) for labels in (yt, perm, garbage)]
    (acc0, pred0), (acc1, pred1), (acc2, pred2) = runs
    for split in ("val", "test"):
        for m in ("logreg", "1nn", "majority"):
            np.testing.assert_array_equal(pred0[split][m], pred1[split][m])
            np.testing.assert_array_equal(pred0[split][m], pred2[split][m])
    assert acc0["val"] == acc1["val"] == acc2["val"]
    assert acc0["test"]["logreg"] >= 0.9 > acc1["test"]["logreg"]
    assert acc2["test"]["logreg"] == 0.0


def test_run_baselines_test_labels_only_change_test_scores():
    task = blob_task()
    xs, ys = blobs(60, 3)
    shuffled = list(np.random.default_rng(1).permutation(ys))
    task2 = blob_task()
    task2.tests = {"test": ListDataset(xs, shuffled)}
    a, b = B.run_baselines(task), B.run_baselines(task2)
    assert a["results"]["val"] == b["results"]["val"]
    assert a["results"]["test"]["logreg[pixels]"] != b["results"]["test"]["logreg[pixels]"]


def test_eval_views_are_averaged_and_soft_targets_argmaxed():
    g = torch.Generator().manual_seed(0)
    views = [torch.rand(2, 3, 32, 32, generator=g) for _ in range(4)]
    soft = [torch.tensor([0.1, 0.9]), torch.tensor([0.8, 0.2]), torch.tensor([0.3, 0.7]), torch.tensor([0.6, 0.4])]
    x, y = B.input_features(ListDataset(views, soft), pool=4)
    assert x.shape == (4, 3 * 4 * 4)
    np.testing.assert_array_equal(y, [1, 0, 1, 0])
    for row, v in zip(x, views):
        want = (B.pixel_features(v[0], pool=4) + B.pixel_features(v[1], pool=4)) / 2
        np.testing.assert_allclose(row, want, atol=1e-6)
    # a small input is never upsampled: at most pool x pool
    x_small, _ = B.input_features(ListDataset([torch.rand(1, 5, 7)], [0]), pool=16)
    assert x_small.shape == (1, 35)


def test_training_subsample_is_stratified_and_seeded():
    ys = [0] * 80 + [1] * 20
    ds = ListDataset([torch.full((1, 2, 2), float(i)) for i in range(100)], ys)
    x, y = B.input_features(ds, max_items=10, seed=3)
    assert np.bincount(y).tolist() == [8, 2]
    x2, _ = B.input_features(ds, max_items=10, seed=3)
    np.testing.assert_array_equal(x, x2)
    # without exposed labels: uniform but still seeded, still max_items
    x3, _ = B.input_features(ListDataset(ds.xs, ys, expose_targets=False), max_items=10, seed=3)
    assert len(x3) == 10


def _random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def _sphere(n: int, seed: int) -> np.ndarray:
    p = np.random.default_rng(seed).normal(size=(n, 3))
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def _cube(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.uniform(-1, 1, size=(n, 3))
    face = rng.integers(0, 3, n)
    p[np.arange(n), face] = rng.choice([-1.0, 1.0], n)
    return p


def test_d2_histogram_rotation_invariant_and_shape_sensitive():
    sphere = _sphere(2048, 0)
    h = B.d2_histogram(sphere, bins=32, pairs=4096, seed=0)
    assert h.shape == (32,) and h.sum() == pytest.approx(1.0)
    rotated = B.d2_histogram(sphere @ _random_rotation(5).T * 3.0 + 1.5, seed=0)
    assert np.abs(h - rotated).max() < 1e-3
    other_sphere = B.d2_histogram(_sphere(2048, 1), seed=1)
    cube = B.d2_histogram(_cube(2048, 2), seed=2)
    assert np.abs(h - cube).sum() > 3 * np.abs(h - other_sphere).sum()
    assert B.feature("d2_histogram", bins=16)(sphere).shape == (16,)


def bar_clips(n: int, seed: int, grid=(2, 4), h: int = 8, w: int = 24):
    """Grids of frames with a vertical bar moving one pixel left (0) or right (1) per frame from the same starts."""
    rng = np.random.default_rng(seed)
    rows, cols = grid
    t = rows * cols
    xs, ys = [], []
    for i in range(n):
        d = i % 2
        x0 = int(rng.integers(t - 1, w - t - 1))  # same start range for both directions
        frames = 0.1 * rng.normal(size=(t, h, w))
        for k in range(t):
            pos = x0 + (k if d else -k)
            frames[k, :, pos:pos + 2] += 1.0
        img = frames.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(1, rows * h, cols * w)
        xs.append(torch.tensor(img, dtype=torch.float32))
        ys.append(d)
    return xs, ys


def test_frame_difference_sees_direction_first_frame_does_not():
    grid = (2, 4)
    task = TaskData(train=ListDataset(*bar_clips(120, 0)), val=None, num_classes=2, class_names=["left", "right"],
                    in_chans=1, input_size=(16, 96), tests={"test": ListDataset(*bar_clips(100, 1))})
    extra = {"frame_difference": B.feature("frame_difference", frames_grid=grid),
             "first_frame": B.feature("first_frame", frames_grid=grid)}
    out = B.run_baselines(task, extra=extra)
    r = out["results"]["test"]
    assert r["logreg[frame_difference]"] >= 0.9
    assert r["logreg[first_frame]"] <= 0.7
    assert "frame_difference" in out["features"] and "frames_grid" in out["features"]["frame_difference"]
    # the grid is cut row-major like the video modality tiles it
    from unireplknet.modalities.video.transforms import tile_frames
    clip = torch.rand(8, 3, 6, 5)
    np.testing.assert_allclose(B.first_frame(tile_frames(clip, grid), frames_grid=grid, pool=8),
                               clip[0].reshape(-1).numpy(), atol=1e-6)
    with pytest.raises(ValueError):
        B.frame_difference(torch.rand(1, 15, 96), frames_grid=grid)


def multi_label_blobs(n: int, seed: int):
    """Two independent labels, each switching on its own fixed template (items may carry both or neither)."""
    templates = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for _ in range(n):
        y = (torch.rand(2, generator=g) < torch.tensor([0.5, 0.25])).float()
        xs.append((y.view(2, 1, 1, 1) * templates).sum(0) + 0.7 * torch.randn(1, 16, 16, generator=g))
        ys.append(y)
    return xs, ys


def test_multi_label_baselines_score_map_well_above_the_prevalence():
    tr, va, te = (multi_label_blobs(n, s) for n, s in ((160, 1), (60, 2), (60, 3)))
    ds = [ListDataset(*d, expose_targets=False) for d in (tr, va, te)]
    task = TaskData(train=ds[0], val=ds[1], num_classes=2, class_names=["a", "b"], in_chans=1, input_size=(16, 16),
                    tests={"test": ds[2]}, multi_label=True)
    out = B.run_baselines(task)
    assert "skipped" not in out and set(out["results"]) == {"val", "test"} and out["n_train"] == 160
    for r in out["results"].values():
        assert 0.25 < r["label_prevalence"] < 0.5  # the mAP of a random ranking: mean of 0.5 and 0.25
        assert r["logreg[pixels]"] >= 0.9 > r["label_prevalence"] + 0.3
    table = B.format_table({"val": 0.5}, out)
    assert "label_prevalence" in table and "logreg[pixels]" in table and "skipped" not in table


def test_format_table_lists_splits_and_methods():
    base = {"results": {"val": {"logreg[pixels]": 0.912, "1nn[pixels]": 0.8, "majority_class": 0.333},
                        "test_b": {"logreg[pixels]": 0.5, "1nn[pixels]": 0.4, "majority_class": 0.25}}}
    table = B.format_table({"val": 0.987, "test_b": 0.9}, base)
    for word in ("val", "test_b", "model", "logreg[pixels]", "1nn[pixels]", "majority_class", "98.7", "91.2", "25.0"):
        assert word in table
    assert len(table.splitlines()) == 4


def weekly_series(weeks: int = 10, seed: int = 0, weekly: bool = True) -> np.ndarray:
    t = np.arange(168 * weeks)
    day = t % 168 // 24
    y = np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(4 * np.pi * t / 24)
    if weekly:
        y = y + 1.5 * (day >= 5)  # weekends differ
    return y + 0.2 * np.random.default_rng(seed).normal(size=len(t)) + 0.001 * t


def test_detect_periods_finds_daily_and_weekly():
    assert sorted(B.detect_periods(weekly_series(), max_period=200, top=2)) == [24, 168]
    assert B.detect_periods(weekly_series(weekly=False), max_period=200, top=2) == [24]
    assert B.detect_periods(np.random.default_rng(0).normal(size=500), max_period=50) == []


def test_naive_and_seasonal_naive_forecasts():
    y = weekly_series()
    hist, future = y[:-168], y[-168:]
    seasonal = B.seasonal_naive(hist, 168, 168)
    naive = B.naive_forecast(hist, 168)
    assert naive.shape == seasonal.shape == (168,)
    assert B.mse(seasonal, future) < 0.5 * B.mse(naive, future)
    assert B.mae(seasonal, future) < B.mae(naive, future)
    # shapes: L x C and B x L x C, time on axis -2
    h2 = np.arange(20.0).reshape(10, 2)
    np.testing.assert_array_equal(B.naive_forecast(h2, 3), [[18, 19]] * 3)
    np.testing.assert_array_equal(B.seasonal_naive(h2, 5, 2), [[16, 17], [18, 19], [16, 17], [18, 19], [16, 17]])
    assert B.seasonal_naive(np.zeros((4, 30, 3)), 7, 24).shape == (4, 7, 3)


def test_linear_forecast_beats_naive_on_ar_series():
    rng = np.random.default_rng(0)
    n, lookback, horizon = 3000, 32, 8
    x = np.zeros((n, 2))
    for t in range(2, n):
        x[t] = 1.6 * x[t - 1] - 0.8 * x[t - 2] + rng.normal(size=2)
    starts = np.arange(n - lookback - horizon)
    wx = np.stack([x[s:s + lookback] for s in starts])  # N x L x C
    wy = np.stack([x[s + lookback:s + lookback + horizon] for s in starts])
    cut = int(0.7 * len(starts))
    model = B.linear_forecast_fit(wx[:cut], wy[:cut])
    pred = model.predict(wx[cut:])
    assert pred.shape == wy[cut:].shape
    naive = B.naive_forecast(wx[cut:], horizon)
    assert B.mse(pred, wy[cut:]) < 0.8 * B.mse(naive, wy[cut:])
    assert B.mae(pred, wy[cut:]) < B.mae(naive, wy[cut:])
    # 2-D windows (one channel) work too
    assert model.predict(wx[cut:, :, 0]).shape == (len(starts) - cut, horizon)
