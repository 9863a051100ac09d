"""Which layout the optimized path picks for each convolution, and what forcing one layout costs.

    python benchmarks/conv_layouts.py --model unireplknet_t --batch-size 16                 # CPU
    python benchmarks/conv_layouts.py --model unireplknet_t --batch-size 64 --device cuda   # + Triton

Builds ``optimize_for_inference`` with ``conv_layout="auto"`` (per-shape timing) and with each
layout forced (``nchw``, ``channels_last`` and, on CUDA, ``triton``), then times them
interleaved (median and best of ``--repeats``). Prints the per-shape choices and a table;
writes JSON with ``--out``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter

import torch

import unireplknet
from unireplknet.inference import conv_layout_choices, optimize_for_inference


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="unireplknet_t")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    dev = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = unireplknet.create_model(args.model).to(dev, dtype).eval()
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=dev, dtype=dtype)
    layouts = ["auto", "nchw", "channels_last"] + (["triton"] if dev.type == "cuda" else [])
    runs = {}
    with torch.inference_mode():
        for layout in layouts:
            runs[layout] = optimize_for_inference(model, x, conv_layout=layout)
            runs[layout](x)
        chosen = {f"{k[0]} x {k[1]}": v for k, v in conv_layout_choices().items()
                  if k[0][0] == args.batch_size and k[6] == dtype and k[7] == dev.type}
        times = {k: [] for k in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                sync()
                t0 = time.perf_counter()
                run(x)
                sync()
                times[name].append(time.perf_counter() - t0)
    print(f"{args.model}, batch {args.batch_size}, {args.size}px, {args.dtype}, {dev}")
    print("layouts chosen by 'auto' (input shape, weight shape): layout")
    for k, v in chosen.items():
        print(f"  {k}: {v}")
    print("counts:", dict(Counter(chosen.values())))
    print("| conv layout | img/s (median) | img/s (best) | vs auto (median) |")
    print("|---|---|---|---|")
    auto = statistics.median(times["auto"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {args.batch_size / med:.1f} | {args.batch_size / min(ts):.1f} | {auto / med:.2f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(vars(args), chosen=chosen, times_s=times), f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
