"""The task-agnostic training loop: optimisation, AMP, EMA, DDP, checkpoints, logging, deploy export."""
from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .._extras import require
from ..errors import ConfigError
from .nonfinite import check_finite_weights
from . import checkpoint as ckpt_lib
from .config import EngineConfig
from ..reparam import reparameterize_verified
from .distributed import DistInfo, all_reduce_tensor, barrier, get_info, resolve_device
from .metrics_log import MetricsLog, plot_curves
from .optim import build_optimizer, build_scheduler

__all__ = ["Trainer", "EvalContext", "LossFn", "EvaluateFn"]

logger = logging.getLogger(__name__)

LossFn = Callable[[Any, Any], torch.Tensor]
#: ``hook(trainer, summary) -> dict | None``: run on rank 0 after training; the dict is merged into the summary.
EndHook = Callable[["Trainer", dict], Optional[dict]]


@dataclass
class EvalContext:
    """What an ``evaluate_fn`` needs: the device, the autocast policy and the rank layout."""

    device: torch.device
    amp_dtype: Optional[torch.dtype]
    info: DistInfo
    channels_last: bool = False

    @property
    def rank(self) -> int:
        return self.info.rank

    @property
    def world_size(self) -> int:
        return self.info.world_size

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context matching the training precision (a no-op in fp32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def to_device(self, obj: Any) -> Any:
        """Move tensors (also inside lists, tuples and dicts) to the device."""
        if isinstance(obj, torch.Tensor):
            obj = obj.to(self.device, non_blocking=True)
            if self.channels_last and obj.ndim == 4 and obj.is_floating_point():
                obj = obj.contiguous(memory_format=torch.channels_last)
            return obj
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.to_device(o) for o in obj)
        if isinstance(obj, dict):
            return {k: self.to_device(v) for k, v in obj.items()}
        return obj


EvaluateFn = Callable[[nn.Module, DataLoader, EvalContext], dict]


def _set_fast_training(enabled: bool) -> None:
    """Switch the fast Dilated Reparam Block training path (when this build has it)."""
    try:
        from ..ops.fast_train import set_fast_training
    except ImportError:
        return
    set_fast_training(enabled)


def _release_workspace() -> None:
    """Free the fast training path's scratch tensors once training is over."""
    try:
        from ..ops.fast_train import release_workspace
    except ImportError:
        return
    release_workspace()


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class Trainer:
    """Train ``model`` with ``loss_fn``, evaluate with ``evaluate_fn``, write everything to ``run_dir``.

    ``config`` is an :class:`EngineConfig` or a mapping of engine keys (other keys are ignored
    here but stored in checkpoints when passed as ``full_config``). See docs/engine.md.
    """

    def __init__(
        self,
        model: nn.Module,
        train_loader: DataLoader,
        val_loader: Optional[DataLoader],
        loss_fn: LossFn,
        evaluate_fn: Optional[EvaluateFn],
        config: EngineConfig | dict,
        run_dir: str | Path,
        *,
        train_batch_transform: Optional[Callable[[Any, Any], tuple[Any, Any]]] = None,
        full_config: Optional[dict[str, Any]] = None,
        extra_state: Optional[dict[str, Any]] = None,
        end_hooks: Sequence[EndHook] = (),
    ) -> None:
        self.cfg = config if isinstance(config, EngineConfig) else EngineConfig.from_dict(config)
        self.full_config = dict(full_config) if full_config is not None else self.cfg.to_dict()
        self.extra_state = extra_state or {}
        self.end_hooks = list(end_hooks)
        self.info = get_info()
        if self.cfg.num_threads:
            torch.set_num_threads(self.cfg.num_threads)
        self.device = resolve_device(self.cfg.device, self.info.local_rank)
        self.run_dir = Path(run_dir)
        _set_fast_training(self.cfg.fast_train)
        if self.cfg.fast_train and self.device.type == "cpu" and self.info.is_main:
            from ..ops.native import status

            logger.info("fast training path; compiled CPU kernels: %s", status())
        self.train_loader, self.val_loader = train_loader, val_loader
        self.loss_fn, self.evaluate_fn = loss_fn, evaluate_fn
        self.batch_transform = train_batch_transform
        if self.val_loader is not None and self.evaluate_fn is None:
            raise ValueError("a val_loader needs an evaluate_fn")
        if self.cfg.metric_mode not in ("max", "min"):
            raise ValueError(f"metric_mode must be 'max' or 'min', got {self.cfg.metric_mode!r}")

        if self.cfg.grad_checkpointing:
            if not hasattr(model, "set_grad_checkpointing"):
                raise ValueError(f"{type(model).__name__} has no set_grad_checkpointing()")
            model.set_grad_checkpointing(True)
        if self.cfg.sync_bn and self.info.enabled:
            if self.device.type != "cuda":
                logger.warning("sync_bn ignored: SyncBatchNorm needs CUDA (running on %s)", self.device)
            else:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(self.device)
        if self.cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        self.fsdp = bool(self.cfg.fsdp and self.info.enabled)
        self._template: Optional[nn.Module] = None  # fsdp: the unsharded structure (meta device)
        if self.cfg.fsdp and not self.info.enabled:
            logger.warning("fsdp ignored: no process group (launch with torchrun); training the whole model here")
        if self.fsdp:
            if self.cfg.ema:
                raise ConfigError("fsdp does not support ema (the EMA would hold a full copy per process): turn one off")
            from . import fsdp as fsdp_lib

            self._template = fsdp_lib.meta_copy(model)
            fsdp_lib.shard_model(model, checkpoint_activations=True)
        self.model = model

        # Precision: bf16 on CPU, bf16 or fp16 (+GradScaler) on CUDA.
        self.amp_dtype: Optional[torch.dtype] = None
        if self.cfg.amp:
            self.amp_dtype = self.cfg.autocast_dtype(self.device.type)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.ctx = EvalContext(self.device, self.amp_dtype, self.info, self.cfg.channels_last)

        micro = len(train_loader)
        self.updates_per_epoch = micro // self.cfg.accum
        if self.cfg.max_train_steps:
            self.updates_per_epoch = min(self.updates_per_epoch, self.cfg.max_train_steps)
        if self.updates_per_epoch < 1:
            raise ValueError(
                f"an epoch has {micro} batch(es), fewer than accum={self.cfg.accum}: lower batch_size or accum"
            )
        self.total_batch = self.cfg.batch_size * self.cfg.accum * self.info.world_size
        self.lr = self.cfg.lr * (self.total_batch / self.cfg.lr_base_batch if self.cfg.lr_base_batch else 1.0)
        self.optimizer = build_optimizer(model, self.cfg, self.lr)
        self.scheduler = build_scheduler(self.optimizer, self.cfg, self.updates_per_epoch, self.lr)
        self.ema = None
        if self.cfg.ema:
            timm_utils = require("timm.utils", "train", "the weight EMA")
            self.ema = timm_utils.ModelEmaV3(model, decay=self.cfg.ema_decay)
        self.ddp: Optional[nn.Module] = None
        if self.info.enabled and not self.fsdp:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(model, device_ids=ids)

        self.epoch = 0
        self.batch_in_epoch = 0
        self.global_step = 0
        self.best: dict[str, Any] = {}
        self.stopped_early: Optional[int] = None  # the epoch after which `patience` stopped the run
        self._loss_sum = 0.0
        self._loss_count = 0
        self.metrics = MetricsLog(self.run_dir, tensorboard=self.info.is_main) if self.info.is_main else None

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (weights_only-loadable)."""
        return {
            "format": ckpt_lib.FORMAT,
            # fsdp: weights and optimizer state live in a DCP directory named by "sharded" (see save)
            "model": None if self.fsdp else self.model.state_dict(),
            "optimizer": None if self.fsdp else self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            "loss_sum": self._loss_sum,
            "loss_count": self._loss_count,
            "best": dict(self.best),
            "history": list(self.metrics.history) if self.metrics else [],
            "rng": ckpt_lib.rng_state(),
            "config": self.full_config,
            "signature": ckpt_lib.model_signature(self._template if self.fsdp else self.model),
            "world_size": self.info.world_size,
            "extra": self.extra_state,
        }

    def load_state_dict(self, ckpt: dict[str, Any], path: str = "checkpoint") -> None:
        """Restore a :meth:`state_dict` (refuses checkpoints of other models)."""
        ckpt_lib.check_signature(ckpt["signature"], self._template if self.fsdp else self.model, path)
        if ckpt.get("world_size", 1) != self.info.world_size and ckpt.get("batch_in_epoch", 0):
            raise ValueError(
                f"{path} was written mid-epoch by {ckpt.get('world_size')} process(es); resume it with the same number"
            )
        if ckpt.get("sharded"):  # an fsdp checkpoint: DCP reshards to this world size (or to one whole model)
            from .fsdp import load_sharded

            base = Path(path) if Path(path).is_dir() else Path(path).parent
            load_sharded(self.model, self.optimizer, base / ckpt["sharded"])
        elif self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

            set_model_state_dict(self.model, ckpt["model"], options=StateDictOptions(full_state_dict=True))
            logger.warning("%s is not an fsdp checkpoint: weights loaded, the optimizer state restarts", path)
        else:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        # The schedule is a pure function of global_step (re-planned if epochs changed): no state to load.
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            if ckpt.get("ema") is None:
                logger.warning("%s has no EMA weights: the EMA restarts from the current weights", path)
                self.ema.module.load_state_dict(ckpt["model"])
            else:
                self.ema.module.load_state_dict(ckpt["ema"])
        self.epoch = int(ckpt["epoch"])
        self.batch_in_epoch = int(ckpt["batch_in_epoch"])
        self.global_step = int(ckpt["global_step"])
        self._loss_sum = float(ckpt.get("loss_sum", 0.0))
        self._loss_count = int(ckpt.get("loss_count", 0))
        self.best = dict(ckpt.get("best") or {})
        if self.metrics is not None:
            self.metrics.history = list(ckpt.get("history") or [])
        ckpt_lib.set_rng_state(ckpt["rng"])

    def save(self, name: str = "last.pt", state: Optional[dict[str, Any]] = None) -> Optional[Path]:
        """Atomically write a checkpoint into the run directory (rank 0 only; with fsdp every rank calls this)."""
        if self.fsdp:
            return self._save_sharded(name, state if state is not None else self.state_dict())
        if not self.info.is_main:
            return None
        path = self.run_dir / name
        ckpt_lib.atomic_save(state if state is not None else self.state_dict(), path)
        return path

    def _save_sharded(self, name: str, state: dict[str, Any]) -> Optional[Path]:
        """fsdp: every rank writes its shards to ``ckpt-step<N>.dcp/``, then rank 0 atomically writes ``name``
        (the usual checkpoint without weights, naming that directory) and removes directories no
        checkpoint names any more. ``last.pt`` and ``best.pt`` of one step share the directory."""
        import shutil

        from .fsdp import save_sharded

        dcp_name = f"ckpt-step{self.global_step}.dcp"
        if getattr(self, "_dcp_saved", None) != dcp_name:
            save_sharded(self.model, self.optimizer, self.run_dir / dcp_name)
            self._dcp_saved = dcp_name
        path = None
        if self.info.is_main:
            path = self.run_dir / name
            ckpt_lib.atomic_save(dict(state, sharded=dcp_name), path)
            keep = {dcp_name}
            for other in ("last.pt", "best.pt"):
                if other != name and (self.run_dir / other).is_file():
                    keep.add(str(ckpt_lib.load_checkpoint(self.run_dir / other).get("sharded")))
            for d in self.run_dir.glob("ckpt-step*.dcp"):
                if d.name not in keep:
                    shutil.rmtree(d, ignore_errors=True)
        barrier()
        return path

    # ------------------------------------------------------------------ loop
    def _batches(self, skip: int) -> Iterator[Any]:
        loader = self.train_loader
        sampler = loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        if hasattr(loader.dataset, "set_epoch"):
            loader.dataset.set_epoch(self.epoch)
        if skip:
            if not hasattr(sampler, "set_skip"):
                raise ValueError("mid-epoch resume needs a loader from engine.make_loader (ResumableSampler)")
            sampler.set_skip(skip * self.cfg.batch_size)
        try:
            yield from loader
        finally:
            if hasattr(sampler, "set_skip"):
                sampler.set_skip(0)

    def _train_epoch(self) -> dict[str, float]:
        cfg = self.cfg
        self.model.train()
        net = self.ddp if self.ddp is not None else self.model
        n_micro = self.updates_per_epoch * cfg.accum
        start = self.batch_in_epoch
        if start == 0:
            self._loss_sum, self._loss_count = 0.0, 0
        tqdm = require("tqdm", "train", "progress bars").tqdm
        bar = tqdm(total=n_micro, initial=start, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   disable=not self.info.is_main or None, leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()
        seen = 0
        batches = self._batches(start)
        for i in range(start, n_micro):
            batch = next(batches)
            x, y = self.ctx.to_device(batch)
            if self.batch_transform is not None:
                x, y = self.batch_transform(x, y)
            last_micro = (i + 1) % cfg.accum == 0
            sync = contextlib.nullcontext() if (self.ddp is None or last_micro) else self.ddp.no_sync()
            with sync:
                with self.ctx.autocast():
                    out = net(x)
                    loss = self.loss_fn(out, y)
                if not torch.isfinite(loss):
                    self._raise_nonfinite_loss(x, y, out, loss, i)
                self.scaler.scale(loss / cfg.accum).backward()
            self._loss_sum += loss.item()
            self._loss_count += 1
            seen += x.shape[0] if isinstance(x, torch.Tensor) else cfg.batch_size
            if last_micro:
                self.scheduler.step_update(self.global_step)
                if cfg.clip_grad:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                self.global_step += 1
                if self.ema is not None:
                    self.ema.update(self.model, step=self.global_step)
                self.batch_in_epoch = i + 1
                if cfg.ckpt_every_steps and self.global_step % cfg.ckpt_every_steps == 0 and i + 1 < n_micro:
                    from .nonfinite import check_finite_weights

                    # never replace a good last.pt with diverged weights
                    check_finite_weights(
                        self.model, f"after step {self.global_step} the model",
                        f"the update diverged (lr {self._current_lr():.3g}); last.pt not updated",
                    )
                    self.save("last.pt")
            dt = time.perf_counter() - t0
            bar.set_postfix(loss=f"{self._loss_sum / self._loss_count:.4f}", lr=f"{self._current_lr():.2e}",
                            img_s=f"{seen * self.info.world_size / max(dt, 1e-9):.0f}")
            bar.update(1)
        bar.close()
        batches.close()
        dt = time.perf_counter() - t0
        stats = all_reduce_tensor(torch.tensor([self._loss_sum, float(self._loss_count)], dtype=torch.float64))
        return {
            "train_loss": float(stats[0] / max(stats[1], 1)),
            "lr": self._current_lr(),
            "train_img_s": seen * self.info.world_size / max(dt, 1e-9),
            "epoch_time_s": dt,
        }

    def _raise_nonfinite_loss(self, x: Any, y: Any, out: Any, loss: torch.Tensor, batch: int) -> None:
        """Raise :class:`~unireplknet.errors.NonFiniteError` with a one-line diagnosis of a NaN/inf loss.

        Called before ``backward``: no update is applied, and ``last.pt`` keeps the state from before this step.
        """
        from ..errors import NonFiniteError
        from .nonfinite import diagnose_nonfinite_loss

        why = diagnose_nonfinite_loss(
            x, y, self.model, self._current_lr(), self.global_step, loss=loss.detach().float(), outputs=out,
            loss_scale=self.scaler.get_scale() if self.scaler.is_enabled() else None,
            amp_dtype=self.amp_dtype, clip_grad=self.cfg.clip_grad,
        )
        kept = " (last.pt from before this step is kept)" if (self.run_dir / "last.pt").is_file() else ""
        raise NonFiniteError(f"epoch {self.epoch + 1}, batch {batch}: {why}{kept}")

    def _current_lr(self) -> float:
        return max(g["lr"] for g in self.optimizer.param_groups)

    @torch.no_grad()
    def evaluate(self, model: Optional[nn.Module] = None) -> dict[str, float]:
        """Run ``evaluate_fn`` on the val loader and reduce the result across ranks."""
        if self.val_loader is None or self.evaluate_fn is None:
            return {}
        model = model if model is not None else self.model
        was_training = model.training
        model.eval()
        if self.fsdp and model is self.model:
            from .fsdp import gathered

            with gathered(model):  # ranks may have different numbers of val batches
                res = dict(self.evaluate_fn(model, self.val_loader, self.ctx))
        else:
            res = dict(self.evaluate_fn(model, self.val_loader, self.ctx))
        model.train(was_training)
        if self.info.enabled and "n" in res:
            keys = sorted(k for k in res if k != "n")
            n = float(res["n"])
            t = torch.tensor([n] + [float(res[k]) * n for k in keys], dtype=torch.float64)
            t = all_reduce_tensor(t)
            res = {k: float(t[j + 1] / max(t[0], 1)) for j, k in enumerate(keys)}
            res["n"] = float(t[0])
        return {k: float(v) for k, v in res.items()}

    def _is_better(self, value: float, loss: Optional[float] = None) -> bool:
        """Selection rule: ``select: last`` takes every epoch; else the better metric, ties broken by lower loss."""
        if self.cfg.select == "last" or "value" not in self.best:
            return True
        if value == self.best["value"]:
            old = self.best.get("loss")
            return loss is not None and old is not None and loss < old
        return value > self.best["value"] if self.cfg.metric_mode == "max" else value < self.best["value"]

    def fit(self, resume: Optional[str | Path] = None) -> dict[str, Any]:
        """Train to ``config.epochs`` (continuing from ``resume`` if given); returns the run summary."""
        cfg = self.cfg
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume is not None:
            ckpt = ckpt_lib.load_checkpoint(resume)
            self.load_state_dict(ckpt, str(resume))
            logger.info("resumed from %s at epoch %d, batch %d", resume, self.epoch + 1, self.batch_in_epoch)
        else:
            _seed_all(cfg.seed + self.info.rank)
        t_start = time.perf_counter()
        img_s: list[float] = []
        while self.epoch < cfg.epochs:
            row: dict[str, Any] = {"epoch": self.epoch + 1}
            row.update(self._train_epoch())
            img_s.append(row["train_img_s"])
            last = self.epoch + 1 == cfg.epochs
            best_state = None
            if self.val_loader is not None and ((self.epoch + 1) % cfg.eval_every == 0 or last):
                val = self.evaluate()
                row.update({f"val_{k}": v for k, v in val.items() if k != "n"})
                candidates = [("model", val)]
                if self.ema is not None and cfg.ema_eval:
                    ema_val = self.evaluate(self.ema.module)
                    row.update({f"ema_{k}": v for k, v in ema_val.items() if k != "n"})
                    candidates.append(("ema", ema_val))
                for source, res in candidates:
                    if cfg.metric not in res:
                        raise ConfigError(f"metric {cfg.metric!r} is not computed by this task; "
                                          f"choose one of {', '.join(sorted(k for k in res if k != 'n'))}")
                    if self._is_better(res[cfg.metric], res.get("loss")):
                        self.best = {"value": res[cfg.metric], "epoch": self.epoch + 1, "source": source,
                                     "metric": cfg.metric, "loss": res.get("loss"), "select": cfg.select}
                        best_state = source
            self.epoch += 1
            self.batch_in_epoch = 0
            if self.metrics is not None:
                self.metrics.log(row)
            check_finite_weights(self.model, f"after epoch {self.epoch} the model", "last.pt not updated")
            state = self.state_dict()
            self.save("last.pt", state)
            if best_state is not None:
                if best_state == "ema":
                    state = dict(state, model=self.ema.module.state_dict())  # type: ignore[union-attr]
                self.save("best.pt", state)
            logger.info("epoch %d/%d %s", row["epoch"], cfg.epochs,
                        " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch" and isinstance(v, float)))
            if cfg.patience and self.epoch < cfg.epochs and self.evals_since_best() >= cfg.patience:
                self.stopped_early = self.epoch
                logger.info("early stopping after epoch %d: val %s has not improved for %d evaluation(s) "
                            "(best %.4g at epoch %s); best.pt holds that epoch", self.epoch, cfg.metric,
                            self.evals_since_best(), self.best.get("value", float("nan")), self.best.get("epoch"))
                break
        _release_workspace()
        barrier()
        if self.fsdp:
            self._unshard_for_finish()
        summary = self._finish(time.perf_counter() - t_start, img_s)
        summary["stopped_early"] = self.stopped_early
        return summary

    def evals_since_best(self) -> int:
        """Evaluations run since the best one (the early-stopping counter; 0 before any evaluation)."""
        if "epoch" not in self.best or self.val_loader is None:
            return 0
        every = self.cfg.eval_every
        return sum(1 for e in range(int(self.best["epoch"]) + 1, self.epoch + 1)
                   if e % every == 0 or e == self.cfg.epochs)

    # ------------------------------------------------------------------ end of run
    def selected_model_weights(self) -> dict[str, torch.Tensor]:
        """The weights the run selected (``best.pt``; with ``select: last`` that is the last evaluated epoch)."""
        return self.best_model_weights()

    def best_model_weights(self) -> dict[str, torch.Tensor]:
        """The weights of ``best.pt`` (or the current ones when no evaluation ran)."""
        path = self.run_dir / "best.pt"
        if path.is_file():
            ckpt = ckpt_lib.load_checkpoint(path)
            if ckpt.get("sharded"):  # fsdp: read the DCP directory into one whole model (this process only)
                from .fsdp import is_sharded, load_full, meta_copy

                plain = meta_copy(self._template if is_sharded(self.model) else self.model).to_empty(device="cpu")
                return load_full(plain, path.parent / ckpt["sharded"])
            return ckpt["model"]
        return self.model.state_dict()

    def _unshard_for_finish(self) -> None:
        """fsdp, end of run: gather the full weights (every rank); rank 0 continues with a whole, unsharded
        model (deploy export, final evaluation), the other ranks keep their shards."""
        from .fsdp import full_state_dict

        full = full_state_dict(self.model)
        if self.info.is_main and self._template is not None:
            plain = self._template.to_empty(device=self.device)
            plain.load_state_dict(full)
            self.model = plain

    def _probe(self) -> Optional[torch.Tensor]:
        loader = self.val_loader or self.train_loader
        try:
            batch = next(iter(loader))
        except StopIteration:
            return None
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        if not isinstance(x, torch.Tensor):
            return None
        if x.ndim == 5:  # V x C x H x W views: probe the first view of each sample
            x = x[:, 0]
        return x[:4].to(self.device)

    def _finish(self, seconds: float, img_s: list[float]) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "best": self.best,
            "epochs": self.epoch,
            "seconds": seconds,
            "train_img_s": float(np.mean(img_s)) if img_s else None,
            "run_dir": str(self.run_dir),
            "files": {},
        }
        if not self.info.is_main:
            return summary
        files = summary["files"]
        files["last"] = str(self.run_dir / "last.pt")
        if (self.run_dir / "best.pt").is_file():
            files["best"] = str(self.run_dir / "best.pt")
        if self.cfg.deploy and hasattr(self.model, "reparameterize"):
            probe = self._probe()
            if probe is not None:
                import copy

                best = copy.deepcopy(self.model)
                best.load_state_dict(self.best_model_weights())
                deployed, diff = reparameterize_verified(best, probe)
                from ..weights import save_weights

                path = save_weights(deployed, self.run_dir / "deploy.safetensors")
                summary["deploy_max_abs_diff"] = diff
                files["deploy"] = str(path)
                logger.info("re-parameterized best model verified (max |diff| %.2e), saved %s", diff, path)
        if self.metrics is not None:
            png = plot_curves(self.metrics.history, self.run_dir / "curves.png")
            if png is not None:
                files["curves"] = str(png)
            files["metrics"] = str(self.run_dir / "metrics.csv")
            self.metrics.close()
        for hook in self.end_hooks:  # end-of-run work of the task/runner (test evaluation, baselines, ...)
            summary.update(hook(self, summary) or {})
        with open(self.run_dir / "summary.json", "w") as f:
            json.dump(summary, f, indent=2)
        return summary
