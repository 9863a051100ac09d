"""``unireplknet export``: ONNX / TorchScript / ExportedProgram of the deploy structure, verified."""
from __future__ import annotations

import argparse

_TOLERANCE = 1e-4  # keep equal to unireplknet.export.DEFAULT_TOLERANCE (not imported: keeps --help light)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` sub-command."""
    p = subparsers.add_parser(
        "export", help="export to ONNX, TorchScript or a torch.export program (verified against PyTorch)",
        description="Export a model in its deploy structure with a dynamic batch (and H/W) and check the "
                    "exported file against PyTorch at three input sizes, one of them not a multiple of 32 "
                    "(max relative error <= 1e-4). A file that fails the check is removed (exit code 2). "
                    "Dynamic-size exports are traced at >= 64x64 so that H and W really stay dynamic.",
    )
    p.add_argument("output", metavar="OUT", help="file to write (.onnx, .pt, .pt2)")
    p.add_argument("--format", choices=None, default=None,
                   help="onnx | torchscript | exported-program (default: from OUT's suffix)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", default="unireplknet_a", help="variant to build (default unireplknet_a)")
    src.add_argument("--checkpoint", help="checkpoint to export (architecture read from it), or a run directory "
                                          "(its model.json and deploy.safetensors, else best.pt, else last.pt)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier size with --model (default 1000)")
    p.add_argument("--in-chans", type=int, default=3, help="input channels with --model (default 3)")
    p.add_argument("--input-size", type=int, nargs=3, default=None, metavar=("C", "H", "W"),
                   help="example input (default: the model's channels x 224 x 224)")
    p.add_argument("--batch-size", type=int, default=1, help="batch of the example input (the batch stays dynamic)")
    p.add_argument("--static-size", action="store_true", help="fix H and W to --input-size (batch stays dynamic)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the comparison with PyTorch (finite weights and the file's structure are still checked)")
    p.add_argument("--tolerance", type=float, default=_TOLERANCE,
                   help=f"largest accepted relative error vs PyTorch (default {_TOLERANCE:g})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build or load the model, export it, print the path and the verification error."""
    from pathlib import Path

    from . import UserError
    from ..export import FORMATS, export_model

    out = Path(args.output)
    fmt = args.format
    if fmt is None:
        by_suffix = {v: k for k, v in FORMATS.items()}
        fmt = by_suffix.get(out.suffix)
        if fmt is None:
            raise UserError(f"cannot tell the format from {out.name!r}: use --format {'|'.join(FORMATS)} "
                            f"or a suffix in {', '.join(sorted(by_suffix))}")
    if fmt not in FORMATS:
        raise UserError(f"unsupported export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if args.checkpoint and Path(args.checkpoint).is_dir():
        # a run directory: its model (model.json) with the weights eval/predict would use
        from ..tasks.classification import load_trained, resolve_run_weights

        model, _ = load_trained(args.checkpoint)
        print(f"{args.checkpoint} is a run directory: exporting {resolve_run_weights(args.checkpoint)}")
    elif args.checkpoint:
        from ..weights import model_from_checkpoint

        if not Path(args.checkpoint).is_file():
            raise UserError(f"checkpoint not found: {args.checkpoint}")
        model = model_from_checkpoint(args.checkpoint)
    else:
        from ..factory import create_model

        kw = {} if args.num_classes is None else {"num_classes": args.num_classes}
        model = create_model(args.model, in_chans=args.in_chans, **kw)
    if args.input_size is None:
        args.input_size = (model.in_chans, 224, 224)
    if args.input_size[0] != model.in_chans:
        raise UserError(f"--input-size has {args.input_size[0]} channels but the model takes {model.in_chans}")
    kwargs = dict(input_size=tuple(args.input_size), batch_size=args.batch_size, verify=not args.no_verify,
                  tolerance=args.tolerance)
    if fmt != "torchscript":
        kwargs["dynamic_size"] = not args.static_size
    if fmt == "onnx" and args.opset is not None:
        kwargs["opset"] = args.opset
    # a failed check raises ExportError (the file is removed): the CLI prints one error line, exit code 2
    result = export_model(model.eval(), out, format=fmt, **kwargs)
    print(f"wrote {result.path} ({fmt})")
    if result.max_rel_error is not None:
        sizes = ", ".join("x".join(map(str, s)) for s in result.checked_sizes)
        print(f"max relative error vs PyTorch at {sizes}: {result.max_rel_error:.3g} (tolerance {args.tolerance:g})")
    else:
        print("not verified against PyTorch (--no-verify)")
    return 0
