"""Effective receptive field (ERF) maps, their area-ratio table, and pictures of merged kernels.

The protocol follows the analysis of the RepLKNet paper (Ding et al., CVPR 2022), which
UniRepLKNet reuses:

1. For each input image ``x`` (resized to ``size``), take the backbone's last-stage output
   ``y = forward_features(x)`` (``B x C x h x w``) and its central point ``p = y[:, :, h//2, w//2]``.
2. The contribution of every input pixel is ``sum over input channels of ReLU(d sum_c ReLU(p_c) / d x)``.
3. The raw ERF is the mean of these maps over ``N`` images (images whose gradient has a NaN are skipped).
4. Post-processing for display and analysis: ``A = log10(raw + 1)``, then ``A / max(A)`` (scores span
   orders of magnitude; the rescaling to ``[0, 1]`` makes models comparable).
5. High-contribution area ratio at threshold ``t``: the smallest square of odd side ``2i + 1``
   (``i >= 1``) centred at ``(H//2, W//2)`` whose summed post-processed score exceeds ``t`` times the
   sum over the whole map; the ratio is the square's area over the map's area. Squares are clipped
   at the map border (so the ratio reaches 1.0 when only the whole map qualifies).

Everything here needs only torch and numpy except the pictures (matplotlib) and the built-in
images (scikit-learn and matplotlib ship the photos), both in the ``train`` extra.
"""
from __future__ import annotations

import copy
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ._extras import require

__all__ = [
    "THRESHOLDS", "AreaRatio", "builtin_image_paths", "list_input_files", "erf_inputs", "central_point_gradient",
    "compute_erf", "postprocess_erf", "area_ratios", "theoretical_receptive_field", "build_erf_model", "merged_kernels", "kernel_pictures", "render_erf",
    "render_kernels", "format_ratio_table",
]

_logger = logging.getLogger(__name__)

#: thresholds of the high-contribution area ratio table in the RepLKNet paper.
THRESHOLDS: Tuple[float, ...] = (0.2, 0.3, 0.5, 0.99)

_NPY = (".npy",)
_CKPT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


# ------------------------------------------------------------------------------------------ inputs
def builtin_image_paths() -> List[Path]:
    """Real photos shipped by installed packages: scikit-learn's two sample images and matplotlib's portrait."""
    datasets = require("sklearn.datasets", "train", "the built-in ERF images")
    cbook = require("matplotlib.cbook", "train", "the built-in ERF images")
    paths = [Path(p) for p in datasets.load_sample_images().filenames]
    paths.append(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"built-in images missing from the installed packages: {', '.join(missing)}")
    return paths


def list_input_files(directory: Union[str, os.PathLike]) -> List[Path]:
    """Image files (any extension PIL reads) and ``.npy`` arrays directly in ``directory``, sorted by name."""
    from .modalities.image.transforms import IMAGE_EXTENSIONS

    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"image directory not found: {d}")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS + _NPY)
    if not files:
        raise FileNotFoundError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) or .npy arrays found in {d}"
        )
    return files


def _load_source(path: Path, in_chans: int) -> torch.Tensor:
    """One input file as a normalised ``C x H x W`` float tensor with ``in_chans`` channels.

    Images get ImageNet normalisation (RGB channels repeated cyclically beyond 3, luminance for 1);
    ``.npy`` arrays (``H x W`` or ``C x H x W``) are used as they are (single-channel ones repeated).
    """
    if path.suffix.lower() in _NPY:
        arr = np.load(path, allow_pickle=False)
        t = torch.from_numpy(np.asarray(arr, dtype=np.float32))
        if t.dim() == 2:
            t = t.unsqueeze(0)
        if t.dim() != 3:
            raise ValueError(f"{path}: expected an H x W or C x H x W array, got shape {tuple(arr.shape)}")
        if t.shape[0] == 1 and in_chans > 1:
            t = t.expand(in_chans, -1, -1)
        if t.shape[0] != in_chans:
            raise ValueError(f"{path}: array has {t.shape[0]} channels but the model takes in_chans={in_chans}")
        return t.contiguous()
    from .modalities.image.transforms import IMAGENET_MEAN, IMAGENET_STD, default_stats, load_image

    img = load_image(path, 1 if in_chans == 1 else 3)
    t = torch.from_numpy(np.array(img, dtype=np.float32, copy=True)) / 255.0
    t = t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)
    if in_chans == 1:
        mean, std = default_stats(1)
    else:
        idx = [c % 3 for c in range(in_chans)]
        t = t[idx]
        mean, std = [IMAGENET_MEAN[i] for i in idx], [IMAGENET_STD[i] for i in idx]
    return (t - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)


def _random_crop_box(h: int, w: int, size: Tuple[int, int], gen: torch.Generator) -> Tuple[int, int, int, int]:
    """A random crop covering 25-100 % of the area with the target's aspect ratio x [3/4, 4/3]."""
    target = size[1] / size[0]
    for _ in range(10):
        area = h * w * (0.25 + 0.75 * torch.rand(1, generator=gen).item())
        ratio = target * math.exp(math.log(3 / 4) + math.log(16 / 9) * torch.rand(1, generator=gen).item())
        cw, ch = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
            return top, left, ch, cw
    return 0, 0, h, w


def erf_inputs(
    num_images: int,
    size: Union[int, Sequence[int]],
    in_chans: int = 3,
    images: Union[str, os.PathLike, None] = None,
    seed: int = 0,
) -> Iterator[torch.Tensor]:
    """Yield ``num_images`` inputs of shape ``1 x in_chans x H x W``, the same ones for the same arguments.

    Sources are the files in ``images`` (a directory) or, when ``None``, :func:`builtin_image_paths`.
    The first pass uses each whole source resized to ``size`` (the papers' protocol); when more
    images than sources are asked for, further inputs are random crops (25-100 % of the area),
    randomly flipped, of the sources in turn.
    """
    hw = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
    if len(hw) != 2 or min(hw) < 8:
        raise ValueError(f"size must be one or two integers >= 8, got {size}")
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    paths = list_input_files(images) if images is not None else builtin_image_paths()
    gen = torch.Generator().manual_seed(seed)
    cache: Dict[int, torch.Tensor] = {}
    for i in range(num_images):
        k = i % len(paths)
        if k not in cache:
            cache[k] = _load_source(paths[k], in_chans)
        src = cache[k]
        if i >= len(paths):
            top, left, ch, cw = _random_crop_box(src.shape[1], src.shape[2], hw, gen)
            src = src[:, top:top + ch, left:left + cw]
            if torch.rand(1, generator=gen).item() < 0.5:
                src = src.flip(-1)
        x = torch.nn.functional.interpolate(src.unsqueeze(0), size=hw, mode="bicubic", align_corners=False,
                                            antialias=True)
        yield x


# ------------------------------------------------------------------------------------------- ERF
def _feature_map(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The last-stage map of a backbone: ``forward_features`` if present, else the (last) output of ``model``."""
    fn = getattr(model, "forward_features", None)
    y = fn(x) if callable(fn) else model(x)
    if isinstance(y, (list, tuple)):
        y = y[-1]
    if not isinstance(y, torch.Tensor) or y.dim() != 4:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"the model must produce a B x C x H x W feature map, got {shape}")
    return y


def central_point_gradient(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-pixel contribution to the central output point: ``sum_c ReLU(grad)``, shape ``B x H x W``.

    ``grad`` is the gradient of ``sum_c ReLU(y[:, c, h//2, w//2])`` with respect to ``x``; samples are
    independent in ``eval()`` mode, so each row is that image's own map.
    """
    x = x.detach().clone().requires_grad_(True)
    y = _feature_map(model, x)
    h, w = y.shape[-2:]
    point = torch.relu(y[:, :, h // 2, w // 2]).sum()
    (grad,) = torch.autograd.grad(point, x)
    return torch.relu(grad).sum(dim=1)


def compute_erf(
    model: nn.Module,
    inputs: Union[Sequence[torch.Tensor], Iterator[torch.Tensor]],
    device: Union[str, torch.device, None] = None,
    progress: bool = False,
    total: Optional[int] = None,
) -> np.ndarray:
    """The raw ERF: the mean over all input images of :func:`central_point_gradient` (``H x W``, float64).

    The model is put in ``eval()`` mode (and restored afterwards); images giving NaN are skipped with
    a warning, as in the original analysis. ``progress`` shows a tqdm bar (``total``: its length).
    """
    was_training = model.training
    model.eval()
    ref = next(iter(model.parameters()), None)
    device = torch.device(device) if device is not None else (ref.device if ref is not None else torch.device("cpu"))
    acc: Optional[torch.Tensor] = None
    count = skipped = 0
    iterable = inputs
    if progress:
        tqdm = require("tqdm", "train", "progress bars").tqdm
        iterable = tqdm(inputs, desc="ERF", unit="img", total=len(inputs) if hasattr(inputs, "__len__") else total)
    try:
        for x in iterable:
            grads = central_point_gradient(model, x.to(device=device, dtype=ref.dtype if ref is not None else None))
            grads = grads.detach().double().cpu()
            for g in grads:
                if torch.isnan(g).any():
                    skipped += 1
                    continue
                acc = g.clone() if acc is None else acc + g
                count += 1
    finally:
        model.train(was_training)
    if skipped:
        _logger.warning("skipped %d image(s) whose gradient contained NaN", skipped)
    if acc is None:
        raise ValueError("no usable input images: every gradient was NaN or no image was given")
    return (acc / count).numpy()


def postprocess_erf(raw: np.ndarray) -> np.ndarray:
    """``log10(raw + 1)`` rescaled to ``[0, 1]`` by its maximum (all zeros stay zeros)."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2:
        raise ValueError(f"an ERF map must be 2-D (H x W), got shape {raw.shape}")
    if (raw < 0).any():
        raise ValueError("an ERF map holds non-negative contribution scores; got negative values")
    data = np.log10(raw + 1.0)
    peak = data.max()
    if peak <= 0:
        _logger.warning("the ERF map is all zeros (no input pixel influences the central output)")
        return data
    return data / peak


@dataclass(frozen=True)
class AreaRatio:
    """One row of the high-contribution area ratio table."""

    threshold: float
    side: int  # side of the centred square (before clipping at the border)
    ratio: float  # square area (clipped) / map area


def area_ratios(data: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> List[AreaRatio]:
    """High-contribution area ratios of a post-processed ERF map (see the module docstring).

    Raises ``ValueError`` for an all-zero map or a threshold outside ``(0, 1)``.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"an ERF map must be 2-D (H x W), got shape {data.shape}")
    total = data.sum()
    if not total > 0:
        raise ValueError("the ERF map sums to zero: no area ratio can be computed")
    h, w = data.shape
    cy, cx = h // 2, w // 2
    out = []
    for t in thresholds:
        if not 0.0 < t < 1.0:
            raise ValueError(f"thresholds must lie in (0, 1), got {t}")
        i = 1
        while True:
            r0, r1 = max(cy - i, 0), min(cy + i + 1, h)
            c0, c1 = max(cx - i, 0), min(cx + i + 1, w)
            full = r0 == 0 and c0 == 0 and r1 == h and c1 == w
            if data[r0:r1, c0:c1].sum() / total > t or full:
                out.append(AreaRatio(float(t), 2 * i + 1, (r1 - r0) * (c1 - c0) / (h * w)))
                break
            i += 1
    return out


def format_ratio_table(rows: Dict[str, List[AreaRatio]]) -> str:
    """A plain-text table: one line per model, area ratio in percent (and square side) per threshold."""
    if not rows:
        return ""
    thresholds = [r.threshold for r in next(iter(rows.values()))]
    width = max(12, max(len(k) for k in rows))
    head = f"{'model':<{width}}" + "".join(f"  {f't={t:g}':>16}" for t in thresholds)
    lines = [head]
    for name, ratios in rows.items():
        cells = "".join(f"  {f'{100 * r.ratio:.2f}% ({r.side}px)':>16}" for r in ratios)
        lines.append(f"{name:<{width}}{cells}")
    return "\n".join(lines)


def theoretical_receptive_field(model: nn.Module) -> int:
    """Side in input pixels of the theoretical receptive field of one last-stage output of a UniRepLKNet.

    Counts every spatial convolution of the stem, downsampling layers and blocks (a Dilated
    Reparam Block counts as its merged ``K x K`` kernel). Squeeze-and-excitation and GRN pool
    globally, so in a full block the gradient outside this square is small but not zero.
    """
    from .model import UniRepLKNetBlock

    stages = getattr(model, "stages", None)
    downs = getattr(model, "downsample_layers", None)
    if stages is None or downs is None:
        raise ValueError(f"{type(model).__name__} is not a UniRepLKNet (no stages/downsample_layers)")
    rf, jump = 1, 1
    for down, stage in zip(downs, stages):
        for conv in (m for m in down.modules() if isinstance(m, nn.Conv2d)):
            rf += (conv.kernel_size[0] - 1) * conv.dilation[0] * jump
            jump *= conv.stride[0]
        for block in stage:
            if isinstance(block, UniRepLKNetBlock) and block.kernel_size > 0:
                rf += (block.kernel_size - 1) * jump
    return rf


# ------------------------------------------------------------------------------------------ models
def build_erf_model(
    spec: str,
    pretrained: Optional[str] = None,
    in_chans: int = 3,
    layer_scale_init_value: Optional[float] = None,
) -> nn.Module:
    """A model from a spec: a checkpoint path, a variant name, or ``NAME:kN`` (every block's kernel set to N).

    ``pretrained`` (a tag or a path) loads weights into a named variant; ``layer_scale_init_value``
    changes a freshly initialised model's layer scale (e.g. 1.0 to see the ERF an architecture has
    at initialisation with full-strength residual branches).
    """
    from .factory import create_model, model_config
    from .model import default_kernel_sizes

    p = Path(spec)
    if p.suffix.lower() in _CKPT_SUFFIXES or p.exists():
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint not found: {p}")
        if pretrained:
            raise ValueError(f"--pretrained cannot be combined with a checkpoint model spec ({spec})")
        from .weights import model_from_checkpoint

        return model_from_checkpoint(p)
    name, _, opt = spec.partition(":")
    kwargs: dict = {}
    if opt:
        if not (opt.startswith("k") and opt[1:].isdigit()):
            raise ValueError(f"model spec {spec!r}: expected NAME or NAME:kN (e.g. unireplknet_t:k3)")
        k = int(opt[1:])
        depths = model_config(name)["depths"]
        kwargs["kernel_sizes"] = tuple((k,) * len(ks) for ks in default_kernel_sizes(depths))
    if layer_scale_init_value is not None:
        kwargs["layer_scale_init_value"] = layer_scale_init_value
    return create_model(name, pretrained=pretrained or None, in_chans=in_chans, **kwargs).eval()


# ----------------------------------------------------------------------------------------- kernels
@torch.no_grad()
def merged_kernels(model: nn.Module) -> List[List[torch.Tensor]]:
    """Per stage, each block's depthwise kernel as it runs after re-parameterisation (``C x K x K``).

    The model is not changed: a copy is put in ``eval()`` mode and re-parameterised, so dilated
    branches and BatchNorms are merged. Blocks without a token mixer (kernel 0) are left out.
    """
    from .model import UniRepLKNetBlock

    if not hasattr(model, "stages"):
        raise ValueError(f"{type(model).__name__} is not a UniRepLKNet (no stages)")
    deployed = copy.deepcopy(model).eval()
    deployed.reparameterize()
    out: List[List[torch.Tensor]] = []
    for stage in deployed.stages:
        kernels = []
        for block in stage:
            if not isinstance(block, UniRepLKNetBlock) or block.kernel_size == 0:
                continue
            conv = getattr(block.dwconv, "lk_origin", block.dwconv)
            kernels.append(conv.weight.detach().float().cpu()[:, 0])
        out.append(kernels)
    return out


def kernel_pictures(kernels: List[List[torch.Tensor]]) -> List[List[np.ndarray]]:
    """Each ``C x K x K`` kernel as a ``K x K`` picture: mean absolute weight over channels, scaled to max 1."""
    pics = []
    for stage in kernels:
        row = []
        for k in stage:
            a = k.abs().mean(dim=0).double().numpy()
            peak = a.max()
            row.append(a / peak if peak > 0 else a)
        pics.append(row)
    return pics


# ----------------------------------------------------------------------------------------- figures
def _figure(figsize: Tuple[float, float]):
    """A matplotlib Figure drawn with the Agg backend (no pyplot state)."""
    require("matplotlib", "train", "drawing ERF and kernel pictures")
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _erf_cmap():
    """The upper (yellow to green) half of RdYlGn: the look of seaborn's ``heatmap(cmap='RdYlGn', center=0)``."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    return ListedColormap(colormaps["RdYlGn"](np.linspace(0.5, 1.0, 256)), name="RdYlGn_upper")


def render_erf(
    maps: Dict[str, np.ndarray],
    out: Union[str, os.PathLike],
    ratios: Optional[Dict[str, List[AreaRatio]]] = None,
    title: Optional[str] = None,
    dpi: int = 100,
) -> Path:
    """Draw post-processed ERF maps side by side (one panel per model, shared colour bar) into ``out``."""
    if not maps:
        raise ValueError("no ERF maps to draw")
    out = Path(out)
    n = len(maps)
    fig = _figure((4.0 * n + 1.0, 4.6))
    axes = fig.subplots(1, n, squeeze=False)[0]
    im = None
    cmap = _erf_cmap()
    for ax, (name, data) in zip(axes, maps.items()):
        im = ax.imshow(data, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=11)
        if ratios and name in ratios:
            text = "area ratio  " + "  ".join(f"t={r.threshold:g}: {100 * r.ratio:.1f}%" for r in ratios[name])
            ax.set_xlabel(text, fontsize=7.5)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="log10(x+1), scaled to max 1")
    return _save(fig, out, title, dpi)


def _save(fig: Any, out: Path, title: Optional[str], dpi: int) -> Path:
    if title:
        fig.suptitle(title, fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    _logger.info("wrote %s", out)
    return out


def render_kernels(
    pictures: List[List[np.ndarray]],
    out: Union[str, os.PathLike],
    title: Optional[str] = None,
    dpi: int = 100,
) -> Path:
    """Draw kernel pictures, one row per stage and one column per block, into ``out``."""
    rows = list(pictures)
    ncols = max((len(r) for r in rows), default=0)
    if ncols == 0:
        raise ValueError("the model has no depthwise kernels to draw (every block has kernel size 0)")
    out = Path(out)
    fig = _figure((max(1.25 * ncols + 1.2, 5.0), 1.45 * len(rows) + 0.8))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    im = None
    for s, row in enumerate(rows):
        for b in range(ncols):
            ax = axes[s][b]
            ax.set_xticks([])
            ax.set_yticks([])
            if b >= len(row):
                ax.set_axis_off()
                continue
            im = ax.imshow(row[b], cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(f"{row[b].shape[0]}x{row[b].shape[1]}", fontsize=7)
            if b == 0:
                ax.set_ylabel(f"stage {s}", fontsize=9)
        if not row:
            axes[s][0].set_axis_on()
            axes[s][0].set_xticks([])
            axes[s][0].set_yticks([])
            axes[s][0].set_ylabel(f"stage {s}", fontsize=9)
            axes[s][0].text(0.5, 0.5, "no kernels", ha="center", va="center", fontsize=7)
    if im is not None:
        fig.colorbar(im, ax=[a for r in axes for a in r], shrink=0.8, label="mean |w| / max")
    return _save(fig, out, title, dpi)
