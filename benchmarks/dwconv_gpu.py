"""GPU benchmark: Triton depthwise convolution vs F.conv2d (cuDNN / PyTorch native) on UniRepLKNet-T deploy shapes.

For batch 64 and 1 at 224x224 (C=80@56 K3, C=160@28 K13, C=320@14 K13 and K3, C=640@7 K13), fp32 and bf16, it
times forward and forward+backward of ``unireplknet.ops.depthwise_conv2d_triton`` and of ``F.conv2d(groups=C)``,
each with NCHW and channels-last inputs (``triton.testing.do_bench``, median ms), reports the max abs error of the
Triton output against F.conv2d in the same layout and dtype, and the achieved TFLOP/s and GB/s of the Triton
forward. ``--checks`` first runs a correctness sweep (odd shapes, rectangular and 31x31 kernels, fp16, grads).
``--sweep`` also times alternative tile configurations (to tune the heuristics in ops/triton_dwconv.py).

    PYTHONPATH=src python benchmarks/dwconv_gpu.py --checks --out runs/bench/dwconv_gpu.json

Needs CUDA and triton. Kernels are compiled in parallel worker processes first (``--jobs``), then timed serially;
on an H100 host with 16 cores, ``--checks`` plus the table took about 6 minutes, most of it compiling
(``--time-budget`` stops compiling and sweeping after that many seconds). ``--profile`` prints a CPU/GPU
breakdown of a forward+backward call. ``--resources 90`` needs no GPU: it compiles the default
configurations for sm_90 and prints registers and spill bytes per thread.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from unireplknet.ops import triton_dwconv as T

SHAPES: List[Tuple[int, int, int]] = [(80, 56, 3), (160, 28, 13), (320, 14, 13), (320, 14, 3), (640, 7, 13)]
DEVICE = "cuda"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def make_inputs(b: int, c: int, hw: int, k: int, dtype: torch.dtype, cl: bool, seed: int = 0,
                grad: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random x (B x C x H x W, NCHW or channels-last), weight, bias on CUDA."""
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    x = torch.randn(b, c, hw, hw, device=DEVICE, generator=g).to(dtype)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    w = (torch.randn(c, 1, k, k, device=DEVICE, generator=g) / k).to(dtype)
    bias = torch.randn(c, device=DEVICE, generator=g).to(dtype)
    for t in (x, w, bias):
        t.requires_grad_(grad)
    return x, w, bias


def torch_conv(x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor]) -> torch.Tensor:
    return F.conv2d(x, w, b, padding=(w.shape[2] // 2, w.shape[3] // 2), groups=x.shape[1])


def fwd_fn(impl: str, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> Callable[[], Any]:
    conv = T.depthwise_conv2d_triton if impl == "triton" else torch_conv
    return lambda: conv(x, w, b)


def fwdbwd_fn(impl: str, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, gy: torch.Tensor) -> Callable[[], Any]:
    conv = T.depthwise_conv2d_triton if impl == "triton" else torch_conv
    return lambda: conv(x, w, b).backward(gy)


def bench(fn: Callable[[], Any], grad_to_none: Optional[List[torch.Tensor]] = None) -> float:
    """Median milliseconds of ``fn`` (triton.testing.do_bench, L2 flushed between runs)."""
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=10, rep=60, grad_to_none=grad_to_none, return_mode="median"))


def _nw(elements: int, per_thread: int, lo: int = 1, hi: int = 8) -> int:
    """Warps so that each thread holds about ``per_thread`` elements of a tile."""
    return max(lo, min(hi, elements // (32 * per_thread)))


def sweep_candidates(cl: bool, c: int, hw: int, k: int) -> List[Dict[str, Any]]:
    """Forward tile configurations worth trying for one shape and layout (the heuristic first)."""
    p2 = T._pow2
    r = min(4, k)
    out: List[Dict[str, Any]] = [T.forward_config(cl, c, hw, hw, k, k)]
    if cl:
        for bw, bc in ((8, 32), (32, 32), (16, 64), (32, 16)):
            if bw <= 2 * p2(hw):
                out.append(dict(kernel="rows", R=r, BS=1, BW=bw, BC=bc, num_warps=_nw(bw * bc, 8)))
        if k >= 7:
            for bw, bc in ((4, 32), (8, 16)):
                out.append(dict(kernel="taps", R=r, BS=1, BW=bw, BC=bc, num_warps=_nw(bw * bc * p2(k), 16)))
    else:
        bw = min(64, p2(hw))
        for bs in (1, 2, 4, 8):
            if (bs - 1) * r < hw and bs * bw <= 256:
                out.append(dict(kernel="rows", R=r, BS=bs, BW=bw, BC=1, num_warps=_nw(bs * bw, 4, hi=4)))
                if k >= 7:
                    out.append(dict(kernel="taps", R=r, BS=bs, BW=bw, BC=1, num_warps=_nw(bs * bw * p2(k), 16)))
        if hw <= 14:
            out.append(dict(kernel="taps" if k >= 7 else "rows", R=r, BS=1, BW=bw, BC=4, num_warps=2))
    return out


def gw_candidates(cl: bool, c: int, hw: int, k: int) -> List[Dict[str, Any]]:
    """Weight-gradient tile configurations worth trying (the heuristic first)."""
    p2 = T._pow2
    r = min(4, k)
    out = [T.grad_weight_config(cl, c, hw, hw, k, k)]
    if cl:
        for bw, bc in ((4, 16), (4, 32), (2, 32)):
            out.append(dict(R=r, SUB=min(hw, 28), BS=1, BW=bw, BC=bc, num_warps=4))
    else:
        bw = min(64, p2(hw))
        for bs in (1, 2, 4):
            if bs * bw <= 256:
                out.append(dict(R=r, SUB=max(4, -(-hw // bs)), BS=bs, BW=bw, BC=1, num_warps=4))
    return out


# ---- tasks: one (kind, shape, dtype, layout, config) that can be compiled in a worker and timed in the parent ----

def run_task(task: Dict[str, Any], timed: bool) -> Dict[str, Any]:
    """Run (and optionally time) one task; returns the task with ``ms`` or ``error`` filled in."""
    res = dict(task)
    try:
        b, c, hw, k = task["b"], task["c"], task["hw"], task["k"]
        dtype, cl = DTYPES[task["dtype"]], task["layout"] == "channels_last"
        kind, impl = task["kind"], task.get("impl", "triton")
        grad = kind == "fwdbwd"
        x, w, bias = make_inputs(b, c, hw, k, dtype, cl, grad=grad)
        if kind == "fwd_cfg":
            xd = T._dense(x, cl)
            wt = T._weight_taps(w)
            fn = lambda: T._launch_forward(xd, wt, bias, task["cfg"])  # noqa: E731
        elif kind == "gw_cfg":
            gy = torch.randn_like(x)
            fn = lambda: T._launch_grad_weight(x, gy, k, k, task["cfg"])  # noqa: E731
        elif kind == "fwd":
            fn = fwd_fn(impl, x, w, bias)
        else:
            gy = torch.randn_like(x)
            fn = fwdbwd_fn(impl, x, w, bias, gy)
        if not timed:
            fn()
            if DEVICE == "cuda":
                torch.cuda.synchronize()
            return res
        with torch.no_grad() if not grad else torch.enable_grad():
            res["ms"] = bench(fn, grad_to_none=[x, w, bias] if grad else None)
    except Exception as e:  # a config that does not compile is reported, not fatal
        res["error"] = f"{type(e).__name__}: {str(e)[:300]}"
    return res


def _warm(task: Dict[str, Any]) -> Dict[str, Any]:
    if task["kind"] == "check":
        return run_check(task)
    return run_task(task, timed=False)


def precompile(tasks: List[Dict[str, Any]], jobs: int, deadline: float = float("inf")) -> List[Dict[str, Any]]:
    """Run correctness checks and compile every Triton kernel the timed tasks need, in ``jobs`` processes
    (the on-disk triton cache then serves the timing process); stops at ``deadline`` (time.time()).
    Returns the check results."""
    todo = [t for t in tasks if t.get("impl", "triton") == "triton"]
    t0 = time.time()
    res: List[Dict[str, Any]] = []
    if jobs <= 1:
        res = [run_check(t) for t in todo if t["kind"] == "check"]
    else:
        pool = mp.get_context("spawn").Pool(jobs)
        try:
            it = pool.imap_unordered(_warm, todo, chunksize=1)
            while len(res) < len(todo):
                try:
                    res.append(it.next(timeout=max(0.0, min(deadline - time.time(), 1e6))))
                except mp.TimeoutError:
                    print(f"precompile deadline reached after {len(res)}/{len(todo)} tasks", flush=True)
                    break
        finally:
            pool.terminate()
    errs = [r for r in res if "error" in r]
    print(f"checked/compiled {len(res)} tasks in {time.time() - t0:.1f}s ({len(errs)} errors)", flush=True)
    for r in errs[:5]:
        print("  error", r, flush=True)
    return [r for r in res if r["kind"] == "check"]


# ---- correctness ----

def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def grads(impl: str, x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor], gy: torch.Tensor):
    xs = x.detach().clone().requires_grad_()
    ws = w.detach().clone().requires_grad_()
    bs = b.detach().clone().requires_grad_() if b is not None else None
    conv = T.depthwise_conv2d_triton if impl == "triton" else torch_conv
    y = conv(xs, ws, bs)
    y.backward(gy)
    return y.detach(), xs.grad, ws.grad, (bs.grad if bs is not None else None)


CHECK_CASES = [(2, 7, 9, 13, 3, 3), (2, 7, 9, 13, 5, 5), (3, 5, 17, 10, 13, 13), (2, 6, 11, 12, 7, 5),
               (1, 4, 33, 33, 31, 31), (2, 80, 56, 56, 3, 3), (2, 160, 28, 28, 13, 13), (2, 640, 7, 7, 13, 13)]
CHECK_TOL = {"fp32": 1e-4, "bf16": 3e-2, "fp16": 4e-3}


def check_tasks() -> List[Dict[str, Any]]:
    return [dict(kind="check", case=list(case), dtype=d, channels_last=cl, bias=bias)
            for case in CHECK_CASES for d in ("fp32", "bf16", "fp16") for cl in (False, True) for bias in (True, False)]


def run_check(task: Dict[str, Any]) -> Dict[str, Any]:
    """Triton vs an fp64 F.conv2d reference (forward and all grads); error relative to max(1, max |ref|)."""
    res = dict(task)
    try:
        b, c, h, w_, kh, kw = task["case"]
        dname, cl, has_bias = task["dtype"], task["channels_last"], task["bias"]
        g = torch.Generator(device=DEVICE).manual_seed(1)
        x = torch.randn(b, c, h, w_, device=DEVICE, generator=g).to(DTYPES[dname])
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        wt = (torch.randn(c, 1, kh, kw, device=DEVICE, generator=g) / kh).to(DTYPES[dname])
        bias = torch.randn(c, device=DEVICE, generator=g).to(DTYPES[dname]) if has_bias else None
        gy = torch.randn(b, c, h, w_, device=DEVICE, generator=g).to(DTYPES[dname])
        got = grads("triton", x, wt, bias, gy)
        ref = grads("torch", x.double(), wt.double(), bias.double() if has_bias else None, gy.double())
        errs = {}
        for name, a, r in zip(("y", "gx", "gw", "gb"), got, ref):
            if r is not None:
                errs[name] = max_err(a, r) / max(1.0, float(r.abs().max()))
        fmt = torch.channels_last if cl else torch.contiguous_format
        res["rel_err"] = errs
        res["ok"] = all(v <= CHECK_TOL[dname] for v in errs.values()) and got[0].is_contiguous(memory_format=fmt)
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {str(e)[:300]}"
        res["ok"] = False
    return res


# ---- main table ----

def table_tasks(batches: List[int], dtypes: List[str]) -> List[Dict[str, Any]]:
    tasks = []
    for b in batches:
        for (c, hw, k) in SHAPES:
            for d in dtypes:
                for layout in ("nchw", "channels_last"):
                    for impl in ("triton", "torch"):
                        for kind in ("fwd", "fwdbwd"):
                            tasks.append(dict(kind=kind, impl=impl, b=b, c=c, hw=hw, k=k, dtype=d, layout=layout))
    return tasks


def sweep_tasks(dtypes: List[str], batch: int) -> List[Dict[str, Any]]:
    """Every forward and weight-gradient candidate at ``batch`` in fp32; in bf16 only the forward candidates
    of the 13x13 28x28 shape and of the 3x3 shapes (where the dtype changed the picture)."""
    tasks = []
    for (c, hw, k) in SHAPES:
        for d in dtypes:
            for layout in ("nchw", "channels_last"):
                cl = layout == "channels_last"
                if d == "fp32" or k == 3 or hw == 28:
                    for cfg in sweep_candidates(cl, c, hw, k):
                        tasks.append(dict(kind="fwd_cfg", b=batch, c=c, hw=hw, k=k, dtype=d, layout=layout, cfg=cfg))
                if d == "fp32":
                    for cfg in gw_candidates(cl, c, hw, k):
                        tasks.append(dict(kind="gw_cfg", b=batch, c=c, hw=hw, k=k, dtype=d, layout=layout, cfg=cfg))
    return tasks


def profile(b: int, c: int, hw: int, k: int, dname: str, cl: bool) -> None:
    """Print where the time of one Triton forward+backward goes (CPU per call vs GPU kernels)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    x, w, bias = make_inputs(b, c, hw, k, DTYPES[dname], cl, grad=True)
    gy = torch.randn_like(x)
    for impl in ("triton", "torch"):
        for kind, fn in (("fwd", fwd_fn(impl, x, w, bias)), ("fwdbwd", fwdbwd_fn(impl, x, w, bias, gy))):
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(20):
                fn()
            t1 = time.perf_counter()
            torch.cuda.synchronize()
            t2 = time.perf_counter()
            print(f"profile B={b} C={c} {hw}x{hw} K={k} {dname} {'CL' if cl else 'NCHW'} {impl} {kind}: "
                  f"CPU {1e3 * (t1 - t0) / 20:.3f} ms/call, CPU+GPU {1e3 * (t2 - t0) / 20:.3f} ms/call", flush=True)
    fn = fwdbwd_fn("triton", x, w, bias, gy)
    with tprofile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=48), flush=True)
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=8, max_name_column_width=48),
          flush=True)


def errors_vs_torch(b: int, c: int, hw: int, k: int, dname: str, cl: bool) -> Dict[str, float]:
    """Max abs error of the Triton forward and grads against F.conv2d in the same dtype and layout, and of both
    against an fp32 reference computed without TF32."""
    x, w, bias = make_inputs(b, c, hw, k, DTYPES[dname], cl)
    gy = torch.randn_like(x)
    tri = grads("triton", x, w, bias, gy)
    ref = grads("torch", x, w, bias, gy)
    prev = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        y32 = torch_conv(x.float(), w.float(), bias.float())
    finally:
        torch.backends.cudnn.allow_tf32 = prev
    return dict(fwd=max_err(tri[0], ref[0]), gx=max_err(tri[1], ref[1]), gw=max_err(tri[2], ref[2]),
                gb=max_err(tri[3], ref[3]), fwd_triton_vs_fp32=max_err(tri[0], y32),
                fwd_torch_vs_fp32=max_err(ref[0], y32))


def format_rows(rows: List[Dict[str, Any]]) -> str:
    head = (f"{'B':>3} {'C':>4} {'HW':>3} {'K':>3} {'dtype':>5} | {'fwd ms: tri/NCHW':>16} {'tri/CL':>7} "
            f"{'torch/NCHW':>10} {'torch/CL':>8} {'speedup':>7} | {'f+b ms: tri/NCHW':>16} {'tri/CL':>7} "
            f"{'torch/NCHW':>10} {'torch/CL':>8} {'speedup':>7} | {'TFLOP/s':>7} {'GB/s':>6} {'err':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        f, fb = r["fwd_ms"], r["fwdbwd_ms"]
        lines.append(
            f"{r['b']:>3} {r['c']:>4} {r['hw']:>3} {r['k']:>3} {r['dtype']:>5} | "
            f"{f['triton_nchw']:>16.4f} {f['triton_channels_last']:>7.4f} {f['torch_nchw']:>10.4f} "
            f"{f['torch_channels_last']:>8.4f} {r['fwd_speedup']:>6.2f}x | "
            f"{fb['triton_nchw']:>16.4f} {fb['triton_channels_last']:>7.4f} {fb['torch_nchw']:>10.4f} "
            f"{fb['torch_channels_last']:>8.4f} {r['fwdbwd_speedup']:>6.2f}x | "
            f"{r['tflops']:>7.2f} {r['gbps']:>6.0f} {r['err']['fwd']:>8.1e}")
    return "\n".join(lines)


def _aot_compile(kind: str, cfg: Dict[str, Any], kh: int, dtype: str, cl: bool, arch: int) -> Any:
    """Compile one kernel ahead of time for ``sm_<arch>`` (no GPU needed) with the launcher's specialisation."""
    import inspect

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from unireplknet.ops import _dwconv_kernels as K

    if kind == "gw":
        fn, consts = K.dw_grad_weight_kernel, dict(KH=kh, KW=kh, KWP=T._pow2(kh), R=cfg["R"], SUB=cfg["SUB"],
                                                   BS=cfg["BS"], BW=cfg["BW"], BC=cfg["BC"])
        ones = ("sxc", "sgc") if cl else ("sxw", "sgw")
        ptr_types = {"x_ptr": dtype, "g_ptr": dtype, "part_ptr": "fp32"}
    else:
        taps = cfg["kernel"] == "taps"
        fn = K.dw_fwd_taps_kernel if taps else K.dw_fwd_rows_kernel
        consts = dict(KH=kh, KW=kh, HAS_BIAS=True, R=cfg["R"], BS=cfg["BS"], BW=cfg["BW"], BC=cfg["BC"])
        if taps:
            consts["KWP"] = T._pow2(kh)
        ones = ("sxc", "syc") if cl else ("sxw", "syw")
        ptr_types = {"x_ptr": dtype, "w_ptr": "fp32", "b_ptr": dtype, "y_ptr": dtype}
    consts.update({name: 1 for name in ones})
    sig = {}
    for name in inspect.signature(fn.fn).parameters:
        sig[name] = "constexpr" if name in consts else ("*" + ptr_types[name] if name in ptr_types else "i32")
    return triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts), target=GPUTarget("cuda", arch, 32),
                          options=dict(num_warps=cfg.get("num_warps", 4)))


def resources(arch: int, dtypes: List[str]) -> List[Dict[str, Any]]:
    """Registers and spill stack per thread (cuobjdump -res-usage) of the default configurations, per shape."""
    import os
    import re
    import subprocess
    import tempfile

    import triton

    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    out = []
    for (c, hw, k) in SHAPES:
        for cl in (False, True):
            for kind in ("fwd", "gw"):
                cfg = (T.forward_config if kind == "fwd" else T.grad_weight_config)(cl, c, hw, hw, k, k)
                for d in dtypes:
                    dname = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16"}[d]
                    t0 = time.time()
                    kern = _aot_compile(kind, cfg, k, dname, cl, arch)
                    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
                        f.write(kern.asm["cubin"])
                        f.flush()
                        usage = subprocess.run([cuobjdump, "-res-usage", f.name], capture_output=True, text=True).stdout
                    m = re.search(r"REG:(\d+) STACK:(\d+)", usage)
                    row = dict(c=c, hw=hw, k=k, layout="channels_last" if cl else "nchw", kernel=kind, dtype=d,
                               cfg=cfg, regs=int(m.group(1)) if m else None, stack_bytes=int(m.group(2)) if m else None,
                               compile_s=round(time.time() - t0, 1))
                    print(f"C={c:<4} {hw:>2}x{hw:<2} K={k:<2} {row['layout']:>13} {kind:>3} {d}: "
                          f"{cfg.get('kernel', 'gw'):>4} regs {row['regs']} spill stack {row['stack_bytes']} B "
                          f"(compile {row['compile_s']} s)", flush=True)
                    out.append(row)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("dwconv_gpu.json"))
    p.add_argument("--batches", default="64,1")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--checks", action="store_true", help="run the correctness sweep first")
    p.add_argument("--sweep", action="store_true", help="also time alternative tile configurations (batch 64)")
    p.add_argument("--sweep-dtypes", default="fp32,bf16")
    p.add_argument("--jobs", type=int, default=12, help="processes compiling kernels before timing")
    p.add_argument("--time-budget", type=float, default=1e9, help="seconds; stop compiling/sweeping after this")
    p.add_argument("--no-table", action="store_true", help="skip the main table (sweep/profile only)")
    p.add_argument("--profile", action="store_true", help="print a CPU/GPU breakdown of two forward+backward calls")
    p.add_argument("--resources", type=int, metavar="ARCH", default=0,
                   help="no GPU needed: compile the default configurations for sm_ARCH (e.g. 90) and print "
                        "registers/spills per thread (cuobjdump), then exit")
    args = p.parse_args()
    if args.resources:
        res = resources(args.resources, args.dtypes.split(","))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(arch=f"sm_{args.resources}", rows=res), indent=1))
        return 0
    if not torch.cuda.is_available():
        print("CUDA is required", file=sys.stderr)
        return 2
    import triton

    t_start = time.time()
    batches = [int(v) for v in args.batches.split(",")]
    dtypes = args.dtypes.split(",")
    result: Dict[str, Any] = dict(
        device=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
        cudnn=torch.backends.cudnn.version(), timing="triton.testing.do_bench median, warmup 10 ms, rep 60 ms",
        command=" ".join(sys.argv))

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))

    tasks = table_tasks(batches, dtypes)
    sweeps = sweep_tasks(args.sweep_dtypes.split(","), 64) if args.sweep else []
    if args.no_table:
        tasks = []
    checks = precompile((check_tasks() if args.checks else []) + tasks + sweeps, args.jobs,
                        deadline=t_start + args.time_budget)
    if args.profile:
        profile(64, 160, 28, 13, "fp32", False)
        profile(1, 80, 56, 3, "fp32", False)
    if args.checks:
        bad = [c for c in checks if not c["ok"]]
        worst = {d: max((max(c["rel_err"].values()) for c in checks if c["dtype"] == d and "rel_err" in c),
                        default=float("nan")) for d in ("fp32", "bf16", "fp16")}
        result["checks"] = dict(n=len(checks), n_failed=len(bad), failed=bad, worst_rel_err=worst,
                                tolerance=CHECK_TOL, cases="B,C,H,W,KH,KW: " + str(CHECK_CASES))
        print(f"checks: {len(checks) - len(bad)}/{len(checks)} passed; worst relative error per dtype {worst}",
              flush=True)
        for c in bad[:10]:
            print("  FAILED", c, flush=True)
        save()

    if tasks:
        timed = {}
        for t in tasks:
            r = run_task(t, timed=True)
            key = (t["b"], t["c"], t["hw"], t["k"], t["dtype"], t["kind"], f"{t['impl']}_{t['layout']}")
            timed[key] = r.get("ms", float("nan"))
            if "error" in r:
                print("ERROR", r, flush=True)
        rows = []
        for b in batches:
            for (c, hw, k) in SHAPES:
                for d in dtypes:
                    row: Dict[str, Any] = dict(b=b, c=c, hw=hw, k=k, dtype=d)
                    for kind in ("fwd", "fwdbwd"):
                        row[f"{kind}_ms"] = {name: timed[(b, c, hw, k, d, kind, name)] for name in
                                             ("triton_nchw", "triton_channels_last", "torch_nchw", "torch_channels_last")}
                        ms = row[f"{kind}_ms"]
                        row[f"{kind}_speedup"] = (min(ms["torch_nchw"], ms["torch_channels_last"])
                                                  / min(ms["triton_nchw"], ms["triton_channels_last"]))
                    best = min(row["fwd_ms"]["triton_nchw"], row["fwd_ms"]["triton_channels_last"]) * 1e-3
                    elt = DTYPES[d].itemsize
                    row["tflops"] = 2.0 * b * c * hw * hw * k * k / best / 1e12
                    row["gbps"] = (2.0 * b * c * hw * hw + c * k * k) * elt / best / 1e9
                    row["err"] = errors_vs_torch(b, c, hw, k, d, cl=False)
                    row["err_channels_last"] = errors_vs_torch(b, c, hw, k, d, cl=True)
                    rows.append(row)
        result["rows"] = rows
        save()
        print(format_rows(rows), flush=True)
        print("speedup = best torch layout / best triton layout (ms); TFLOP/s, GB/s: best triton forward; "
              "err: max |triton - torch| forward, NCHW", flush=True)

    if sweeps:
        out = []
        for t in sweeps:
            if time.time() - t_start > args.time_budget + 60:
                print("time budget reached; sweep truncated", flush=True)
                break
            out.append(run_task(t, timed=True))
        result["sweep"] = out
        save()
        best: Dict[Tuple, Dict[str, Any]] = {}
        for r in out:
            key = (r["kind"], r["c"], r["hw"], r["k"], r["dtype"], r["layout"])
            if "ms" in r and (key not in best or r["ms"] < best[key]["ms"]):
                best[key] = r
        for key, r in sorted(best.items(), key=lambda kv: str(kv[0])):
            print("best", key, f"{r['ms']:.4f} ms", r["cfg"], flush=True)
        errs = [r for r in out if "error" in r]
        for r in errs[:5]:
            print("sweep error", r, flush=True)
    print(f"total {time.time() - t_start:.0f}s; wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
