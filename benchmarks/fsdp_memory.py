"""Per-rank training memory of a UniRepLKNet variant under DDP vs FSDP2, 2 gloo processes on the CPU.

    python benchmarks/fsdp_memory.py                        # unireplknet_xl: FSDP measured, DDP computed
    python benchmarks/fsdp_memory.py --model s --ddp real   # a smaller variant: both measured

Measured (per rank, after one AdamW step at batch 1, ``--size`` x ``--size`` input): bytes of the
local parameter, gradient and optimizer-state tensors (the local shards under FSDP) and the peak
RSS of the process. The model is built on the meta device and materialised after sharding, so no
rank ever holds the whole model under FSDP. ``--ddp computed`` (default; XL under DDP needs
~6.2 GB per rank for parameters + gradients + AdamW, plus DDP's gradient buckets, more than this
machine can spare twice) counts the same tensors from the meta-device model instead of running DDP.

Activation estimate at 224x224, batch 1, float32 (one forward on the meta device, no memory):
``no checkpointing`` sums the outputs of every leaf module (roughly what autograd keeps for the
backward); ``per-block checkpointing`` (what ``shard_model`` applies) keeps the block inputs plus one
block's internals at a time. Results: a table, and JSON in benchmarks/results/fsdp_memory.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from unireplknet.model import VARIANTS, UniRepLKNet

GB = 1024 ** 3


def build(variant: str, device: str = "meta") -> nn.Module:
    with torch.device(device):
        return UniRepLKNet(**VARIANTS[variant], num_classes=1000)


def local_bytes(t: torch.Tensor) -> int:
    if hasattr(t, "to_local"):
        t = t.to_local()
    return t.numel() * t.element_size()


def activation_estimate(variant: str, size: int) -> dict:
    model = build(variant).train()
    leaf_out: list[tuple[str, int]] = []

    def hook(mod, inp, out):
        outs = out if isinstance(out, (tuple, list)) else (out,)
        leaf_out.append((mod._name, sum(o.numel() * o.element_size() for o in outs if isinstance(o, torch.Tensor))))

    for name, m in model.named_modules():
        m._name = name
        if not list(m.children()):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    total = sum(b for _, b in leaf_out)
    blocks = [f"stages.{i}.{j}" for i, s in enumerate(model.stages) for j in range(len(s))]
    per_block = {b: sum(n for name, n in leaf_out if name.startswith(b + ".")) for b in blocks}
    outside = sum(n for name, n in leaf_out if not any(name.startswith(b + ".") for b in blocks))
    block_inputs = 0
    for i, s in enumerate(model.stages):  # a block's input = the stage's feature map
        first = per_block[f"stages.{i}.0"]
        out_sizes = [n for name, n in leaf_out if name.startswith(f"stages.{i}.0.")]
        block_inputs += len(s) * (out_sizes[-1] if out_sizes else first)
    ckpt = outside + block_inputs + max(per_block.values())
    return {"input": size, "batch": 1, "no_checkpointing_bytes": total, "per_block_checkpointing_bytes": ckpt}


def ddp_computed(variant: str) -> dict:
    model = build(variant)
    params = [p for p in model.parameters() if p.requires_grad]
    p = sum(local_bytes(t) for t in params)
    return {"params": p, "grads": p, "optim": 2 * p + 4 * len(params), "ddp_buckets": p,
            "peak_rss": None, "how": "computed (meta device)"}


def _worker(rank: int, world: int, port: int, variant: str, mode: str, size: int, q) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(rank)
    model = build(variant)
    if mode == "fsdp":
        from unireplknet.engine.fsdp import shard_model

        shard_model(model, checkpoint_activations=True)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            (p.to_local() if hasattr(p, "to_local") else p).uniform_(-0.02, 0.02)
        for name, b in model.named_buffers():
            (b.to_local() if hasattr(b, "to_local") else b).fill_(1.0 if "var" in name else 0.0)
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model)
    else:
        net = model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(1, 3, size, size)
    t0 = time.perf_counter()
    net(x).float().pow(2).mean().backward()
    opt.step()
    step_s = time.perf_counter() - t0
    res = {
        "params": sum(local_bytes(p) for p in model.parameters()),
        "grads": sum(local_bytes(p.grad) for p in model.parameters() if p.grad is not None),
        "optim": sum(local_bytes(v) for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)),
        "ddp_buckets": None,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "step_s": step_s,
        "how": "measured",
    }
    dist.barrier()
    dist.destroy_process_group()
    q.put((rank, res))


def measure(variant: str, mode: str, size: int, world: int = 2) -> list[dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, world, port, variant, mode, size, q)) for r in range(world)]
    for p in procs:
        p.start()
    out = dict(q.get(timeout=3600) for _ in procs)
    for p in procs:
        p.join()
    return [out[r] for r in range(world)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="xl", choices=sorted(VARIANTS))
    ap.add_argument("--size", type=int, default=64, help="input size of the measured step")
    ap.add_argument("--ddp", choices=("computed", "real"), default="computed")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "fsdp_memory.json"))
    args = ap.parse_args()
    n_params = sum(p.numel() for p in build(args.model).parameters())
    rows = {"fsdp": measure(args.model, "fsdp", args.size)}
    rows["ddp"] = measure(args.model, "ddp", args.size) if args.ddp == "real" else [ddp_computed(args.model)] * 2
    act = activation_estimate(args.model, 224)
    print(f"unireplknet_{args.model}: {n_params / 1e6:.1f}M parameters; 2 gloo processes on the CPU, batch 1, "
          f"{args.size}x{args.size}, one AdamW step")
    print(f"{'mode':<5} {'rank':>4} {'params GB':>10} {'grads GB':>9} {'AdamW GB':>9} {'sum GB':>7} "
          f"{'peak RSS GB':>12}  how")
    for mode in ("ddp", "fsdp"):
        for r, m in enumerate(rows[mode]):
            tot = m["params"] + m["grads"] + m["optim"]
            rss = f"{m['peak_rss'] / GB:12.2f}" if m["peak_rss"] else f"{'-':>12}"
            extra = f" (+{m['ddp_buckets'] / GB:.2f} GB DDP buckets)" if m.get("ddp_buckets") else ""
            print(f"{mode:<5} {r:>4} {m['params'] / GB:10.2f} {m['grads'] / GB:9.2f} {m['optim'] / GB:9.2f} "
                  f"{tot / GB:7.2f} {rss}  {m['how']}{extra}")
    print(f"activations at 224x224, batch 1 (estimate): {act['no_checkpointing_bytes'] / GB:.2f} GB without "
          f"checkpointing, {act['per_block_checkpointing_bytes'] / GB:.2f} GB with per-block checkpointing")
    record = {"model": f"unireplknet_{args.model}", "params": n_params, "world_size": 2, "backend": "gloo",
              "device": "cpu", "input": args.size, "batch": 1, "torch": torch.__version__,
              "per_rank": rows, "activations_224": act}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
