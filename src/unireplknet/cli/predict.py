"""``unireplknet predict FILES...``: top-k labels with probabilities from a trained run."""
from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` sub-command."""
    p = subparsers.add_parser("predict", help="top-k predictions for files with a trained run")
    p.add_argument("files", nargs="+", help="input files (images for the image modality)")
    p.add_argument("-r", "--run", default="runs/demo", help="run directory or checkpoint (default runs/demo)")
    p.add_argument("--weights", default="auto", choices=("auto", "deploy", "best", "last"),
                   help="which weights of a run directory (auto: deploy, else best, else last)")
    p.add_argument("-k", "--topk", type=int, default=5, help="how many labels per file")
    p.add_argument("--json", action="store_true", help="print one JSON object per file")
    p.add_argument("-o", "--output", default=None, help="also write the predictions as JSON lines to this file")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the top-k classes of each file."""
    import torch

    from ..errors import NonFiniteError
    from ..modalities import get_modality

    from ..engine.distributed import resolve_device
    from ..tasks.classification import load_trained
    from . import UserError

    if args.topk < 1:
        raise UserError(f"--topk must be >= 1, got {args.topk}")
    model, record = load_trained(args.run, args.weights)
    cfg = argparse.Namespace(**record["config"])
    modality = get_modality(record["config"].get("modality", "image"))
    device = resolve_device(args.device)
    model.to(device)
    names = record["class_names"]
    k = min(args.topk, len(names))
    lines: list[str] = []
    with torch.no_grad():
        for path in args.files:
            x = modality.load_for_predict(path, cfg).to(device)
            logits = model(x if x.ndim == 4 else x.unsqueeze(0)).float()
            if not bool(logits.isfinite().all()):
                raise NonFiniteError(f"the model's outputs for {path} hold NaN or inf: its weights are probably "
                                     f"corrupt ({args.run})")
            probs = (torch.sigmoid(logits) if record.get("multi_label") else logits.softmax(-1)).mean(0)
            p, idx = probs.topk(k)
            top = [(names[i], float(v)) for v, i in zip(p.tolist(), idx.tolist())]
            line = json.dumps({"file": path, "top": [{"label": n, "prob": v} for n, v in top]})
            lines.append(line)
            if args.json:
                print(line)
            else:
                print(f"{path}: " + ", ".join(f"{n} ({v:.3f})" for n, v in top))
    if args.output:
        from pathlib import Path

        Path(args.output).write_text("\n".join(lines) + "\n")
    return 0
