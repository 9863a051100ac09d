"""``run_training``: the one training run behind ``unireplknet train`` for classification in every modality.

Steps: resolve the config (:mod:`.config`), set up distribution, build the modality's data
(split rules and bad-file pre-scan of :mod:`unireplknet.modalities.base`), log and save the
plan, choose ``auto`` defaults, train with the engine, then evaluate the selected model once on
every test split and write ``summary.json``. Segmentation and detection runs go through their
task modules with the same run-directory rules.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError, DataError
from ..engine.resolve import Layers, resolve_run_config
from .config import RUNNER_DEFAULTS

__all__ = ["run_training", "known_keys", "default_output"]

logger = logging.getLogger("unireplknet.train")

#: default metric of the classification task (multi-label data switches to mAP).
TASK_DEFAULTS: dict[str, Any] = {"metric": "acc1"}


def known_keys(modality: Any) -> set[str]:
    """Every config key a classification run accepts with ``modality``."""
    from ..engine.config import DEFAULTS
    from ..tasks.defaults import CLASSIFICATION_DEFAULTS

    return set(DEFAULTS) | set(RUNNER_DEFAULTS) | set(CLASSIFICATION_DEFAULTS) | modality.arg_keys()


def default_output(cfg: dict[str, Any]) -> str:
    """``runs/demo-<modality>`` without data, else ``runs/<model>-<time>``."""
    if cfg.get("data") is None:
        return "runs/demo" if cfg.get("modality", "image") == "image" else f"runs/demo-{cfg['modality']}"
    return f"runs/{cfg.get('model') or 'model'}-{time.strftime('%Y%m%d-%H%M%S')}"


def _resolve(args: argparse.Namespace, modality: Any) -> Layers:
    from ..engine.config import DEFAULTS
    from ..tasks.defaults import CLASSIFICATION_DEFAULTS

    return resolve_run_config(
        args, task="classification", known=known_keys(modality),
        base={**DEFAULTS, **CLASSIFICATION_DEFAULTS, **RUNNER_DEFAULTS},
        modality_defaults=modality.config_defaults, demo_defaults=modality.demo_defaults,
        task_defaults=TASK_DEFAULTS, recipes=dict(modality.recipes), recipe_owner=f"modality {modality.name}",
        auto=modality.auto,
    )


def _auto_after_data(layers: Layers, task: Any, device: str) -> dict[str, tuple[Any, str]]:
    """Stage 2 of ``auto``: model and batch from the training-set size and the device."""
    from .auto import model_rule

    cfg = layers.config
    from .loaders import dataset_size

    n = dataset_size(task.train)
    chosen: dict[str, tuple[Any, str]] = {}
    if not layers.set_by_user("model"):
        chosen.update(model_rule(n, device))
    bs = chosen.get("batch_size", (cfg["batch_size"], ""))[0]
    if not layers.set_by_user("batch_size") and n < 4 * bs:
        small = max(4, n // 4)
        chosen["batch_size"] = (small, f"only {n} training samples: at least 4 batches per epoch")
    if not layers.set_by_user("num_workers"):
        if n <= 5000 and cfg.get("modality") == "image":
            chosen["num_workers"] = (0, "few small images: worker processes cost more than they save")
        else:
            chosen["num_workers"] = (2, "decoding (audio, video, point files) runs beside training in 2 processes")
    return {k: v for k, v in chosen.items() if not layers.set_by_user(k)}


def _plan_lines(task: Any) -> list[str]:
    from ..modalities.base import plan_lines

    if task.splits is not None:
        return plan_lines(task.splits)
    if task.meta.get("plan"):
        return list(task.meta["plan"])
    lines = [f"data: {task.meta.get('source', 'built-in')}"]
    lines.append(f"  train {len(task.train):>7} samples  training")
    lines.append(f"  val   {len(task.val):>7} samples  validation (selection)")
    for name, ds in task.tests.items():
        lines.append(f"  {name:<5} {len(ds):>7} samples  test (final, once)")
    if not task.tests:
        lines.append("  (no test split: only validation numbers will be reported)")
    return lines


def run_training(args: argparse.Namespace) -> dict[str, Any]:
    """Run one training as described by the parsed ``train`` arguments; returns the summary dict."""
    import torch

    from ..engine import EngineConfig, Trainer, distributed
    from ..engine.rundir import RunDir, check_writable, clean_temp_files, resolve_resume_dir, set_aside_previous_run
    from ..modalities import get_modality
    from ..tasks.classification import build_model, classification_parts

    modality_name = getattr(args, "modality", None)
    if modality_name is None and getattr(args, "resume", None):
        from ..engine.checkpoint import load_checkpoint

        modality_name = (load_checkpoint(args.resume).get("config") or {}).get("modality")
    modality = get_modality(modality_name or "image")
    layers = _resolve(args, modality)
    cfg = layers.config
    cfg["modality"] = modality.name
    if getattr(args, "resume", None):
        ckpt_path, out = resolve_resume_dir(args.resume, getattr(args, "output", None))
        args.resume = str(ckpt_path)
    else:
        out = Path(cfg.get("output") or default_output(cfg))
    cfg["output"] = str(out)

    info = distributed.init_from_env(str(cfg.get("device", "auto")))
    if info.is_main and not getattr(args, "resume", None):
        set_aside_previous_run(out)  # a new run never mixes its files with an earlier run's
    lock = RunDir(out, force=bool(cfg.get("force"))) if info.is_main else None
    try:
        if lock is not None:
            check_writable(out)
            lock.acquire()
            clean_temp_files(out)
        for key in ("data", "val_data", "data_root"):  # absolute: eval/predict may run from another folder
            value = cfg.get(key)
            if isinstance(value, str) and value and os.path.exists(value):
                cfg[key] = os.path.abspath(value)
        task = modality.build(argparse.Namespace(**cfg))
        if task.train is None or task.val is None:
            raise DataError(f"modality {modality.name} returned no train/val data")
        if task.multi_label and not layers.set_by_user("metric"):
            cfg["metric"], cfg["metric_mode"] = "mAP", "max"
        plan = _plan_lines(task)
        if info.is_main:
            for line in plan:
                logger.info("%s", line)
            if task.splits is not None:
                from ..modalities.base import save_split_lists

                save_split_lists(task.splits, out)
        device = str(distributed.resolve_device(str(cfg.get("device", "auto")), info.local_rank))
        auto_log: dict[str, Any] = {}
        use_auto = cfg.get("data") is not None and not getattr(args, "resume", None) and not getattr(args, "recipe", None) \
            and cfg.get("auto", True)
        if use_auto:
            for key, (value, why) in _auto_after_data(layers, task, device).items():
                cfg[key] = value
                layers.origin[key] = "auto"
                auto_log[key] = {"value": value, "why": why}
                logger.info("auto: %s = %s (%s)", key, value, why)
        auto_log.update({k: {"value": cfg[k], "why": layers.reasons.get(k, "")}
                         for k, o in layers.origin.items() if o == "auto" and k not in auto_log})
        try:
            ecfg = EngineConfig.from_dict(cfg)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"bad config: {e}") from e
        parts = classification_parts(task, cfg)
        torch.manual_seed(ecfg.seed)
        model = build_model(cfg, task.num_classes, task.in_chans)
        from .loaders import build_loader, dataset_size  # map-style through the engine, streams per rank

        train_loader = build_loader(task.train, ecfg, train=True, collate_fn=task.collate_fn, info=info)
        val_loader = build_loader(task.val, ecfg, train=False, collate_fn=task.collate_fn, info=info)
        if use_auto and not layers.set_by_user("epochs"):
            epochs, why = _budget(model, train_loader, parts, ecfg, task, cfg)
            cfg["epochs"] = ecfg.epochs = epochs
            if not layers.set_by_user("warmup_epochs"):
                from .auto import warmup_for

                cfg["warmup_epochs"] = ecfg.warmup_epochs = warmup_for(epochs)
                auto_log["warmup_epochs"] = {"value": cfg["warmup_epochs"], "why": "5% of the epochs (at most 5)"}
            auto_log["epochs"] = {"value": epochs, "why": why}
            logger.info("auto: epochs = %d (%s)", epochs, why)
            torch.manual_seed(ecfg.seed)
            model = build_model(cfg, task.num_classes, task.in_chans)
        for key, value in task.meta.items():  # values derived from the training data (e.g. a series length)
            if key in cfg and cfg[key] is None and value is not None:
                cfg[key] = value
        record = {"config": cfg, "num_classes": task.num_classes, "in_chans": task.in_chans,
                  "class_names": list(task.class_names), "input_size": list(task.input_size),
                  "eval_views": task.eval_views, "multi_label": task.multi_label, "meta": task.meta,
                  "splits": {"train": dataset_size(task.train), "val": dataset_size(task.val),
                             **{k: dataset_size(v) for k, v in task.tests.items()}}}
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "model.json").write_text(json.dumps(record, indent=2, default=str))
            yaml = __import__("yaml")
            (out / "config.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(cfg, default=str)), sort_keys=True))
        n_params = sum(p.numel() for p in model.parameters())
        logger.info("model %s: %.2fM parameters; run dir %s", cfg.get("model"), n_params / 1e6, out)
        def evaluate_selected(trainer: Any, _summary: dict) -> dict:
            return final_evaluation(trainer, task, ecfg, parts["evaluate_fn"])

        def baselines(_trainer: Any, _summary: dict) -> dict:
            wanted = cfg.get("baselines")
            if wanted or (wanted is None and dataset_size(task.train) <= 20000 and cfg.get("data") is not None):
                return {"baselines": _baselines(task, modality)}
            return {}

        def plan_record(_trainer: Any, _summary: dict) -> dict:
            skipped = task.splits.skipped if task.splits is not None else {}
            return {"plan": plan, "auto": auto_log, "splits": record["splits"],
                    "skipped_files": {k: len(v) for k, v in skipped.items()}}

        trainer = Trainer(model, train_loader, val_loader, parts["loss_fn"], parts["evaluate_fn"], ecfg, out,
                          train_batch_transform=parts["train_batch_transform"], full_config=cfg,
                          end_hooks=[plan_record, evaluate_selected, baselines])
        summary = trainer.fit(resume=getattr(args, "resume", None))
        summary["rank"] = info.rank
        # rank 0 did the end-of-run work (test evaluation, deploy export) alone: the others wait for it
        # here rather than tearing their side of the process group down under it
        distributed.barrier()
    finally:
        if lock is not None:
            lock.release()
        distributed.cleanup()
    return summary


def _budget(model: Any, loader: Any, parts: dict, ecfg: Any, task: Any, cfg: dict) -> tuple[int, str]:
    """Time a few real training steps of ``model`` and convert ``time_budget`` minutes into epochs."""
    from .auto import budget_epochs, probe_step

    from ..engine.distributed import resolve_device

    if ecfg.num_threads:
        import torch

        torch.set_num_threads(ecfg.num_threads)
    step = probe_step(model, loader, parts["loss_fn"], resolve_device(ecfg.device), parts["train_batch_transform"])
    from .loaders import dataset_size

    n_eval = dataset_size(task.val) * max(1, task.eval_views)
    return budget_epochs(step, n_train=dataset_size(task.train), n_eval=n_eval, batch_size=ecfg.batch_size,
                         minutes=float(cfg.get("time_budget") or 15.0))


def final_evaluation(trainer: Any, task: Any, ecfg: Any, evaluate_fn: Any) -> dict[str, Any]:
    """Evaluate the selected weights once on the validation split and every test split."""
    import copy

    from ..engine.distributed import DistInfo
    from .loaders import build_loader

    model = copy.deepcopy(trainer.model)
    model.load_state_dict(trainer.selected_model_weights())
    model.eval()
    results: dict[str, Any] = {}
    for name, ds in [("val", task.val), *task.tests.items()]:
        loader = build_loader(ds, ecfg, train=False, collate_fn=task.collate_fn, info=DistInfo())
        res = dict(evaluate_fn(model, loader, trainer.ctx))
        res["n"] = int(res.get("n", len(ds)))
        results[name] = {k: float(v) for k, v in res.items()}
    logger.info("final evaluation of the selected model: %s", "; ".join(
        f"{k}: " + " ".join(f"{m}={v:.4g}" for m, v in r.items()) for k, r in results.items()))
    return {"evaluation": results, "test": {k: v for k, v in results.items() if k != "val"}}


def _baselines(task: Any, modality: Any) -> Optional[dict[str, Any]]:
    """Simple baselines fitted on the training split, scored on the same val/test splits (None if unavailable)."""
    try:
        from ..tasks.baselines import run_baselines
    except ImportError:
        return None
    try:  # a multi-label task gets run_baselines' logged and recorded reason, not a silent None
        extra = getattr(modality, "baseline_features", None)
        from .loaders import is_streaming, materialize

        if any(is_streaming(d) for d in (task.train, task.val, *task.tests.values())):  # streams: read once
            import dataclasses

            task = dataclasses.replace(task, train=materialize(task.train, 4000), val=materialize(task.val),
                                       tests={k: materialize(v) for k, v in task.tests.items()}, test=None)
        return run_baselines(task, extra=extra(task) if callable(extra) else None)
    except (MemoryError, ValueError) as e:
        logger.warning("baselines skipped: %s", e)
        return None
