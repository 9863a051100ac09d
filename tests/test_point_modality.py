"""Point-cloud front-end: validation, sampling, normalisation, projection, augmentation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unireplknet.modalities.point.transforms import (
    FAR_VALUE,
    NEAR_VALUE,
    PointAugment,
    axis_rotation,
    check_points,
    farthest_point_sample,
    fit_unit_sphere,
    normalize,
    project_depth,
    random_rotation,
    random_sample,
    rotate,
    sample_points,
    sample_surface,
    voting_rotations,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(0, 3), "empty"),
        (torch.zeros(5), r"shape \(N, C\)"),
        (torch.zeros(5, 2), "C >= 3"),
        (torch.zeros(2, 3, 4, 3), r"shape \(N, C\)"),
        (torch.tensor([[0.0, 1.0, float("nan")], [1.0, 2.0, 3.0]]), "NaN"),
        (torch.tensor([[0.0, 1.0, float("inf")]]), "infinite"),
        (np.array([["a", "b", "c"]]), "numeric"),
        ([[0.0, 1.0, 2.0]], "numpy"),
    ],
)
def test_check_points_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        check_points(bad)


@pytest.mark.parametrize("cloud", [torch.ones(1, 3), torch.full((50, 3), 2.5)])
def test_normalize_rejects_single_point_and_degenerate(cloud):
    with pytest.raises(ValueError, match="degenerate"):
        normalize(cloud)


def test_projection_and_sampling_reject_bad_arguments():
    pts = torch.randn(10, 3)
    with pytest.raises(ValueError, match="splat"):
        project_depth(pts, 32, splat=2)
    with pytest.raises(ValueError, match="resolution"):
        project_depth(pts, 1)
    with pytest.raises(ValueError, match=r"n must be in \[1, 10\]"):
        farthest_point_sample(pts, 11)
    with pytest.raises(ValueError, match="unknown sampling"):
        sample_points(pts, 4, "grid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        project_depth(torch.zeros(2, 0, 3), 32)


# ----------------------------------------------------------------------------- sampling
def test_fps_matches_a_plain_reference_and_spreads_points():
    g = _gen(1)
    pts = torch.randn(3, 200, 3, generator=g)
    idx = farthest_point_sample(pts, 16, random_start=False)
    assert idx.shape == (3, 16)
    for b in range(3):  # reference: the textbook loop, one cloud at a time
        chosen = [0]
        dist = ((pts[b] - pts[b, 0]) ** 2).sum(-1)
        for _ in range(15):
            nxt = int(dist.argmax())
            chosen.append(nxt)
            dist = torch.minimum(dist, ((pts[b] - pts[b, nxt]) ** 2).sum(-1))
        assert idx[b].tolist() == chosen
        assert len(set(idx[b].tolist())) == 16
    # FPS covers the cloud better than random picks: smaller worst-case distance to the sample
    cloud = pts[0]
    cover_fps = torch.cdist(cloud, cloud[idx[0]]).min(-1).values.max()
    cover_rand = torch.cdist(cloud, cloud[random_sample(cloud, 16, generator=g)]).min(-1).values.max()
    assert cover_fps < cover_rand


def test_fps_picks_the_extremes_of_a_line():
    line = torch.stack([torch.linspace(0, 1, 11), torch.zeros(11), torch.zeros(11)], -1)
    idx = farthest_point_sample(line, 3, random_start=False)
    assert idx.tolist() == [0, 10, 5]


def test_sample_points_sizes_and_topping_up():
    g = _gen(2)
    pts = torch.randn(4, 50, 6, generator=g)
    for method in ("fps", "random", "first"):
        out = sample_points(pts, 20, method, generator=g)  # type: ignore[arg-type]
        assert out.shape == (4, 20, 6)
    small = torch.randn(7, 3, generator=g)
    up = sample_points(small, 12, "fps", generator=g)
    assert up.shape == (12, 3)
    assert torch.equal(up[:7], small)  # every original point kept, then repeats
    assert all(any(torch.equal(r, s) for s in small) for r in up[7:])
    r = random_sample(small, 7, generator=g)
    assert sorted(r.tolist()) == list(range(7))  # without replacement


def test_normalize_centres_and_scales_per_cloud():
    g = _gen(3)
    pts = torch.randn(2, 100, 6, generator=g) * torch.tensor([5.0, 1.0, 0.2, 1, 1, 1]) + 7.0
    out = normalize(pts)
    assert torch.allclose(out[..., :3].mean(1), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(out[..., :3].norm(dim=-1).amax(-1), torch.ones(2), atol=1e-5)
    assert torch.equal(out[..., 3:], pts[..., 3:])  # normals untouched
    big = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
    assert torch.allclose(fit_unit_sphere(big), big / 3.0)
    assert torch.equal(fit_unit_sphere(big / 4), big / 4)  # never enlarges


def test_sample_surface_is_area_weighted_and_on_the_mesh():
    # two unit-height triangles in the z=0 plane, the second with 3x the area
    v = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [5, 0, 0], [2, 1, 0]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [3, 4, 5]])
    pts = sample_surface(v, f, 20000, generator=_gen(4))
    assert pts.shape == (20000, 6)
    assert torch.allclose(pts[:, 2], torch.zeros(20000))
    assert torch.allclose(pts[:, 3:].abs(), torch.tensor([0.0, 0.0, 1.0]).expand(20000, 3))
    frac_big = float((pts[:, 0] >= 2).float().mean())
    assert abs(frac_big - 0.75) < 0.02
    with pytest.raises(ValueError, match="no faces"):
        sample_surface(v, torch.zeros(0, 3, dtype=torch.long), 10)
    with pytest.raises(ValueError, match="zero total area"):
        sample_surface(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), 10)
    with pytest.raises(ValueError, match="outside"):
        sample_surface(v, torch.tensor([[0, 1, 9]]), 10)


# ----------------------------------------------------------------------------- projection
def test_projection_pixels_depths_and_empty_background():
    # cameras on +x, +y, +z with y up: along x the columns follow -z and the rows y (top row = +y)
    pts = torch.tensor([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0], [0.0, 1.0, -1.0]])
    img = project_depth(pts, 8)
    assert img.shape == (3, 8, 8)
    mid = FAR_VALUE + (NEAR_VALUE - FAR_VALUE) * 0.5
    # view along x: points 1 and 2 share the bottom-left pixel, the nearer one (x=1) wins
    assert img[0, 7, 0] == pytest.approx(NEAR_VALUE)
    assert img[0, 0, 7] == pytest.approx(mid)
    assert int((img[0] > 0).sum()) == 2
    # view along y (top view, -z up): columns follow x, rows follow z
    assert img[1, 7, 7] == pytest.approx(FAR_VALUE) and img[1, 7, 0] == pytest.approx(FAR_VALUE)
    assert img[1, 0, 4] == pytest.approx(NEAR_VALUE)
    # view along z: columns follow x, rows follow y; point 3 has z=-1 → farthest value
    assert img[2, 0, 4] == pytest.approx(FAR_VALUE)
    assert img[2, 7, 7] == pytest.approx(NEAR_VALUE) and img[2, 7, 0] == pytest.approx(NEAR_VALUE)
    assert float(img.min()) == 0.0 and int((img > 0).sum()) == 8


def test_projection_zbuffer_keeps_the_nearest_point_among_many():
    g = _gen(5)
    n = 500
    yz = torch.zeros(n, 2)  # all points on the same pixel of the x-view
    x = torch.rand(n, 1, generator=g) * 2 - 1
    img = project_depth(torch.cat([x, yz], -1), 16)
    expected = FAR_VALUE + (NEAR_VALUE - FAR_VALUE) * (x.max() + 1) / 2
    assert int((img[0] > 0).sum()) == 1
    assert float(img[0].max()) == pytest.approx(float(expected), abs=1e-6)


def test_projection_batched_equals_per_cloud_default_224_and_splat():
    g = _gen(6)
    pts = normalize(torch.randn(3, 300, 3, generator=g))
    batch = project_depth(pts)
    assert batch.shape == (3, 3, 224, 224)
    for b in range(3):
        assert torch.equal(batch[b], project_depth(pts[b]))
    one = project_depth(pts, 32)
    three = project_depth(pts, 32, splat=3)
    assert (three >= one).all() and (three > 0).sum() > (one > 0).sum()
    # splat = max over the 3x3 neighbourhood of the point image
    ref = torch.nn.functional.max_pool2d(one, 3, stride=1, padding=1)
    assert torch.equal(three, ref)


def test_projection_clamps_points_outside_the_extent():
    img = project_depth(torch.tensor([[0.0, 5.0, 0.0]]), 8)
    assert img[0, 0, :].max() > 0  # y=5 clamps to the top border of the x-view


def test_soft_projection_is_differentiable_and_close_to_hard():
    g = _gen(7)
    pts = normalize(torch.randn(2, 200, 3, generator=g)).requires_grad_(True)
    soft = project_depth(pts, 32, soft=True)
    assert soft.shape == (2, 3, 32, 32)
    assert float(soft.detach().min()) >= 0 and float(soft.detach().max()) <= 1
    (soft * torch.linspace(0, 1, 32)).sum().backward()
    assert pts.grad is not None and torch.isfinite(pts.grad).all() and pts.grad.abs().sum() > 0
    hard = project_depth(pts.detach(), 32)
    occ = hard > 0
    assert float((soft.detach()[occ] - hard[occ]).abs().median()) < 0.2
    assert float(soft.detach()[~torch.nn.functional.max_pool2d(occ.float(), 5, 1, 2).bool()].max()) < 1e-3


# ----------------------------------------------------------------------------- rotations and augmentation
def test_rotations_are_proper_and_about_the_right_axis():
    for mode in ("up", "so3"):
        r = random_rotation(16, mode, generator=_gen(8))  # type: ignore[arg-type]
        assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand(16, 3, 3), atol=1e-5)
        assert torch.allclose(torch.linalg.det(r), torch.ones(16), atol=1e-5)
    up = random_rotation(16, "up", up_axis="y", generator=_gen(9))
    assert torch.allclose(up[:, 1], torch.tensor([0.0, 1.0, 0.0]).expand(16, 3), atol=1e-6)
    rz = axis_rotation(torch.tensor(math.pi / 2), "z")
    assert torch.allclose(rz @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    v = voting_rotations(4)
    assert v.shape == (4, 3, 3) and torch.allclose(v[0], torch.eye(3))
    assert torch.allclose(v[2] @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6)
    with pytest.raises(ValueError, match="rotation mode"):
        random_rotation(2, "spin")  # type: ignore[arg-type]


def test_rotate_turns_normals_with_points():
    pts = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    out = rotate(pts, axis_rotation(torch.tensor(math.pi / 2), "z"))
    assert torch.allclose(out, torch.tensor([[0.0, 1.0, 0.0, 0.0, 1.0, 0.0]]), atol=1e-6)


def test_augment_ranges_and_shapes():
    g = _gen(10)
    pts = normalize(torch.randn(8, 256, 3, generator=g))
    aug = PointAugment(rotation="none", scale=(0.5, 0.5), translate=0.0)
    assert torch.allclose(aug(pts, g), pts * 0.5)
    aug = PointAugment(rotation="none", scale=(1.0, 1.0), translate=0.3)
    shift = aug(pts, g) - pts
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-6)  # one shift per cloud
    assert float(shift.abs().max()) <= 0.3
    aug = PointAugment(rotation="up", scale=(1.0, 1.0), translate=0.0)
    out = aug(pts, g)
    assert torch.allclose(out[..., 1], pts[..., 1], atol=1e-5)  # up (y) coordinate unchanged
    assert torch.allclose(out.norm(dim=-1), pts.norm(dim=-1), atol=1e-5)
    aug = PointAugment(rotation="none", scale=(1.0, 1.0), translate=0.0, jitter=0.01, jitter_clip=0.02)
    d = aug(pts, g) - pts
    assert 0 < float(d.abs().max()) <= 0.02 + 1e-6
    aug = PointAugment(rotation="so3", dropout=0.9)
    out = aug(pts[0], g)
    assert out.shape == (256, 3)
    aug = PointAugment(rotation="none", scale=(1.0, 1.0), translate=0.0, dropout=0.9)
    out = aug(pts, g)
    dropped = (out == out[:, :1]).all(-1).float().mean()
    assert 0.0 < float(dropped) < 0.9
    with pytest.raises(ValueError, match="scale"):
        PointAugment(scale=(2.0, 1.0))
