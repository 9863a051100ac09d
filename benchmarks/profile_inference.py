"""Operator-level CPU profile of one forward pass in a benchmark mode (torch.profiler), to see what limits speed.

    python benchmarks/profile_inference.py --model unireplknet_t --mode deploy --batch-size 16
    python benchmarks/profile_inference.py --model unireplknet_a --mode optimized-compile --batch-size 16
"""
from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

import unireplknet
from unireplknet.benchmark import MODES, build_runner


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="unireplknet_t")
    p.add_argument("--mode", default="deploy", choices=MODES)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rows", type=int, default=15)
    p.add_argument("--by-shape", action="store_true", help="group by input shapes")
    args = p.parse_args()
    x = torch.randn(args.batch_size, 3, args.size, args.size)
    run = build_runner(unireplknet.create_model(args.model), args.mode, x)
    with torch.inference_mode():
        run(x)
        run(x)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=args.by_shape) as prof:
            run(x)
    table = prof.key_averages(group_by_input_shape=args.by_shape)
    print(table.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
