"""``unireplknet train``: train on any modality and task (no --data: the modality's built-in demo).

Thin: the flags are defined here, the run is :func:`unireplknet.runner.run_training`.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import UserError

_MODALITIES = ("image", "audio", "video", "point", "series")
# Engine keys whose default is None: the flag type.
_OPTIONAL_TYPES = {"num_threads": int, "lr_base_batch": int, "layer_decay": float, "clip_grad": float,
                   "max_train_steps": int}
_HELP = {
    "epochs": "training epochs (auto: from --time-budget)", "batch_size": "per-process batch size",
    "accum": "gradient accumulation steps", "lr": "peak learning rate", "lr_base_batch": "lr is for this total batch; scaled linearly",
    "min_lr": "final learning rate of the cosine schedule", "warmup_epochs": "linear warm-up epochs",
    "warmup_lr": "learning rate at the start of warm-up", "weight_decay": "AdamW weight decay",
    "layer_decay": "layer-wise lr decay (e.g. 0.8)", "opt": "optimizer (timm name, default adamw)",
    "opt_eps": "optimizer epsilon", "opt_betas": "optimizer betas", "clip_grad": "max gradient norm",
    "amp": "mixed precision (bf16 on CPU)", "amp_dtype": "bfloat16, or float16 (CUDA only)",
    "ema": "keep an EMA of the weights", "ema_decay": "EMA decay per step", "ema_eval": "also evaluate the EMA weights",
    "drop_path": "stochastic depth rate", "grad_checkpointing": "gradient checkpointing (less memory)", "sync_bn": "SyncBatchNorm under DDP (CUDA)",
    "channels_last": "channels-last memory format", "seed": "random seed (splits, init, augmentation)",
    "num_workers": "DataLoader worker processes", "num_threads": "torch CPU threads (default: torch's choice)",
    "device": "auto, cpu, cuda, cuda:N", "metric": "validation metric that selects the model (acc1, loss, mAP, ...)",
    "metric_mode": "max or min (default: min for losses, max otherwise)", "eval_every": "validate every N epochs",
    "ckpt_every_steps": "also save last.pt every N optimizer steps", "max_train_steps": "cap updates per epoch (smoke tests)",
    "deploy": "save the re-parameterized selected model", "select": "best: best validation epoch; last: the last epoch",
    "fast_train": "fast training path (same gradients; on CPU with compiled kernels where a C compiler builds "
                  "them, UNIREPLKNET_NATIVE=0 skips those)",
    "fsdp": "under torchrun: shard the model with FSDP2 instead of DDP (sharded checkpoints; docs/scale.md)",
}


def _add_engine_flags(parser: argparse.ArgumentParser) -> None:
    from ..engine.config import DEFAULTS  # dataclass only: no torch

    g = parser.add_argument_group("training (engine keys; docs/engine.md)")
    for key, default in DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        kw: dict[str, Any] = {"default": None, "dest": key, "help": _HELP.get(key, key.replace("_", " "))}
        if key == "select":
            g.add_argument(flag, choices=("best", "last"), **kw)
        elif isinstance(default, bool):
            g.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif isinstance(default, list):
            g.add_argument(flag, type=float, nargs="+", **kw)
        elif default is None:
            g.add_argument(flag, type=_OPTIONAL_TYPES[key], **kw)
        else:
            g.add_argument(flag, type=type(default), **kw)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    p = subparsers.add_parser(
        "train", help="train a model on your data or the built-in demo",
        description="Train UniRepLKNet. Config = defaults < modality defaults (demo defaults without --data) "
                    "< auto (with --data) < --recipe < --config YAML < flags. Splits: docs/data.md.",
        epilog="Each modality adds its own flags: see them with 'unireplknet train --modality audio --help' "
               "(image, audio, video, point, series).",
    )
    g = p.add_argument_group("data and run")
    g.add_argument("--modality", default=None, choices=_MODALITIES, help="input kind (default image)")
    g.add_argument("--task", default="classification",
                   choices=["classification", "segmentation", "detection", "forecasting"],
                   help="classification (any modality); segmentation / detection (images; docs/dense.md); "
                        "forecasting (a CSV series; the same run as 'unireplknet forecast', docs/timeseries.md)")
    g.add_argument("--data", default=None, help="folder with train/ [val/] [test*/] splits, class folders, or a "
                                                "CSV list (path,label[,split]); omit for the built-in demo")
    g.add_argument("--val-data", default=None, help="validation data (default: DATA/val, else --val-fraction of train)")
    g.add_argument("--val-fraction", type=float, default=None,
                   help="share of the training files held out per class for validation when there is no val/ (0.1)")
    g.add_argument("--data-root", default=None, help="folder that relative CSV paths resolve under (the CSV's folder)")
    g.add_argument("--allow-outside-root", action="store_true", default=None,
                   help="allow CSV paths outside the data root")
    g.add_argument("--skip-bad-files", action=argparse.BooleanOptionalAction, default=None,
                   help="skip unreadable files with one warning (default); --no-skip-bad-files: stop with an error")
    g.add_argument("--recipe", default=None, help="named preset of the modality, e.g. in1k_t, demo")
    g.add_argument("--config", default=None, help="YAML file of config keys")
    g.add_argument("-o", "--output", "--out", dest="output", default=None,
                   help="run directory (default runs/demo[-MODALITY] or runs/<model>-<time>)")
    g.add_argument("--resume", default=None,
                   help="continue a run from its last.pt (in that run's directory; its config is the base)")
    g.add_argument("--force", action="store_true", default=None, help="take over a run directory locked by another run")
    g.add_argument("--model", default=None, help="variant (unireplknet_a ... unireplknet_xl) or 'custom' (auto: from the data)")
    g.add_argument("--model-args", default=None, type=json.loads, help='JSON, e.g. \'{"depths": [1,1,2,1], "dims": [16,32,64,128], '
                        '"kernel_sizes": [[3],[3],[13,3],[3]]}\' (kernel_sizes: one list per stage)')
    g.add_argument("--pretrained", default=None, help="weights tag or path; the head is reset to the data's classes")
    g.add_argument("--head-init-scale", type=float, default=None, help="scale of the new head's init")
    g.add_argument("--auto", action=argparse.BooleanOptionalAction, default=None,
                   help="with --data and no --recipe: choose input size, model, epochs and batch size from the "
                        "data and machine (default on; docs/auto.md)")
    g.add_argument("--time-budget", type=float, default=None, help="minutes of training that auto plans for (15)")
    g.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=None,
                   help="fit simple baselines on the same splits (default: on for up to 20k training samples)")
    g.add_argument("--allow-nonfinite", action="store_true", default=None, help="load weights holding NaN/inf")
    _add_engine_flags(p)
    from ..tasks.defaults import CLASSIFICATION_DEFAULTS, CLASSIFICATION_HELP  # stdlib only

    c = p.add_argument_group("classification loss and batch mixing")
    for key, default in CLASSIFICATION_DEFAULTS.items():
        c.add_argument("--" + key.replace("_", "-"), dest=key, type=type(default), default=None,
                       help=CLASSIFICATION_HELP[key])
    p.set_defaults(func=run)


def _peek(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def prepare(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Add the flags of the modality (``--modality``, default image) or task before parsing.

    ``train --help`` without ``--modality`` lists only the common flags (fast: no torch import).
    """
    task = _peek(argv, "--task") or "classification"
    if task == "segmentation":
        from ..tasks.segmentation_train import add_segmentation_args  # stdlib-only at import time

        add_segmentation_args(parser)
        return
    if task == "detection":
        from ..tasks.detection_train import add_detection_args  # stdlib-only at import time

        add_detection_args(parser)
        return
    if task == "forecasting":
        from ..tasks.forecast_args import add_forecast_args  # stdlib only

        add_forecast_args(parser)
        return
    name = _peek(argv, "--modality")
    if name in ("timeseries", "forecast", "forecasting"):
        parser.error("time-series forecasting is a task: unireplknet train --task forecasting --data FILE.csv ... "
                     "(or 'unireplknet forecast'); series classification is --modality series")
    if name is None and any(a in ("-h", "--help") for a in argv):
        return
    from ..modalities import get_modality

    try:
        modality = get_modality(name or "image")
    except UserError as e:
        parser.error(str(e))
    existing = set(parser._option_string_actions)
    probe = argparse.ArgumentParser(add_help=False)
    modality.add_args(probe)
    group = parser.add_argument_group(f"{modality.name} data")
    for action in probe._actions:
        if any(s in existing for s in action.option_strings):
            continue
        group._add_action(action)


def run(args: argparse.Namespace) -> int:
    """Train, then print the plan's outcome: the selected epoch, val/test metrics beside the baselines."""
    from ..runner import run_task

    summary = run_task(args.task, args)
    if args.task == "forecasting":
        from .forecast import print_report

        print_report(summary)
        return 0
    if not isinstance(summary, dict):  # segmentation reports through its log and run files
        return int(summary or 0)
    if summary.get("rank", 0) != 0 or not summary.get("files"):  # printed once, by rank 0
        return 0
    if args.task == "detection":
        from ..tasks.detection_train import format_detection_summary

        print(format_detection_summary(summary), file=sys.stdout)
    else:
        print(format_summary(summary), file=sys.stdout)
    return 0


def format_summary(summary: dict[str, Any]) -> str:
    """The lines ``train`` prints at the end: selection, a metrics table (val, tests, baselines), files."""
    best = summary.get("best") or {}
    lines = [f"selected epoch {best.get('epoch')} by val {best.get('metric')} = {best.get('value', float('nan')):.4f} "
             f"({best.get('source', 'model')} weights, select={best.get('select', 'best')}); "
             f"{summary.get('epochs')} epochs in {summary.get('seconds', 0):.1f} s, {summary.get('train_img_s') or 0:.1f} samples/s"]
    evaluation = summary.get("evaluation") or {}
    base = (summary.get("baselines") or {}).get("results") or {}
    methods = sorted({m for r in base.values() for m in r})
    metric = "mAP" if any("mAP" in r for r in evaluation.values()) else "acc1"
    if evaluation:
        head = f"{'split':<12} {'n':>6} {'model ' + metric:>12} {'loss':>8}" + "".join(f" {m:>18}" for m in methods)
        lines.append(head)
        for name, res in evaluation.items():
            row = f"{name:<12} {int(res.get('n', 0)):>6} {100 * res.get(metric, float('nan')):>11.2f}% {res.get('loss', float('nan')):>8.4f}"
            row += "".join(f" {100 * base.get(name, {}).get(m, float('nan')):>17.2f}%" for m in methods)
            lines.append(row)
        if not summary.get("test"):
            lines.append("(no test split: the val number selected the model and is optimistic)")
    if "deploy" in (summary.get("files") or {}):
        lines.append(f"deploy model verified (max |diff| {summary.get('deploy_max_abs_diff', 0):.2e}): "
                     f"{summary['files']['deploy']}")
    for k, v in (summary.get("files") or {}).items():
        if k != "deploy":
            lines.append(f"{k}: {v}")
    return "\n".join(lines)
