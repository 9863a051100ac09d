"""Training throughput (img/s) and peak memory: UniRepLKNet-A/T (fast and plain training path) vs timm ConvNeXt.

    python benchmarks/train_throughput.py --threads 2                      # CPU, fp32, batch 16, 224 px
    python benchmarks/train_throughput.py --original /path/to/unireplknet.py   # also the authors' implementation
    python benchmarks/train_throughput.py --device cuda --amp

Speed: every model is measured IN ONE PROCESS, one after another. A step is forward + cross-entropy +
backward + AdamW step on a fixed random batch (``--batch-size``, default 16, ``--size`` px, fp32 unless
``--amp``). After ``--warmup`` steps the median of ``--repeats`` timed steps (wall clock) gives img/s.
"fast" is unireplknet's fast training path (``unireplknet.ops.set_fast_training(True)``, the default),
"plain" the same model with it off. Also reported: the process CPU time of the median step.

Peak memory: one subprocess per model at ``--mem-batch-size`` (default 32) runs warm-up + 2 steps and
reports its peak RSS (``ru_maxrss``) minus the RSS after building the model and the batch (so the
interpreter, libraries and weights are excluded); on CUDA ``torch.cuda.max_memory_allocated``.
Writes ``benchmarks/results/train_throughput.json`` (``--out``).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ("unireplknet_t", "unireplknet_t:plain", "convnext_tiny",
                  "unireplknet_a", "unireplknet_a:plain", "convnext_atto")


def _build(spec: str, original: Optional[str]) -> Any:
    """``name[:plain|:original]`` -> (model, fast flag)."""
    import torch

    name, _, mode = spec.partition(":")
    torch.manual_seed(0)
    if mode == "original":
        if not original:
            raise SystemExit(f"{spec} needs --original PATH")
        mod_spec = importlib.util.spec_from_file_location("unireplknet_original", original)
        assert mod_spec is not None and mod_spec.loader is not None
        mod = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(mod)
        return getattr(mod, name)(num_classes=1000), False
    if name.startswith("unireplknet"):
        import unireplknet

        return unireplknet.create_model(name, num_classes=1000), mode != "plain"
    import timm

    return timm.create_model(name, num_classes=1000), True


def _stepper(spec: str, args: argparse.Namespace, batch: int) -> Callable[[], None]:
    import torch

    from unireplknet.ops import set_fast_training

    model, fast = _build(spec, args.original)
    device = torch.device(args.device)
    model = model.to(device).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, args.size, args.size, generator=g).to(device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), generator=g).to(device)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and device.type == "cuda")

    def step() -> None:
        set_fast_training(fast)
        with torch.autocast(device.type, dtype=torch.bfloat16 if device.type == "cpu" else torch.float16,
                            enabled=args.amp):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def measure_speed(spec: str, args: argparse.Namespace) -> Dict[str, Any]:
    """Warm-up, then the median of ``args.repeats`` timed steps (run in this process)."""
    step = _stepper(spec, args, args.batch_size)
    for _ in range(args.warmup):
        step()
    walls: List[float] = []
    cpus: List[float] = []
    for _ in range(args.repeats):
        w, c = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    wall = statistics.median(walls)
    return {"model": spec, "img_s": round(args.batch_size / wall, 3), "step_s": [round(t, 3) for t in walls],
            "cpu_s_median": round(statistics.median(cpus), 3)}


def measure_memory_single(spec: str, args: argparse.Namespace) -> Dict[str, Any]:
    """Runs in a subprocess: peak memory of warm-up + 2 steps at ``args.mem_batch_size``."""
    import torch

    step = _stepper(spec, args, args.mem_batch_size)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_mib()
    for _ in range(3):
        step()
    if args.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20 - base / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    return {"model": spec, "peak_mib": round(peak)}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=None,
                   help="specs name[:plain|:original] (default: T, A fast and plain, convnext_tiny/atto)")
    p.add_argument("--original", default=None, help="path to the authors' unireplknet.py (adds ':original' rows)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--mem-batch-size", type=int, default=32)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_throughput.json"))
    p.add_argument("--mem-single", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.mem_single:
        print(json.dumps(measure_memory_single(args.mem_single, args)))
        return 0
    models = list(args.models or DEFAULT_MODELS)
    if args.original and not any(m.endswith(":original") for m in models):
        models += ["unireplknet_t:original", "unireplknet_a:original"]
    t0 = time.time()
    load = os.getloadavg()
    rows = {m: measure_speed(m, args) for m in models}
    for m in models:
        print(f"speed {m}: {rows[m]['img_s']} img/s", file=sys.stderr, flush=True)
    if not args.no_memory:
        passthrough = [a for a in sys.argv[1:]]
        for m in models:
            out = subprocess.run([sys.executable, __file__, *passthrough, "--mem-single", m],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"memory {m} failed: {out.stderr[-2000:]}", file=sys.stderr)
                continue
            rows[m].update(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"memory {m}: {rows[m]['peak_mib']} MiB", file=sys.stderr, flush=True)

    def ratio(a: str, b: str, key: str) -> Optional[float]:
        if a in rows and b in rows and key in rows[a] and key in rows[b]:
            return round(rows[a][key] / rows[b][key], 3)
        return None

    ratios = {
        "unireplknet_t/convnext_tiny img_s": ratio("unireplknet_t", "convnext_tiny", "img_s"),
        "unireplknet_a/convnext_atto img_s": ratio("unireplknet_a", "convnext_atto", "img_s"),
        "unireplknet_t/convnext_tiny peak memory": ratio("unireplknet_t", "convnext_tiny", "peak_mib"),
        "unireplknet_a/convnext_atto peak memory": ratio("unireplknet_a", "convnext_atto", "peak_mib"),
        "unireplknet_t fast/plain img_s": ratio("unireplknet_t", "unireplknet_t:plain", "img_s"),
        "unireplknet_a fast/plain img_s": ratio("unireplknet_a", "unireplknet_a:plain", "img_s"),
        "unireplknet_t fast/plain peak memory": ratio("unireplknet_t", "unireplknet_t:plain", "peak_mib"),
    }
    meta = {
        "device": args.device, "amp": args.amp, "size": args.size, "batch_size": args.batch_size,
        "mem_batch_size": args.mem_batch_size, "threads": args.threads, "nproc": os.cpu_count(),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "warmup": args.warmup, "repeats": args.repeats, "loadavg_start": [round(v, 2) for v in load],
        "loadavg_end": [round(v, 2) for v in os.getloadavg()], "wall_s": round(time.time() - t0),
        "command": "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:]),
    }
    mem = "peak GPU MiB" if args.device.startswith("cuda") else "peak RSS MiB (delta)"
    print(f"# training step (fwd+bwd+AdamW): {args.size}px, batch {args.batch_size}, device {args.device}, "
          f"amp {args.amp}, torch {torch.__version__}, threads {args.threads}, nproc {os.cpu_count()}, "
          f"load {meta['loadavg_start']} -> {meta['loadavg_end']}")
    print(f"| model | train img/s (median of {args.repeats}) | CPU s/step | {mem} @ batch {args.mem_batch_size} |")
    print("|---|---|---|---|")
    for m in models:
        r = rows[m]
        print(f"| {m} | {r['img_s']} | {r['cpu_s_median']} | {r.get('peak_mib', '-')} |")
    for k, v in ratios.items():
        if v is not None:
            print(f"{k}: {v}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": list(rows.values()), "ratios": ratios}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
