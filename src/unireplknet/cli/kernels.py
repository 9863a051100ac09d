"""``unireplknet kernels CHECKPOINT --out k.png``: the merged depthwise kernels of a model, per stage.

``--model NAME [--pretrained TAG|PATH]`` draws a named variant instead (randomly initialised without weights).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from unireplknet.cli import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``kernels`` sub-command."""
    p = subparsers.add_parser(
        "kernels",
        help="draw the merged (re-parameterized) depthwise kernels of a checkpoint, per stage",
        description="Read a train- or deploy-structure checkpoint (architecture and in_chans read from it), "
        "merge each Dilated Reparam Block's branches and BatchNorms into the kernel that runs at inference, "
        "and draw every block's kernel (mean |weight| over channels, scaled to max 1): one row per stage.",
    )
    p.add_argument("checkpoint", nargs="?", help="checkpoint (.pth/.pt/.bin/.safetensors)")
    p.add_argument("--model", metavar="SPEC",
                   help="instead of a checkpoint: a variant name or NAME:kN (every block's kernel set to N)")
    p.add_argument("--pretrained", metavar="TAG|PATH", help="weights for --model (default: random init)")
    p.add_argument("--seed", type=int, default=0, help="seed for a randomly initialised --model (0)")
    p.add_argument("-o", "--output", "--out", dest="out", default="kernels.png", help="output picture (kernels.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Draw the kernels of ``args.checkpoint`` into ``args.out``."""
    import torch

    from unireplknet import erf
    from unireplknet.weights import WeightsUnavailableError

    if (args.checkpoint is None) == (args.model is None):
        raise UserError("give either a CHECKPOINT or --model (not both)")
    if args.pretrained and args.model is None:
        raise UserError("--pretrained goes with --model")
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".pdf", ".svg"):
        raise UserError(f"--out must end in .png, .jpg, .pdf or .svg, got {out.name!r}")
    if args.checkpoint is not None:
        ckpt = Path(args.checkpoint)
        if not ckpt.is_file():
            raise UserError(f"checkpoint not found: {ckpt}")
        from ..weights import model_from_checkpoint

        model, name = model_from_checkpoint(ckpt), ckpt.name
    else:
        torch.manual_seed(args.seed)
        try:
            model = erf.build_erf_model(args.model, pretrained=args.pretrained)
        except WeightsUnavailableError as e:
            raise UserError(str(e)) from e
        name = args.model + (f" ({args.pretrained})" if args.pretrained else " (random init)")
    kernels = erf.merged_kernels(model)
    erf.render_kernels(erf.kernel_pictures(kernels), out, title=f"{name}: merged depthwise kernels per stage")
    for s, stage in enumerate(kernels):
        sizes = ", ".join(str(k.shape[-1]) for k in stage) or "none"
        print(f"stage {s}: {len(stage)} kernels ({sizes})")
    print(f"wrote {out}")
    return 0
