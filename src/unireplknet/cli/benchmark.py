"""``unireplknet benchmark``: img/s, batch-1 latency, peak memory, params and MACs per execution mode."""
from __future__ import annotations

import argparse

_DEFAULT_MODES = "deploy,channels-last,optimized"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``benchmark`` sub-command."""
    p = subparsers.add_parser(
        "benchmark", help="throughput, latency, memory, params and MACs in several execution modes",
        description="Times the modes interleaved (median of repeats); speed-ups are relative to 'deploy' "
                    "(re-parameterized, NCHW, no compile) from the same run.",
    )
    p.add_argument("--model", default="unireplknet_a", help="variant (default unireplknet_a)")
    p.add_argument("--modes", default=_DEFAULT_MODES,
                   help=f"comma-separated, from eager, deploy, channels-last, compile, optimized, optimized-compile, "
                        f"optimized-cudagraphs (CUDA), bf16, onnxruntime (default {_DEFAULT_MODES})")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-size", type=int, nargs=3, default=(3, 224, 224), metavar=("C", "H", "W"))
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--latency-iters", type=int, default=10, help="batch-1 timings for p50/p90 (0 skips)")
    p.add_argument("--no-gemm-peak", action="store_true", help="skip the GEMM peak measurement")
    p.add_argument("-o", "--output", "--json", dest="json", default=None, help="write the results here as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print a Markdown table."""
    import platform

    import torch

    from . import UserError
    from ..benchmark import MODES, benchmark_modes, check_input_size, format_table, save_json
    from ..factory import create_model

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise UserError(f"unknown mode(s) {bad or modes}; choose from {', '.join(MODES)}")
    check_input_size(args.input_size, args.batch_size)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda asked for but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = create_model(args.model, num_classes=args.num_classes, in_chans=args.input_size[0])
    results = benchmark_modes(
        model, modes, batch_size=args.batch_size, input_size=args.input_size, device=args.device,
        warmup=args.warmup, repeats=args.repeats, latency_iters=args.latency_iters, gemm_peak=not args.no_gemm_peak,
    )
    print(f"{args.model}, batch {args.batch_size}, input {tuple(args.input_size)}, {args.device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(format_table(results))
    if args.json:
        path = save_json(results, args.json, model=args.model, torch=torch.__version__, threads=torch.get_num_threads(),
                         machine=platform.processor() or platform.machine(), cpu_count=torch.get_num_threads())
        print(f"wrote {path}")
    return 0
