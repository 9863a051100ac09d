"""``unireplknet train --task segmentation``: UPerNet training on a mask folder with the generic engine.

:func:`add_segmentation_args` adds the flags (skipping any the ``train`` parser already has) and
:func:`run_segmentation_training` runs :class:`unireplknet.engine.Trainer` with cross-entropy
(ignore index, auxiliary head), mIoU evaluation and the original's downstream optimizer (AdamW,
layer-wise lr decay through the backbone, no weight decay on norms/biases). Without ``--data`` it
trains on the built-in shapes-on-photos demo. Results go to the run directory (engine files plus
``predictions.png``). Before training every (image, mask) pair is pre-scanned: pairs that cannot be decoded or
whose sizes differ, or whose mask values exceed the class count (``--num-classes``, ``DATA/classes.txt`` or
``DATA/train/classes.txt``, else the training masks), are skipped with one warning (``--no-skip-bad-files``: an error
naming the file); the counts are in ``summary.json`` (``skipped_files``). The selected weights are scored on val and
every test split beside a ``majority_class`` baseline fitted on the training masks (``summary.json``: ``baselines``).
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import random
from pathlib import Path
from typing import Any, Dict, Tuple

__all__ = ["SEG_DEFAULTS", "DEMO_DEFAULTS", "add_segmentation_args", "resolve_segmentation_config",
           "run_segmentation_training"]

_logger = logging.getLogger(__name__)

#: defaults of the segmentation run (engine keys included); the original ADE20K recipe where it applies.
SEG_DEFAULTS: Dict[str, Any] = {
    "model": "unireplknet_t", "model_args": None, "pretrained": None, "num_classes": None,
    "crop_size": 512, "seg_channels": 512, "aux_channels": 256, "aux_weight": 0.4, "ignore_index": 255,
    "inference": "whole", "slide_stride": None, "num_layers": 12, "frozen_stages": 0, "val_fraction": 0.1,
    "demo_size": 64, "output": "runs/segmentation", "data": None, "val_data": None,
    "epochs": 50, "batch_size": 8, "lr": 1e-4, "min_lr": 0.0, "weight_decay": 0.05, "layer_decay": 0.9,
    "warmup_epochs": 1, "drop_path": 0.2, "metric": "mIoU", "metric_mode": "max", "num_workers": 2,
    "skip_bad_files": True,
}

#: applied when no ``--data`` is given: a small model on the 128 px shapes demo, trained from scratch.
DEMO_DEFAULTS: Dict[str, Any] = {
    "model": "unireplknet_a", "crop_size": 128, "seg_channels": 128, "aux_channels": 64, "epochs": 4,
    "batch_size": 8, "lr": 1e-3, "layer_decay": None, "warmup_epochs": 0, "drop_path": 0.0,
}

_FLAGS = [
    (("--data",), dict(help="dataset folder: images/ + masks/ (or train/ and val/ sub-folders in that layout); "
                            "omit for the built-in shapes demo")),
    (("--val-data",), dict(help="validation folder (default: --data's val/ or a held-out fraction)")),
    (("--output",), dict(help="run directory")),
    (("--model",), dict(help="backbone variant (unireplknet_a..xl) or 'custom' with --model-args")),
    (("--model-args",), dict(help="JSON dict for --model custom, e.g. '{\"depths\": [1,1,2,1], ...}'")),
    (("--pretrained",), dict(help="released tag or checkpoint path (ImageNet or mm-style backbone.*)")),
    (("--num-classes",), dict(type=int, help="classes (default: classes.txt or max mask value + 1)")),
    (("--crop-size",), dict(type=int, help="training crop (px)")),
    (("--seg-channels",), dict(type=int, help="UPerHead width")),
    (("--aux-channels",), dict(type=int, help="auxiliary FCN head width (0 disables it)")),
    (("--aux-weight",), dict(type=float, help="auxiliary loss weight")),
    (("--ignore-index",), dict(type=int, help="mask value ignored by loss and metrics")),
    (("--inference",), dict(choices=["whole", "slide"], help="validation inference mode")),
    (("--slide-stride",), dict(type=int, help="stride of slide inference (default 2/3 of the crop)")),
    (("--num-layers",), dict(type=int, help="layer-decay depth (9 for T, 12 for S and larger in the original)")),
    (("--frozen-stages",), dict(type=int, help="freeze the stem and the first N stages")),
    (("--val-fraction", "--val-split"), dict(type=float, dest="val_fraction",
                                            help="fraction held out for validation when no val set is given (0.1)")),
    (("--demo-size",), dict(type=int, help="number of demo training scenes")),
    (("--skip-bad-files",), dict(action=argparse.BooleanOptionalAction,
                                 help="skip (image, mask) pairs that cannot be decoded or differ in size, with one "
                                      "warning (default); --no-skip-bad-files: stop with an error naming the file")),
    (("--epochs",), dict(type=int)), (("--batch-size",), dict(type=int)), (("--lr",), dict(type=float)),
    (("--min-lr",), dict(type=float)), (("--weight-decay",), dict(type=float)),
    (("--layer-decay",), dict(type=float, help="layer-wise lr decay rate (1 = none)")),
    (("--warmup-epochs",), dict(type=float)), (("--drop-path",), dict(type=float)),
    (("--device",), dict()), (("--num-workers",), dict(type=int)), (("--seed",), dict(type=int)),
    (("--max-train-steps",), dict(type=int, help="stop each epoch after N updates (smoke tests)")),
    (("--amp",), dict(action=argparse.BooleanOptionalAction)),
    (("--resume",), dict(help="continue from a run's last.pt (its config is the base)")),
    (("--config",), dict(help="YAML file of config keys")),
    (("--auto",), dict(action=argparse.BooleanOptionalAction,
                       help="with --data on a CPU: a small model, 256 px crops and batch 4 (default on)")),
]


def add_segmentation_args(parser: argparse.ArgumentParser) -> None:
    """Add the segmentation flags (all ``default=None``), skipping options the parser already defines."""
    existing = set(getattr(parser, "_option_string_actions", {}))
    for names, kw in _FLAGS:
        new = [n for n in names if n not in existing]
        if new and (len(new) == len(names) or "dest" in kw):  # an alias of a shared flag keeps its dest
            parser.add_argument(*new, default=None, **kw)



def segmentation_auto(cfg: Dict[str, Any]) -> Dict[str, Tuple[Any, str]]:
    """``auto`` for data on a CPU: ADE20K's defaults (T, 512 px crops, batch 8) need ~16 GB and hours per epoch."""
    if _cuda(str(cfg.get("device", "auto"))):
        return {}
    why = "a CPU run (ADE20K's T / 512 px / batch 8 needs ~16 GB and hours per epoch)"
    return {k: (v, why) for k, v in (("model", "unireplknet_a"), ("crop_size", 256), ("batch_size", 4),
                                      ("seg_channels", 128), ("aux_channels", 64))}


def resolve_segmentation_config(args: argparse.Namespace) -> Dict[str, Any]:
    """engine defaults < ``SEG_DEFAULTS`` < ``DEMO_DEFAULTS`` (no data) < auto < ``--config`` YAML < flags;
    on ``--resume`` the checkpoint's config < YAML < flags (:func:`unireplknet.engine.resolve.resolve_run_config`)."""
    from ..engine.config import DEFAULTS
    from ..errors import ConfigError
    from ..engine.resolve import CLASSIFICATION_ONLY_FLAGS, resolve_run_config

    known = set(DEFAULTS) | set(SEG_DEFAULTS) | {"auto"}
    layers = resolve_run_config(args, task="segmentation", known=known, base={**DEFAULTS, **SEG_DEFAULTS, "auto": True},
                                task_defaults={}, demo_defaults=DEMO_DEFAULTS, auto=segmentation_auto,
                                ignored=CLASSIFICATION_ONLY_FLAGS)
    cfg = layers.config
    if isinstance(cfg.get("model_args"), str):
        try:
            cfg["model_args"] = json.loads(cfg["model_args"])
        except json.JSONDecodeError as e:
            raise ConfigError(f"--model-args is not valid JSON: {e}") from e
    if cfg.get("layer_decay") is not None and float(cfg["layer_decay"]) >= 1.0:
        cfg["layer_decay"] = None
    if not 0.0 < float(cfg["val_fraction"]) < 1.0:
        raise ConfigError(f"val_fraction must be between 0 and 1, got {cfg['val_fraction']}")
    return cfg


def _cuda(device: str) -> bool:
    if device.startswith("cuda"):
        return True
    if device != "auto":
        return False
    import torch

    return torch.cuda.is_available()


def _datasets(cfg: Dict[str, Any]) -> tuple:
    """``(train, val, tests, num_classes, class_names, skipped)`` by the shared split rules.

    ``DATA/{train,val*,test*}/`` (each an ``images/`` + ``masks/`` folder) are splits; without a
    validation split ``val_fraction`` of the training images is held out (seeded); ``DATA`` itself may be
    one ``images/`` + ``masks/`` folder. Test splits are evaluated once at the end, never for selection.
    Every pair is pre-scanned first (:func:`~.segmentation_data.drop_bad_pairs`); ``skipped`` is
    ``{split: [image paths]}`` of the bad pairs left out (``--no-skip-bad-files``: an error instead).
    """
    from ..errors import DataError
    from ..modalities.base import NamedFileErrors, split_kind
    from .segmentation_data import SegmentationFolder, SegTransform, drop_bad_pairs, find_pairs, read_class_names
    from .synthetic_dense import ShapesSegmentation

    ign = int(cfg["ignore_index"])
    train_tf = SegTransform(train=True, crop_size=int(cfg["crop_size"]), ignore_index=ign)
    val_tf = SegTransform(train=False, ignore_index=ign)
    data = cfg.get("data")
    if data is None:
        size = (int(cfg["crop_size"]),) * 2
        n = int(cfg["demo_size"])
        train = ShapesSegmentation(n, size, seed=int(cfg["seed"]), transform=train_tf)
        val = ShapesSegmentation(max(8, n // 4), size, seed=int(cfg["seed"]) + 1, transform=val_tf)
        test = ShapesSegmentation(max(8, n // 4), size, seed=int(cfg["seed"]) + 2, transform=val_tf)
        return train, val, {"test": test}, ShapesSegmentation.num_classes, ShapesSegmentation.class_names, {}
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"--data folder not found: {root}")
    splits = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and split_kind(p.name) is not None}
    trains = [n for n in splits if split_kind(n) == "train"]
    vals = [n for n in splits if split_kind(n) == "val"]
    if splits and len(trains) != 1:
        raise DataError(f"{root} has split folders ({', '.join(splits)}) but {len(trains)} training folder(s): "
                        f"name exactly one train/")
    if len(vals) > 1:
        raise DataError(f"{root} has several validation folders ({', '.join(vals)}); keep one")
    train_root = splits[trains[0]] if splits else root
    val_root = cfg.get("val_data") or (splits[vals[0]] if vals else None)
    test_roots = {n: p for n, p in splits.items() if split_kind(n) == "test"}
    pairs = {"train": find_pairs(train_root)}
    if val_root is not None:
        pairs["val"] = find_pairs(val_root)
    else:
        everything = pairs["train"]
        if len(everything) < 2:
            raise DataError(f"{train_root} has {len(everything)} image(s): "
                            f"need at least 2 to hold out a validation set")
        order = list(range(len(everything)))
        random.Random(int(cfg["seed"])).shuffle(order)
        n_val = max(1, int(round(len(everything) * float(cfg["val_fraction"]))))
        pairs["train"] = [everything[i] for i in sorted(order[n_val:])]
        pairs["val"] = [everything[i] for i in sorted(order[:n_val])]
        _logger.info("no validation split: holding out %d of %d training images (seed %s)", n_val, len(everything),
                     cfg["seed"])
    pairs.update({n: find_pairs(p) for n, p in test_roots.items()})
    names = read_class_names(root) or (read_class_names(train_root) if train_root != root else None)
    ncls = cfg.get("num_classes") or (len(names) if names else None)
    skip = cfg.get("skip_bad_files")
    # the class count comes from --num-classes, classes.txt or the training masks (never val/test); every split's
    # mask values are checked against it in the pre-scan, so a bad mask is a bad file before training starts
    skipped = drop_bad_pairs(pairs, skip, num_classes=ncls, ignore_index=ign)

    def folder(name: str, transform: Any, ncls: Any) -> Any:
        return SegmentationFolder(pairs[name], ncls, transform=transform, ignore_index=ign, check_sizes=False,
                                  class_names=names)

    train = folder("train", train_tf, ncls)
    if ncls is None:  # inferred from the training masks: check the other splits' masks against it now
        for split, dropped in drop_bad_pairs(pairs, skip, num_classes=train.num_classes, ignore_index=ign).items():
            skipped.setdefault(split, []).extend(dropped)
    ncls, names = train.num_classes, list(train.class_names)
    val = folder("val", val_tf, ncls)
    tests = {n: folder(n, val_tf, ncls) for n in test_roots}
    _logger.info("segmentation data %s: train %d, val %d, %s", root, len(train), len(val),
                 ", ".join(f"{n} {len(d)}" for n, d in tests.items()) or "no test split")

    def named(ds: Any) -> Any:  # a file that fails after the pre-scan: one error naming it
        return NamedFileErrors(ds, ds.path_of)

    return named(train), named(val), {n: named(d) for n, d in tests.items()}, ncls, names, skipped


def _majority_class(train_set: Any, num_classes: int, ignore_index: int) -> int:
    """The training split's most frequent class by pixel count (``ignore_index`` left out): raw masks of a
    folder's pairs, else (the demo) the masks the dataset yields."""
    import numpy as np

    from .segmentation_data import read_mask

    counts = np.zeros(num_classes, dtype=np.int64)
    pairs = getattr(train_set, "pairs", None)
    masks = (read_mask(m) for _, m in pairs) if pairs is not None else (
        np.asarray(train_set[i][1]) for i in range(len(train_set)))
    for m in masks:
        v = m[(m != ignore_index) & (m >= 0) & (m < num_classes)]
        counts += np.bincount(v.ravel(), minlength=num_classes)[:num_classes]
    return int(counts.argmax())


class _ConstantClass:
    """A "model" whose logits pick class ``index`` at every pixel (the majority-class baseline)."""

    def __init__(self, index: int, num_classes: int) -> None:
        self.index, self.num_classes = index, num_classes

    def __call__(self, x: Any) -> Any:
        out = x.new_zeros((x.shape[0], self.num_classes, *x.shape[-2:]))
        out[:, self.index] = 1.0
        return out


def _build_model(cfg: Dict[str, Any], num_classes: int) -> Any:
    from .segmentation import create_upernet

    return create_upernet(
        cfg["model"], num_classes, pretrained=cfg.get("pretrained"), channels=int(cfg["seg_channels"]),
        aux_channels=int(cfg["aux_channels"]), frozen_stages=int(cfg["frozen_stages"]),
        model_args=cfg.get("model_args"), drop_path_rate=float(cfg["drop_path"]),
    )


def run_segmentation_training(args: argparse.Namespace) -> int:
    """Train (and validate) an UPerNet; writes the engine's run files and ``predictions.png``. Returns 0."""
    import torch

    from .. import engine
    from .segmentation_data import pad_collate
    from .dense_utils import build_dense_optimizer
    from .dense_viz import denormalize, save_segmentation_png
    from .segmentation import evaluate_segmentation, predict_segmentation, segmentation_loss

    from ..engine.rundir import resolve_resume_dir, set_aside_previous_run

    if getattr(args, "resume", None):
        ckpt_path, resumed_dir = resolve_resume_dir(args.resume, getattr(args, "output", None))
        args.resume = str(ckpt_path)
    cfg = resolve_segmentation_config(args)
    if getattr(args, "resume", None):
        cfg["output"] = str(resumed_dir)
    info = engine.distributed.init_from_env(str(cfg["device"]))
    if info.is_main and not getattr(args, "resume", None):
        set_aside_previous_run(cfg["output"])  # a new run never mixes its files with an earlier run's
    econf = engine.EngineConfig.from_dict({**cfg, "layer_decay": None})  # layer decay: our own groups below
    train_set, val_set, test_sets, num_classes, class_names, skipped = _datasets(cfg)
    if skipped:
        _logger.info("bad (image, mask) pairs left out: %s", ", ".join(f"{k} {len(v)}" for k, v in skipped.items()))
    torch.manual_seed(int(cfg["seed"]))
    model = _build_model(cfg, num_classes)
    ign = int(cfg["ignore_index"])
    collate = functools.partial(pad_collate, ignore_index=ign, size_divisor=32)
    train_loader = engine.make_loader(train_set, econf, train=True)
    val_loader = engine.make_loader(val_set, econf, train=False, collate_fn=collate)
    out_dir = Path(cfg["output"])
    evaluate_fn = evaluate_segmentation(num_classes, ign, cfg["inference"], int(cfg["crop_size"]),
                                        cfg.get("slide_stride"))

    def evaluate_tests(trainer: Any, _summary: Dict[str, Any]) -> Dict[str, Any]:
        """The selected weights, evaluated once on validation and every test split (never used to select)."""
        import copy

        selected = copy.deepcopy(trainer.model)
        selected.load_state_dict(trainer.selected_model_weights())
        selected.eval()
        majority = _majority_class(train_set, num_classes, ign)
        constant = _ConstantClass(majority, num_classes)
        results, base = {}, {}
        for name, ds in [("val", val_set), *test_sets.items()]:
            loader = engine.make_loader(ds, econf, train=False, collate_fn=collate)
            results[name] = {k: float(v) for k, v in evaluate_fn(selected, loader, trainer.ctx).items()}
            # the same metric function on the same split: a class fitted on the training split, at every pixel
            base[name] = {f"majority_class[{k}]": float(v) for k, v in evaluate_fn(constant, loader, trainer.ctx).items()}
        return {"evaluation": results, "test": {k: v for k, v in results.items() if k != "val"},
                "baselines": {"results": base, "majority_class": class_names[majority]},
                "splits": {"train": len(train_set), "val": len(val_set), **{k: len(v) for k, v in test_sets.items()}},
                "skipped_files": {k: len(v) for k, v in skipped.items()}}

    trainer = engine.Trainer(
        model, train_loader, val_loader,
        loss_fn=segmentation_loss(ign, float(cfg["aux_weight"])),
        evaluate_fn=evaluate_fn, config=econf, run_dir=out_dir, end_hooks=[evaluate_tests],
        full_config={k: v for k, v in cfg.items() if isinstance(v, (int, float, str, bool, list, dict, type(None)))},
    )
    trainer.optimizer = build_dense_optimizer(
        trainer.model, trainer.lr, float(cfg["weight_decay"]), cfg.get("layer_decay"), int(cfg["num_layers"]),
        betas=tuple(econf.opt_betas), eps=econf.opt_eps)
    trainer.scheduler = engine.build_scheduler(trainer.optimizer, econf, trainer.updates_per_epoch, trainer.lr)
    summary = trainer.fit(resume=getattr(args, "resume", None))
    if engine.distributed.is_main():
        model.load_state_dict(trainer.best_model_weights())
        model.eval()
        items = [val_set[i] for i in range(min(4, len(val_set)))]
        images = [x for x, _ in items]
        preds = [predict_segmentation(model, x[None].to(trainer.device), cfg["inference"], num_classes,
                                      int(cfg["crop_size"]), cfg.get("slide_stride"))[0].cpu() for x in images]
        png = save_segmentation_png(out_dir / "predictions.png", [denormalize(x) for x in images], preds,
                                    num_classes, targets=[m for _, m in items])
        _logger.info("best %s=%.2f (epoch %s); classes: %s; predictions: %s; run: %s",
                     cfg["metric"], summary["best"].get("value", float("nan")), summary["best"].get("epoch"),
                     ", ".join(class_names), png, out_dir)
        base = summary.get("baselines", {}).get("results", {})
        for name, res in summary.get("evaluation", {}).items():
            b = base.get(name, {})
            _logger.info("%s: mIoU=%.2f mAcc=%.2f aAcc=%.2f | baseline majority_class (%s): mIoU=%.2f mAcc=%.2f "
                         "aAcc=%.2f", name, res.get("mIoU", float("nan")), res.get("mAcc", float("nan")),
                         res.get("aAcc", float("nan")), summary.get("baselines", {}).get("majority_class"),
                         *(b.get(f"majority_class[{k}]", float("nan")) for k in ("mIoU", "mAcc", "aAcc")))
    return 0
