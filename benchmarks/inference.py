"""Reproduce the '## Inference (CPU)' table of BENCHMARKS.md.

For each UniRepLKNet variant, times the plain deploy model (re-parameterized, NCHW, eager: the
reference), the optimized path (:func:`unireplknet.optimize_for_inference`, eager and compiled)
and timm's ConvNeXt-T as a reference model, all interleaved in one process: batch-16 throughput,
batch-1 latency, and the fraction of the fp32 GEMM peak measured in the same rounds.

    python benchmarks/inference.py --models unireplknet_t unireplknet_a --out runs/bench/inference_cpu.json

Compiling takes minutes per model and batch size on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

import unireplknet
from unireplknet._extras import require
from unireplknet.benchmark import benchmark_modes, format_table


def machine() -> dict:
    """CPU model, core count and library versions."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
    except OSError:
        load = "?"
    return dict(cpu=cpu, torch_threads=torch.get_num_threads(), torch=torch.__version__, python=sys.version.split()[0],
                load_average_1min_at_start=load, unireplknet=unireplknet.__version__)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["unireplknet_t", "unireplknet_a"])
    p.add_argument("--modes", default="deploy,optimized,optimized-compile")
    p.add_argument("--reference", default="convnext_tiny", help="timm model timed beside unireplknet_t ('' = none)")
    p.add_argument("--reference-compile", action="store_true", help="also time the reference under torch.compile")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--latency-iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="benchmarks/results/inference_cpu.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    print(json.dumps(info))
    report = {"meta": dict(info, command=" ".join(sys.argv)), "runs": []}
    for name in args.models:
        model = unireplknet.create_model(name)
        extra = {}
        if args.reference and name == "unireplknet_t":
            timm = require("timm", "timm", "the ConvNeXt reference")
            ref = timm.create_model(args.reference, pretrained=False)
            extra[f"timm {args.reference}"] = ref
            if args.reference_compile:
                extra[f"timm {args.reference} compiled"] = torch.compile(timm.create_model(args.reference).eval())
        t0 = time.perf_counter()
        results = benchmark_modes(model, args.modes.split(","), batch_size=args.batch_size,
                                  input_size=(3, args.size, args.size), repeats=args.repeats,
                                  latency_iters=args.latency_iters, extra_models=extra)
        print(f"\n### {name}, batch {args.batch_size}, {args.size}x{args.size}, fp32, "
              f"{torch.get_num_threads()} threads ({time.perf_counter() - t0:.0f} s)")
        print(format_table(results), flush=True)
        report["runs"].append({"model": name, "results": [r.__dict__ for r in results]})
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
