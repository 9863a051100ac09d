"""``unireplknet train``: train a classifier on any modality (no --data: the modality's built-in demo)."""
from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from typing import Any

from . import UserError

# Config keys handled by the command itself (besides engine keys and the modality's keys).
_CLI_KEYS = {"modality": "image", "data": None, "val_data": None, "output": None,
             "model": "unireplknet_a", "model_args": None, "pretrained": None, "head_init_scale": None}
# Engine keys whose default is None: the flag type.
_OPTIONAL_TYPES = {"num_threads": int, "lr_base_batch": int, "layer_decay": float, "clip_grad": float, "max_train_steps": int}
_HELP = {
    "epochs": "training epochs", "batch_size": "per-process batch size", "accum": "gradient accumulation steps",
    "lr": "peak learning rate", "lr_base_batch": "lr is for this total batch; scaled linearly",
    "warmup_epochs": "linear warm-up epochs", "weight_decay": "AdamW weight decay",
    "layer_decay": "layer-wise lr decay (e.g. 0.8)", "clip_grad": "max gradient norm",
    "amp": "mixed precision (bf16 on CPU)", "ema": "keep an EMA of the weights", "drop_path": "stochastic depth rate",
    "mixup": "mixup alpha", "cutmix": "cutmix alpha", "smoothing": "label smoothing",
    "grad_checkpointing": "gradient checkpointing (less memory)", "sync_bn": "SyncBatchNorm under DDP (CUDA)",
    "num_workers": "DataLoader worker processes", "num_threads": "torch CPU threads (default: torch's choice)", "device": "auto, cpu, cuda, cuda:N",
    "ckpt_every_steps": "also save last.pt every N optimizer steps", "deploy": "save the re-parameterized best model",
}


def _modality(name: str) -> Any:
    try:
        return importlib.import_module(f"unireplknet.data.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"unireplknet.data.{name}":
            raise UserError(f"unknown modality {name!r} (no module unireplknet.data.{name})") from e
        raise


def _add_engine_flags(parser: argparse.ArgumentParser) -> None:
    from ..engine.config import DEFAULTS

    g = parser.add_argument_group("training (engine config keys; see docs/engine.md)")
    for key, default in DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        kw: dict[str, Any] = {"default": None, "dest": key, "help": _HELP.get(key, "")}
        if isinstance(default, bool):
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
        "train", help="train a classifier (no --data: the built-in demo)",
        description="Train UniRepLKNet. Config = defaults < demo defaults (no --data) < --recipe < --config < flags.",
    )
    p.add_argument("--modality", default=None, help="image (default), audio, video, point, ...")
    p.add_argument("--data", default=None, help="training data (image: DIR with train/ and val/, class-folder DIR, or CSV)")
    p.add_argument("--val-data", default=None, help="validation data (default: DATA/val)")
    p.add_argument("--recipe", default=None, help="named preset, e.g. in1k_t, in22k_ft_in1k_l, demo")
    p.add_argument("--config", default=None, help="YAML file of config keys")
    p.add_argument("-o", "--output", default=None, help="run directory (default runs/demo or runs/<model>-<time>)")
    p.add_argument("--resume", default=None, help="continue from a checkpoint (its config is the base)")
    p.add_argument("--model", default=None, help="variant (unireplknet_a ... unireplknet_xl) or 'custom'")
    p.add_argument("--model-args", default=None, type=json.loads, help='JSON, e.g. \'{"depths": [1,1,2,1], ...}\'')
    p.add_argument("--pretrained", default=None, help="weights tag or path; the head is reset to the data's classes")
    p.add_argument("--head-init-scale", type=float, default=None, help="scale of the new head's init")
    _add_engine_flags(p)
    p.add_argument("--task", default="classification", choices=["classification", "segmentation"],
                   help="segmentation: UPerNet on an images/ + masks/ folder (see docs/dense.md)")
    from ..tasks.segmentation_train import add_segmentation_args  # stdlib-only at import time

    add_segmentation_args(p)  # adds only the flags the parser does not define yet
    p.set_defaults(func=run)


def prepare(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Add the flags of the modality named by ``--modality`` (default image) before parsing."""
    try:
        mod = _modality(_peek_modality(argv))
    except UserError as e:
        parser.error(str(e))
    add = getattr(mod, "add_train_args", None)
    if add is not None:
        add(parser)


def _modality_dests(mod: Any) -> set[str]:
    """Config keys (argparse dests) that the modality's ``add_train_args`` defines."""
    mp = argparse.ArgumentParser(add_help=False)
    add = getattr(mod, "add_train_args", None)
    if add is not None:
        add(mp)
    return {a.dest for a in mp._actions}


def _peek_modality(arg_strings: list[str]) -> str:
    for i, a in enumerate(arg_strings):
        if a == "--modality" and i + 1 < len(arg_strings):
            return arg_strings[i + 1]
        if a.startswith("--modality="):
            return a.split("=", 1)[1]
    return "image"


def resolve_config(args: argparse.Namespace, mod: Any) -> dict[str, Any]:
    """defaults < DEMO_DEFAULTS (no data) < checkpoint config (resume) < recipe < YAML < explicit flags."""
    from ..engine.checkpoint import load_checkpoint
    from ..engine.config import DEFAULTS, check_keys, load_config_file

    mod_defaults = dict(getattr(mod, "CONFIG_DEFAULTS", {}))
    mod_keys = _modality_dests(mod) | set(mod_defaults)
    known = set(DEFAULTS) | set(_CLI_KEYS) | mod_keys
    cfg: dict[str, Any] = {**DEFAULTS, **_CLI_KEYS, **{k: mod_defaults.get(k) for k in mod_keys}}
    flags = {k: v for k, v in vars(args).items() if k in known and v is not None}
    layers: list[tuple[str, dict[str, Any]]] = []
    if args.resume:
        ckpt_cfg = dict(load_checkpoint(args.resume).get("config") or {})
        layers.append((f"checkpoint {args.resume}", ckpt_cfg))
    else:
        data = flags.get("data")
        if args.config and data is None:
            data = load_config_file(args.config).get("data")
        if data is None:
            layers.append(("demo defaults", dict(getattr(mod, "DEMO_DEFAULTS", {}))))
        if args.recipe:
            recipes = getattr(mod, "RECIPES", {})
            if args.recipe not in recipes:
                raise UserError(f"unknown recipe {args.recipe!r}; valid: {', '.join(sorted(recipes)) or 'none'}")
            layers.append((f"recipe {args.recipe}", recipes[args.recipe]))
        if args.config:
            layers.append((args.config, load_config_file(args.config)))
    layers.append(("flags", flags))
    for where, layer in layers:
        try:
            check_keys(layer, known, where)
        except ValueError as e:
            raise UserError(str(e)) from e
        cfg.update(layer)
    return cfg


def _default_output(cfg: dict[str, Any]) -> str:
    if cfg.get("data") is None:
        return "runs/demo"
    return f"runs/{cfg.get('model') or 'model'}-{time.strftime('%Y%m%d-%H%M%S')}"


def run(args: argparse.Namespace) -> int:
    """Train, then print the summary."""
    import logging

    if args.task == "segmentation":
        from ..tasks.segmentation_train import run_segmentation_training

        return run_segmentation_training(args)

    import torch

    from ..engine import EngineConfig, Trainer, distributed, make_loader
    from ..tasks.classification import build_model, classification_parts

    log = logging.getLogger("unireplknet.train")
    if args.modality is None and args.resume:
        from ..engine.checkpoint import load_checkpoint

        args.modality = (load_checkpoint(args.resume).get("config") or {}).get("modality")
    args.modality = args.modality or "image"
    mod = _modality(args.modality)
    cfg = resolve_config(args, mod)
    cfg["modality"] = args.modality
    try:
        ecfg = EngineConfig.from_dict(cfg)
    except (TypeError, ValueError) as e:
        raise UserError(f"bad config: {e}") from e
    out = Path(cfg.get("output") or (Path(args.resume).parent if args.resume else _default_output(cfg)))
    cfg["output"] = str(out)

    info = distributed.init_from_env(ecfg.device)
    try:
        task = mod.build_task_data(argparse.Namespace(**cfg))
        if task.train is None or task.val is None:
            raise UserError(f"modality {args.modality} returned no train/val data")
        parts = classification_parts(task, ecfg)
        if "metric" not in {k for k, v in vars(args).items() if v is not None}:
            ecfg.metric = cfg["metric"] = parts["metric"]
        torch.manual_seed(ecfg.seed)
        model = build_model(cfg, task.num_classes, task.in_chans)
        train_loader = make_loader(task.train, ecfg, train=True, collate_fn=task.collate_fn, info=info)
        val_loader = make_loader(task.val, ecfg, train=False, collate_fn=task.collate_fn, info=info)
        record = {"config": cfg, "num_classes": task.num_classes, "in_chans": task.in_chans,
                  "class_names": list(task.class_names), "input_size": list(task.input_size),
                  "eval_views": task.eval_views, "multi_label": task.multi_label, "meta": task.meta}
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "model.json").write_text(json.dumps(record, indent=2, default=str))
            yaml = __import__("yaml")
            (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=True))
        n_params = sum(p.numel() for p in model.parameters())
        log.info("model %s: %.2fM parameters; %d train / %d val samples; run dir %s",
                 cfg.get("model"), n_params / 1e6, len(task.train), len(task.val), out)
        trainer = Trainer(model, train_loader, val_loader, parts["loss_fn"], parts["evaluate_fn"], ecfg, out,
                          train_batch_transform=parts["train_batch_transform"], full_config=cfg)
        summary = trainer.fit(resume=args.resume)
    finally:
        distributed.cleanup()
    if info.is_main:
        best = summary.get("best") or {}
        print(f"best {best.get('metric', ecfg.metric)} {best.get('value', float('nan')):.4f} "
              f"(epoch {best.get('epoch')}, {best.get('source', 'model')} weights) "
              f"in {summary['seconds']:.1f} s, {summary['train_img_s'] or 0:.1f} img/s")
        if "deploy" in summary["files"]:
            print(f"deploy model verified (max |diff| {summary['deploy_max_abs_diff']:.2e}): {summary['files']['deploy']}")
        for k, v in summary["files"].items():
            if k != "deploy":
                print(f"{k}: {v}")
    return 0
