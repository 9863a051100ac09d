"""Per-operator timings behind two choices of the CPU training path: the dense strided convolutions'
weight gradient as a GEMM (``unireplknet.ops.fast_conv``) and built-in padding for small dilated depthwise
convolutions (``unireplknet.ops.fast_train.NATIVE_DILATED_PAD``).

    python benchmarks/conv_train_paths.py --threads 1
    python benchmarks/conv_train_paths.py --threads 2
    python benchmarks/conv_train_paths.py --threads 2 --step-ab unireplknet_t --rounds 8

Part 1: forward + backward (input, weight and bias gradients) of the four 3x3 stride-2 convolutions of
UniRepLKNet-T at batch 16, 224² input (the stem's second conv and the three downsampling convs), PyTorch's
``F.conv2d`` against :func:`unireplknet.ops.fast_conv.strided_conv_train`, channels-last fp32 input.
Part 2: the forward of a depthwise dilated ``k x k`` convolution at rate ``r`` on a channels-last map, with
built-in padding (``F.conv2d(padding=...)``) against an explicitly zero-padded copy (``padding=0``), for the
branch shapes of the Dilated Reparam Blocks. Milliseconds per call, median of ``--repeats`` timings of
``--iters`` calls each, all in one process.
``--step-ab MODEL``: instead, full training steps of MODEL (batch 16, 224², fp32, fused AdamW; the harness
of ``benchmarks/step_ab.py``) with both choices on (``new``) and both off (``old``: ``nn.Conv2d``'s own
backward, padded copies for every dilated conv), switched every step so that load hits both alike; printed:
median CPU and wall seconds per step and the per-round CPU seconds.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable, Dict, List


def _time(fn: Callable[[], object], iters: int, repeats: int) -> float:
    fn()
    fn()
    runs: List[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        runs.append((time.perf_counter() - t0) / iters * 1e3)
    return statistics.median(runs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--step-ab", default=None, metavar="MODEL", help="A/B of full training steps of this model")
    p.add_argument("--rounds", type=int, default=8, help="--step-ab: steps per variant")
    args = p.parse_args()
    if args.step_ab:
        return _step_ab(args.step_ab, args.threads, args.rounds)

    import torch
    import torch.nn.functional as F

    from unireplknet.ops.fast_conv import strided_conv_train
    from unireplknet.ops.fast_train import WORKSPACE

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cl = torch.channels_last
    results: Dict[str, list] = {"strided": [], "dilated": []}

    print(f"# threads {args.threads}, torch {torch.__version__}")
    print("| strided 3x3/2 conv, in -> out channels @ input size | F.conv2d ms | strided_conv_train ms | ratio |")
    print("|---|---|---|---|")
    for c, o, h in [(40, 80, 112), (80, 160, 56), (160, 320, 28), (320, 640, 14)]:
        x = torch.randn(16, c, h, h).contiguous(memory_format=cl).requires_grad_()
        w = (torch.randn(o, c, 3, 3) * 0.05).requires_grad_()
        b = torch.zeros(o, requires_grad=True)
        g = torch.randn(16, o, h // 2, h // 2).contiguous(memory_format=cl)

        def run(conv: Callable[[], torch.Tensor]) -> Callable[[], None]:
            def step() -> None:
                torch.autograd.grad(conv(), (x, w, b), g)
            return step

        plain = _time(run(lambda: F.conv2d(x, w, b, stride=2, padding=1)), args.iters, args.repeats)
        fast = _time(run(lambda: strided_conv_train(x, w, b, 2, 1)), args.iters, args.repeats)
        results["strided"].append(dict(cin=c, cout=o, size=h, plain_ms=plain, fast_ms=fast))
        print(f"| {c} -> {o} @ {h}² | {plain:.1f} | {fast:.1f} | {fast / plain:.2f} |")
    WORKSPACE.buffers.clear()

    print("\n| depthwise k x k rate r, channels @ size | padded copy ms | built-in padding ms | ratio |")
    print("|---|---|---|---|")
    for c, h in [(160, 28), (320, 14), (640, 7)]:
        x = torch.randn(16, c, h, h).contiguous(memory_format=cl)
        for k, r in [(3, 2), (3, 3), (3, 4), (5, 2), (3, 5), (7, 2)]:
            wt = torch.randn(c, 1, k, k)
            pad = r * (k - 1) // 2
            padded = _time(lambda: F.conv2d(F.pad(x, (pad,) * 4).contiguous(memory_format=cl), wt, dilation=r,
                                            groups=c), args.iters, args.repeats)
            native = _time(lambda: F.conv2d(x, wt, padding=pad, dilation=r, groups=c), args.iters, args.repeats)
            results["dilated"].append(dict(channels=c, size=h, k=k, rate=r, pad=pad, padded_ms=padded,
                                           native_ms=native))
            print(f"| {k}x{k} r{r} (pad {pad}), {c} @ {h}² | {padded:.2f} | {native:.2f} | {native / padded:.2f} |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(dict(threads=args.threads, torch=torch.__version__, **results), fh, indent=1)
    return 0


def _step_ab(name: str, threads: int, rounds: int) -> int:
    import torch
    from step_ab import ab_steps

    from unireplknet.ops import fast_conv, fast_train

    fast_ok, pad = fast_conv.StridedConv2d._fast_ok, fast_train.NATIVE_DILATED_PAD

    def variant(on: bool) -> None:
        fast_train.NATIVE_DILATED_PAD = pad if on else -1
        fast_conv.StridedConv2d._fast_ok = fast_ok if on else (lambda self, t: False)  # type: ignore[method-assign]

    try:
        cpu, wall = ab_steps(name, {"old": lambda: variant(False), "new": lambda: variant(True)}, rounds, threads,
                             warmup=2)
    finally:
        variant(True)
    print(f"# {name}, threads {threads}, {rounds} rounds, torch {torch.__version__}")
    for k in ("old", "new"):
        print(f"{k}: CPU s/step {statistics.median(cpu[k]):.3f}, wall s/step {statistics.median(wall[k]):.3f}, "
              f"per round {[round(v, 2) for v in cpu[k]]}")
    print(f"new/old wall: {statistics.median(wall['new']) / statistics.median(wall['old']):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
