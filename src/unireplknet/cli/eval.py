"""``unireplknet eval``: top-1/top-5, loss and a confusion-matrix PNG for a trained run."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` sub-command."""
    p = subparsers.add_parser("eval", help="evaluate a trained run (top-1/top-5, loss, confusion matrix)")
    p.add_argument("run_pos", nargs="?", default=None, metavar="RUN", help="run directory or checkpoint (same as -r)")
    p.add_argument("-r", "--run", default=None, help="run directory or checkpoint (default runs/demo)")
    p.add_argument("--weights", default="auto", choices=("auto", "deploy", "best", "last"),
                   help="which weights of a run directory (auto: deploy, else best, else last)")
    p.add_argument("--data", default=None, help="evaluate on other data (same classes); default: the run's data")
    p.add_argument("--val-data", default=None, help="validation data to evaluate (default DATA/val)")
    p.add_argument("--split", default="val", help="which split of the run's data: train, val, or a test split's name "
                                                   "(test, test_a, ...; see RUN/splits/)")
    p.add_argument("--batch-size", type=int, default=64, help="evaluation batch size")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("-o", "--output", default=None,
                   help="where to write eval-SPLIT.json and confusion-SPLIT.png (default RUN/eval)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the metrics."""
    import torch.nn.functional as F

    from ..modalities import get_modality

    from ..engine import EngineConfig, EvalContext, make_loader
    from ..engine.distributed import DistInfo, resolve_device
    from ..tasks.classification import confusion_matrix, load_trained, plot_confusion_matrix, predict_logits, topk_accuracy

    args.run = args.run or args.run_pos or "runs/demo"
    model, record = load_trained(args.run, args.weights)
    cfg = dict(record["config"])
    if args.data is not None:
        cfg["data"], cfg["val_data"] = args.data, args.val_data
    elif args.val_data is not None:
        cfg["val_data"] = args.val_data
    task = get_modality(cfg.get("modality", "image")).build(argparse.Namespace(**cfg))
    dataset = task.split(args.split)
    if list(task.class_names) != list(record["class_names"]):
        raise UserError(f"the data's classes {list(task.class_names)[:10]} differ from the model's "
                        f"{list(record['class_names'])[:10]}")
    if task.multi_label:
        raise UserError("eval of multi-label tasks is not supported by this command; use the engine's evaluate")
    device = resolve_device(args.device)
    model.to(device)
    ecfg = EngineConfig.from_dict({"batch_size": args.batch_size, "num_workers": args.num_workers, "device": str(device)})
    loader = make_loader(dataset, ecfg, train=False, collate_fn=task.collate_fn, info=DistInfo())
    logits, target = predict_logits(model, loader, EvalContext(device, None, DistInfo()))
    if not bool(logits.isfinite().all()):
        from ..errors import NonFiniteError

        raise NonFiniteError(f"the model's outputs on the {args.split} split hold NaN or inf: its weights are "
                             f"probably corrupt ({args.run})")
    if target.is_floating_point():
        target = target.argmax(1)
    acc1, acc5 = topk_accuracy(logits, target)
    loss = F.cross_entropy(logits, target).item()
    cm = confusion_matrix(logits.argmax(1), target, task.num_classes)
    out = Path(args.output) if args.output else Path(args.run if Path(args.run).is_dir() else Path(args.run).parent) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    png = plot_confusion_matrix(cm, task.class_names, out / f"confusion-{args.split}.png")  # one per split
    result = {"n": len(target), "acc1": acc1, "acc5": acc5, "loss": loss, "confusion_matrix": cm.tolist()}
    result["split"] = args.split
    (out / f"eval-{args.split}.json").write_text(json.dumps(result, indent=1))
    print(f"{args.split}: n={len(target)} top-1 {100 * acc1:.2f}% top-5 {100 * acc5:.2f}% loss {loss:.4f}")
    print(f"confusion matrix: {png}")
    return 0
