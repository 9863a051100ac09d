"""Same-process A/B of the Dilated Reparam Block's recompute policies in a full training step (CPU).

    python benchmarks/drb_recompute_ab.py --model unireplknet_t --threads 1 --rounds 4
    python benchmarks/drb_recompute_ab.py --model unireplknet_a --rounds 8 --policies large,dilated,false

One model, one fixed batch (16 x 3 x 224², fp32, fused AdamW as in ``train_throughput.py``); each round runs
one step under every policy in turn (``unireplknet.ops.fast_train.set_drb_recompute``), so load on a shared
machine hits all policies alike. Printed: the median process CPU seconds per step of each policy and its
per-round values. Peak memory per policy: ``train_throughput.py --mem-single MODEL --drb-recompute POLICY``.
"""
from __future__ import annotations

import argparse
import statistics
from typing import Union


def _policy(name: str) -> Union[bool, str]:
    return {"true": True, "false": False}.get(name, name)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="unireplknet_t")
    p.add_argument("--policies", default="large,dilated,false", help="comma-separated: true, false, large, dilated")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args()

    from step_ab import ab_steps

    from unireplknet.ops.fast_train import set_drb_recompute

    policies = [s.strip() for s in args.policies.split(",") if s.strip()]
    variants = {name: (lambda name=name: set_drb_recompute(_policy(name))) for name in policies}
    try:
        cpu, _ = ab_steps(args.model, variants, args.rounds, args.threads, args.batch_size, args.size)
    finally:
        set_drb_recompute("dilated")
    print(f"# {args.model}, batch {args.batch_size}, {args.size}px, {args.threads} thread(s), {args.rounds} rounds: "
          "CPU s per training step")
    for name in policies:
        print(f"{name:8s} median {statistics.median(cpu[name]):.3f}  rounds {[round(v, 2) for v in cpu[name]]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
