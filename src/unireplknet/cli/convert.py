"""``unireplknet convert IN OUT``: a train-structure checkpoint to deploy-structure safetensors (and .pth)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert`` sub-command."""
    p = subparsers.add_parser(
        "convert", help="re-parameterize a checkpoint into the deploy structure (verified on a probe input)",
        description="Read a train-structure checkpoint (project or official keys), fuse it into the deploy "
                    "structure, check both give the same outputs on a random probe batch, and write "
                    "OUT as .safetensors plus a tensors-only .pth beside it.",
    )
    p.add_argument("input", metavar="IN", help="checkpoint (.pth/.pt/.bin/.safetensors) or a run directory "
                                               "(its deploy.safetensors, else best.pt, else last.pt)")
    p.add_argument("output", metavar="OUT", help="output path ending in .safetensors, .pth or .pt")
    p.add_argument("--probe-size", type=int, default=224, help="side of the random probe images (default 224)")
    p.add_argument("--probe-batch", type=int, default=2, help="probe batch size (default 2)")
    p.add_argument("--no-pth", action="store_true", help="write only the .safetensors file")
    p.add_argument("--allow-nonfinite", action="store_true",
                   help="convert even if the checkpoint holds NaN/inf values (refused by default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert and print the written files and the largest output difference."""
    from pathlib import Path

    from . import UserError
    from ..export import convert_checkpoint

    out = Path(args.output)
    if out.suffix not in (".safetensors", ".pth", ".pt"):
        raise UserError(f"unsupported output format {out.suffix or '(none)'!r} for {out}: use .safetensors, .pth or .pt")
    src = Path(args.input)
    if src.is_dir():  # a run directory: its weights, chosen as eval/predict choose them
        from ..tasks.classification import resolve_run_weights

        src = resolve_run_weights(src)
        print(f"{args.input} is a run directory: converting {src}")
    elif not src.is_file():
        raise UserError(f"checkpoint not found: {args.input}")
    result = convert_checkpoint(src, out, probe_size=args.probe_size, batch_size=args.probe_batch,
                                write_pth=not args.no_pth, allow_nonfinite=args.allow_nonfinite)
    if result.was_deployed:
        print(f"{src} already had the deploy structure: re-saved unchanged")
    for path in result.paths:
        print(f"wrote {path}")
    print(f"max abs difference on probe {tuple(result.probe_shape)}: {result.max_abs_diff:.3g}")
    return 0
