"""Export a (re-parameterized) model to ONNX, TorchScript or a ``torch.export`` ExportedProgram, and verify it.

Every exporter works from the deploy structure: a train-structure model is copied and
re-parameterized first (with a log message). Inputs have a dynamic batch and, by default,
dynamic height and width. After writing, the file is loaded back and compared with the
PyTorch model at two input sizes; the error reported is the *relative* error
``max|exported - torch| / max|torch|`` over all outputs.
"""
from __future__ import annotations

import copy
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ._extras import require

__all__ = [
    "FORMATS", "ExportResult", "prepare_for_export", "export_model", "export_onnx", "export_torchscript",
    "export_program", "verify_sizes", "relative_error", "convert_checkpoint", "ConvertResult",
]

_logger = logging.getLogger(__name__)

#: format name -> default file suffix
FORMATS: Dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt", "exported-program": ".pt2"}

Size = Tuple[int, int, int, int]


@dataclass
class ExportResult:
    """What an export wrote and how closely it matches the PyTorch model."""

    path: Path
    format: str
    max_rel_error: Optional[float] = None
    checked_sizes: List[Size] = field(default_factory=list)


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``max|out - ref| / max|ref|`` (``max|out - ref|`` when ``ref`` is all zeros)."""
    out, ref = out.detach().double(), ref.detach().double()
    if out.shape != ref.shape:
        raise ValueError(f"exported output shape {tuple(out.shape)} differs from the model's {tuple(ref.shape)}")
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


def verify_sizes(input_size: Sequence[int], batch_size: int) -> List[Size]:
    """The two input shapes an export is checked at: the export shape and one with another batch, height and width."""
    c, h, w = (int(v) for v in input_size)
    other = (batch_size + 1, c, h + 32, w + 64)
    return [(batch_size, c, h, w), other]


def _check_input_size(input_size: Sequence[int], batch_size: int) -> Tuple[int, int, int]:
    if len(input_size) != 3:
        raise ValueError(f"input_size must be (C, H, W), got {tuple(input_size)}")
    c, h, w = (int(v) for v in input_size)
    if c < 1 or h < 32 or w < 32:
        raise ValueError(f"input_size {tuple(input_size)} is too small: need C >= 1 and H, W >= 32 (the total stride)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return c, h, w


def _dynamic_shapes(dynamic_size: bool) -> Dict[str, Dict[int, object]]:
    dim = torch.export.Dim
    dims: Dict[int, object] = {0: dim("batch", min=1, max=4096)}
    if dynamic_size:
        dims[2] = dim.DYNAMIC
        dims[3] = dim.DYNAMIC
    return {"x": dims}


def _compare(run: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, sizes: Sequence[Size]) -> float:
    worst = 0.0
    gen = torch.Generator().manual_seed(0)
    dtype = next(model.parameters()).dtype
    for size in sizes:
        x = torch.randn(*size, generator=gen).to(dtype)
        with torch.inference_mode():
            ref = model(x)
        out = run(x)
        err = relative_error(out, ref)
        _logger.info("input %s: max relative error %.3g", size, err)
        worst = max(worst, err)
    return worst


def export_onnx(
    model: nn.Module,
    path: Union[str, os.PathLike],
    input_size: Sequence[int] = (3, 224, 224),
    batch_size: int = 1,
    dynamic_size: bool = True,
    opset: Optional[int] = None,
    verify: bool = True,
) -> ExportResult:
    """Export to ONNX with ``torch.onnx.export(dynamo=True)`` (dynamic batch, and H/W when ``dynamic_size``).

    Checks the file with ``onnx.checker`` and, when ``verify``, compares onnxruntime (CPU) with
    PyTorch at two input sizes (:func:`verify_sizes`; only the export size when not ``dynamic_size``).
    """
    c, h, w = _check_input_size(input_size, batch_size)
    onnx = require("onnx", "export", "ONNX export")
    require("onnxscript", "export", "ONNX export")
    model = prepare_for_export(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a batch of 1 would be specialised by the tracer (0/1 specialisation): trace with at least 2
    x = torch.randn(max(batch_size, 2), c, h, w, dtype=next(model.parameters()).dtype)
    kwargs = dict(dynamo=True, input_names=["input"], output_names=["output"],
                  dynamic_shapes=_dynamic_shapes(dynamic_size), external_data=False, verbose=False)
    if opset is not None:
        kwargs["opset_version"] = opset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(model, (x,), str(path), **kwargs)
    onnx.checker.check_model(str(path))
    result = ExportResult(path, "onnx")
    if verify:
        ort = require("onnxruntime", "export", "verifying ONNX files")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        sizes = verify_sizes((c, h, w), batch_size) if dynamic_size else [(batch_size, c, h, w)]

        def run(t: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {name: t.numpy()})[0])

        result.max_rel_error = _compare(run, model, sizes)
        result.checked_sizes = list(sizes)
    return result


def export_torchscript(
    model: nn.Module,
    path: Union[str, os.PathLike],
    input_size: Sequence[int] = (3, 224, 224),
    batch_size: int = 1,
    verify: bool = True,
) -> ExportResult:
    """Save a scripted model (``torch.jit.script``; TorchScript is deprecated upstream but still loads everywhere)."""
    c, h, w = _check_input_size(input_size, batch_size)
    model = prepare_for_export(model)
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

        result.max_rel_error = _compare(run, model, sizes)
        result.checked_sizes = list(sizes)
    return result


def export_program(
    model: nn.Module,
    path: Union[str, os.PathLike],
    input_size: Sequence[int] = (3, 224, 224),
    batch_size: int = 1,
    dynamic_size: bool = True,
    verify: bool = True,
) -> ExportResult:
    """Save a ``torch.export`` ExportedProgram (``.pt2``, dynamic batch and size); reload with ``torch.export.load``."""
    c, h, w = _check_input_size(input_size, batch_size)
    model = prepare_for_export(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a batch of 1 would be specialised by the tracer (0/1 specialisation): trace with at least 2
    x = torch.randn(max(batch_size, 2), c, h, w, dtype=next(model.parameters()).dtype)
    with torch.no_grad():
        program = torch.export.export(model, (x,), dynamic_shapes=_dynamic_shapes(dynamic_size))
    torch.export.save(program, str(path))
    result = ExportResult(path, "exported-program")
    if verify:
        loaded = torch.export.load(str(path)).module()
        sizes = verify_sizes((c, h, w), batch_size) if dynamic_size else [(batch_size, c, h, w)]

        def run(t: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return loaded(t)

        result.max_rel_error = _compare(run, model, sizes)
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
) -> ConvertResult:
    """Train-structure checkpoint -> deploy-structure ``.safetensors`` (and a tensors-only ``.pth`` beside it).

    The architecture is read from the checkpoint; the deploy model's outputs are checked against
    the training model's (eval mode) on a random probe batch, and the largest absolute difference returned.
    """
    from .engine.deploy import reparameterize_verified
    from .model import UniRepLKNet
    from .weights import infer_architecture, load_weights, read_checkpoint, save_weights, unwrap_state_dict

    dst = Path(dst)
    if dst.suffix not in (".safetensors", ".pth", ".pt"):
        raise ValueError(f"output {dst} must end in .safetensors, .pth or .pt")
    if probe_size < 32:
        raise ValueError(f"probe size must be >= 32 (the total stride), got {probe_size}")
    sd = unwrap_state_dict(read_checkpoint(src))
    cfg = infer_architecture(sd)
    model = UniRepLKNet(**cfg)  # type: ignore[arg-type]
    load_weights(model, sd, strict=True)
    was_deployed = model.deployed
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(batch_size, int(cfg["in_chans"]), probe_size, probe_size, generator=gen)  # type: ignore[call-overload]
    deployed, diff = reparameterize_verified(model.eval(), probe)
    main = dst.with_suffix(".safetensors")
    paths = [save_weights(deployed, main)]
    if write_pth or dst.suffix != ".safetensors":
        paths.append(save_weights(deployed, dst.with_suffix(".pth") if dst.suffix == ".safetensors" else dst))
    return ConvertResult(paths, diff, tuple(probe.shape), was_deployed)  # type: ignore[arg-type]
