"""Point clouds under arbitrary rotation: PCA canonical pose, more views, SO(3) voting, auto, the D2 baseline."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from unireplknet.modalities.point import datasets as pd
from unireplknet.modalities.point.auto import upright_share
from unireplknet.modalities.point.transforms import (
    canonical_pose,
    cube_rotations,
    normalize,
    project_depth,
    project_views,
    projection_channels,
    random_rotation,
    rotate,
    voting_rotations,
)
from unireplknet.tasks.baselines import d2_histogram


def _skewed_cloud(n: int = 800, seed: int = 0) -> torch.Tensor:
    """Distinct eigenvalues (3 : 2 : 1 spread) and nonzero third moments along every axis."""
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, 3, generator=g) * torch.tensor([3.0, 2.0, 1.0])
    return p + 0.15 * p.square()  # skews each axis


def test_canonical_pose_is_rotation_invariant() -> None:
    cloud = _skewed_cloud()
    ref = canonical_pose(cloud)
    rots = random_rotation(8, "so3", generator=torch.Generator().manual_seed(1))
    for r in rots:
        moved = rotate(cloud, r) + torch.tensor([0.5, -2.0, 3.0])
        assert torch.allclose(canonical_pose(moved), ref, atol=1e-4)
    batched = canonical_pose(rotate(cloud.expand(8, -1, -1), rots))
    assert torch.allclose(batched, ref.expand(8, -1, -1), atol=1e-4)


def test_canonical_pose_sign_rule_and_proper_rotation() -> None:
    cloud = _skewed_cloud(seed=3)
    out = canonical_pose(cloud)
    centred = cloud - cloud.mean(0)
    assert torch.allclose(out.mean(0), torch.zeros(3), atol=1e-4)
    var = out.var(0)
    assert var[0] > var[1] > var[2]  # major axis along x, then y, then z
    assert (out[:, :2].pow(3).sum(0) > 0).all()  # positive third moment along the first two axes
    rot = torch.linalg.lstsq(centred.double(), out.double()).solution.T
    assert torch.allclose(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-4)
    assert torch.det(rot) > 0  # a rotation, never a mirror image
    # a mirrored cloud is not folded onto the original
    mirrored = canonical_pose(cloud * torch.tensor([1.0, 1.0, -1.0]))
    assert not torch.allclose(mirrored, out, atol=1e-2)


def test_canonical_pose_rotates_normals() -> None:
    cloud = _skewed_cloud(200)
    normals = torch.nn.functional.normalize(torch.randn(200, 3), dim=-1)
    out = canonical_pose(torch.cat([cloud, normals], -1))
    r = random_rotation(1, "so3", generator=torch.Generator().manual_seed(4))[0]
    turned = canonical_pose(rotate(torch.cat([cloud, normals], -1), r))
    assert out.shape == (200, 6) and torch.allclose(out, turned, atol=1e-4)
    assert torch.allclose(out[:, 3:].norm(dim=-1), torch.ones(200), atol=1e-5)


@pytest.mark.parametrize("projection,k", [("axes", 3), ("faces", 6), ("ring8", 8), ("ring1", 1)])
def test_views_count_and_shape(projection: str, k: int) -> None:
    pts = normalize(_skewed_cloud(300))
    assert projection_channels(projection) == k
    assert project_views(pts, 16, projection).shape == (k, 16, 16)
    assert project_views(pts.expand(2, -1, -1), 16, projection, splat=3).shape == (2, k, 16, 16)


def test_faces_extend_the_axis_views_and_ring_starts_at_the_z_camera() -> None:
    pts = normalize(_skewed_cloud(300))
    axes = project_depth(pts, 24)
    faces = project_views(pts, 24, "faces")
    assert torch.equal(faces[:3], axes)
    # the opposite camera sees the same silhouette, mirrored left-right
    assert torch.equal(faces[3] > 0, (axes[0] > 0).flip(-1))
    assert torch.equal(project_views(pts, 24, "ring4")[0], axes[2])
    with pytest.raises(ValueError):
        projection_channels("ring0")


def test_so3_voting_rotations() -> None:
    cube = cube_rotations()
    assert cube.shape == (24, 3, 3)
    assert torch.allclose(torch.det(cube), torch.ones(24))
    assert len({tuple(m.flatten().tolist()) for m in cube}) == 24
    four = voting_rotations(4, mode="so3")
    assert all(torch.equal(m, torch.diag(torch.diagonal(m))) for m in four)  # the sign flips of a PCA frame
    assert voting_rotations(30, mode="so3").shape == (30, 3, 3)
    assert voting_rotations(3).shape == (3, 3, 3)
    with pytest.raises(ValueError):
        voting_rotations(2, mode="random")


@pytest.mark.parametrize("projection,k", [("axes", 3), ("faces", 6)])
def test_pipeline_voting_shapes(projection: str, k: int) -> None:
    cloud = _skewed_cloud(400).numpy()
    pipe = pd.PointPipeline(num_points=128, resolution=16, views=4, canonical=True, projection=projection,
                            vote_rotation="so3")
    assert pipe.channels == k
    assert pipe(cloud, train=False).shape == (4, k, 16, 16)
    assert pipe(cloud, train=True).shape == (k, 16, 16)
    one = pd.PointPipeline(num_points=128, resolution=16, views=1, canonical=True, projection=projection)
    assert one(cloud, train=False).shape == (k, 16, 16)
    # with the canonical pose the evaluation views do not depend on the input rotation
    r = random_rotation(1, "so3", generator=torch.Generator().manual_seed(2))[0]
    turned = rotate(torch.as_tensor(cloud), r).numpy()
    pipe_all = pd.PointPipeline(num_points=400, resolution=16, views=4, canonical=True, projection=projection,
                                vote_rotation="so3", sampling="random")
    a, b = pipe_all(cloud, train=False), pipe_all(turned, train=False)
    assert (a != b).float().mean() < 0.02  # identical up to a few pixels on bin borders


def test_task_in_chans_follow_the_projection() -> None:
    args = argparse.Namespace(data=None, demo_per_class=1, demo_val_per_class=1, num_points=64, input_size=16,
                              projection="faces", canonical_pose=True, vote_views=4, vote_rotation="so3", seed=0)
    task = pd.build_task_data(args)
    assert task.in_chans == 6 and task.eval_views == 4
    assert task.val[0][0].shape == (4, 6, 16, 16) and task.train[0][0].shape == (6, 16, 16)


def test_d2_baseline_feature_reads_the_raw_cloud() -> None:
    args = argparse.Namespace(data=None, demo_per_class=1, demo_val_per_class=1, num_points=64, input_size=16,
                              vote_views=2, seed=0)
    task = pd.build_task_data(args)
    fns = pd.baseline_features(task)
    assert set(fns) == {"d2_histogram"}
    x, _ = task.val[1]
    base = task.val._bases[1]
    np.testing.assert_allclose(fns["d2_histogram"](x), d2_histogram(base.numpy()))
    np.testing.assert_allclose(fns["d2_histogram"](x[1]), d2_histogram(base.numpy()))  # one view of the item
    with pytest.raises(ValueError):
        fns["d2_histogram"](x.clone())


def test_auto_tells_upright_from_rotated_clouds() -> None:
    g = torch.Generator().manual_seed(0)
    upright = [_skewed_cloud(200, seed=i) for i in range(20)]
    rotated = [rotate(c, random_rotation(1, "so3", generator=g)[0]) for c in upright]
    assert upright_share(upright) == 1.0
    assert upright_share(rotated) < 0.5
