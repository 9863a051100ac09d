"""Video clips as backbone-ready images, and clip-consistent augmentation.

A clip is a ``T x C x H x W`` tensor (frames first). UniRepLKNet sees a video
as one ``C' x H' x W'`` image; five layouts are offered, all invertible:

* ``"grid"`` (the paper's description): frame ``t`` is tiled at grid cell
  ``(t // cols, t % cols)``; 16 frames of 224² in a 4 x 4 grid give one
  3 x 896 x 896 image. Any ``T`` works; cells past ``T`` are zero.
* ``"reshape"`` (what the original code does): the ``C x T x H x W`` memory is
  reinterpreted as ``C x (T*H/k) x (k*W)``. Frame ``t`` then fills rows
  ``t*H/k .. (t+1)*H/k - 1`` and each output row holds ``k`` consecutive rows
  of that frame side by side. The original hard-codes ``k = 4`` (``T = 16``);
  here ``k`` defaults to ``sqrt(T)`` and may be set.
* ``"channels"``: the frames stacked as channels, ``(T*C) x H x W``; channels
  ``t*C .. t*C + C - 1`` are frame ``t``. Neighbouring frames stay
  pixel-aligned, so motion is a local (per-pixel) feature from the first
  layer on, and a clip costs what one frame costs. The stem takes
  ``in_chans = T*C``; a stem pretrained on ``C`` channels is inflated by
  :func:`inflate_stem_weight` (weights repeated per frame and divided by
  ``T``: a static clip then gives exactly the 2-D model's output on one frame).
* ``"diff"``: the ``T*C`` frame channels followed by the ``(T-1)*C``
  consecutive differences ``frame[t+1] - frame[t]``: ``(2T-1)*C`` channels. The
  inflated stem gives the difference channels zero weights (a static clip has
  zero differences anyway), so the same equality holds.
* ``"flow"``: the ``T*C`` frame channels followed by ``2(T-1)`` normal-flow
  channels (``u, v`` for each consecutive pair, :func:`normal_flow`): a motion
  signal in pixels that does not depend on the scene's contrast the way raw
  differences do. The inflated stem gives the flow channels zero weights (a
  static clip has zero flow), so the same equality holds.

The augmentation draws its random parameters once per clip and applies them to
every frame, so motion between frames is preserved: the crop and flip, RandAugment,
and the photometric changes (brightness / contrast / saturation / hue, grey, blur,
noise of one strength) that make a model rely on motion rather than on the colours
and contrast of the few scenes it was trained on. ``norm="clip"`` normalises each
clip by its own per-channel mean and standard deviation (over frames and pixels)
instead of the data set's, so the frame differences are measured relative to the
clip's own contrast.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..._extras import require

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LAYOUTS",
    "CHANNEL_LAYOUTS",
    "layout_channels",
    "stack_channels",
    "unstack_channels",
    "diff_channels",
    "undiff_channels",
    "normal_flow",
    "flow_channels",
    "unflow_channels",
    "inflate_stem_weight",
    "grid_shape",
    "tile_frames",
    "untile_frames",
    "reshape_frames",
    "unreshape_frames",
    "frames_to_image",
    "image_to_frames",
    "image_size_for",
    "ClipAugment",
    "clip_eval_crops",
    "resize_clip",
    "normalize_clip",
    "normalize_per_clip",
    "NORMS",
    "adjust_clip",
    "gaussian_blur",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYOUTS = ("grid", "reshape", "channels", "diff", "flow")
#: layouts that keep frames pixel-aligned as channels (the stem is widened).
CHANNEL_LAYOUTS = ("channels", "diff", "flow")
#: normal flow: the regulariser ``e`` as a fraction of the clip's RMS gradient, and the clamp in pixels.
FLOW_EPS = 0.1
FLOW_CLAMP = 4.0
#: clip normalisations: the data set's mean/std (ImageNet), or each clip's own statistics.
NORMS = ("imagenet", "clip")


# ----------------------------------------------------------------------------- layouts
def grid_shape(num_frames: int, grid: Optional[Sequence[int]] = None) -> tuple[int, int]:
    """Rows and columns of the tiling grid for ``num_frames`` frames.

    With ``grid=None`` the most square exact factorisation ``rows x cols == T``
    is used (16 -> 4 x 4, 8 -> 2 x 4); if that is more than twice as wide as
    tall (a prime ``T`` such as 7), a near-square grid with empty cells is used.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if grid is not None:
        rows, cols = (int(g) for g in grid)
        if rows < 1 or cols < 1 or rows * cols < num_frames:
            raise ValueError(f"grid {rows}x{cols} cannot hold {num_frames} frames")
        return rows, cols
    rows = max(d for d in range(1, math.isqrt(num_frames) + 1) if num_frames % d == 0)
    cols = num_frames // rows
    if cols > 2 * rows:
        cols = math.ceil(math.sqrt(num_frames))
        rows = math.ceil(num_frames / cols)
    return rows, cols


def _check_clip(clip: torch.Tensor) -> None:
    if clip.dim() not in (4, 5):
        raise ValueError(f"expected a clip T x C x H x W (or B x T x C x H x W), got shape {tuple(clip.shape)}")


def tile_frames(clip: torch.Tensor, grid: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Tile ``[B x] T x C x H x W`` frames into ``[B x] C x (rows*H) x (cols*W)``, row-major."""
    _check_clip(clip)
    batched = clip.dim() == 5
    x = clip if batched else clip.unsqueeze(0)
    b, t, c, h, w = x.shape
    rows, cols = grid_shape(t, grid)
    if rows * cols > t:
        x = torch.cat([x, x.new_zeros(b, rows * cols - t, c, h, w)], dim=1)
    out = x.reshape(b, rows, cols, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(b, c, rows * h, cols * w)
    return out if batched else out[0]


def untile_frames(image: torch.Tensor, num_frames: int, grid: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Inverse of :func:`tile_frames`: ``[B x] C x H' x W'`` back to ``[B x] T x C x H x W``."""
    if image.dim() not in (3, 4):
        raise ValueError(f"expected an image C x H x W (or B x C x H x W), got shape {tuple(image.shape)}")
    batched = image.dim() == 4
    x = image if batched else image.unsqueeze(0)
    b, c, hh, ww = x.shape
    rows, cols = grid_shape(num_frames, grid)
    if hh % rows or ww % cols:
        raise ValueError(f"image {hh}x{ww} does not split into a {rows}x{cols} grid")
    h, w = hh // rows, ww // cols
    out = x.reshape(b, c, rows, h, cols, w).permute(0, 2, 4, 1, 3, 5).reshape(b, rows * cols, c, h, w)
    out = out[:, :num_frames]
    return out if batched else out[0]


def _reshape_factor(num_frames: int, height: int, factor: Optional[int]) -> int:
    if factor is None:
        k = math.isqrt(num_frames)
        if k * k != num_frames:
            raise ValueError(
                f"the 'reshape' layout needs a square number of frames or an explicit factor, got T={num_frames}"
            )
        factor = k
    if factor < 1 or height % factor:
        raise ValueError(f"reshape factor {factor} must be >= 1 and divide the frame height {height}")
    return factor


def reshape_frames(clip: torch.Tensor, factor: Optional[int] = None) -> torch.Tensor:
    """The original code's layout: ``C x T x H x W`` memory read as ``C x (T*H/k) x (k*W)``.

    Accepts ``[B x] T x C x H x W`` like :func:`tile_frames`.
    """
    _check_clip(clip)
    batched = clip.dim() == 5
    x = clip if batched else clip.unsqueeze(0)
    b, t, c, h, w = x.shape
    k = _reshape_factor(t, h, factor)
    out = x.transpose(1, 2).contiguous().reshape(b, c, t * h // k, k * w)
    return out if batched else out[0]


def unreshape_frames(image: torch.Tensor, num_frames: int, factor: Optional[int] = None) -> torch.Tensor:
    """Inverse of :func:`reshape_frames`."""
    if image.dim() not in (3, 4):
        raise ValueError(f"expected an image C x H x W (or B x C x H x W), got shape {tuple(image.shape)}")
    batched = image.dim() == 4
    x = image if batched else image.unsqueeze(0)
    b, c, hh, ww = x.shape
    k = factor if factor is not None else _reshape_factor(num_frames, hh * num_frames, None)
    if ww % k or (hh * k) % num_frames:
        raise ValueError(f"image {hh}x{ww} is not a reshape of {num_frames} frames with factor {k}")
    h, w = hh * k // num_frames, ww // k
    out = x.reshape(b, c, num_frames, h, w).transpose(1, 2)
    return out if batched else out[0]


def layout_channels(layout: str, num_frames: int, channels: int = 3) -> int:
    """Input channels of the image that ``num_frames`` frames of ``channels`` channels become in ``layout``."""
    if layout in ("grid", "reshape"):
        return channels
    if layout == "channels":
        return num_frames * channels
    if layout == "diff":
        return (2 * num_frames - 1) * channels
    if layout == "flow":
        return num_frames * channels + 2 * (num_frames - 1)
    raise ValueError(f"unknown frame layout {layout!r}; choose one of {LAYOUTS}")


def stack_channels(clip: torch.Tensor) -> torch.Tensor:
    """``[B x] T x C x H x W`` -> ``[B x] (T*C) x H x W``: frame ``t`` is channels ``t*C .. t*C + C - 1``."""
    _check_clip(clip)
    return clip.flatten(-4, -3)


def unstack_channels(image: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Inverse of :func:`stack_channels`: ``[B x] (T*C) x H x W`` -> ``[B x] T x C x H x W``."""
    if image.dim() not in (3, 4):
        raise ValueError(f"expected an image C x H x W (or B x C x H x W), got shape {tuple(image.shape)}")
    c_all = image.shape[-3]
    if num_frames < 1 or c_all % num_frames:
        raise ValueError(f"an image with {c_all} channels is not {num_frames} stacked frames")
    frames = image
    return frames.unflatten(-3, (num_frames, c_all // num_frames))


def diff_channels(clip: torch.Tensor) -> torch.Tensor:
    """``[B x] T x C x H x W`` -> ``[B x] (2T-1)*C x H x W``: the stacked frames, then ``frame[t+1] - frame[t]``."""
    _check_clip(clip)
    frames = clip.flatten(-4, -3)
    diffs = (clip[..., 1:, :, :, :] - clip[..., :-1, :, :, :]).flatten(-4, -3)
    return torch.cat([frames, diffs], dim=-3)


def undiff_channels(image: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Inverse of :func:`diff_channels` (the frames; the difference channels are redundant)."""
    c_all = image.shape[-3]
    if c_all % (2 * num_frames - 1):
        raise ValueError(f"{c_all} channels are not (2T-1)*C for T={num_frames}")
    c = c_all // (2 * num_frames - 1)
    return image[..., : num_frames * c, :, :].unflatten(-3, (num_frames, c))


def normal_flow(clip: torch.Tensor, eps: float = FLOW_EPS, clamp: float = FLOW_CLAMP) -> torch.Tensor:
    """Normal flow between consecutive frames: ``[B x] T x C x H x W`` -> ``[B x] (T-1) x 2 x H x W`` (``u, v``).

    On grey values (the mean over ``C``), for each pair ``I0, I1``: ``I_t = I1 - I0``, ``g`` the
    central-difference gradient of ``(I0 + I1) / 2`` (replicate border), and
    ``flow = -I_t * g / (|g|^2 + e^2)`` (brightness constancy: the flow component along the gradient),
    in pixels per frame, ``u`` along the width (right positive), ``v`` along the height (down positive).
    ``e = eps * RMS(|g|)`` over the clip, so scaling the clip's contrast (or adding an offset) does not
    change the result; the flow is clamped to ``[-clamp, clamp]`` pixels.
    """
    _check_clip(clip)
    batched = clip.dim() == 5
    x = clip if batched else clip.unsqueeze(0)
    x = x.float().mean(dim=2)  # B x T x H x W, grey
    b, t, h, w = x.shape
    if t < 2:
        out = x.new_zeros(b, 0, 2, h, w)
        return out if batched else out[0]
    i_t = x[:, 1:] - x[:, :-1]
    avg = 0.5 * (x[:, 1:] + x[:, :-1])
    pad = F.pad(avg.reshape(b * (t - 1), 1, h, w), (1, 1, 1, 1), mode="replicate").reshape(b, t - 1, h + 2, w + 2)
    gx = 0.5 * (pad[..., 1:-1, 2:] - pad[..., 1:-1, :-2])
    gy = 0.5 * (pad[..., 2:, 1:-1] - pad[..., :-2, 1:-1])
    g2 = gx * gx + gy * gy
    e2 = (eps * eps) * g2.mean(dim=(1, 2, 3), keepdim=True) + 1e-12
    scale = -i_t / (g2 + e2)
    out = torch.stack([scale * gx, scale * gy], dim=2).clamp(-clamp, clamp)
    return out if batched else out[0]


def flow_channels(clip: torch.Tensor) -> torch.Tensor:
    """``[B x] T x C x H x W`` -> ``[B x] (T*C + 2(T-1)) x H x W``: the stacked frames (as float), then
    :func:`normal_flow` (``u_0, v_0, u_1, v_1, ...``; pair ``t`` is frames ``t`` and ``t+1``)."""
    _check_clip(clip)
    frames = clip.flatten(-4, -3)
    dtype = frames.dtype if frames.is_floating_point() else torch.float32
    flow = normal_flow(clip).to(dtype).flatten(-4, -3)
    return torch.cat([frames.to(dtype), flow], dim=-3)


def unflow_channels(image: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Inverse of :func:`flow_channels` (the frames; the flow channels are derived from them)."""
    c_all = image.shape[-3]
    rest = c_all - 2 * (num_frames - 1)
    if num_frames < 1 or rest < num_frames or rest % num_frames:
        raise ValueError(f"{c_all} channels are not T*C + 2(T-1) for T={num_frames}")
    c = rest // num_frames
    return image[..., : num_frames * c, :, :].unflatten(-3, (num_frames, c))


def inflate_stem_weight(weight: torch.Tensor, num_frames: int, layout: str = "channels") -> torch.Tensor:
    """Inflate a 2-D stem kernel ``out x C x k x k`` for a channel layout of ``num_frames`` frames.

    ``channels``: the kernel repeated once per frame and divided by ``T`` (``out x T*C x k x k``);
    ``diff``: the same for the frame channels, zeros for the ``(T-1)*C`` difference channels;
    ``flow``: the same, zeros for the ``2(T-1)`` flow channels.
    On a static clip (every frame equal) the inflated stem computes exactly what the 2-D stem
    computes on one frame (the documented scaling: the ``1/T`` makes the sum over frames a mean).
    ``grid`` and ``reshape`` return the kernel unchanged.
    """
    if weight.dim() != 4:
        raise ValueError(f"expected a conv kernel out x C x k x k, got shape {tuple(weight.shape)}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if layout in ("grid", "reshape"):
        return weight
    # the motion channels after the frames (none for ``channels``); unknown layouts raise here
    extra = layout_channels(layout, num_frames, weight.shape[1]) - num_frames * weight.shape[1]
    frames = weight.repeat(1, num_frames, 1, 1) / num_frames
    if extra == 0:
        return frames
    return torch.cat([frames, weight.new_zeros(weight.shape[0], extra, *weight.shape[2:])], dim=1)


def frames_to_image(
    clip: torch.Tensor, layout: str = "grid", grid: Optional[Sequence[int]] = None, factor: Optional[int] = None
) -> torch.Tensor:
    """Turn a clip into one image with the chosen ``layout`` (one of :data:`LAYOUTS`)."""
    if layout == "grid":
        return tile_frames(clip, grid)
    if layout == "reshape":
        return reshape_frames(clip, factor)
    if layout == "channels":
        return stack_channels(clip)
    if layout == "diff":
        return diff_channels(clip)
    if layout == "flow":
        return flow_channels(clip)
    raise ValueError(f"unknown frame layout {layout!r}; choose one of {LAYOUTS}")


def image_to_frames(
    image: torch.Tensor,
    num_frames: int,
    layout: str = "grid",
    grid: Optional[Sequence[int]] = None,
    factor: Optional[int] = None,
) -> torch.Tensor:
    """Inverse of :func:`frames_to_image`."""
    if layout == "grid":
        return untile_frames(image, num_frames, grid)
    if layout == "reshape":
        return unreshape_frames(image, num_frames, factor)
    if layout == "channels":
        return unstack_channels(image, num_frames)
    if layout == "diff":
        return undiff_channels(image, num_frames)
    if layout == "flow":
        return unflow_channels(image, num_frames)
    raise ValueError(f"unknown frame layout {layout!r}; choose one of {LAYOUTS}")


def image_size_for(
    num_frames: int,
    frame_size: Sequence[int],
    layout: str = "grid",
    grid: Optional[Sequence[int]] = None,
    factor: Optional[int] = None,
) -> tuple[int, int]:
    """Height and width of the image that ``num_frames`` frames of ``frame_size`` (H, W) become."""
    h, w = int(frame_size[0]), int(frame_size[1])
    if layout == "grid":
        rows, cols = grid_shape(num_frames, grid)
        return rows * h, cols * w
    if layout == "reshape":
        k = _reshape_factor(num_frames, h, factor)
        return num_frames * h // k, k * w
    if layout in CHANNEL_LAYOUTS:
        return h, w
    raise ValueError(f"unknown frame layout {layout!r}; choose one of {LAYOUTS}")


# ----------------------------------------------------------------------------- augmentation
def normalize_clip(
    clip: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """uint8 (or 0..1 float) ``T x C x H x W`` frames to normalised float32."""
    x = clip.float()
    if clip.dtype == torch.uint8:
        x = x / 255.0
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def normalize_per_clip(clip: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """``T x C x H x W`` frames (uint8 or 0..1 float) -> each channel at zero mean, unit std over the clip.

    The statistics are taken over all frames and pixels of the clip together, so every frame gets
    the same affine map (frame differences keep their sign and relative size; a static clip stays
    static). ``eps`` (on the 0..1 scale) keeps flat clips from being amplified into noise.
    """
    _check_clip(clip)
    x = clip.float()
    if clip.dtype == torch.uint8:
        x = x / 255.0
    dims = (-4, -2, -1)
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)


def _normalize(clip: torch.Tensor, norm: str, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    if norm == "imagenet":
        return normalize_clip(clip, mean, std)
    if norm == "clip":
        return normalize_per_clip(clip)
    raise ValueError(f"unknown clip normalisation {norm!r}; choose one of {NORMS}")


def gaussian_blur(clip: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (``sigma`` in pixels, reflect padding) of float ``[B x] T x C x H x W`` frames, all alike."""
    if sigma <= 0:
        return clip
    radius = max(1, int(math.ceil(2.5 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    k = (k / k.sum()).to(clip.dtype)
    shape = clip.shape
    x = clip.reshape(-1, 1, *shape[-2:])
    radius_h, radius_w = min(radius, shape[-2] - 1), min(radius, shape[-1] - 1)
    x = F.pad(x, (radius_w, radius_w, 0, 0), mode="reflect") if radius_w > 0 else x
    x = F.conv2d(x, k[radius - radius_w: radius + radius_w + 1].view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, radius_h, radius_h), mode="reflect") if radius_h > 0 else x
    x = F.conv2d(x, k[radius - radius_h: radius + radius_h + 1].view(1, 1, -1, 1))
    return x.reshape(shape)


def adjust_clip(
    clip: torch.Tensor,
    brightness: float = 1.0,
    contrast: float = 1.0,
    saturation: float = 1.0,
    hue: float = 0.0,
    grayscale: bool = False,
    blur_sigma: float = 0.0,
) -> torch.Tensor:
    """Photometric change of 0..1 float RGB frames ``[B x] T x 3 x H x W``, the same for every frame.

    In order: brightness (multiply), contrast (scale about the clip's mean grey level), saturation
    (scale about each pixel's grey level), hue (rotation by ``hue`` radians about the grey axis of
    RGB space), optional conversion to grey, Gaussian blur; the result is clipped to 0..1. Every
    parameter is a scalar, so frame ``t`` of the result is what the same change does to frame ``t``
    alone, except that contrast uses the mean of the whole clip (a frame-by-frame mean would
    flicker with the content).
    """
    _check_clip(clip)
    if clip.shape[-3] != 3:
        raise ValueError(f"adjust_clip needs RGB frames (C = 3), got C = {clip.shape[-3]}")
    x = clip.float() * brightness
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(3, 1, 1)
    if contrast != 1.0:
        grey_mean = (x * weights).sum(-3, keepdim=True).mean(dim=(-4, -3, -2, -1), keepdim=True)
        x = (x - grey_mean) * contrast + grey_mean
    if saturation != 1.0:
        grey = (x * weights).sum(-3, keepdim=True)
        x = (x - grey) * saturation + grey
    if hue != 0.0:
        cos, sin, third = math.cos(hue), math.sin(hue), 1.0 / 3.0
        r = math.sqrt(third)
        # Rodrigues rotation about the unit grey axis (1, 1, 1) / sqrt(3)
        rot = torch.tensor([[cos + third * (1 - cos), third * (1 - cos) - r * sin, third * (1 - cos) + r * sin],
                            [third * (1 - cos) + r * sin, cos + third * (1 - cos), third * (1 - cos) - r * sin],
                            [third * (1 - cos) - r * sin, third * (1 - cos) + r * sin, cos + third * (1 - cos)]],
                           dtype=x.dtype)
        x = torch.einsum("ij,...jhw->...ihw", rot, x)
    if grayscale:
        x = (x * weights).sum(-3, keepdim=True).expand_as(x)
    x = gaussian_blur(x, blur_sigma)
    return x.clamp(0.0, 1.0)


def resize_clip(clip: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear (antialiased) resize of ``T x C x H x W`` frames; keeps uint8 as uint8."""
    size = (int(size[0]), int(size[1]))
    if tuple(clip.shape[-2:]) == size:
        return clip
    out = F.interpolate(clip.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    if clip.dtype == torch.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _resized_crop_box(
    height: int, width: int, scale: Sequence[float], ratio: Sequence[float], rng: random.Random
) -> tuple[int, int, int, int]:
    """Top, left, height, width of a random crop with area fraction in ``scale`` and aspect in ``ratio``."""
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    # fall back to the largest centred crop within the ratio range
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def clip_eval_crops(clip: torch.Tensor, crop_size: Sequence[int], num_crops: int = 1) -> list[torch.Tensor]:
    """Deterministic spatial views for evaluation.

    Frames are resized so that the short side equals the crop's short side,
    then ``num_crops`` crops are taken evenly along the long side (1: centre;
    3: start / centre / end, as in VideoMAE and SlowFast testing).
    """
    if num_crops < 1:
        raise ValueError(f"num_crops must be >= 1, got {num_crops}")
    ch, cw = int(crop_size[0]), int(crop_size[1])
    h, w = clip.shape[-2:]
    scale = max(ch / h, cw / w)
    clip = resize_clip(clip, (max(ch, int(round(h * scale))), max(cw, int(round(w * scale)))))
    h, w = clip.shape[-2:]
    views = []
    for i in range(num_crops):
        frac = 0.5 if num_crops == 1 else i / (num_crops - 1)
        top = int(round((h - ch) * (frac if h - ch > w - cw else 0.5)))
        left = int(round((w - cw) * (frac if w - cw >= h - ch else 0.5)))
        views.append(clip[..., top : top + ch, left : left + cw])
    return views


@dataclass
class ClipAugment:
    """Training augmentation applied identically to every frame of a clip.

    Order: random resized crop to ``size`` -> horizontal flip -> RandAugment
    (timm, one draw of ops and magnitudes per clip) -> photometric changes
    (:func:`adjust_clip`: brightness, contrast and saturation factors drawn in
    ``[1 - color_jitter, 1 + color_jitter]``, a hue rotation of up to
    ``color_jitter * 180`` degrees, grey with probability ``grayscale``, a Gaussian
    blur with probability ``blur`` and sigma in ``blur_sigma`` output pixels, then
    Gaussian noise of a standard deviation drawn in ``[0, noise]``, fresh for every
    pixel and frame) -> normalise (``norm``: the ``mean``/``std`` given, or
    ``"clip"``: the clip's own statistics) -> random erasing of one box in all
    frames (a "tube"). Input: uint8 ``T x C x H x W`` (C = 3 for RandAugment and
    the colour changes); output: float32 ``T x C x size``.
    """

    size: tuple[int, int] = (224, 224)
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    rand_augment: Optional[str] = None  # timm config string, e.g. "rand-m7-n4-mstd0.5-inc1"
    erase_prob: float = 0.0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    color_jitter: float = 0.0
    grayscale: float = 0.0
    blur: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    noise: float = 0.0
    norm: str = "imagenet"

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"unknown clip normalisation {self.norm!r}; choose one of {NORMS}")
        if not 0 <= self.color_jitter <= 1:
            raise ValueError(f"color_jitter must be in [0, 1], got {self.color_jitter}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        self._ra = None
        if self.rand_augment:
            aa = require("timm.data.auto_augment", "train", "RandAugment")
            fill = tuple(round(255 * m) for m in self.mean)
            hparams = {"translate_const": int(min(self.size) * 0.45), "img_mean": fill}
            self._ra = aa.rand_augment_transform(self.rand_augment, hparams)

    def __call__(self, clip: torch.Tensor, rng: Optional[random.Random] = None) -> torch.Tensor:
        """Augment one uint8 clip; ``rng`` (default: the ``random`` module) draws the crop, flip and erase."""
        _check_clip(clip)
        if clip.dim() != 4:
            raise ValueError(f"ClipAugment takes one clip T x C x H x W, got shape {tuple(clip.shape)}")
        rng = rng or random.Random(random.getrandbits(64))
        h, w = clip.shape[-2:]
        top, left, ch, cw = _resized_crop_box(h, w, self.scale, self.ratio, rng)
        x = resize_clip(clip[..., top : top + ch, left : left + cw], self.size)
        if rng.random() < self.hflip:
            x = x.flip(-1)
        if self._ra is not None:
            x = self._rand_augment(x)
        x = self._photometric(x, rng)
        x = _normalize(x, self.norm, self.mean, self.std)
        if self.erase_prob > 0 and rng.random() < self.erase_prob:
            x = _erase_tube(x, rng)
        return x

    def photometric_params(self, rng: random.Random) -> dict[str, Any]:
        """One draw of the :func:`adjust_clip` parameters (and the noise level) for a clip."""
        j = self.color_jitter
        return {
            "brightness": rng.uniform(1 - j, 1 + j),
            "contrast": rng.uniform(1 - j, 1 + j),
            "saturation": rng.uniform(1 - j, 1 + j),
            "hue": rng.uniform(-j, j) * math.pi,
            "grayscale": rng.random() < self.grayscale,
            "blur_sigma": rng.uniform(*self.blur_sigma) if rng.random() < self.blur else 0.0,
            "noise": rng.uniform(0.0, self.noise),
        }

    def _photometric(self, clip: torch.Tensor, rng: random.Random) -> torch.Tensor:
        if not (self.color_jitter or self.grayscale or self.blur or self.noise):
            return clip
        if clip.shape[1] != 3:
            raise ValueError("the colour changes of ClipAugment need RGB frames (C = 3)")
        params = self.photometric_params(rng)
        noise = params.pop("noise")
        x = clip.float() / 255.0 if clip.dtype == torch.uint8 else clip.float()
        x = adjust_clip(x, **params)
        if noise > 0:
            gen = torch.Generator().manual_seed(rng.getrandbits(63))
            x = (x + noise * torch.randn(x.shape, generator=gen)).clamp_(0.0, 1.0)
        return x

    def _rand_augment(self, clip: torch.Tensor) -> torch.Tensor:
        """Apply the same RandAugment draw to every frame by replaying the global RNG states timm uses."""
        if clip.dtype != torch.uint8 or clip.shape[1] != 3:
            raise ValueError("RandAugment needs uint8 RGB frames (C = 3)")
        image_mod = require("PIL.Image", "train", "RandAugment")
        py_state, np_state = random.getstate(), np.random.get_state()
        out = []
        for frame in clip.permute(0, 2, 3, 1).numpy():
            random.setstate(py_state)
            np.random.set_state(np_state)
            out.append(np.asarray(self._ra(image_mod.fromarray(frame)), dtype=np.uint8))
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def _erase_tube(
    x: torch.Tensor, rng: random.Random, area: tuple[float, float] = (0.02, 1 / 3), log_ratio: float = math.log(3)
) -> torch.Tensor:
    """Replace one random box, the same in all frames, with per-pixel normal noise (timm's 'pixel' mode)."""
    _, c, h, w = x.shape
    for _ in range(10):
        target = h * w * rng.uniform(*area)
        aspect = math.exp(rng.uniform(-log_ratio, log_ratio))
        eh, ew = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < eh < h and 0 < ew < w:
            top, left = rng.randint(0, h - eh), rng.randint(0, w - ew)
            gen = torch.Generator().manual_seed(rng.getrandbits(63))
            x = x.clone()
            x[:, :, top : top + eh, left : left + ew] = torch.randn(x.shape[0], c, eh, ew, generator=gen)
            break
    return x
