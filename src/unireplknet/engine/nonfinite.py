"""Say *why* a number is NaN or inf, in one line, instead of always blaming the learning rate.

:func:`diagnose_nonfinite_loss` checks what it can, in order: the input batch, the targets,
the model's weights, the model's outputs, and only then falls back to the optimisation settings
(learning rate, float16 loss scale). :func:`check_finite_outputs` guards evaluation and prediction.
"""
from __future__ import annotations

from typing import Any, Iterator, List, Optional, Tuple

import torch
from torch import nn

from ..errors import NonFiniteError

__all__ = ["diagnose_nonfinite_loss", "check_finite_outputs", "nonfinite_tensors", "nonfinite_parameters",
           "check_finite_weights"]


def _walk(obj: Any, name: str) -> Iterator[Tuple[str, torch.Tensor]]:
    """``(name, tensor)`` for every floating-point tensor inside tensors / lists / tuples / dicts."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            yield name, obj
    elif isinstance(obj, (list, tuple)):
        for i, o in enumerate(obj):
            yield from _walk(o, f"{name}[{i}]")
    elif isinstance(obj, dict):
        for k, o in obj.items():
            yield from _walk(o, f"{name}[{k!r}]")


def _count(t: torch.Tensor) -> Tuple[int, int]:
    """(number of non-finite values, number of NaNs)."""
    t = t.detach()
    bad = int((~torch.isfinite(t)).sum().item())
    nan = int(torch.isnan(t).sum().item()) if bad else 0
    return bad, nan


def nonfinite_tensors(obj: Any, name: str = "input") -> List[Tuple[str, int, int]]:
    """``(name, non-finite count, total count)`` of every tensor in ``obj`` holding NaN or inf."""
    out = []
    for n, t in _walk(obj, name):
        bad, _ = _count(t)
        if bad:
            out.append((n, bad, t.numel()))
    return out


def nonfinite_parameters(model: nn.Module, buffers: bool = True) -> List[str]:
    """Names of the parameters (and floating-point buffers, e.g. BatchNorm statistics) holding NaN or inf."""
    names = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p.detach()).all())]
    if buffers:
        names += [n for n, b in model.named_buffers()
                  if b.is_floating_point() and not bool(torch.isfinite(b.detach()).all())]
    return names


def _first(names: List[str], n: int = 3) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def _describe(found: List[Tuple[str, int, int]]) -> str:
    return "; ".join(f"{name} has {bad} of {total} values NaN/inf" for name, bad, total in found[:3]) + (
        f" (and {len(found) - 3} more tensors)" if len(found) > 3 else "")


def check_finite_weights(model: nn.Module, what: str = "the model", hint: str = "") -> None:
    """Raise :class:`NonFiniteError` naming the first parameters/buffers of ``model`` holding NaN or inf.

    ``what`` names the model in the message; ``hint`` (if given) is appended after a semicolon.
    """
    bad = nonfinite_parameters(model)
    if bad:
        raise NonFiniteError(f"{what} has NaN/inf weights in {len(bad)} tensor(s): {_first(bad)}"
                             + (f"; {hint}" if hint else ""))


def diagnose_nonfinite_loss(
    batch_inputs: Any,
    batch_targets: Any,
    model: nn.Module,
    lr: float,
    step: int,
    *,
    loss: Optional[torch.Tensor] = None,
    outputs: Any = None,
    loss_scale: Optional[float] = None,
    amp_dtype: Optional[torch.dtype] = None,
    clip_grad: Optional[float] = None,
) -> str:
    """One line naming the most likely cause of a NaN/inf loss at optimizer step ``step``.

    Checked in order: non-finite values in the input batch (which tensor, how many), in the targets,
    in the model's weights (the first few names: an earlier update diverged), in the outputs
    (a float16 overflow in the forward pass), a loss function that returned NaN/inf on finite outputs
    and targets; only when none of these holds does it point at the learning rate / loss scale.
    """
    value = f"{loss.item()}" if isinstance(loss, torch.Tensor) and loss.numel() == 1 else "NaN/inf"
    head = f"loss is {value} at step {step}"
    found = nonfinite_tensors(batch_inputs, "input")
    if found:
        return f"{head}: the input batch contains NaN/inf ({_describe(found)}); check the data and its preprocessing"
    found = nonfinite_tensors(batch_targets, "target")
    if found:
        return f"{head}: the targets contain NaN/inf ({_describe(found)}); check the labels"
    bad = nonfinite_parameters(model)
    if bad:
        fix = "lower lr" if clip_grad else "lower lr or set clip_grad"
        return (f"{head}: the model weights already hold NaN/inf in {len(bad)} tensor(s) ({_first(bad)}): "
                f"an earlier update diverged (lr {lr:.3g}); {fix}, or restart from an earlier checkpoint")
    if outputs is not None:
        found = nonfinite_tensors(outputs, "output")
        if found:
            if amp_dtype == torch.float16:
                return (f"{head}: the forward pass overflowed in float16 with finite inputs and weights "
                        f"({_describe(found)}); use amp_dtype bfloat16 or turn amp off")
            return (f"{head}: the forward pass produced NaN/inf with finite inputs and weights "
                    f"({_describe(found)}); the activations overflow: lower lr, or check the input scale")
        return (f"{head}: the loss function returned NaN/inf on finite outputs and targets; "
                f"check the targets' range (class indices, soft labels) and the loss")
    parts = [f"lr {lr:.3g}"]
    if loss_scale is not None:
        parts.append(f"float16 loss scale {loss_scale:g}")
    fix = "lower lr" if clip_grad else "lower lr or set clip_grad"
    if amp_dtype == torch.float16:
        fix += ", or use amp_dtype bfloat16"
    return (f"{head} with finite inputs, targets and weights: the optimisation diverged "
            f"({', '.join(parts)}{', clip_grad ' + format(clip_grad, 'g') if clip_grad else ''}); {fix}")


def check_finite_outputs(t: torch.Tensor, what: str) -> None:
    """Raise :class:`NonFiniteError` when ``t`` holds NaN or inf (``what`` names it: "predictions for x.png")."""
    if t.is_floating_point() or t.is_complex():
        bad, nan = _count(t)
        if bad:
            raise NonFiniteError(
                f"{what}: {bad} of {t.numel()} values are not finite ({nan} NaN, {bad - nan} inf); "
                f"the weights or the input hold NaN/inf, or the precision overflowed (try without amp / float16)"
            )
