"""Export a (re-parameterized) model to ONNX, TorchScript or a ``torch.export`` ExportedProgram, and verify it.

Every exporter works from the deploy structure: a train-structure model is copied and
re-parameterized first (with a log message). Inputs have a dynamic batch and, by default,
dynamic height and width (from 32 for ONNX and TorchScript; from :data:`PROGRAM_MIN_SIDE`, 33, for a
``torch.export`` program, whose guards require the stride-32 map to be larger than 1x1).

Exports you can trust:

* Weights holding NaN/inf are refused before anything is written (:class:`NonFiniteError`).
* A dynamic-size export is traced at a size where every spatial dimension, down to the
  stride-32 map, is at least 2 (``max(64, H) x max(64, W)``): a map of size 1 would be
  specialised by the tracer (the 0/1 specialisation), giving a file that declares dynamic H/W
  but fails at any other size. A static export is traced at the requested size.
* After writing, the file is loaded back and compared with the PyTorch model at three input
  sizes (:func:`verify_sizes`: the requested one, another batch and size, and one whose sides are
  not multiples of 32, e.g. 32x32 -> 64x96 and 97x131). The error reported is the *relative*
  error ``max|exported - torch| / max|torch|`` over all outputs. A NaN/inf output, an error
  above ``tolerance`` or a runtime failure removes the written file and raises :class:`ExportError`.
* Without verification, the cheap checks still run: finite weights, ``onnx.checker``, and the
  ONNX input really declaring a dynamic batch (and H/W).
"""
from __future__ import annotations

import copy
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ._extras import require
from .errors import ExportError, NonFiniteError

__all__ = [
    "FORMATS", "ExportResult", "prepare_for_export", "export_model", "export_onnx", "export_torchscript",
    "export_program", "verify_sizes", "trace_size", "relative_error", "convert_checkpoint", "ConvertResult",
    "DEFAULT_TOLERANCE", "PROGRAM_MIN_SIDE",
]

_logger = logging.getLogger(__name__)

#: format name -> default file suffix
FORMATS: Dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt", "exported-program": ".pt2"}

Size = Tuple[int, int, int, int]

#: largest relative error an export may have against PyTorch
DEFAULT_TOLERANCE = 1e-4

#: total stride of the model: the last stage's map is ceil(H / 32) x ceil(W / 32)
_STRIDE = 32

#: loggers of the ONNX exporter that flood INFO messages (silenced to WARNING during an export)
_NOISY_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._dynamo", "torch.fx.experimental")


@dataclass
class ExportResult:
    """What an export wrote and how closely it matches the PyTorch model."""

    path: Path
    format: str
    max_rel_error: Optional[float] = None
    checked_sizes: List[Size] = field(default_factory=list)


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``max|out - ref| / max|ref|`` (``max|out - ref|`` when ``ref`` is all zeros; NaN if either holds NaN/inf)."""
    out, ref = out.detach().double(), ref.detach().double()
    if out.shape != ref.shape:
        raise ValueError(f"exported output shape {tuple(out.shape)} differs from the model's {tuple(ref.shape)}")
    if not (bool(torch.isfinite(out).all()) and bool(torch.isfinite(ref).all())):
        return float("nan")
    scale = ref.abs().max().item() if ref.numel() else 0.0
    diff = (out - ref).abs().max().item() if ref.numel() else 0.0
    return diff / scale if scale > 0 else diff


def prepare_for_export(model: nn.Module) -> nn.Module:
    """An ``eval()`` model in the deploy structure: ``model`` itself if already deployed, else a re-parameterized copy."""
    if getattr(model, "deployed", True) is False:
        _logger.warning("the model has the training structure: exporting a re-parameterized copy (deploy structure)")
        model = copy.deepcopy(model)
        model.reparameterize()  # type: ignore[operator]
    return model.eval()


def verify_sizes(input_size: Sequence[int], batch_size: int, dynamic_size: bool = True) -> List[Size]:
    """The input shapes an export is checked at.

    Dynamic size: the requested shape; another batch with H+32 x W+64; and batch 1 at a size whose
    sides are not multiples of 32 when the requested ones are (and are, when they are not), so the
    rounding of every stride-2 layer is exercised too (32x32 -> 32x32, 64x96, 97x131).
    Static size: the requested shape and the same with another batch.
    """
    c, h, w = (int(v) for v in input_size)
    if not dynamic_size:
        return [(batch_size, c, h, w), (batch_size + 1, c, h, w)]

    def odd(n: int, extra: int) -> int:
        if n % _STRIDE == 0:
            return n + extra  # 32 -> 97 (+65), 32 -> 131 (+99): not multiples of 32
        return -(-n // _STRIDE) * _STRIDE + _STRIDE  # the next-but-one multiple of 32

    return [(batch_size, c, h, w), (batch_size + 1, c, h + 32, w + 64), (1, c, odd(h, 65), odd(w, 99))]


def trace_size(input_size: Sequence[int], dynamic_size: bool = True) -> Tuple[int, int]:
    """The H, W an export is traced at: the requested size, at least 64 per side when the size is dynamic.

    Tracing specialises any dimension equal to 1 (0/1 specialisation); at 32x32 the stride-32 map is
    1x1, and the file would declare dynamic H/W yet fail at every other size. From 33 on, every map is
    >= 2; 64 keeps the trace a multiple of the stride.
    """
    _, h, w = (int(v) for v in input_size)
    if not dynamic_size:
        return h, w
    return max(h, 2 * _STRIDE), max(w, 2 * _STRIDE)


def _check_input_size(input_size: Sequence[int], batch_size: int) -> Tuple[int, int, int]:
    if len(input_size) != 3:
        raise ValueError(f"input_size must be (C, H, W), got {tuple(input_size)}")
    c, h, w = (int(v) for v in input_size)
    if c < 1 or h < 32 or w < 32:
        raise ValueError(f"input_size {tuple(input_size)} is too small: need C >= 1 and H, W >= 32 (the total stride)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return c, h, w


#: smallest H and W a dynamic-size ExportedProgram (.pt2) accepts. torch.export's convolution rules
#: guard every dynamic spatial map to be > 1, and the stride-32 map is 1 up to 32: the program
#: refuses 32x32 (``Guard failed: x.size()[2] >= 33``). ONNX and TorchScript files have no such guard.
PROGRAM_MIN_SIDE = _STRIDE + 1


def _dynamic_shapes(dynamic_size: bool, min_side: Optional[int] = None) -> Dict[str, Dict[int, object]]:
    """Dynamic batch, and H/W when ``dynamic_size`` (from ``min_side`` when given, else inferred by the exporter)."""
    dim = torch.export.Dim
    dims: Dict[int, object] = {0: dim("batch", min=1, max=4096)}
    if dynamic_size:
        dims[2] = dim.DYNAMIC if min_side is None else dim("height", min=min_side)
        dims[3] = dim.DYNAMIC if min_side is None else dim("width", min=min_side)
    return {"x": dims}


class _quiet_exporter_logs:
    """Set the ONNX exporter's chatty loggers to WARNING for the duration (restored afterwards)."""

    def __enter__(self) -> "_quiet_exporter_logs":
        self._saved = []
        for name in _NOISY_LOGGERS:
            lg = logging.getLogger(name)
            self._saved.append((lg, lg.level))
            if lg.getEffectiveLevel() < logging.WARNING:
                lg.setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc: object) -> None:
        for lg, level in self._saved:
            lg.setLevel(level)


def _check_finite_weights(model: nn.Module) -> None:
    bad = [n for n, t in list(model.named_parameters()) + list(model.named_buffers())
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise NonFiniteError(f"refusing to export: the model has NaN/inf in {len(bad)} weight tensor(s): "
                             f"{', '.join(bad[:5])}{more}")


def _fail(path: Path, message: str, cause: Optional[BaseException] = None) -> ExportError:
    """Remove the written file and build the :class:`ExportError` to raise."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    err = ExportError(f"{message}; removed {path}")
    err.__cause__ = cause
    return err


def _compare(
    run: Callable[[torch.Tensor], torch.Tensor],
    model: nn.Module,
    sizes: Sequence[Size],
    path: Path,
    tolerance: float,
) -> float:
    """Worst relative error over ``sizes``; any failure removes ``path`` and raises :class:`ExportError`."""
    worst = 0.0
    gen = torch.Generator().manual_seed(0)
    dtype = next(model.parameters()).dtype
    for size in sizes:
        shape = "x".join(map(str, size))
        x = torch.randn(*size, generator=gen).to(dtype)
        with torch.inference_mode():
            ref = model(x)
        if not bool(torch.isfinite(ref).all()):
            raise _fail(path, f"verification failed: the PyTorch model itself gives NaN/inf at input {shape}")
        try:
            out = run(x)
        except Exception as e:  # the exported file does not run at this size
            first = " ".join(str(e).split())[:300]
            raise _fail(path, f"verification failed: the exported file does not run at input {shape} "
                              f"({type(e).__name__}: {first})", e) from e
        try:
            err = relative_error(out, ref)
        except ValueError as e:
            raise _fail(path, f"verification failed at input {shape}: {e}", e) from e
        _logger.info("input %s: max relative error %.3g", shape, err)
        if not math.isfinite(err):
            raise _fail(path, f"verification failed: the exported file gives NaN/inf at input {shape}")
        if err > tolerance:
            raise _fail(path, f"verification failed: max relative error {err:.3g} at input {shape} "
                              f"is above the tolerance {tolerance:g}")
        worst = max(worst, err)
    return worst


def _check_onnx_dynamic(path: Path, onnx_model: object, dynamic_size: bool) -> None:
    """Cheap structural check: the input declares a dynamic batch (and H/W when ``dynamic_size``)."""
    dims = onnx_model.graph.input[0].type.tensor_type.shape.dim  # type: ignore[attr-defined]
    want = [0, 2, 3] if dynamic_size else [0]
    static = [i for i in want if i < len(dims) and not dims[i].dim_param]
    if static:
        names = {0: "batch", 2: "height", 3: "width"}
        raise _fail(path, "the exported ONNX input has a fixed " + ", ".join(names[i] for i in static)
                    + f" ({[d.dim_value or d.dim_param for d in dims]}) although it was exported as dynamic")


def export_onnx(
    model: nn.Module,
    path: Union[str, os.PathLike],
    input_size: Sequence[int] = (3, 224, 224),
    batch_size: int = 1,
    dynamic_size: bool = True,
    opset: Optional[int] = None,
    verify: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportResult:
    """Export to ONNX with ``torch.onnx.export(dynamo=True)`` (dynamic batch, and H/W when ``dynamic_size``).

    Traced at :func:`trace_size`; checks the file with ``onnx.checker`` and its input's dynamic
    dimensions, and when ``verify`` compares onnxruntime (CPU) with PyTorch at :func:`verify_sizes`.
    Raises :class:`NonFiniteError` for NaN/inf weights (nothing written) and :class:`ExportError`
    (file removed) when a check fails.
    """
    c, h, w = _check_input_size(input_size, batch_size)
    onnx = require("onnx", "export", "ONNX export")
    require("onnxscript", "export", "ONNX export")
    model = prepare_for_export(model)
    _check_finite_weights(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    th, tw = trace_size((c, h, w), dynamic_size)
    if (th, tw) != (h, w):
        _logger.info("tracing at %dx%d instead of %dx%d so that H and W stay dynamic", th, tw, h, w)
    # a batch of 1 would be specialised by the tracer (0/1 specialisation): trace with at least 2
    x = torch.randn(max(batch_size, 2), c, th, tw, dtype=next(model.parameters()).dtype)
    kwargs = dict(dynamo=True, input_names=["input"], output_names=["output"],
                  dynamic_shapes=_dynamic_shapes(dynamic_size), external_data=False, verbose=False)
    if opset is not None:
        kwargs["opset_version"] = opset
    with warnings.catch_warnings(), _quiet_exporter_logs():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(model, (x,), str(path), **kwargs)
    try:
        onnx.checker.check_model(str(path))
    except Exception as e:
        raise _fail(path, f"the exported ONNX file is invalid: {' '.join(str(e).split())[:300]}", e) from e
    _check_onnx_dynamic(path, onnx.load(str(path), load_external_data=False), dynamic_size)
    result = ExportResult(path, "onnx")
    if verify:
        ort = require("onnxruntime", "export", "verifying ONNX files")
        options = ort.SessionOptions()
        options.log_severity_level = 4  # failures are reported by ExportError, not logged in red
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        sizes = verify_sizes((c, h, w), batch_size, dynamic_size)

        def run(t: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {name: t.numpy()})[0])

        result.max_rel_error = _compare(run, model, sizes, path, tolerance)
        result.checked_sizes = list(sizes)
    else:
        _logger.warning("%s was not verified against PyTorch (only its structure and weights were checked)", path)
    return result


def export_torchscript(
    model: nn.Module,
    path: Union[str, os.PathLike],
    input_size: Sequence[int] = (3, 224, 224),
    batch_size: int = 1,
    verify: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportResult:
    """Save a scripted model (``torch.jit.script``; TorchScript is deprecated upstream but still loads everywhere).

    Scripting does not specialise shapes; verification (when ``verify``) runs at :func:`verify_sizes`.
    """
    c, h, w = _check_input_size(input_size, batch_size)
    model = prepare_for_export(model)
    _check_finite_weights(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, str(path))
    result = ExportResult(path, "torchscript")
    if verify:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            loaded = torch.jit.load(str(path), map_location="cpu")
        sizes = verify_sizes((c, h, w), batch_size)

        def run(t: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return loaded(t)

        result.max_rel_error = _compare(run, model, sizes, path, tolerance)
        result.checked_sizes = list(sizes)
    return result


def export_program(
    model: nn.Module,
    path: Union[str, os.PathLike],
    input_size: Sequence[int] = (3, 224, 224),
    batch_size: int = 1,
    dynamic_size: bool = True,
    verify: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportResult:
    """Save a ``torch.export`` ExportedProgram (``.pt2``, dynamic batch and size); reload with ``torch.export.load``.

    Traced at :func:`trace_size`, verified (when ``verify``) at :func:`verify_sizes`. A dynamic-size
    program accepts H, W >= :data:`PROGRAM_MIN_SIDE` (33): a smaller ``input_size`` raises ``ValueError``
    (export with ``dynamic_size=False`` for a fixed 32x32, or to ONNX/TorchScript, which accept 32).
    """
    c, h, w = _check_input_size(input_size, batch_size)
    if dynamic_size and min(h, w) < PROGRAM_MIN_SIDE:
        raise ValueError(
            f"input size {h}x{w}: a dynamic-size ExportedProgram (.pt2) only accepts H, W >= {PROGRAM_MIN_SIDE} "
            f"(torch.export guards the stride-32 feature map to be larger than 1x1); export with a fixed size "
            f"(dynamic_size=False, --static-size) for {h}x{w} inputs, or to ONNX/TorchScript, which accept sizes from 32"
        )
    model = prepare_for_export(model)
    _check_finite_weights(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    th, tw = trace_size((c, h, w), dynamic_size)
    # a batch of 1 would be specialised by the tracer (0/1 specialisation): trace with at least 2
    x = torch.randn(max(batch_size, 2), c, th, tw, dtype=next(model.parameters()).dtype)
    with torch.no_grad(), _quiet_exporter_logs():
        program = torch.export.export(model, (x,), dynamic_shapes=_dynamic_shapes(dynamic_size, PROGRAM_MIN_SIDE))
    torch.export.save(program, str(path))
    result = ExportResult(path, "exported-program")
    if verify:
        loaded = torch.export.load(str(path)).module()
        sizes = verify_sizes((c, h, w), batch_size, dynamic_size)

        def run(t: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return loaded(t)

        result.max_rel_error = _compare(run, model, sizes, path, tolerance)
        result.checked_sizes = list(sizes)
    return result


def export_model(
    model: nn.Module,
    path: Union[str, os.PathLike],
    format: Optional[str] = None,
    **kwargs: object,
) -> ExportResult:
    """Export in ``format`` (``onnx``, ``torchscript``, ``exported-program``; default: from the file suffix)."""
    path = Path(path)
    if format is None:
        by_suffix = {v: k for k, v in FORMATS.items()}
        if path.suffix not in by_suffix:
            raise ValueError(
                f"cannot tell the export format from {path.name!r}: use a suffix in {sorted(by_suffix)} or pass format"
            )
        format = by_suffix[path.suffix]
    exporters = {"onnx": export_onnx, "torchscript": export_torchscript, "exported-program": export_program}
    if format not in exporters:
        raise ValueError(f"unsupported export format {format!r}; choose one of {', '.join(exporters)}")
    return exporters[format](model, path, **kwargs)  # type: ignore[operator]


@dataclass
class ConvertResult:
    """The files :func:`convert_checkpoint` wrote and the largest output difference on the probe."""

    paths: List[Path]
    max_abs_diff: float
    probe_shape: Size
    was_deployed: bool


def convert_checkpoint(
    src: Union[str, os.PathLike],
    dst: Union[str, os.PathLike],
    probe_size: int = 224,
    batch_size: int = 2,
    write_pth: bool = True,
    allow_nonfinite: bool = False,
) -> ConvertResult:
    """Train-structure checkpoint -> deploy-structure ``.safetensors`` (and a tensors-only ``.pth`` beside it).

    The architecture is read from the checkpoint; the deploy model's outputs are checked against
    the training model's (eval mode) on a random probe batch, and the largest absolute difference returned.
    A checkpoint holding NaN/inf raises :class:`NonFiniteError` naming the tensors, unless
    ``allow_nonfinite`` (then the probe check is skipped and the difference is NaN).
    """
    from .reparam import reparameterize_verified
    from .model import UniRepLKNet
    from .weights import infer_architecture, load_weights, read_checkpoint, save_weights, unwrap_state_dict

    dst = Path(dst)
    if dst.suffix not in (".safetensors", ".pth", ".pt"):
        raise ValueError(f"output {dst} must end in .safetensors, .pth or .pt")
    if probe_size < 32:
        raise ValueError(f"probe size must be >= 32 (the total stride), got {probe_size}")
    from .weights import check_finite_state_dict

    sd = unwrap_state_dict(read_checkpoint(src))
    nonfinite = check_finite_state_dict(sd, str(src), allow_nonfinite)
    cfg = infer_architecture(sd)
    model = UniRepLKNet(**cfg)  # type: ignore[arg-type]
    load_weights(model, sd, strict=True, allow_nonfinite=True)
    was_deployed = model.deployed
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(batch_size, int(cfg["in_chans"]), probe_size, probe_size, generator=gen)  # type: ignore[call-overload]
    if nonfinite:  # allowed: outputs are NaN anyway, nothing to compare
        deployed, diff = copy.deepcopy(model).eval().reparameterize(), float("nan")
    else:
        deployed, diff = reparameterize_verified(model.eval(), probe)
    main = dst.with_suffix(".safetensors")
    paths = [save_weights(deployed, main)]
    if write_pth or dst.suffix != ".safetensors":
        paths.append(save_weights(deployed, dst.with_suffix(".pth") if dst.suffix == ".safetensors" else dst))
    return ConvertResult(paths, diff, tuple(probe.shape), was_deployed)  # type: ignore[arg-type]
