"""A fast CPU inference path: :func:`optimize_for_inference`.

The deploy structure of :class:`~unireplknet.model.UniRepLKNet` still runs every block in
NCHW and permutes to NHWC around the two linear layers, which costs two full copies per
block. The optimized model built here keeps the whole trunk channels-last (``B x H x W x C``
tensors) and reuses the model's own weights:

* the depthwise convolutions read the NHWC tensor as a channels-last NCHW view; for each
  shape the faster of "channels-last" and "contiguous NCHW" (conversion included) is picked
  once by a micro-benchmark and cached (:func:`conv_layout_choices`). On oneDNN the large
  13x13 kernels are 2-3x faster in NCHW, the 3x3 ones several times faster channels-last;
* the two linear layers run as oneDNN matmuls with the GELU and the residual add fused in as
  post-ops (``torch.ops.mkldnn._linear_pointwise``; plain ``F.linear``/``addmm`` where oneDNN is
  not available), about 1.4x faster than MKL's ``addmm`` for these narrow shapes;
* the expanded ``4C`` activation is computed a few samples at a time (at most 4 MiB), so the GRN
  norm and scale read it from cache and no large temporary is allocated (fresh pages for a
  50-100 MB tensor cost more than the arithmetic on it); the per-stage LayerNorms run on NHWC rows;
* optionally ``torch.compile`` (inductor CPU, weight freezing) fuses the remaining
  element-wise work (GELU, the GRN norm, the SE).

Everything is pure PyTorch; no compiled extension is needed.
"""
from __future__ import annotations

import copy
import functools
import logging
import time
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import GRN, LayerNorm2d, SEBlock
from .model import UniRepLKNet, UniRepLKNetBlock
from .ops import depthwise_conv2d_nhwc, triton_available

__all__ = ["optimize_for_inference", "FastUniRepLKNet", "FastBlock", "NHWCConv", "conv_layout_choices"]

_logger = logging.getLogger(__name__)

#: layouts a convolution can run in; see :class:`NHWCConv`. On CUDA a stride-1 depthwise convolution can
#: also run as ``"triton"`` (:func:`unireplknet.ops.depthwise_conv2d_nhwc`, directly on the NHWC tensor).
LAYOUTS = ("channels_last", "nchw")

# (batch, channels_in, H, W, conv params, dtype, threads) -> chosen layout
_LAYOUT_CACHE: Dict[Tuple, str] = {}


def conv_layout_choices() -> Dict[Tuple, str]:
    """The layouts chosen so far by the micro-benchmark (a copy of the cache), keyed by shape and conv parameters."""
    return dict(_LAYOUT_CACHE)


def _is_tracing() -> bool:
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return True
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


class NHWCConv(nn.Module):
    """A ``Conv2d`` taking and returning ``B x H x W x C`` tensors, run in the faster memory layout for each shape.

    Args:
        conv: the convolution whose weights are used (shared, not copied).
        layout: ``"auto"`` (micro-benchmark each new input shape once, cached per process; on CPU
            and CUDA), ``"channels_last"``, ``"nchw"`` or ``"triton"`` (CUDA only: stride-1 depthwise
            convolutions through the Triton kernel, the others channels-last). While tracing or
            compiling, ``"auto"`` uses the cached choice, else a heuristic (NCHW for depthwise
            kernels of 7 and more).
    """

    def __init__(self, conv: nn.Conv2d, layout: str = "auto") -> None:
        super().__init__()
        if layout not in LAYOUTS + ("auto", "triton"):
            raise ValueError(f"conv layout must be 'auto', 'channels_last', 'nchw' or 'triton', got {layout!r}")
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"only zero padding given as numbers is supported, got {conv}")
        self.weight = conv.weight
        self.bias = conv.bias
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.layout = layout
        self.last_choice: Optional[str] = None
        self._weight_cl: Optional[torch.Tensor] = None
        kh, kw = conv.weight.shape[-2:]
        # a stride-1, 'same'-padded depthwise convolution: what unireplknet.ops computes (Triton on CUDA)
        self._depthwise_same = (
            conv.groups == conv.weight.shape[0] == conv.in_channels
            and conv.weight.shape[1] == 1
            and tuple(conv.stride) == (1, 1)
            and tuple(conv.dilation) == (1, 1)
            and kh % 2 == 1
            and kw % 2 == 1
            and tuple(conv.padding) == (kh // 2, kw // 2)
        )

    def _candidates(self, x: torch.Tensor) -> Tuple[str, ...]:
        triton_ok = self._depthwise_same and x.device.type == "cuda" and triton_available()
        return LAYOUTS + ("triton",) if triton_ok else LAYOUTS

    def _run(self, x: torch.Tensor, layout: str) -> torch.Tensor:
        if layout == "triton" and self._depthwise_same:  # Triton on CUDA, else F.conv2d (unireplknet.ops decides)
            return depthwise_conv2d_nhwc(x, self.weight, self.bias)
        xn = x.permute(0, 3, 1, 2)  # NCHW view with channels-last strides
        if layout == "nchw":
            y = F.conv2d(xn.contiguous(), self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        else:
            w = self.weight
            if not _is_tracing():
                if self._weight_cl is None or self._weight_cl.dtype != w.dtype or self._weight_cl.device != w.device:
                    self._weight_cl = w.detach().contiguous(memory_format=torch.channels_last)
                w = self._weight_cl
            y = F.conv2d(xn, w, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return y.permute(0, 2, 3, 1).contiguous()

    def _key(self, x: torch.Tensor) -> Tuple:
        return (tuple(x.shape), tuple(self.weight.shape), self.stride, self.padding, self.dilation, self.groups,
                x.dtype, x.device.type, torch.get_num_threads())

    def _heuristic(self) -> str:
        depthwise = self.groups > 1 and self.groups == self.weight.shape[0]
        return "nchw" if depthwise and self.weight.shape[-1] >= 7 else "channels_last"

    @torch.no_grad()
    def _choose(self, x: torch.Tensor) -> str:
        key = self._key(x)
        if key in _LAYOUT_CACHE:
            self.last_choice = _LAYOUT_CACHE[key]
            return self.last_choice
        if _is_tracing() or x.device.type not in ("cpu", "cuda"):
            return self._heuristic()
        sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
        times: Dict[str, float] = {}
        for layout in self._candidates(x):
            self._run(x, layout)  # warm-up (oneDNN primitive creation, kernel compilation)
            best = float("inf")
            for _ in range(3):
                sync()
                t0 = time.perf_counter()
                self._run(x, layout)
                sync()
                best = min(best, time.perf_counter() - t0)
            times[layout] = best
        choice = min(times, key=times.__getitem__)
        self.last_choice = choice
        _logger.debug("conv %s on %s: %s -> %s", tuple(self.weight.shape), tuple(x.shape),
                      {k: f"{v * 1e3:.2f}ms" for k, v in times.items()}, choice)
        _LAYOUT_CACHE[key] = choice
        return choice

    def fix_layout(self) -> str:
        """Stop choosing: keep the last chosen layout (or the heuristic one) for every shape; returns it."""
        self.layout = self.last_choice or self._heuristic()
        return self.layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layout = self._choose(x) if self.layout == "auto" else self.layout
        return self._run(x, layout)


def _linear_params(conv_or_linear: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight (out x in) and bias of a Linear or a 1x1 Conv2d."""
    w = conv_or_linear.weight
    w = w.reshape(w.shape[0], -1)
    b = conv_or_linear.bias if conv_or_linear.bias is not None else w.new_zeros(w.shape[0])
    return w, b


@functools.lru_cache(maxsize=None)
def _onednn_supports(dtype: torch.dtype) -> bool:
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    if dtype == torch.bfloat16:  # needs AVX-512 (BW) or newer; older CPUs use the plain ops
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(check is not None and check())
    return dtype == torch.float32


def _onednn_linear_ok(x: torch.Tensor) -> bool:
    """Whether oneDNN's fused linear ops (``torch.ops.mkldnn._linear_pointwise``) can run on ``x``."""
    return (
        x.device.type == "cpu"
        and not (torch.is_grad_enabled() and x.requires_grad)
        and _onednn_supports(x.dtype)
    )


def linear_gelu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``gelu(x @ weight.T + bias)`` (exact erf GELU) on 2-D ``x``; one fused oneDNN call on CPU."""
    if _onednn_linear_ok(x):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
    return F.gelu(F.linear(x, weight, bias))


def linear_add(x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T + bias + other`` on 2-D ``x`` and ``other``; one fused oneDNN call on CPU."""
    if _onednn_linear_ok(x):
        return torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, bias, "add")
    return torch.addmm(other + bias, x, weight.t())


class FastBlock(nn.Module):
    """One deploy-structure :class:`~unireplknet.model.UniRepLKNetBlock` computed on ``B x H x W x C`` tensors.

    Same math as the block (depthwise conv with bias, SE, Linear, GELU, GRN, Linear, residual).
    The expanded ``4C`` activation is the largest tensor of the network: on CPU the block makes it
    for a group of samples at a time, at most ``group_bytes`` large (4 MiB: it stays in cache and in the
    allocator's reused memory instead of fresh pages), with the GELU fused into the first linear
    layer and the residual into the second (oneDNN post-ops on CPU; plain ops elsewhere).
    """

    #: size limit of the expanded activation computed at once; 4 MiB measured best on a 2-core EPYC
    #: (1-16 MiB are within noise of each other; the whole batch at once is up to 2x slower).
    group_bytes: int = 4 << 20

    def __init__(self, block: UniRepLKNetBlock, conv_layout: str = "auto") -> None:
        super().__init__()
        if not block.deployed:
            raise ValueError("FastBlock needs a re-parameterized block: call model.reparameterize() first")
        if isinstance(block.dwconv, nn.Identity):
            self.dw: Optional[NHWCConv] = None
        else:
            conv = getattr(block.dwconv, "lk_origin", block.dwconv)
            self.dw = NHWCConv(conv, conv_layout)
        se = block.se
        grn = block.act[1]
        assert isinstance(se, SEBlock) and isinstance(grn, GRN) and grn.beta is None
        tensors = dict(zip(("se_w1", "se_b1"), _linear_params(se.down)))
        tensors.update(zip(("se_w2", "se_b2"), _linear_params(se.up)))
        tensors.update(zip(("w1", "b1"), _linear_params(block.pwconv1[1])))
        tensors.update(zip(("w2", "b2"), _linear_params(block.pwconv2[0])))
        tensors["grn_gamma"] = grn.gamma.reshape(-1)
        for name, t in tensors.items():  # views of the source weights (shared storage), not trained here
            self.register_buffer(name, t.detach(), persistent=False)

    def _grn_scale(self, norm: torch.Tensor) -> torch.Tensor:
        """GRN's per-sample, per-channel factor ``1 + gamma * N`` from the spatial L2 norms (``... x 4C``)."""
        return (norm / (norm.mean(dim=-1, keepdim=True) + 1e-6)).mul_(self.grn_gamma).add_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x) if self.dw is not None else x
        B, H, W, C = y.shape
        hw = H * W
        s = y.mean(dim=(1, 2))
        s = torch.sigmoid(F.linear(F.relu(F.linear(s, self.se_w1, self.se_b1)), self.se_w2, self.se_b2))  # B x C
        y = (y * s.view(B, 1, 1, C)).reshape(B, hw, C)
        hidden = self.w1.shape[0]
        if _is_tracing():  # one graph of plain ops: the compiler fuses and packs them itself
            h = F.gelu(F.linear(y, self.w1, self.b1))
            h = h * self._grn_scale(torch.linalg.vector_norm(h, dim=1)).unsqueeze(1)
            return F.linear(h, self.w2, self.b2).reshape(B, H, W, C) + x
        res = x.reshape(B, hw, C)
        group = B  # on accelerators the whole batch at once (small groups only add kernel launches)
        if y.device.type == "cpu":
            group = max(1, min(B, self.group_bytes // max(1, hw * hidden * y.element_size())))
        outs = []
        for i in range(0, B, group):
            n = min(group, B - i)
            h = linear_gelu(y[i:i + n].reshape(n * hw, C), self.w1, self.b1).view(n, hw, hidden)
            h.mul_(self._grn_scale((h * h).sum(dim=1).sqrt()).unsqueeze(1))  # h is this group's own buffer
            outs.append(linear_add(h.view(n * hw, hidden), res[i:i + n].reshape(n * hw, C), self.w2, self.b2))
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        return out.view(B, H, W, C)


class _NHWCLayerNorm(nn.Module):
    """LayerNorm over the last dimension, sharing an existing LayerNorm's parameters."""

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps
        self.shape = tuple(norm.normalized_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)


def _fast_downsample(seq: nn.Sequential, conv_layout: str) -> nn.Sequential:
    layers: List[nn.Module] = []
    for m in seq:
        if isinstance(m, nn.Conv2d):
            layers.append(NHWCConv(m, conv_layout))
        elif isinstance(m, LayerNorm2d):
            layers.append(_NHWCLayerNorm(m))
        elif isinstance(m, nn.GELU):
            layers.append(nn.GELU(approximate=m.approximate))
        else:
            raise TypeError(f"unexpected layer {type(m).__name__} in a downsample layer")
    return nn.Sequential(*layers)


class FastUniRepLKNet(nn.Module):
    """The inference-only, channels-last twin of a deploy-structure :class:`~unireplknet.model.UniRepLKNet`.

    Shares the source model's parameters. ``forward`` takes and returns what the source does
    (``B x C x H x W`` in; logits, or pooled features when ``num_classes=0``);
    ``forward_features`` returns the last map as a ``B x C x H/32 x W/32`` (channels-last) view.
    """

    def __init__(self, model: UniRepLKNet, conv_layout: str = "auto") -> None:
        super().__init__()
        if not model.deployed:
            raise ValueError("FastUniRepLKNet needs a re-parameterized model: call model.reparameterize() first")
        self.in_chans, self.num_classes, self.num_features = model.in_chans, model.num_classes, model.num_features
        self.global_pool = model.global_pool
        self.downsample_layers = nn.ModuleList(_fast_downsample(d, conv_layout) for d in model.downsample_layers)
        self.stages = nn.ModuleList(
            nn.Sequential(*[FastBlock(b, conv_layout) for b in stage]) for stage in model.stages
        )
        self.norm = model.norm
        self.head = model.head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and stages; ``B x num_features x H/32 x W/32``."""
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected input (B, {self.in_chans}, H, W), got shape {tuple(x.shape)}")
        x = x.permute(0, 2, 3, 1)
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return x.permute(0, 3, 1, 2)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, LayerNorm and classify, as the source model does."""
        if self.global_pool == "avg":
            x = self.norm(x.mean(dim=(2, 3)))
        else:
            x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def optimize_for_inference(
    model: nn.Module,
    example_input: Optional[torch.Tensor] = None,
    *,
    compile: bool = False,
    cuda_graphs: bool = False,
    conv_layout: str = "auto",
    inplace: bool = False,
) -> nn.Module:
    """Return a faster inference-only version of a :class:`~unireplknet.model.UniRepLKNet`.

    Re-parameterizes (a copy, unless ``inplace``) when needed, switches to ``eval()``, and builds
    a :class:`FastUniRepLKNet` that shares its weights and computes the same outputs.

    Args:
        model: a :class:`~unireplknet.model.UniRepLKNet` (train or deploy structure).
        example_input: a representative ``B x C x H x W`` batch; when given, the per-shape
            convolution layouts are chosen now (otherwise on the first call of each new shape).
        compile: also wrap the result in ``torch.compile`` (inductor, frozen weights); the first
            call then compiles for a few minutes on CPU. Each convolution keeps the layout chosen
            for ``example_input`` (pass one), else a heuristic.
        cuda_graphs: with ``compile`` on CUDA, also replay each compiled shape as a CUDA graph
            (inductor's ``triton.cudagraphs``), which removes the kernel-launch cost that dominates
            small batches. The output tensor is then reused by the next call of the same shape:
            ``.clone()`` it to keep it.
        conv_layout: ``"auto"``, ``"channels_last"``, ``"nchw"`` or ``"triton"`` for every convolution
            (see :class:`NHWCConv`).
        inplace: re-parameterize ``model`` itself instead of a copy.
    """
    if not isinstance(model, UniRepLKNet):
        raise TypeError(f"optimize_for_inference needs a UniRepLKNet, got {type(model).__name__}")
    if cuda_graphs and not compile:
        raise ValueError("cuda_graphs=True needs compile=True (the graphs are captured by torch.compile)")
    if cuda_graphs and (example_input is None or example_input.device.type != "cuda"):
        raise ValueError("cuda_graphs=True needs a CUDA example_input (CUDA graphs exist only on GPUs)")
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    if not model.deployed:
        _logger.info("re-parameterizing the model to its deploy structure")
        model.reparameterize()
    for p in model.parameters():
        p.requires_grad_(False)
    fast = FastUniRepLKNet(model, conv_layout=conv_layout).eval()
    if example_input is not None:
        with torch.inference_mode():
            fast(example_input)
    if compile:
        for m in fast.modules():  # a traced graph has no room for timing: keep one layout per convolution
            if isinstance(m, NHWCConv):
                m.fix_layout()
        options = {"freezing": True, "triton.cudagraphs": cuda_graphs}
        fast = torch.compile(fast, dynamic=False, options=options)  # type: ignore[assignment]
    return fast
