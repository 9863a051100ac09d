"""Inference speed: throughput, batch-1 latency, peak memory, params and MACs, in several execution modes.

Modes (each built from the same model; see :data:`MODES`):

==================  =====================================================================
``eager``           the model as given (train or deploy structure), NCHW
``deploy``          a re-parameterized copy, NCHW, no compile: the reference of the speed-ups
``channels-last``   the deploy copy with channels-last weights and input
``compile``         ``torch.compile`` of the deploy copy
``optimized``       :func:`unireplknet.inference.optimize_for_inference` (channels-last trunk)
``optimized-compile`` the same, compiled by inductor with frozen weights
``optimized-cudagraphs`` the same, replayed as CUDA graphs (CUDA only)
``bf16``            the optimized path in bfloat16
``onnxruntime``     the deploy copy exported to ONNX and run by onnxruntime (CPU)
==================  =====================================================================

Timings are interleaved: every repeat runs each mode once in turn, so load from other
processes hits all modes alike; reported values are medians over repeats. Speed-ups should
be read against ``deploy`` from the same run. A GEMM is timed in the same rounds to give
the machine's fp32 matmul peak and each mode's fraction of it.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .complexity import count_macs, count_params

__all__ = [
    "MODES", "BenchResult", "Runner", "build_runner", "benchmark_modes", "format_table", "save_json",
    "measure_gemm_peak", "check_input_size", "check_fits_memory",
]

_logger = logging.getLogger(__name__)

MODES: Tuple[str, ...] = (
    "eager", "deploy", "channels-last", "compile", "optimized", "optimized-compile", "optimized-cudagraphs", "bf16",
    "onnxruntime",
)

Runner = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class BenchResult:
    """One mode's numbers (times in ms, memory in MiB, GFLOP/s counts 2 FLOPs per MAC)."""

    mode: str
    batch_size: int
    input_size: Tuple[int, int, int]
    device: str
    throughput: float  # images / s at batch_size
    latency_p50_ms: Optional[float] = None
    latency_p90_ms: Optional[float] = None
    peak_memory_mib: Optional[float] = None
    params: int = 0
    macs: int = 0
    gflops: float = 0.0
    fraction_of_gemm_peak: Optional[float] = None
    speedup_vs_deploy: Optional[float] = None
    latency_speedup_vs_deploy: Optional[float] = None  # deploy p50 / this p50, at batch 1
    # the fastest repeat: on a shared machine other jobs only ever add time, so the best repeat
    # is the steadiest estimate of a mode's own speed
    throughput_best: Optional[float] = None
    speedup_best_vs_deploy: Optional[float] = None
    latency_min_ms: Optional[float] = None
    latency_min_speedup_vs_deploy: Optional[float] = None
    extra: Dict[str, float] = field(default_factory=dict)


def check_input_size(input_size: Sequence[int], batch_size: int = 1) -> Tuple[int, int, int]:
    """Validate ``(C, H, W)``: H and W at least 32 (the network's total stride), batch at least 1."""
    if len(input_size) != 3:
        raise ValueError(f"input size must be (C, H, W), got {tuple(input_size)}")
    c, h, w = (int(v) for v in input_size)
    if c < 1 or h < 32 or w < 32:
        raise ValueError(
            f"input size {c}x{h}x{w} is too small: UniRepLKNet downsamples by 32, so H and W must be >= 32"
        )
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    return c, h, w


def _available_memory(device: torch.device) -> Optional[int]:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _activation_bytes(model: nn.Module, batch_size: int, input_size: Sequence[int], bytes_per: int) -> int:
    """A lower bound of the inference working set: a few copies of the largest (stage-1 hidden) activation."""
    dims = getattr(model, "dims", None) or (64,)
    _, h, w = input_size
    largest = max(dims[0] * 4 * (h // 4) * (w // 4), int(input_size[0]) * h * w, dims[0] // 2 * (h // 2) * (w // 2))
    return 3 * batch_size * largest * bytes_per


def check_fits_memory(
    model: nn.Module, batch_size: int, input_size: Sequence[int], device: Union[str, torch.device] = "cpu"
) -> None:
    """Raise ``ValueError`` when a batch clearly cannot fit in the device's free memory."""
    device = torch.device(device)
    free = _available_memory(device)
    if free is None:
        return
    p = next(model.parameters())
    need = _activation_bytes(model, batch_size, input_size, p.element_size())
    need += sum(t.numel() * t.element_size() for t in model.parameters())
    if need > free:
        fit = max(1, int(batch_size * free / need) // 2)
        raise ValueError(
            f"batch size {batch_size} does not fit in memory: at {tuple(input_size)} it needs at least "
            f"{need / 2**30:.1f} GiB but only "
            f"{free / 2**30:.1f} GiB is free on {device}: use a batch size of about {fit} or less"
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _PeakRSS:
    """Peak resident memory above the level at entry, sampled every millisecond (Linux; None elsewhere)."""

    def __init__(self) -> None:
        self.peak: Optional[int] = None
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> Optional[int]:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            r = self._rss()
            if r is not None and self._base is not None:
                self.peak = max(self.peak or 0, r - self._base)
            time.sleep(0.001)

    def __enter__(self) -> "_PeakRSS":
        self._base = self._rss()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _deploy_copy(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model).eval()
    if hasattr(m, "reparameterize"):
        m.reparameterize()
    return m


def build_runner(model: nn.Module, mode: str, example: torch.Tensor) -> Runner:
    """A callable running ``model`` in ``mode`` (see :data:`MODES`); ``example`` is a representative input."""
    if mode not in MODES:
        raise ValueError(f"unknown benchmark mode {mode!r}; choose from {', '.join(MODES)}")
    model = model.eval()
    if mode == "eager":
        return model
    if mode == "deploy":
        return _deploy_copy(model)
    if mode == "channels-last":
        m = _deploy_copy(model).to(memory_format=torch.channels_last)
        return lambda x: m(x.contiguous(memory_format=torch.channels_last))
    if mode == "compile":
        return torch.compile(_deploy_copy(model))
    from .inference import optimize_for_inference

    if mode == "optimized":
        return optimize_for_inference(model, example)
    if mode == "optimized-compile":
        return optimize_for_inference(model, example, compile=True)
    if mode == "optimized-cudagraphs":
        if example.device.type != "cuda":
            raise ValueError("the optimized-cudagraphs mode needs --device cuda")
        fast_g = optimize_for_inference(model, example, compile=True, cuda_graphs=True)
        return lambda x: fast_g(x).clone()  # the graph's output buffer is reused by the next call
    if mode == "bf16":
        fast = optimize_for_inference(copy.deepcopy(model).to(torch.bfloat16), example.to(torch.bfloat16))
        return lambda x: fast(x.to(torch.bfloat16))
    return _onnx_runner(model, example)


def _onnx_runner(model: nn.Module, example: torch.Tensor) -> Runner:
    from ._extras import require
    from .export import export_onnx

    ort = require("onnxruntime", "export", "the onnxruntime benchmark mode")
    if example.device.type != "cpu":
        raise ValueError("the onnxruntime mode runs on CPU only: use --device cpu")
    tmp = tempfile.mkdtemp(prefix="unireplknet-bench-")
    path = Path(tmp) / "model.onnx"
    export_onnx(model, path, input_size=tuple(example.shape[1:]), batch_size=example.shape[0], verify=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def measure_gemm_peak(n: int = 2048, dtype: torch.dtype = torch.float32, device: str = "cpu", repeats: int = 5) -> float:
    """The best of ``repeats`` timings of an ``n x n`` matmul, in GFLOP/s (the machine's practical peak)."""
    dev = torch.device(device)
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        a @ b
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _time_once(run: Runner, x: torch.Tensor, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    run(x)
    _sync(device)
    return time.perf_counter() - t0


def _percentile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[k]


@torch.inference_mode()
def benchmark_modes(
    model: nn.Module,
    modes: Sequence[str] = ("deploy", "optimized"),
    batch_size: int = 16,
    input_size: Sequence[int] = (3, 224, 224),
    device: Union[str, torch.device] = "cpu",
    warmup: int = 2,
    repeats: int = 5,
    latency_iters: int = 10,
    gemm_peak: bool = True,
    extra_models: Optional[Dict[str, nn.Module]] = None,
) -> List[BenchResult]:
    """Time each mode of ``model`` (and each of ``extra_models``, run as given) interleaved; see the module doc.

    ``latency_iters=0`` skips the batch-1 latency; ``extra_models`` (name -> model) are references such
    as timm's ConvNeXt, timed eagerly in the same rounds.
    """
    device = torch.device(device)
    c, h, w = check_input_size(input_size, batch_size)
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown benchmark mode(s) {bad}; choose from {', '.join(MODES)}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available")
    if repeats < 1 or warmup < 0 or latency_iters < 0:
        raise ValueError(f"need repeats >= 1, warmup >= 0, latency_iters >= 0; got {repeats}, {warmup}, {latency_iters}")
    model = model.to(device).eval()
    check_fits_memory(model, batch_size, (c, h, w), device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, c, h, w, generator=gen).to(device)
    x1 = x[:1].clone()
    deployed = _deploy_copy(model)
    params = count_params(deployed)
    macs = count_macs(deployed, (c, h, w))
    runners: Dict[str, Runner] = {}
    stats: Dict[str, Tuple[int, int]] = {}
    for mode in modes:
        _logger.info("building mode %s", mode)
        runners[mode] = build_runner(model, mode, x)
        stats[mode] = (params, macs)
    for name, ref in (extra_models or {}).items():
        ref = ref.to(device).eval()
        runners[name] = ref
        base = getattr(ref, "_orig_mod", ref)  # count a torch.compile'd reference on its source module
        stats[name] = (count_params(base), count_macs(base, (c, h, w)))
    peaks: Dict[str, Optional[float]] = {}
    errors: Dict[str, float] = {}
    reference_out = runners["deploy"](x).float() if "deploy" in runners else None
    for name, run in runners.items():  # warm-up (compiles, chooses layouts), accuracy and one memory measurement
        try:
            for _ in range(max(warmup, 1)):
                out = run(x)
            if reference_out is not None and name in modes and out.shape == reference_out.shape:
                errors[name] = float((out.float() - reference_out).abs().max() / reference_out.abs().max())
            if latency_iters:
                for _ in range(max(warmup, 1)):
                    run(x1)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
                run(x)
                peaks[name] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
            else:
                with _PeakRSS() as rss:
                    run(x)
                peaks[name] = rss.peak / 2**20 if rss.peak is not None else None
        except RuntimeError as e:
            if "out of memory" in str(e).lower() or "can't allocate" in str(e).lower():
                raise ValueError(f"batch size {batch_size} does not fit in memory on {device} in mode {name}: {e}") from e
            raise
    times: Dict[str, List[float]] = {k: [] for k in runners}
    lat: Dict[str, List[float]] = {k: [] for k in runners}
    gemm: List[float] = []
    for _ in range(repeats):
        if gemm_peak:
            gemm.append(measure_gemm_peak(device=str(device), repeats=3))
        for name, run in runners.items():
            times[name].append(_time_once(run, x, device))
            for _ in range(max(1, latency_iters // repeats) if latency_iters else 0):
                lat[name].append(_time_once(run, x1, device))
    peak_gflops = statistics.median(gemm) if gemm else None
    results = []
    for name in runners:
        t = statistics.median(times[name])
        p, m = stats[name]
        gflops = 2 * m * batch_size / t / 1e9
        results.append(BenchResult(
            mode=name, batch_size=batch_size, input_size=(c, h, w), device=str(device),
            throughput=batch_size / t, throughput_best=batch_size / min(times[name]),
            latency_min_ms=min(lat[name]) * 1e3 if lat[name] else None,
            latency_p50_ms=_percentile(lat[name], 50) * 1e3 if lat[name] else None,
            latency_p90_ms=_percentile(lat[name], 90) * 1e3 if lat[name] else None,
            peak_memory_mib=peaks.get(name), params=p, macs=m, gflops=gflops,
            fraction_of_gemm_peak=gflops / peak_gflops if peak_gflops else None,
            extra=dict({"gemm_peak_gflops": peak_gflops} if peak_gflops else {},
                       **({"max_rel_err_vs_deploy": errors[name]} if name in errors else {})),
        ))
    ref = next((r for r in results if r.mode == "deploy"), None)
    for r in results:
        if ref is not None:
            r.speedup_vs_deploy = r.throughput / ref.throughput
            if ref.throughput_best and r.throughput_best:
                r.speedup_best_vs_deploy = r.throughput_best / ref.throughput_best
            if ref.latency_p50_ms and r.latency_p50_ms:
                r.latency_speedup_vs_deploy = ref.latency_p50_ms / r.latency_p50_ms
            if ref.latency_min_ms and r.latency_min_ms:
                r.latency_min_speedup_vs_deploy = ref.latency_min_ms / r.latency_min_ms
    return results


def format_table(results: Sequence[BenchResult]) -> str:
    """A Markdown table of results."""
    def f(v: Optional[float], fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    head = ("| mode | batch | img/s | vs deploy | best img/s | best vs deploy | p50 ms (b=1) | p90 ms (b=1) "
            "| min ms (b=1) | b=1 vs deploy (p50) | b=1 vs deploy (min) | peak MiB | params (M) | GMACs | GFLOP/s "
            "| of GEMM peak |")
    lines = [head, "|" + "---|" * 16]
    for r in results:
        lines.append(
            f"| {r.mode} | {r.batch_size} | {r.throughput:.2f} | {f(r.speedup_vs_deploy, '.2f')} | "
            f"{f(r.throughput_best, '.2f')} | {f(r.speedup_best_vs_deploy, '.2f')} | "
            f"{f(r.latency_p50_ms, '.1f')} | {f(r.latency_p90_ms, '.1f')} | {f(r.latency_min_ms, '.1f')} | "
            f"{f(r.latency_speedup_vs_deploy, '.2f')} | {f(r.latency_min_speedup_vs_deploy, '.2f')} | "
            f"{f(r.peak_memory_mib, '.0f')} | "
            f"{r.params / 1e6:.2f} | {r.macs / 1e9:.2f} | {r.gflops:.1f} | "
            f"{'-' if r.fraction_of_gemm_peak is None else format(100 * r.fraction_of_gemm_peak, '.0f') + '%'} |"
        )
    peak = next((r.extra.get("gemm_peak_gflops") for r in results if r.extra.get("gemm_peak_gflops")), None)
    if peak:
        lines.append(f"\nfp32 GEMM peak measured in the same rounds: {peak:.1f} GFLOP/s")
    errs = [f"{r.mode} {r.extra['max_rel_err_vs_deploy']:.1e}" for r in results if "max_rel_err_vs_deploy" in r.extra]
    if errs:
        lines.append("max relative output difference vs deploy: " + ", ".join(errs))
    return "\n".join(lines)


def save_json(results: Sequence[BenchResult], path: Union[str, os.PathLike], **meta: object) -> Path:
    """Write results (and ``meta``, e.g. machine details) as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2))
    return path
