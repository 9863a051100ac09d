"""Classification on top of the engine: losses (smoothing, mixup/cutmix soft targets, multi-label),
evaluation (top-1/top-5, multi-view averaging, mAP) and the confusion matrix."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._extras import require
from .defaults import CLASSIFICATION_DEFAULTS
from ..engine.trainer import EvalContext
from ..modalities.base import TaskData

__all__ = [
    "build_loss",
    "build_mixup",
    "evaluate",
    "predict_logits",
    "topk_accuracy",
    "mean_average_precision",
    "confusion_matrix",
    "plot_confusion_matrix",
    "classification_parts",
    "build_model",
    "load_trained",
    "resolve_run_weights",
    "RUN_WEIGHTS",
]

logger = logging.getLogger(__name__)


def _task_keys(config: Any) -> dict[str, Any]:
    """The classification keys of ``config`` (a mapping or an object with attributes), defaults filled in."""
    get = config.get if isinstance(config, Mapping) else (lambda k, d=None: getattr(config, k, d))
    return {k: (get(k, None) if get(k, None) is not None else v) for k, v in CLASSIFICATION_DEFAULTS.items()}


def build_mixup(config: Any, num_classes: int) -> Optional[Callable]:
    """timm ``Mixup`` (with label smoothing folded into its soft targets) or None when disabled.

    ``config``: a mapping (or namespace) with the keys of :data:`~unireplknet.tasks.defaults.CLASSIFICATION_DEFAULTS`.
    """
    c = _task_keys(config)
    if float(c["mixup"]) <= 0 and float(c["cutmix"]) <= 0:
        return None
    timm_data = require("timm.data", "train", "mixup/cutmix")
    return timm_data.Mixup(
        mixup_alpha=float(c["mixup"]),
        cutmix_alpha=float(c["cutmix"]),
        prob=float(c["mixup_prob"]),
        switch_prob=float(c["mixup_switch_prob"]),
        mode=str(c["mixup_mode"]),
        label_smoothing=float(c["smoothing"]),
        num_classes=num_classes,
    )


def build_loss(config: Any, multi_label: bool = False) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Training loss: BCE-with-logits (multi-label), soft-target CE (mixup or float targets),
    otherwise CE with ``smoothing`` label smoothing."""
    smoothing = float(_task_keys(config)["smoothing"])

    def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        output = output.float()
        if multi_label:
            return F.binary_cross_entropy_with_logits(output, target.float())
        if target.is_floating_point():  # soft targets (mixup, or a dataset's own)
            return torch.sum(-target * F.log_softmax(output, dim=-1), dim=-1).mean()
        return F.cross_entropy(output, target, label_smoothing=smoothing)

    return loss_fn


def topk_accuracy(logits: torch.Tensor, target: torch.Tensor, ks: Sequence[int] = (1, 5)) -> list[float]:
    """Fraction of samples whose target is among the top-k scores, for each k (k capped at #classes)."""
    maxk = min(max(ks), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices
    hit = top.eq(target.view(-1, 1))
    return [hit[:, : min(k, maxk)].any(dim=1).float().mean().item() for k in ks]


def mean_average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Macro average precision over classes that have at least one positive (multi-label)."""
    aps = []
    for c in range(scores.shape[1]):
        t = targets[:, c] > 0.5
        if not t.any():
            continue
        order = scores[:, c].argsort(descending=True)
        hits = t[order].float()
        precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
        aps.append((precision * hits).sum().item() / hits.sum().item())
    return float(sum(aps) / len(aps)) if aps else 0.0


@torch.no_grad()
def predict_logits(model: nn.Module, loader: Any, ctx: EvalContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (averaged over views for ``B x V x C x H x W`` inputs) and targets, on CPU."""
    outs, targets = [], []
    for x, y in loader:
        x = ctx.to_device(x)
        with ctx.autocast():
            if x.ndim == 5:
                b, v = x.shape[:2]
                logits = model(x.flatten(0, 1)).float().view(b, v, -1).mean(1)
            else:
                logits = model(x).float()
        outs.append(logits.cpu())
        targets.append(torch.as_tensor(y).cpu())
    if not outs:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(outs), torch.cat(targets)


def _gather(t: torch.Tensor, ctx: EvalContext) -> torch.Tensor:
    if ctx.world_size == 1:
        return t
    import torch.distributed as dist

    parts: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(parts, t)
    return torch.cat(parts)


def evaluate(model: nn.Module, loader: Any, ctx: EvalContext, multi_label: bool = False) -> dict[str, float]:
    """``{"loss", "acc1", "acc5", "n"}`` for single-label, ``{"loss", "mAP"}`` (global) for multi-label."""
    logits, target = predict_logits(model, loader, ctx)
    if multi_label:
        logits, target = _gather(logits, ctx), _gather(target, ctx)
        loss = F.binary_cross_entropy_with_logits(logits, target.float()).item()
        return {"loss": loss, "mAP": mean_average_precision(torch.sigmoid(logits), target)}
    if target.is_floating_point():
        target = target.argmax(dim=1)
    n = len(target)
    if n == 0:
        return {"loss": 0.0, "acc1": 0.0, "acc5": 0.0, "n": 0}
    loss = F.cross_entropy(logits, target).item()
    acc1, acc5 = topk_accuracy(logits, target)
    return {"loss": loss, "acc1": acc1, "acc5": acc5, "n": n}


def classification_parts(task: TaskData, config: Any) -> dict[str, Any]:
    """Loss, evaluate function, batch transform and metric settings for ``Trainer`` on a :class:`TaskData`."""
    mixup = build_mixup(config, task.num_classes) if not task.multi_label else None
    transform = task.train_batch_transform
    if mixup is not None:
        if transform is not None:
            raise ValueError("the modality already sets train_batch_transform; disable mixup/cutmix")
        transform = mixup
    multi = task.multi_label

    def evaluate_fn(model: nn.Module, loader: Any, ctx: EvalContext) -> dict[str, float]:
        return evaluate(model, loader, ctx, multi_label=multi)

    return {
        "loss_fn": build_loss(config, multi_label=multi),
        "evaluate_fn": evaluate_fn,
        "train_batch_transform": transform,
        "metric": "mAP" if multi else "acc1",
    }


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``num_classes x num_classes`` counts, rows = true class, columns = predicted class."""
    idx = target.long() * num_classes + pred.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def plot_confusion_matrix(cm: torch.Tensor, class_names: Sequence[str], path: str | Path) -> Path:
    """Save a confusion-matrix heat-map PNG (row-normalised colours, counts written for <= 30 classes)."""
    require("matplotlib", "train", "the confusion-matrix plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = cm.shape[0]
    norm = cm.float() / cm.sum(1, keepdim=True).clamp(min=1)
    size = min(4 + 0.4 * n, 20)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        ax.set_xticks(range(n), [str(c) for c in class_names], rotation=90)
        ax.set_yticks(range(n), [str(c) for c in class_names])
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


MODEL_KEYS = {"model": "unireplknet_a", "model_args": None, "pretrained": None, "head_init_scale": None}


def build_model(config: dict[str, Any], num_classes: int, in_chans: int) -> nn.Module:
    """A classifier from config keys ``model`` (variant or ``custom``), ``model_args``, ``pretrained``,
    ``drop_path``, ``head_init_scale`` and ``sync_bn`` (a pretrained head of another size is replaced)."""
    import unireplknet

    name = config.get("model") or MODEL_KEYS["model"]
    extra = dict(config.get("model_args") or {})
    if config.get("drop_path"):
        extra["drop_path_rate"] = float(config["drop_path"])
    if config.get("head_init_scale") is not None:
        extra["head_init_scale"] = float(config["head_init_scale"])
    pretrained = config.get("pretrained")
    if name == "custom":
        for key in ("depths", "dims"):
            if key not in extra:
                raise ValueError(f"model 'custom' needs model_args with {key!r} (and usually kernel_sizes)")
        if "kernel_sizes" in extra:
            extra["kernel_sizes"] = tuple(tuple(k) for k in extra["kernel_sizes"])
        model = unireplknet.UniRepLKNet(in_chans=in_chans, num_classes=num_classes, **extra)
        if pretrained:
            unireplknet.load_weights(model, pretrained, allow_nonfinite=bool(config.get("allow_nonfinite")))
        return model
    if name.split(".")[0] not in unireplknet.list_models():
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(unireplknet.list_models())} or 'custom'")
    return unireplknet.create_model(name, pretrained=pretrained or None, num_classes=num_classes,
                                    in_chans=in_chans, allow_nonfinite=bool(config.get("allow_nonfinite")), **extra)


#: the weight files of a run directory, in the order ``weights="auto"`` tries them
RUN_WEIGHTS = {"deploy": "deploy.safetensors", "best": "best.pt", "last": "last.pt"}


def resolve_run_weights(path: str | Path, weights: str = "auto") -> Path:
    """The weights file of a ``unireplknet train`` run directory (a file is returned unchanged).

    ``weights`` picks ``deploy``, ``best`` or ``last`` (``auto``: the first of them that exists).
    The one choice ``eval``, ``predict``, ``export`` and ``convert`` make for a run directory.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"run directory or checkpoint not found: {p}")
    if not p.is_dir():
        return p
    if weights != "auto" and weights not in RUN_WEIGHTS:
        raise ValueError(f"weights must be auto, deploy, best or last, not {weights!r}")
    order = list(RUN_WEIGHTS) if weights == "auto" else [weights]
    found = [p / RUN_WEIGHTS[w] for w in order if (p / RUN_WEIGHTS[w]).is_file()]
    if not found:
        raise FileNotFoundError(f"no {' / '.join(RUN_WEIGHTS[w] for w in order)} in {p}: "
                                f"is it a 'unireplknet train' run directory?")
    return found[0]


def _run_task(run_dir: Path, record: Optional[dict[str, Any]]) -> Optional[str]:
    """The task of a run directory (``model.json``'s config, else ``config.yaml``), ``None`` when unknown."""
    if record is not None:
        return (record.get("config") or {}).get("task") or record.get("task")
    try:
        cfg = run_dir / "config.yaml"
        if cfg.is_file():
            import yaml

            task = (yaml.safe_load(cfg.read_text()) or {}).get("task")
            if task:
                return str(task)
        for forecast in (run_dir / "metrics.json", run_dir.parent / "metrics.json"):  # a forecast run and its model
            if forecast.is_file() and {"data", "seasonal_periods"} <= set(json.loads(forecast.read_text())):
                return "forecasting"
        summary = run_dir / "summary.json"
        if summary.is_file():  # a segmentation run records its task only through its metrics
            data = json.loads(summary.read_text())
            if data.get("task"):
                return str(data["task"])
            if any("mIoU" in (r or {}) for r in (data.get("evaluation") or {}).values()):
                return "segmentation"
    except Exception:  # unreadable files: the missing model.json is the error to report
        return None
    return None


def load_trained(path: str | Path, weights: str = "auto") -> tuple[nn.Module, dict[str, Any]]:
    """A model trained by ``unireplknet train`` and its run record (``model.json``).

    ``path`` is a run directory or a file inside one (``best.pt``, ``last.pt``, ``deploy.safetensors``);
    ``weights`` picks ``deploy``, ``best`` or ``last`` in a run directory (``auto``: the first that exists).
    Weights written for another model raise one :class:`~unireplknet.errors.CheckpointError` naming the file.
    """
    import json

    import unireplknet

    from ..engine.checkpoint import load_checkpoint
    from ..errors import CheckpointError
    from ..weights import check_fits

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"run directory or checkpoint not found: {p}")
    run_dir = p if p.is_dir() else p.parent
    record_path = run_dir / "model.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else None
    task = _run_task(run_dir, record)
    if task not in (None, "classification"):
        numbers, doc = (("metrics.json", "docs/timeseries.md") if task == "forecasting"
                        else ("summary.json", "docs/dense.md"))
        where = run_dir.parent if task == "forecasting" and not (run_dir / numbers).is_file() else run_dir
        raise CheckpointError(f"{run_dir} is a {task} run: eval and predict take classification runs; its test "
                              f"numbers are in {where / numbers} ({doc})")
    if record is None:
        raise FileNotFoundError(f"{record_path} not found: is {run_dir} a 'unireplknet train' run directory?")
    p = resolve_run_weights(p, weights)
    cfg = dict(record["config"], pretrained=None)
    model = build_model(cfg, int(record["num_classes"]), int(record["in_chans"]))
    desc = f"the model of run {run_dir}"
    if p.suffix == ".safetensors":  # deploy weights: switch to the deploy structure first
        if hasattr(model, "reparameterize"):
            model.eval().reparameterize()
        report = unireplknet.load_weights(model, p)  # another variant: one CheckpointError naming p
        if report.dropped:  # load_weights keeps a fresh head for another class count: wrong for a trained run
            raise CheckpointError(f"{p} does not fit {desc}: its classifier has another number of classes")
    else:
        state = load_checkpoint(p).get("model")
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{p} holds no whole model state_dict (a sharded fsdp checkpoint?); "
                                  f"use the run's deploy.safetensors")
        check_fits(model.state_dict(), state, str(p), model_desc=desc)
        model.load_state_dict(state)
    logger.info("loaded %s", p)
    return model.eval(), record
