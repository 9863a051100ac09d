"""``unireplknet predict FILES...``: top-k labels with probabilities from a trained run."""
from __future__ import annotations

import argparse
import json
import logging

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` sub-command."""
    p = subparsers.add_parser("predict", help="top-k predictions for files with a trained run")
    p.add_argument("files", nargs="+", help="input files of the run's modality, or folders of them (searched "
                                             "recursively, hidden files left out)")
    p.add_argument("-r", "--run", default="runs/demo", help="run directory or checkpoint (default runs/demo)")
    p.add_argument("--weights", default="auto", choices=("auto", "deploy", "best", "last"),
                   help="which weights of a run directory (auto: deploy, else best, else last)")
    p.add_argument("-k", "--topk", type=int, default=5, help="how many labels per file")
    p.add_argument("--json", action="store_true", help="print one JSON object per file")
    p.add_argument("-o", "--output", default=None, help="also write the predictions as JSON lines to this file")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--skip-bad-files", action=argparse.BooleanOptionalAction, default=True,
                   help="skip unreadable files with one warning (default); --no-skip-bad-files: stop with an error")
    p.set_defaults(func=run)


def expand_inputs(paths: list[str], extensions: tuple[str, ...]) -> list[str]:
    """``paths`` with every folder replaced by the files in it that have one of ``extensions`` (recursively,
    hidden files left out, sorted); a missing path or a folder without such files is an error."""
    from pathlib import Path

    from ..modalities.base import files_with
    from . import UserError

    out: list[str] = []
    for p in paths:
        if not Path(p).exists():  # a path given by hand that does not exist is a typo, not a bad file
            raise UserError(f"no such file or folder: {p}")
        if Path(p).is_dir():
            found = files_with(Path(p), extensions) if extensions else []
            if not found:
                raise UserError(f"{p} is a folder without input files ({', '.join(extensions) or 'none known'})")
            out += [str(f) for f in found]
        else:
            out.append(p)
    return out


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
    separate = bool(getattr(modality.load_for_predict, "separate_samples", False))
    files = expand_inputs(list(args.files), modality.extensions)
    lines: list[str] = []
    failed: list[str] = []
    with torch.no_grad():
        for path in files:
            try:
                x = modality.load_for_predict(path, cfg).to(device)
            except (OSError, ValueError) as e:  # unreadable or missing: the same skip rule as training
                if not args.skip_bad_files:
                    raise
                failed.append(f"{path} ({e})")
                continue
            batch = x if x.ndim == 4 else x.unsqueeze(0)
            logits = model(batch).float()
            if not bool(logits.isfinite().all()):
                raise NonFiniteError(f"the model's outputs for {path} hold NaN or inf: its weights are probably "
                                     f"corrupt ({args.run})")
            probs = torch.sigmoid(logits) if record.get("multi_label") else logits.softmax(-1)
            # several series in one file are separate samples; other 4-D inputs are views of one sample
            rows = list(enumerate(probs)) if separate and x.ndim == 4 else [(None, probs.mean(0))]
            for index, row in rows:
                p, idx = row.topk(k)
                top = [(names[i], float(v)) for v, i in zip(p.tolist(), idx.tolist())]
                record_line = {"file": path, **({} if index is None else {"index": index}),
                               "top": [{"label": n, "prob": v} for n, v in top]}
                line = json.dumps(record_line)
                lines.append(line)
                if args.json:
                    print(line)
                else:
                    where = path if index is None else f"{path}[{index}]"
                    print(f"{where}: " + ", ".join(f"{n} ({v:.3f})" for n, v in top))
    if failed:
        logger.warning(
            "skipped %d unreadable file(s): %s%s", len(failed), "; ".join(failed[:3]),
            " ..." if len(failed) > 3 else "")
        if not lines:
            raise UserError(f"no file could be read ({len(failed)} tried): {failed[0]}")
    if args.output:
        from pathlib import Path

        Path(args.output).write_text("\n".join(lines) + "\n")
    return 0
