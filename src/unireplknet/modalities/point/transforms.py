"""Point clouds → three orthographic depth images (``B × 3 × H × W``) for the unchanged backbone.

Everything here is pure torch and vectorised over points (no compiled extension):

* validation (:func:`check_points`), sampling (:func:`farthest_point_sample`,
  :func:`random_sample`, :func:`sample_points`), area-weighted mesh surface
  sampling (:func:`sample_surface`) and normalisation (:func:`normalize`,
  :func:`fit_unit_sphere`);
* projection (:func:`project_depth`): one depth image per axis x, y, z, with a
  z-buffer (``scatter_reduce`` amax), optional splat and a differentiable soft variant;
* more cameras (:func:`project_views`): ``"axes"`` (the three views above),
  ``"faces"`` (six: a camera on each face of a cube, ±x, ±y, ±z) or ``"ringK"`` (K
  cameras on a ring around the up axis, looking at the origin);
* canonical pose (:func:`canonical_pose`): PCA axes with a sign rule, so an
  arbitrarily rotated cloud is projected in the same pose;
* augmentation (:class:`PointAugment`, :func:`random_rotation`) and the fixed
  rotations used for evaluation by voting (:func:`voting_rotations`: about the up
  axis, or spread over SO(3) from the 24 rotations of the cube).

Clouds are ``N × C`` or ``B × N × C`` tensors with ``C >= 3``: columns 0-2 are
xyz and, when ``C >= 6``, columns 3-5 are normals (rotated with the points).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "AXES",
    "NEAR_VALUE",
    "FAR_VALUE",
    "check_points",
    "farthest_point_sample",
    "random_sample",
    "sample_points",
    "sample_surface",
    "normalize",
    "fit_unit_sphere",
    "project_depth",
    "project_views",
    "projection_channels",
    "canonical_pose",
    "cube_rotations",
    "axis_rotation",
    "random_rotation",
    "rotate",
    "voting_rotations",
    "PointAugment",
]

ArrayLike = Union[torch.Tensor, np.ndarray]
AXES = {"x": 0, "y": 1, "z": 2}
# Depth images hold FAR_VALUE for a point at depth -extent (farthest from the viewer)
# up to NEAR_VALUE at +extent; empty pixels are exactly 0, so "something far" and
# "nothing" stay distinguishable.
NEAR_VALUE = 1.0
FAR_VALUE = 0.2
# Views as seen by a camera on the +x, +y and +z axis looking at the origin, y up (the top view
# along y has -z up): (depth axis, column axis, column sign, row axis, row sign).
_VIEWS = ((0, 2, -1, 1, 1), (1, 0, 1, 2, -1), (2, 0, 1, 1, 1))


def check_points(points: ArrayLike, *, min_points: int = 1, name: str = "points") -> torch.Tensor:
    """Validate a cloud (``N × C`` or ``B × N × C``, ``C >= 3``) and return it as a float tensor.

    Raises ``ValueError`` naming the problem for a wrong shape, an empty cloud,
    fewer than ``min_points`` points, or NaN/inf coordinates.
    """
    if isinstance(points, np.ndarray):
        if not np.issubdtype(points.dtype, np.number):
            raise ValueError(f"{name}: expected a numeric array, got dtype {points.dtype}")
        points = torch.from_numpy(np.ascontiguousarray(points))
    if not isinstance(points, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor or numpy array, got {type(points).__name__}")
    if points.dim() not in (2, 3) or points.shape[-1] < 3:
        raise ValueError(
            f"{name}: expected shape (N, C) or (B, N, C) with C >= 3 (xyz[+normals]), got {tuple(points.shape)}"
        )
    if not points.is_floating_point():
        points = points.float()
    if points.shape[-2] == 0 or points.numel() == 0:
        raise ValueError(f"{name}: the point cloud is empty (shape {tuple(points.shape)})")
    if points.shape[-2] < min_points:
        raise ValueError(f"{name}: need at least {min_points} points, got {points.shape[-2]}")
    if not torch.isfinite(points).all():
        bad = int((~torch.isfinite(points)).any(-1).sum())
        raise ValueError(f"{name}: {bad} point(s) have NaN or infinite coordinates")
    return points


def _batched(points: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Add a batch dimension to an ``N × C`` cloud; report whether one was added."""
    return (points.unsqueeze(0), True) if points.dim() == 2 else (points, False)


def farthest_point_sample(
    points: ArrayLike, n: int, *, random_start: bool = True, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Indices (``B × n`` or ``n``) of ``n`` points chosen by farthest-point sampling.

    Batched over clouds; one vectorised step per chosen point. The first point is
    random (``random_start``) or index 0. Needs ``n <= N``.
    """
    pts = check_points(points)
    xyz, added = _batched(pts[..., :3])
    b, num, _ = xyz.shape
    if not 1 <= n <= num:
        raise ValueError(f"farthest_point_sample: n must be in [1, {num}] (the number of points), got {n}")
    idx = torch.empty(b, n, dtype=torch.long, device=xyz.device)
    dist = torch.full((b, num), float("inf"), dtype=xyz.dtype, device=xyz.device)
    if random_start:
        far = torch.randint(num, (b,), generator=generator, device="cpu").to(xyz.device)
    else:
        far = torch.zeros(b, dtype=torch.long, device=xyz.device)
    rows = torch.arange(b, device=xyz.device)
    for i in range(n):
        idx[:, i] = far
        d = (xyz - xyz[rows, far].unsqueeze(1)).square().sum(-1)
        dist = torch.minimum(dist, d)
        far = dist.argmax(-1)
    return idx[0] if added else idx


def random_sample(
    points: ArrayLike, n: int, *, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Indices of ``n`` points drawn uniformly (without replacement when ``n <= N``, else with)."""
    pts = check_points(points)
    num = pts.shape[-2]
    if n < 1:
        raise ValueError(f"random_sample: n must be >= 1, got {n}")
    shape = pts.shape[:-2]
    b = int(shape[0]) if shape else 1
    if n <= num:
        idx = torch.rand(b, num, generator=generator).argsort(-1)[:, :n]
    else:
        idx = torch.randint(num, (b, n), generator=generator)
    idx = idx.to(pts.device)
    return idx if shape else idx[0]


def _gather(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of each cloud (works batched and unbatched)."""
    if points.dim() == 2:
        return points[idx]
    return torch.gather(points, 1, idx.unsqueeze(-1).expand(-1, -1, points.shape[-1]))


def sample_points(
    points: ArrayLike,
    n: int,
    method: Literal["fps", "random", "first"] = "fps",
    *,
    generator: Optional[torch.Generator] = None,
    random_start: bool = True,
) -> torch.Tensor:
    """Return exactly ``n`` points of a cloud by FPS, uniform random choice or the first ``n``.

    A cloud with fewer than ``n`` points keeps all of them and is topped up
    with randomly repeated points, so batches always have a fixed size.
    """
    pts = check_points(points)
    num = pts.shape[-2]
    if method not in ("fps", "random", "first"):
        raise ValueError(f"unknown sampling method {method!r}; use 'fps', 'random' or 'first'")
    if n < 1:
        raise ValueError(f"sample_points: n must be >= 1, got {n}")
    if n > num:
        extra = _gather(pts, random_sample(pts, n - num, generator=generator))
        return torch.cat([pts, extra], dim=-2)
    if method == "fps":
        idx = farthest_point_sample(pts, n, random_start=random_start, generator=generator)
    elif method == "random":
        idx = random_sample(pts, n, generator=generator)
    else:
        return pts[..., :n, :]
    return _gather(pts, idx)


def sample_surface(
    vertices: ArrayLike, faces: ArrayLike, n: int, *, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """``n × 6`` points (xyz + face normal) sampled uniformly on a triangle mesh's surface.

    Faces are chosen with probability proportional to their area, then a point is
    drawn uniformly inside the triangle. Raises ``ValueError`` for a mesh with no
    faces, out-of-range indices, non-finite vertices or zero total area.
    """
    v = torch.as_tensor(np.asarray(vertices) if not isinstance(vertices, torch.Tensor) else vertices)
    f = torch.as_tensor(np.asarray(faces) if not isinstance(faces, torch.Tensor) else faces)
    if v.dim() != 2 or v.shape[-1] != 3:
        raise ValueError(f"mesh vertices: expected shape (V, 3), got {tuple(v.shape)}")
    if f.numel() == 0:
        raise ValueError("mesh has no faces (empty mesh): cannot sample its surface")
    if f.dim() != 2 or f.shape[-1] != 3:
        raise ValueError(f"mesh faces: expected triangles of shape (F, 3), got {tuple(f.shape)}")
    if n < 1:
        raise ValueError(f"sample_surface: n must be >= 1, got {n}")
    v = v.double()
    f = f.long()
    if int(f.min()) < 0 or int(f.max()) >= v.shape[0]:
        raise ValueError(f"mesh faces index vertices outside [0, {v.shape[0] - 1}]")
    if not torch.isfinite(v).all():
        raise ValueError("mesh vertices have NaN or infinite coordinates")
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cross = torch.linalg.cross(b - a, c - a)
    area2 = cross.norm(dim=-1)
    total = float(area2.sum())
    if not total > 1e-12 * max(float((v.max(0).values - v.min(0).values).square().sum()), 1e-300):
        raise ValueError("mesh is degenerate: its faces have zero total area")
    choice = torch.multinomial(area2, n, replacement=True, generator=generator)
    r1 = torch.rand(n, 1, generator=generator, dtype=v.dtype).sqrt()
    r2 = torch.rand(n, 1, generator=generator, dtype=v.dtype)
    xyz = (1 - r1) * a[choice] + r1 * (1 - r2) * b[choice] + r1 * r2 * c[choice]
    normals = cross[choice] / area2[choice].clamp_min(1e-300).unsqueeze(-1)
    return torch.cat([xyz, normals], dim=-1).float()


def normalize(points: ArrayLike, *, eps: float = 1e-9) -> torch.Tensor:
    """Centre each cloud at its centroid and scale it into the unit sphere (farthest point at radius 1).

    Normals (columns 3+) are left unchanged. Raises ``ValueError`` for a
    degenerate cloud (a single point, or all points equal).
    """
    pts = check_points(points)
    xyz = pts[..., :3]
    centred = xyz - xyz.mean(dim=-2, keepdim=True)
    radius = centred.norm(dim=-1).amax(dim=-1, keepdim=True)  # (..., 1)
    extent = xyz.abs().amax(dim=(-2, -1), keepdim=True).squeeze(-1).clamp_min(1.0)
    if bool((radius <= eps * extent).any()):
        raise ValueError(
            f"point cloud is degenerate: all {pts.shape[-2]} points coincide, so it cannot be "
            "centred and scaled (need at least two distinct points)"
        )
    return torch.cat([centred / radius.unsqueeze(-1), pts[..., 3:]], dim=-1)


def fit_unit_sphere(points: ArrayLike) -> torch.Tensor:
    """Shrink clouds that reach outside the unit sphere back into it (no centring, never enlarges).

    Used after augmentation so scaled/translated clouds still fit the projection canvas.
    """
    pts = check_points(points)
    radius = pts[..., :3].norm(dim=-1).amax(dim=-1, keepdim=True).clamp_min(1.0)
    return torch.cat([pts[..., :3] / radius.unsqueeze(-1), pts[..., 3:]], dim=-1)


def _pixel_grid(xyz: torch.Tensor, extent: float) -> torch.Tensor:
    """Coordinates mapped from ``[-extent, extent]`` to ``[0, 1]`` (clamped)."""
    return ((xyz + extent) / (2 * extent)).clamp(0.0, 1.0)


def project_depth(
    points: ArrayLike,
    resolution: int = 224,
    *,
    splat: int = 1,
    extent: float = 1.0,
    soft: bool = False,
    sigma: float = 0.6,
    tau: float = 0.02,
) -> torch.Tensor:
    """Three orthographic depth views along x, y and z: ``B × 3 × H × W`` (or ``3 × H × W`` unbatched).

    Coordinates in ``[-extent, extent]`` fill the canvas (points outside are
    clamped to the border). The view along axis k is what a camera on the +k
    axis sees looking at the origin, with y up (the top view along y has -z
    up); each pixel keeps the nearest point (z-buffer), with value
    ``FAR_VALUE`` (depth ``-extent``) … ``NEAR_VALUE`` (depth ``+extent``) and 0
    where no point falls. ``splat`` (odd) spreads each point over a ``splat ×
    splat`` square, still z-buffered.

    ``soft=True`` gives a differentiable rendering: each point spreads a
    Gaussian (``sigma`` pixels) over nearby pixels, depths are blended with a
    soft z-buffer (temperature ``tau``) and coverage is ``1 - Π(1 - weight)``.
    """
    pts = check_points(points)
    if not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an int >= 2, got {resolution!r}")
    if not isinstance(splat, int) or splat < 1 or splat % 2 == 0:
        raise ValueError(f"splat must be a positive odd int, got {splat!r}")
    if not extent > 0:
        raise ValueError(f"extent must be > 0, got {extent}")
    xyz, added = _batched(pts[..., :3])
    b, n, _ = xyz.shape
    unit = _pixel_grid(xyz, extent)  # B, N, 3 in [0, 1]
    def pick(k: int) -> torch.Tensor:  # B, 3 views, N: coordinate k of each view (sign-flipped where < 0)
        ax = torch.tensor([v[k] for v in _VIEWS], device=xyz.device)
        sel = unit[..., ax].transpose(1, 2)
        if k == 0:
            return sel
        sign = torch.tensor([v[k + 1] for v in _VIEWS], device=xyz.device).view(1, 3, 1)
        return torch.where(sign > 0, sel, 1.0 - sel)

    value = FAR_VALUE + (NEAR_VALUE - FAR_VALUE) * pick(0)
    col_unit, row_unit = pick(1), 1.0 - pick(3)  # image rows grow downwards
    plane = torch.arange(b * 3, device=xyz.device).view(b, 3, 1) * (resolution * resolution)
    size = b * 3 * resolution * resolution
    if not soft:
        col = (col_unit.detach() * resolution).floor().long().clamp(0, resolution - 1)
        row = (row_unit.detach() * resolution).floor().long().clamp(0, resolution - 1)
        flat = (plane + row * resolution + col).reshape(-1)
        img = value.new_zeros(size).scatter_reduce(0, flat, value.reshape(-1), "amax", include_self=True)
        img = img.view(b, 3, resolution, resolution)
        if splat > 1:
            img = F.max_pool2d(img, splat, stride=1, padding=splat // 2)
    else:
        # Continuous pixel positions, pixel centres at integers.
        row_pos, col_pos = row_unit * resolution - 0.5, col_unit * resolution - 0.5
        img = _soft_splat(value, row_pos, col_pos, plane, size, resolution, splat, sigma, tau)
        img = img.view(b, 3, resolution, resolution)
    return img[0] if added else img


def _soft_splat(
    value: torch.Tensor,
    row_pos: torch.Tensor,
    col_pos: torch.Tensor,
    plane: torch.Tensor,
    size: int,
    resolution: int,
    splat: int,
    sigma: float,
    tau: float,
) -> torch.Tensor:
    """Differentiable z-buffer: Gaussian footprints blended by a softmax over depth per pixel."""
    if not (sigma > 0 and tau > 0):
        raise ValueError(f"soft projection needs sigma > 0 and tau > 0, got sigma={sigma}, tau={tau}")
    half = max(splat // 2, math.ceil(2 * sigma))
    offsets = torch.arange(-half, half + 1, device=value.device)
    dr, dc = torch.meshgrid(offsets, offsets, indexing="ij")
    dr, dc = dr.reshape(-1), dc.reshape(-1)  # K
    base_r = row_pos.detach().round().long().unsqueeze(-1)  # B, 3, N, 1
    base_c = col_pos.detach().round().long().unsqueeze(-1)
    r = base_r + dr
    c = base_c + dc  # B, 3, N, K
    inside = (r >= 0) & (r < resolution) & (c >= 0) & (c < resolution)
    dist2 = (r - row_pos.unsqueeze(-1)).square() + (c - col_pos.unsqueeze(-1)).square()
    weight = torch.exp(-dist2 / (2 * sigma**2)) * inside
    flat = (plane.unsqueeze(-1) + r.clamp(0, resolution - 1) * resolution + c.clamp(0, resolution - 1)).reshape(-1)
    val = value.unsqueeze(-1).expand_as(weight).reshape(-1)
    w = weight.reshape(-1)
    # Per-pixel max depth value (no gradient) keeps the softmax numerically stable.
    peak = value.new_zeros(size).scatter_reduce(0, flat, torch.where(w > 0, val, 0.0).detach(), "amax")
    e = w * torch.exp((val - peak[flat]) / tau)
    num = value.new_zeros(size).index_add(0, flat, e * val)
    den = value.new_zeros(size).index_add(0, flat, e)
    # Coverage composites the footprints like alpha: 1 - Π(1 - w).
    cover = 1.0 - torch.exp(value.new_zeros(size).index_add(0, flat, torch.log1p(-0.999 * w)))
    blended = torch.where(den > 0, num / den.clamp_min(1e-30), torch.zeros_like(num))
    return cover * blended


def axis_rotation(angles: torch.Tensor, axis: Union[int, str]) -> torch.Tensor:
    """Rotation matrices (``... × 3 × 3``) by ``angles`` (radians) about axis x, y or z."""
    k = AXES[axis] if isinstance(axis, str) else int(axis)
    if k not in (0, 1, 2):
        raise ValueError(f"axis must be 0/1/2 or 'x'/'y'/'z', got {axis!r}")
    angles = torch.as_tensor(angles, dtype=torch.float32)
    cos, sin = angles.cos(), angles.sin()
    one, zero = torch.ones_like(angles), torch.zeros_like(angles)
    i, j = [a for a in range(3) if a != k]
    rows = [[zero] * 3 for _ in range(3)]
    rows[k][k] = one
    rows[i][i], rows[i][j] = cos, -sin
    rows[j][i], rows[j][j] = sin, cos
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def random_rotation(
    batch: int,
    mode: Literal["up", "so3", "none"] = "up",
    *,
    up_axis: Union[int, str] = "y",
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """``batch × 3 × 3`` random rotations: about the up axis, uniform over SO(3), or identity."""
    if mode == "none":
        return torch.eye(3).expand(batch, 3, 3).clone()
    if mode == "up":
        return axis_rotation(torch.rand(batch, generator=generator) * (2 * math.pi), up_axis)
    if mode == "so3":
        q = torch.randn(batch, 4, generator=generator)
        w, x, y, z = (q / q.norm(dim=-1, keepdim=True)).unbind(-1)
        return torch.stack(
            [
                torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
            ],
            -2,
        )
    raise ValueError(f"unknown rotation mode {mode!r}; use 'up', 'so3' or 'none'")


def rotate(points: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Apply ``3 × 3`` (or batched ``B × 3 × 3``) rotations to xyz and to normals when present."""
    rot = rotation.to(points.dtype)
    rot = rot if rot.dim() == 2 else rot.unsqueeze(-3)  # B x 1 x 3 x 3, broadcast over points

    def turn(v: torch.Tensor) -> torch.Tensor:  # elementwise: cheaper than bmm for 3x3 on small clouds
        return (v.unsqueeze(-2) * rot).sum(-1)

    out = [turn(points[..., :3])]
    if points.shape[-1] >= 6:
        out += [turn(points[..., 3:6]), points[..., 6:].expand(*out[0].shape[:-1], -1)]
    return torch.cat(out, dim=-1)


def voting_rotations(views: int, *, up_axis: Union[int, str] = "y", mode: str = "up") -> torch.Tensor:
    """``views × 3 × 3`` fixed rotations for test-time voting.

    ``mode="up"``: about the up axis at evenly spaced angles ``2πk / views``. ``mode="so3"``: spread
    over SO(3): the first ``views`` of the 24 cube rotations (:func:`cube_rotations`: identity, the
    three half-turns, then the rest), and beyond 24 uniformly random rotations from a fixed seed.
    """
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    if mode == "up":
        return axis_rotation(torch.arange(views) * (2 * math.pi / views), up_axis)
    if mode == "so3":
        cube = cube_rotations()
        if views <= len(cube):
            return cube[:views]
        extra = random_rotation(views - len(cube), "so3", generator=torch.Generator().manual_seed(0))
        return torch.cat([cube, extra])
    raise ValueError(f"unknown voting mode {mode!r}; use 'up' or 'so3'")


def canonical_pose(points: ArrayLike, *, eps: float = 1e-12) -> torch.Tensor:
    """Rotate each cloud into its PCA frame: centred, major axis along x, then y, then z.

    The axes are the eigenvectors of the xyz covariance, by decreasing eigenvalue. Sign rule:
    the first two axes point where the cloud's third moment (skewness) along them is positive,
    i.e. ``sum((p . e)^3) >= 0``; the third axis is ``e1 x e2``, so the result is a proper
    rotation of the input (never a mirror image). A cloud rotated by any ``R`` therefore has the
    same canonical pose, up to the sign flips allowed where a third moment is ~0 (a shape
    symmetric along that axis) and up to the axis order where two eigenvalues are equal.
    Normals (columns 3-5) are rotated too. Works on ``N × C`` and ``B × N × C``.
    """
    pts, added = _batched(check_points(points))
    xyz = pts[..., :3].double()
    centred = xyz - xyz.mean(dim=-2, keepdim=True)
    cov = centred.transpose(-1, -2) @ centred / max(pts.shape[-2], 1)
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues; columns are axes
    axes = vecs.flip(-1).transpose(-1, -2)  # B × 3 × 3, rows e1 (largest), e2, e3
    proj = centred @ axes.transpose(-1, -2)  # coordinates along e1, e2, e3
    skew = proj.pow(3).sum(dim=-2)  # B × 3
    sign = torch.where(skew[..., :2] < -eps, -1.0, 1.0).to(axes.dtype)
    e1, e2 = axes[..., 0, :] * sign[..., :1], axes[..., 1, :] * sign[..., 1:2]
    rot = torch.stack([e1, e2, torch.linalg.cross(e1, e2)], dim=-2)  # det +1
    out = [(centred @ rot.transpose(-1, -2)).to(pts.dtype)]
    if pts.shape[-1] >= 6:
        out += [(pts[..., 3:6].double() @ rot.transpose(-1, -2)).to(pts.dtype), pts[..., 6:]]
    res = torch.cat(out, dim=-1)
    return res[0] if added else res


def cube_rotations() -> torch.Tensor:
    """The 24 rotations of the cube (signed permutation matrices with determinant +1), ``24 × 3 × 3``.

    Ordered so the first four are the identity and the half-turns about x, y and z (the sign
    flips that :func:`canonical_pose` leaves open for symmetric shapes).
    """
    import itertools

    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = torch.zeros(3, 3)
            for i, (j, s) in enumerate(zip(perm, signs)):
                m[i, j] = s
            if torch.det(m) > 0:
                mats.append(m)
    first = [torch.eye(3), torch.diag(torch.tensor([1.0, -1.0, -1.0])), torch.diag(torch.tensor([-1.0, 1.0, -1.0])),
             torch.diag(torch.tensor([-1.0, -1.0, 1.0]))]
    rest = [m for m in mats if not any(torch.equal(m, f) for f in first)]
    return torch.stack(first + rest)


def projection_channels(projection: str) -> int:
    """Number of depth views (input channels) of a projection: ``axes`` 3, ``faces`` 6, ``ringK`` K."""
    if projection == "axes":
        return 3
    if projection == "faces":
        return 6
    if projection.startswith("ring") and projection[4:].isdigit() and int(projection[4:]) >= 1:
        return int(projection[4:])
    raise ValueError(f"unknown projection {projection!r}; use 'axes', 'faces' or 'ringK' (e.g. ring8)")


def _camera_rotations(projection: str, up_axis: Union[int, str]) -> torch.Tensor:
    """World → camera rotations (``K × 3 × 3``); the camera looks along its -z, x right, y up."""
    if projection == "faces":
        # +x, +y, +z cameras exactly as project_depth's three views, then their opposites
        cams = [torch.tensor([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]]),
                torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
                torch.eye(3)]
        flip = torch.diag(torch.tensor([-1.0, 1.0, -1.0]))  # half-turn about the camera's up: the opposite side
        return torch.stack(cams + [flip @ c for c in cams])
    k = projection_channels(projection)
    up = AXES[up_axis] if isinstance(up_axis, str) else int(up_axis)
    # a camera on the horizontal ring at angle a: turn the world by -a about up, then look as the +z camera
    base = torch.eye(3)[[(up + 2) % 3, up, (up + 1) % 3]]  # rows: camera x, y (= up), z: a proper rotation
    turns = axis_rotation(-torch.arange(k) * (2 * math.pi / k), up)
    return base.unsqueeze(0) @ turns


def project_views(
    points: ArrayLike,
    resolution: int = 224,
    projection: str = "axes",
    *,
    splat: int = 1,
    extent: float = 1.0,
    up_axis: Union[int, str] = "y",
) -> torch.Tensor:
    """Depth views of a cloud from several cameras: ``[B ×] K × H × W`` with ``K = projection_channels``.

    ``axes`` is :func:`project_depth` (three views, along x, y, z). ``faces`` adds the opposite
    cameras (−x, −y, −z: the back, bottom and far side that the first three hide). ``ringK`` puts
    ``K`` cameras on a horizontal ring around ``up_axis`` at angles ``2πk/K``. Same conventions as
    :func:`project_depth`: orthographic, z-buffered, ``FAR_VALUE`` … ``NEAR_VALUE``, 0 where empty.
    """
    if projection == "axes":
        return project_depth(points, resolution, splat=splat, extent=extent)
    pts = check_points(points)
    xyz, added = _batched(pts[..., :3])
    cams = _camera_rotations(projection, up_axis).to(xyz)  # K × 3 × 3
    b, k = xyz.shape[0], cams.shape[0]
    local = torch.einsum("kij,bnj->bkni", cams, xyz)  # B × K × N × 3 in camera coordinates
    unit = _pixel_grid(local, extent)
    value = FAR_VALUE + (NEAR_VALUE - FAR_VALUE) * unit[..., 2]
    col = (unit[..., 0] * resolution).floor().long().clamp(0, resolution - 1)
    row = ((1.0 - unit[..., 1]) * resolution).floor().long().clamp(0, resolution - 1)
    plane = torch.arange(b * k, device=xyz.device).view(b, k, 1) * (resolution * resolution)
    flat = (plane + row * resolution + col).reshape(-1)
    img = value.new_zeros(b * k * resolution * resolution).scatter_reduce(
        0, flat, value.reshape(-1), "amax", include_self=True).view(b, k, resolution, resolution)
    if splat > 1:
        img = F.max_pool2d(img, splat, stride=1, padding=splat // 2)
    return img[0] if added else img


@dataclass
class PointAugment:
    """Training augmentation of ``N × C`` or ``B × N × C`` clouds (normals follow rotations).

    Order: rotation → anisotropic scale U(scale) per axis → translation
    U(-translate, translate) → Gaussian jitter (``jitter`` σ, clipped at
    ``jitter_clip``) → point dropout (a random fraction up to ``dropout`` of the
    points is replaced by the first point, so the shape is unchanged).
    """

    rotation: Literal["up", "so3", "none"] = "up"
    up_axis: Union[int, str] = "y"
    scale: Sequence[float] = (2 / 3, 3 / 2)
    translate: float = 0.2
    jitter: float = 0.0
    jitter_clip: float = 0.05
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.rotation not in ("up", "so3", "none"):
            raise ValueError(f"rotation must be 'up', 'so3' or 'none', got {self.rotation!r}")
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise ValueError(f"scale must be a range (lo, hi) with 0 < lo <= hi, got {tuple(self.scale)}")
        if self.translate < 0 or self.jitter < 0 or not 0 <= self.dropout < 1:
            raise ValueError("translate and jitter must be >= 0 and dropout in [0, 1)")

    def __call__(self, points: ArrayLike, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Return an augmented copy of ``points``."""
        pts, added = _batched(check_points(points))
        b, n, _ = pts.shape
        g = generator
        pts = rotate(pts, random_rotation(b, self.rotation, up_axis=self.up_axis, generator=g).to(pts.device))
        lo, hi = self.scale
        s = (lo + (hi - lo) * torch.rand(b, 1, 3, generator=g)).to(pts)
        t = ((torch.rand(b, 1, 3, generator=g) * 2 - 1) * self.translate).to(pts)
        xyz = pts[..., :3] * s + t
        if self.jitter > 0:
            noise = (torch.randn(b, n, 3, generator=g) * self.jitter).clamp(-self.jitter_clip, self.jitter_clip)
            xyz = xyz + noise.to(pts)
        rest = pts[..., 3:]
        if rest.shape[-1] >= 3:  # normals of an anisotropically scaled surface: inverse-transpose, renormalised
            nrm = rest[..., :3] / s
            rest = torch.cat([F.normalize(nrm, dim=-1), rest[..., 3:]], dim=-1)
        pts = torch.cat([xyz, rest], dim=-1)
        if self.dropout > 0:
            ratio = torch.rand(b, 1, generator=g) * self.dropout
            drop = (torch.rand(b, n, generator=g) < ratio).to(pts.device)
            drop[:, 0] = False
            pts = torch.where(drop.unsqueeze(-1), pts[:, :1].expand_as(pts), pts)
        return pts[0] if added else pts
