"""Training throughput (img/s) and peak memory: UniRepLKNet-A/T (fast and plain training path) vs timm ConvNeXt.

    python benchmarks/train_throughput.py --threads 2                      # CPU, fp32, batch 16, 224 px
    python benchmarks/train_throughput.py --original /path/to/unireplknet.py   # also the authors' implementation
    python benchmarks/train_throughput.py --device cuda --amp                        # fp16 autocast on CUDA
    python benchmarks/train_throughput.py --device cuda --amp --amp-dtype bfloat16   # bf16 autocast

Speed: every model is measured IN ONE PROCESS, interleaved: all models are built, each gets ``--warmup``
steps, then ``--repeats`` rounds each time one step of every model in turn (so a burst of load on a shared
machine hits all models alike). A step is forward + cross-entropy + backward + AdamW step on a fixed random
batch (``--batch-size``, default 16, ``--size`` px, fp32 unless ``--amp``); the median of the timed steps
(wall clock) gives img/s, and each ratio is also given as the median of the per-round ratios with its
min-max range (the noise).
"fast" is unireplknet's fast training path (``unireplknet.ops.set_fast_training(True)``, the default,
with the engine's fused AdamW step and the compiled Dilated Reparam Block kernels of
``unireplknet.ops.native`` when they build), ``name:nonative`` the fast path on PyTorch's kernels only
(``set_native_kernels(False)``), "plain" the model with all of it off (per-parameter AdamW loop); timm
models get the fused AdamW step as well (``--no-fused-optimizer``: the loop for every model). Also reported:
the process CPU time of the median step.

Peak memory: one subprocess per model at ``--mem-batch-size`` (default 32) runs warm-up + 2 steps and
reports its peak RSS (``ru_maxrss``) minus the RSS after building the model and the batch (so the
interpreter, libraries and weights are excluded); on CUDA ``torch.cuda.max_memory_allocated``. glibc's
dynamic mmap threshold lets freed tensors below 32 MiB stay in a fragmented heap, so this RSS depends on
tensor sizes as well as on what the step keeps alive; ``--mem-mmap-threshold 1048576`` adds a second
measurement with the threshold fixed (every tensor from 1 MiB up is returned to the OS when freed).
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
    """``name[:plain|:nonative|:original]`` -> (model, fast flag)."""
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
    from unireplknet.ops.fast_train import set_drb_recompute
    from unireplknet.ops.native import set_native_kernels

    set_drb_recompute({"true": True, "false": False}.get(args.drb_recompute, args.drb_recompute))
    model, fast = _build(spec, args.original)
    use_native = spec.partition(":")[2] != "nonative"
    device = torch.device(args.device)
    model = model.to(device).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # the engine's optimizer: fused AdamW step with the fast path (and for timm), the per-parameter loop for ":plain"
    fused = fast and not args.no_fused_optimizer
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05, fused=fused or None)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, args.size, args.size, generator=g).to(device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), generator=g).to(device)
    amp_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[
        args.amp_dtype or ("bfloat16" if device.type == "cpu" else "float16")]
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and amp_dtype == torch.float16)

    def step() -> None:
        set_fast_training(fast)
        set_native_kernels(use_native)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=args.amp):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def _native_status() -> str:
    """Whether the compiled Dilated Reparam Block kernels were used (or why not)."""
    from unireplknet.ops import native

    return native.status()


def measure_speed(specs: List[str], args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """Warm-up of every model, then ``args.repeats`` rounds of one timed step per model (run in this process)."""
    steps = {spec: _stepper(spec, args, args.batch_size) for spec in specs}
    for spec in specs:
        for _ in range(args.warmup):
            steps[spec]()
    walls: Dict[str, List[float]] = {spec: [] for spec in specs}
    cpus: Dict[str, List[float]] = {spec: [] for spec in specs}
    for _ in range(args.repeats):
        for spec in specs:
            w, c = time.perf_counter(), time.process_time()
            steps[spec]()
            walls[spec].append(time.perf_counter() - w)
            cpus[spec].append(time.process_time() - c)
    return {
        spec: {"model": spec, "img_s": round(args.batch_size / statistics.median(walls[spec]), 3),
               "step_s": [round(t, 3) for t in walls[spec]], "cpu_s_median": round(statistics.median(cpus[spec]), 3)}
        for spec in specs
    }


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
                   help="specs name[:plain|:nonative|:original] (default: T, A fast and plain, convnext_tiny/atto)")
    p.add_argument("--original", default=None, help="path to the authors' unireplknet.py (adds ':original' rows)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--mem-batch-size", type=int, default=32)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--amp-dtype", choices=["float16", "bfloat16"], default=None,
                   help="autocast dtype with --amp (default: bfloat16 on CPU, float16 on CUDA, with a grad scaler)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--mem-mmap-threshold", type=int, default=0,
                   help="also measure peak memory with glibc's MALLOC_MMAP_THRESHOLD_ fixed to this many bytes "
                        "(e.g. 1048576): without heap fragmentation, which the default dynamic threshold allows")
    p.add_argument("--drb-recompute", default="dilated", choices=["true", "false", "large", "dilated"],
                   help="Dilated Reparam Block fast path: which branch outputs backward recomputes (default dilated)")
    p.add_argument("--no-fused-optimizer", action="store_true",
                   help="per-parameter AdamW loop for every model (default: fused AdamW except for ':plain' rows)")
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
    rows = measure_speed(models, args)
    for m in models:
        print(f"speed {m}: {rows[m]['img_s']} img/s", file=sys.stderr, flush=True)
    if not args.no_memory:
        passthrough = [a for a in sys.argv[1:]]
        variants = [("peak_mib", None)]
        if args.mem_mmap_threshold:
            variants.append(("peak_mib_fixed_mmap", str(args.mem_mmap_threshold)))
        for m in models:
            for key, threshold in variants:
                env = dict(os.environ)
                if threshold is not None:
                    env["MALLOC_MMAP_THRESHOLD_"] = threshold
                out = subprocess.run([sys.executable, __file__, *passthrough, "--mem-single", m],
                                     capture_output=True, text=True, env=env)
                if out.returncode != 0:
                    print(f"memory {m} failed: {out.stderr[-2000:]}", file=sys.stderr)
                    continue
                rows[m][key] = json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]
                print(f"memory {m} ({key}): {rows[m][key]} MiB", file=sys.stderr, flush=True)

    def ratio(a: str, b: str, key: str) -> Optional[float]:
        if a in rows and b in rows and key in rows[a] and key in rows[b]:
            return round(rows[a][key] / rows[b][key], 3)
        return None

    def round_ratios(a: str, b: str) -> Optional[Dict[str, float]]:
        """Speed ratio a/b per round (b's step time over a's): median, min and max."""
        if a not in rows or b not in rows:
            return None
        per = [tb / ta for ta, tb in zip(rows[a]["step_s"], rows[b]["step_s"])]
        return {"median": round(statistics.median(per), 3), "min": round(min(per), 3), "max": round(max(per), 3)}

    ratios = {
        "unireplknet_t/convnext_tiny img_s": ratio("unireplknet_t", "convnext_tiny", "img_s"),
        "unireplknet_a/convnext_atto img_s": ratio("unireplknet_a", "convnext_atto", "img_s"),
        "unireplknet_t/convnext_tiny peak memory": ratio("unireplknet_t", "convnext_tiny", "peak_mib"),
        "unireplknet_a/convnext_atto peak memory": ratio("unireplknet_a", "convnext_atto", "peak_mib"),
        "unireplknet_t fast/plain img_s": ratio("unireplknet_t", "unireplknet_t:plain", "img_s"),
        "unireplknet_a fast/plain img_s": ratio("unireplknet_a", "unireplknet_a:plain", "img_s"),
        "unireplknet_t fast/plain peak memory": ratio("unireplknet_t", "unireplknet_t:plain", "peak_mib"),
        "unireplknet_t native/nonative img_s": ratio("unireplknet_t", "unireplknet_t:nonative", "img_s"),
        "unireplknet_a native/nonative img_s": ratio("unireplknet_a", "unireplknet_a:nonative", "img_s"),
        "unireplknet_t/convnext_tiny peak memory, fixed mmap threshold":
            ratio("unireplknet_t", "convnext_tiny", "peak_mib_fixed_mmap"),
        "unireplknet_a/convnext_atto peak memory, fixed mmap threshold":
            ratio("unireplknet_a", "convnext_atto", "peak_mib_fixed_mmap"),
    }
    per_round = {
        "unireplknet_t/convnext_tiny img_s": round_ratios("unireplknet_t", "convnext_tiny"),
        "unireplknet_a/convnext_atto img_s": round_ratios("unireplknet_a", "convnext_atto"),
        "unireplknet_t fast/plain img_s": round_ratios("unireplknet_t", "unireplknet_t:plain"),
        "unireplknet_a fast/plain img_s": round_ratios("unireplknet_a", "unireplknet_a:plain"),
        "unireplknet_t native/nonative img_s": round_ratios("unireplknet_t", "unireplknet_t:nonative"),
        "unireplknet_a native/nonative img_s": round_ratios("unireplknet_a", "unireplknet_a:nonative"),
    }
    meta = {
        "device": args.device, "amp": args.amp, "amp_dtype": args.amp_dtype, "size": args.size,
        "batch_size": args.batch_size,
        "mem_batch_size": args.mem_batch_size, "threads": args.threads, "nproc": os.cpu_count(),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "warmup": args.warmup, "repeats": args.repeats, "drb_recompute": args.drb_recompute,
        "fused_optimizer": not args.no_fused_optimizer, "native_kernels": _native_status(), "loadavg_start": [round(v, 2) for v in load],
        "loadavg_end": [round(v, 2) for v in os.getloadavg()], "wall_s": round(time.time() - t0),
        "command": "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:]),
    }
    mem = "peak GPU MiB" if args.device.startswith("cuda") else "peak RSS MiB (delta)"
    print(f"# training step (fwd+bwd+AdamW): {args.size}px, batch {args.batch_size}, device {args.device}, "
          f"amp {args.amp}, torch {torch.__version__}, threads {args.threads}, nproc {os.cpu_count()}, "
          f"load {meta['loadavg_start']} -> {meta['loadavg_end']}")
    print(f"# compiled Dilated Reparam Block kernels: {meta['native_kernels']}")
    print(f"| model | train img/s (median of {args.repeats}) | CPU s/step | {mem} @ batch {args.mem_batch_size} "
          f"| same, fixed mmap threshold |")
    print("|---|---|---|---|---|")
    for m in models:
        r = rows[m]
        print(f"| {m} | {r['img_s']} | {r['cpu_s_median']} | {r.get('peak_mib', '-')} | "
              f"{r.get('peak_mib_fixed_mmap', '-')} |")
    for k, v in ratios.items():
        if v is not None:
            print(f"{k}: {v}")
    for k, pr in per_round.items():
        if pr is not None:
            print(f"{k} per round: median {pr['median']} (min {pr['min']}, max {pr['max']})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": list(rows.values()), "ratios": ratios,
                                          "per_round_ratios": per_round}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
