"""Training throughput (img/s) and peak memory of UniRepLKNet-A/T next to timm ConvNeXt-atto/tiny,
all trained by the same engine (unireplknet.engine.Trainer) on synthetic 224x224 data.

    python benchmarks/train_throughput.py                  # CPU, batch 32, 224 px
    python benchmarks/train_throughput.py --steps 5 --device cuda --amp

Each model runs in its own process (so peak RSS is per model): one warm-up epoch of
``--steps`` updates, then a timed epoch of ``--steps`` updates. CPU peak memory is the
process's max RSS; CUDA peak memory is ``torch.cuda.max_memory_allocated``.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile

MODELS = ("unireplknet_a", "unireplknet_t", "convnext_atto", "convnext_tiny")


def measure(name: str, args: argparse.Namespace) -> dict:
    import torch
    from torch.utils.data import TensorDataset

    import unireplknet
    from unireplknet import engine

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if name.startswith("unireplknet"):
        model = unireplknet.create_model(name, num_classes=1000)
    else:
        import timm

        model = timm.create_model(name, num_classes=1000)
    n = args.batch_size * args.steps
    ds = TensorDataset(torch.randn(n, 3, args.size, args.size), torch.randint(0, 1000, (n,)))
    cfg = engine.EngineConfig.from_dict(dict(
        epochs=2, batch_size=args.batch_size, lr=1e-3, warmup_epochs=0, num_workers=0, device=args.device,
        amp=args.amp, deploy=False, grad_checkpointing=args.grad_checkpointing, channels_last=args.channels_last))
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = engine.Trainer(model, engine.make_loader(ds, cfg, train=True), None,
                                 torch.nn.functional.cross_entropy, None, cfg, run_dir)
        if trainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer.fit()
        img_s = trainer.metrics.history[-1]["train_img_s"]
    if trainer.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return {"model": name, "params_m": round(params, 2), "img_s": round(img_s, 2), "peak_mib": round(peak)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=2, help="updates per epoch (1 warm-up epoch + 1 timed epoch)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--single", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.single:
        print(json.dumps(measure(args.single, args)))
        return 0
    rows = []
    passthrough = [a for a in sys.argv[1:]]
    for name in args.models:
        out = subprocess.run([sys.executable, __file__, *passthrough, "--single", name], capture_output=True,
                             text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"done {name}", file=sys.stderr)
    import torch

    mem = "peak GPU MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    print(f"# training throughput: {args.size}px, batch {args.batch_size}, device {args.device}, "
          f"amp {args.amp}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads {args.threads or torch.get_num_threads()}")
    print(f"| model | params (M) | train img/s | {mem} |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params_m']} | {r['img_s']} | {r['peak_mib']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
