"""Optional compiled CPU kernels (AVX2 + FMA) for the training step: the Dilated Reparam Block's depthwise
convolutions, and fused GELU + GRN and BatchNorm passes (used by :mod:`unireplknet.ops.drb_native` and
:mod:`unireplknet.ops.fast_block`).

The C source ships with the package (``ops/csrc/dwconv_avx2.c``). On first use it is compiled with the
system C compiler (``$CC``, else ``cc``/``gcc``) into a per-user cache directory
(``$UNIREPLKNET_CACHE``, else ``$XDG_CACHE_HOME/unireplknet`` or ``~/.cache/unireplknet``), named by a hash
of the source, the compiler and the flags, written atomically, and loaded with :mod:`ctypes`. The kernels
use OpenMP; loaded after PyTorch, they share PyTorch's ``libgomp`` (one thread pool, no oversubscription).

When anything is missing (not Linux on x86-64, no AVX2 in PyTorch's CPU capability, PyTorch not built
with OpenMP, no compiler, a failed build) :func:`available` is ``False``, the reason is logged once and the
training path falls back to PyTorch's own kernels: the same function and gradients, slower.
``UNIREPLKNET_NATIVE=0`` (or :func:`set_native_kernels` ``(False)``) switches the kernels off.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Optional, Sequence

import torch

__all__ = ["available", "unavailable_reason", "status", "set_native_kernels", "native_kernels_enabled", "library_path",
           "dw_forward", "dw_weight_grad", "combine", "grad_dots", "affine2", "gelu_grn_applicable", "gelu_grn_out",
           "gelu_dots", "gelu_grn_backward", "nhwc_applicable", "nc_sums", "affine_nc"]

logger = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("csrc") / "dwconv_avx2.c"
_FLAGS = ("-O3", "-mavx2", "-mfma", "-fopenmp", "-shared", "-fPIC", "-std=c99")
_LOCK = threading.Lock()
_STATE: dict = {"lib": None, "tried": False, "reason": None, "path": None,
                "enabled": os.environ.get("UNIREPLKNET_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")}

_P, _I64, _I32, _PP = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)
_SIGNATURES = {
    "urlk_dw_fwd": [_P, _I64, _I64, _I32, _I32, _I32, _I32, _P, _I64, _I64, _I32, _I32, _I32, _I32,
                    _P, _I32, _I32, _I32, _P, _I32],
    "urlk_dw_wgrad": [_P, _I64, _I64, _I32, _I32, _I32, _I32, _P, _I64, _I64, _I32, _I32, _I32, _I32,
                      _P, _I32, _I32, _I32],
    "urlk_combine": [_P, _PP, _I32, _P, _P, _I64, _I32, _I32],
    "urlk_dots": [_P, _PP, _I32, _I64, _I32, _P, _I32],
    "urlk_affine2": [_P, _I64, _I64, _P, _P, _P, _P, _P, _I32, _I32, _I32, _I32, _I32],
    "urlk_gelu_grn_out": [_P, _P, _P, _P, _I32, _I64, _I32, _I32],
    "urlk_gelu_dots": [_P, _P, _P, _P, _I32, _I64, _I32, _P, _I32],
    "urlk_gelu_grn_bwd": [_P, _P, _P, _P, _P, _I32, _I64, _I32, _I32],
    "urlk_nc_sums": [_P, _P, _P, _I32, _I64, _I32, _P, _I32],
    "urlk_affine_nc": [_P, _P, _P, _P, _P, _P, _I32, _I64, _I32, _I32],
}


def set_native_kernels(enabled: bool) -> None:
    """Switch the compiled kernels on or off for this process (default: on unless ``UNIREPLKNET_NATIVE=0``)."""
    _STATE["enabled"] = bool(enabled)


def native_kernels_enabled() -> bool:
    """Whether the compiled kernels are switched on (they may still be unavailable: :func:`available`)."""
    return bool(_STATE["enabled"])


def _cache_dir() -> Path:
    if os.environ.get("UNIREPLKNET_CACHE"):
        return Path(os.environ["UNIREPLKNET_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "unireplknet"


def _compiler() -> Optional[str]:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _platform_problem() -> Optional[str]:
    if not sys.platform.startswith("linux") or platform.machine().lower() not in ("x86_64", "amd64"):
        return f"compiled kernels are built for Linux on x86-64 only (this is {sys.platform}/{platform.machine()})"
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        return f"the CPU lacks AVX2 (PyTorch reports capability {capability!r})"
    if "OpenMP" not in torch.__config__.parallel_info():
        return "PyTorch is not built with OpenMP"
    if not _SOURCE.is_file():
        return f"kernel source {_SOURCE} is missing from the installation"
    return None


def _build(cc: str) -> Path:
    source = _SOURCE.read_bytes()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout.split("\n")[0]
    digest = hashlib.sha256(source + repr((version, _FLAGS)).encode()).hexdigest()[:16]
    out_dir = _cache_dir() / "kernels"
    target = out_dir / f"urlk_dwconv_{digest}.so"
    if target.is_file():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.stem + ".", suffix=".so.tmp", dir=out_dir)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *_FLAGS, "-o", tmp, str(_SOURCE)], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{Path(cc).name} failed: {proc.stderr.strip()[-800:]}")
        os.replace(tmp, target)  # atomic: a concurrent build or reader never sees half a library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _load() -> Optional[ctypes.CDLL]:
    problem = _platform_problem()
    cc = _compiler() if problem is None else None
    if problem is None and cc is None:
        problem = "no C compiler found (set CC, or install gcc)"
    if problem is not None:
        _STATE["reason"] = problem
        return None
    try:
        path = _build(cc)  # type: ignore[arg-type]
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:  # a damaged cache entry (disk full, killed copy): build it again
            path.unlink(missing_ok=True)
            path = _build(cc)  # type: ignore[arg-type]
            lib = ctypes.CDLL(str(path))
        for name, argtypes in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = argtypes, None
    except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as exc:
        _STATE["reason"] = f"building the compiled kernels failed: {exc}"
        return None
    _STATE["path"] = path
    return lib


def _lib() -> Optional[ctypes.CDLL]:
    if not _STATE["tried"]:
        with _LOCK:
            if not _STATE["tried"]:
                _STATE["lib"] = _load()
                _STATE["tried"] = True
                if _STATE["lib"] is None:
                    logger.info("compiled depthwise kernels unavailable, using PyTorch's: %s", _STATE["reason"])
                else:
                    logger.debug("compiled depthwise kernels loaded from %s", _STATE["path"])
    return _STATE["lib"]


def _reset() -> None:
    """Forget the loaded library so the next use builds/loads again (tests; a loaded library stays mapped)."""
    with _LOCK:
        _STATE.update(lib=None, tried=False, reason=None, path=None)


def available() -> bool:
    """Whether the compiled kernels are switched on and built (builds them on the first call)."""
    return bool(_STATE["enabled"]) and _lib() is not None


def status() -> str:
    """One line for users: where the kernels were loaded from, or why training uses PyTorch's kernels
    (builds them on the first call)."""
    if not _STATE["enabled"]:
        return "switched off (UNIREPLKNET_NATIVE=0 or set_native_kernels(False)): PyTorch's kernels are used"
    if available():
        return f"loaded from {library_path()}"
    return f"unavailable, PyTorch's kernels are used: {unavailable_reason()}"


def unavailable_reason() -> Optional[str]:
    """Why the kernels could not be built or loaded (``None`` when they are, or were not tried yet)."""
    return _STATE["reason"]


def library_path() -> Optional[Path]:
    """Path of the loaded shared library (``None`` when not loaded)."""
    return _STATE["path"]


# --------------------------------------------------------------------------- wrappers (fp32, NHWC views)
def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


def _check_nhwc(t: torch.Tensor, name: str) -> None:
    if t.dtype != torch.float32 or t.dim() != 4 or t.stride(3) != 1 or t.stride(2) != t.shape[3]:
        raise ValueError(f"{name}: expected an fp32 N x H x W x C view with unit channel stride, got "
                         f"{tuple(t.shape)} strides {t.stride()} {t.dtype}")


def dw_forward(xbuf: torch.Tensor, window: Sequence[int], out: torch.Tensor, weight_kkc: torch.Tensor,
               dilation: int, accumulate: bool = False, stats: Optional[torch.Tensor] = None) -> None:
    """``out[n, oh, ow] (+)= sum_{ki,kj} w[ki, kj] * xbuf[n, oh + ki*r, ow + kj*r]`` (all ``N x H x W x C``).

    ``xbuf`` is a view of a zero-bordered buffer starting at the first tap of output ``(0, 0)``, large
    enough for every tap; ``window = (row_lo, row_hi, col_lo, col_hi)`` is where it holds data (taps that
    read only zeros are skipped). ``stats``: optional ``(threads, 2, C)`` float64, per-thread sums of the
    output and its square.
    """
    lib = _lib()
    assert lib is not None
    _check_nhwc(xbuf, "x")
    _check_nhwc(out, "out")
    n, h, w, c = out.shape
    k = weight_kkc.shape[0]
    nt = torch.get_num_threads() if stats is None else stats.shape[0]
    lib.urlk_dw_fwd(_ptr(xbuf), xbuf.stride(0), xbuf.stride(1), *window, _ptr(out), out.stride(0), out.stride(1),
                    n, h, w, c, _ptr(weight_kkc), k, dilation, int(accumulate),
                    None if stats is None else _ptr(stats), nt)


def dw_weight_grad(xbuf: torch.Tensor, window: Sequence[int], dy: torch.Tensor, k: int, dilation: int,
                   part: torch.Tensor) -> torch.Tensor:
    """Weight gradient ``(k, k, C)`` of :func:`dw_forward` for output gradient ``dy``; ``part`` is scratch
    ``(threads, k, k, C)`` fp32 (per-thread partial sums)."""
    lib = _lib()
    assert lib is not None
    _check_nhwc(xbuf, "x")
    _check_nhwc(dy, "dy")
    n, h, w, c = dy.shape
    lib.urlk_dw_wgrad(_ptr(xbuf), xbuf.stride(0), xbuf.stride(1), *window, _ptr(dy), dy.stride(0), dy.stride(1),
                      n, h, w, c, _ptr(part), k, dilation, part.shape[0])
    return part.sum(0)


def _ptr_array(ts: Sequence[torch.Tensor]) -> "ctypes.Array[ctypes.c_void_p]":
    return (ctypes.c_void_p * len(ts))(*[_ptr(t) for t in ts])


def combine(out: torch.Tensor, ys: Sequence[torch.Tensor], a: torch.Tensor, b: torch.Tensor) -> None:
    """``out = b + sum_i a[i] * ys[i]`` per channel (contiguous ``N x H x W x C``; ``a``: ``nb x C``)."""
    lib = _lib()
    assert lib is not None
    c = out.shape[-1]
    lib.urlk_combine(_ptr(out), _ptr_array(ys), len(ys), _ptr(a), _ptr(b), out.numel() // c, c,
                     torch.get_num_threads())


def grad_dots(g: torch.Tensor, ys: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[sum g, sum g*ys[0], ...]`` per channel over all pixels, float64 ``(len(ys) + 1) x C``."""
    lib = _lib()
    assert lib is not None
    c = g.shape[-1]
    nt = torch.get_num_threads()
    part = torch.empty(nt, len(ys) + 1, c, dtype=torch.float64)
    lib.urlk_dots(_ptr(g), _ptr_array(ys), len(ys), g.numel() // c, c, _ptr(part), nt)
    return part.sum(0)


def affine2(dst: torch.Tensor, g: torch.Tensor, y: torch.Tensor, a: torch.Tensor, k: torch.Tensor,
            c: torch.Tensor) -> None:
    """``dst = a * g + k * y + c`` per channel; ``dst`` an ``N x H x W x C`` view (``g``, ``y`` contiguous)."""
    lib = _lib()
    assert lib is not None
    _check_nhwc(dst, "dst")
    n, h, w, ch = dst.shape
    lib.urlk_affine2(_ptr(dst), dst.stride(0), dst.stride(1), _ptr(g), _ptr(y), _ptr(a), _ptr(k), _ptr(c),
                     n, h, w, ch, torch.get_num_threads())


# --------------------------------------------------------------------------- GELU + GRN (MLP tail backward)
def gelu_grn_applicable(h: torch.Tensor) -> bool:
    """Whether the GELU + GRN kernels take ``h`` (contiguous fp32 ``N x H x W x D``, ``D % 8 == 0``)."""
    return (h.dtype == torch.float32 and h.dim() == 4 and h.is_contiguous() and h.shape[-1] % 8 == 0
            and available())


def _npd(h: torch.Tensor) -> "tuple[int, int, int]":
    n, d = h.shape[0], h.shape[-1]
    return n, h.numel() // max(1, n * d), d


def _vec(t: Optional[torch.Tensor], n: int, d: int) -> Optional[torch.Tensor]:
    """A per-(sample, channel) factor as a contiguous fp32 ``n x d`` (or ``d``) tensor."""
    if t is None:
        return None
    return t.reshape(n, d).contiguous() if t.numel() == n * d else t.reshape(d).contiguous()


def gelu_grn_out(h: torch.Tensor, f: torch.Tensor, beta: Optional[torch.Tensor], out: torch.Tensor) -> None:
    """``out = GELU(h) * f + beta`` (``f``: ``N x 1 x 1 x D``, ``beta``: ``1 x 1 x 1 x D`` or ``None``)."""
    lib = _lib()
    assert lib is not None
    n, p, d = _npd(h)
    fv, bv = _vec(f, n, d), _vec(beta, 1, d)
    lib.urlk_gelu_grn_out(_ptr(h), _ptr(fv), None if bv is None else _ptr(bv), _ptr(out), n, p, d,
                          torch.get_num_threads())


def gelu_dots(go: Optional[torch.Tensor], h: torch.Tensor) -> "tuple[torch.Tensor, torch.Tensor]":
    """``(sum_hw go * GELU(h), sum_hw go)``, each ``N x D`` float64; with ``go=None``, ``sum_hw GELU(h)^2``
    (and an unset second tensor)."""
    lib = _lib()
    assert lib is not None
    n, p, d = _npd(h)
    nt = torch.get_num_threads()
    dots = torch.empty(n, d, dtype=torch.float64)
    sums = torch.empty(n, d, dtype=torch.float64)
    scratch = torch.empty(nt, 2, d)
    lib.urlk_gelu_dots(None if go is None else _ptr(go), _ptr(h), _ptr(dots), _ptr(sums), n, p, d, _ptr(scratch), nt)
    return dots, sums


def gelu_grn_backward(go: torch.Tensor, h: torch.Tensor, f: torch.Tensor, scale: torch.Tensor,
                      out: torch.Tensor) -> None:
    """``out = (go * f + GELU(h) * scale) * GELU'(h)`` (``f``, ``scale``: ``N x 1 x 1 x D``)."""
    lib = _lib()
    assert lib is not None
    n, p, d = _npd(h)
    fv, sv = _vec(f, n, d), _vec(scale, n, d)
    lib.urlk_gelu_grn_bwd(_ptr(go), _ptr(h), _ptr(fv), _ptr(sv), _ptr(out), n, p, d, torch.get_num_threads())


# --------------------------------------------------------------------------- per-(sample, channel) passes
def nhwc_applicable(*ts: torch.Tensor) -> bool:
    """Whether ``N x C x H x W`` tensors are fp32, channels-last contiguous with ``C % 8 == 0`` (kernels built)."""
    return all(t.dtype == torch.float32 and t.dim() == 4 and t.shape[1] % 8 == 0
               and t.is_contiguous(memory_format=torch.channels_last) for t in ts) and available()


def nc_sums(g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``[sum_hw g, sum_hw g*x, sum_hw x]`` of two channels-last ``N x C x H x W`` tensors: ``3 x N x C`` float64."""
    lib = _lib()
    assert lib is not None
    n, c = g.shape[0], g.shape[1]
    nt = torch.get_num_threads()
    out = torch.empty(3, n, c, dtype=torch.float64)
    scratch = torch.empty(nt, 3, c)
    lib.urlk_nc_sums(_ptr(g), _ptr(x), _ptr(out), n, g.numel() // max(1, n * c), c, _ptr(scratch), nt)
    return out


def affine_nc(g: torch.Tensor, x: torch.Tensor, kg: torch.Tensor, kx: torch.Tensor, k0: torch.Tensor,
              out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``kg[n, c] * g + kx[c] * x + k0[n, c]`` of two channels-last ``N x C x H x W`` tensors, into ``out`` (else a
    new channels-last tensor); ``kg``/``k0``: ``N x C`` (or ``C``), ``kx``: ``C``; any float dtype, used as fp32."""
    lib = _lib()
    assert lib is not None
    n, c = g.shape[0], g.shape[1]
    if out is None:
        out = torch.empty_like(g, memory_format=torch.channels_last)
    kg, k0 = (t.to(torch.float32).expand(n, c).contiguous() for t in (kg, k0))
    kx = kx.to(torch.float32).reshape(c).contiguous()
    lib.urlk_affine_nc(_ptr(g), _ptr(x), _ptr(kg), _ptr(kx), _ptr(k0), _ptr(out), n,
                       g.numel() // max(1, n * c), c, torch.get_num_threads())
    return out
