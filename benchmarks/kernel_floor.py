"""How close the optimized path is to the time its GEMMs and convolutions alone take (CPU).

    python benchmarks/kernel_floor.py --models unireplknet_a unireplknet_t --batch-sizes 16 1

For each model and batch size: times the plain deploy model and the optimized path
(``optimize_for_inference``), then times, each on its own with the same shapes, every GEMM
(the fused oneDNN linear layers the optimized path calls) and every convolution (in the
layout the optimized path chose). Their sum is the "kernel floor": what the network would
take if everything else (GELU is fused in; GRN, SE, LayerNorm, copies, Python) were free.
Also prints what the GEMMs would take at the fp32 GEMM peak measured in the same process.

A speed-up target ``r`` over deploy is reachable with these kernels only if
``deploy / r >= kernel floor``. All timings are the best of ``--repeats`` (other jobs only add time).
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from typing import Callable, Dict, List

import torch

import unireplknet
from unireplknet.benchmark import measure_gemm_peak
from unireplknet.inference import FastBlock, NHWCConv, linear_add, linear_gelu, optimize_for_inference


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` calls after one warm-up, in ms."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


@torch.inference_mode()
def analyse(name: str, batch: int, repeats: int, peak: float) -> Dict[str, float]:
    """Deploy, optimized and kernel-floor times (ms) for one model and batch size."""
    model = unireplknet.create_model(name).eval()
    x = torch.randn(batch, 3, 224, 224)
    fast = optimize_for_inference(model, x)
    deploy = copy.deepcopy(model)
    deploy.reparameterize()
    captured: List[tuple] = []
    hooks = [m.register_forward_pre_hook(lambda m, a: captured.append((m, a[0])))
             for m in fast.modules() if isinstance(m, (FastBlock, NHWCConv))]
    fast(x)
    for h in hooks:
        h.remove()
    gemm_ms = conv_ms = gemm_macs = 0.0
    for mod, inp in captured:
        if isinstance(mod, NHWCConv):
            conv_ms += best_ms(lambda: mod(inp), repeats)
            continue
        y = inp if mod.dw is None else mod.dw(inp)
        b, h, w, c = y.shape
        tokens = y.reshape(b * h * w, c)
        hidden = linear_gelu(tokens, mod.w1, mod.b1)
        gemm_ms += best_ms(lambda: linear_gelu(tokens, mod.w1, mod.b1), repeats)
        gemm_ms += best_ms(lambda: linear_add(hidden, tokens, mod.w2, mod.b2), repeats)
        gemm_macs += 2 * tokens.shape[0] * c * mod.w1.shape[0]
    t_deploy = t_fast = float("inf")
    for _ in range(repeats):  # interleaved, so a change of load hits both
        t_deploy = min(t_deploy, best_ms(lambda: deploy(x), 1))
        t_fast = min(t_fast, best_ms(lambda: fast(x), 1))
    return dict(model=name, batch=batch, deploy_ms=t_deploy, optimized_ms=t_fast, gemm_ms=gemm_ms, conv_ms=conv_ms,
                floor_ms=gemm_ms + conv_ms, gemm_at_peak_ms=2 * gemm_macs / peak / 1e6, gemm_peak_gflops=peak)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["unireplknet_a", "unireplknet_t"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 1])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    peak = max(measure_gemm_peak(repeats=5) for _ in range(3))
    print(f"fp32 GEMM peak (best of 15 2048^3 matmuls): {peak:.1f} GFLOP/s, {torch.get_num_threads()} threads")
    print("| model | batch | deploy ms | optimized ms | speed-up | GEMMs ms | convs ms | kernel floor ms "
          "| floor / optimized | GEMMs at peak ms | max speed-up at floor | at GEMM peak |")
    print("|" + "---|" * 12)
    rows = []
    for name in args.models:
        for batch in args.batch_sizes:
            r = analyse(name, batch, args.repeats, peak)
            rows.append(r)
            print(f"| {name} | {batch} | {r['deploy_ms']:.1f} | {r['optimized_ms']:.1f} | "
                  f"{r['deploy_ms'] / r['optimized_ms']:.2f}x | {r['gemm_ms']:.1f} | {r['conv_ms']:.1f} | "
                  f"{r['floor_ms']:.1f} | {r['floor_ms'] / r['optimized_ms']:.0%} | {r['gemm_at_peak_ms']:.1f} | "
                  f"{r['deploy_ms'] / r['floor_ms']:.2f}x | {r['deploy_ms'] / r['gemm_at_peak_ms']:.2f}x |", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(threads=torch.get_num_threads(), torch=torch.__version__, rows=rows), f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
