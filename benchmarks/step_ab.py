"""Same-process A/B of training-path variants over full training steps (CPU); imported by the A/B scripts.

One model, one fixed batch (fp32, fused AdamW as in ``train_throughput.py``); each round runs one step under
every variant in turn, so load on a shared machine hits all variants alike.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Tuple


def ab_steps(
    model_name: str, variants: Dict[str, Callable[[], None]], rounds: int, threads: int,
    batch_size: int = 16, size: int = 224, warmup: int = 1,
) -> Tuple[Dict[str, List[float]], Dict[str, List[float]]]:
    """Per-variant lists of process CPU seconds and wall seconds per training step of ``model_name``.

    ``variants`` maps a name to a function that switches the training path to that variant; the caller
    restores its default afterwards. ``warmup`` steps run under each variant before the timed rounds.
    """
    import torch

    import unireplknet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = unireplknet.create_model(model_name, num_classes=1000).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05, fused=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, size, size, generator=g)
    y = torch.randint(0, 1000, (batch_size,), generator=g)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for switch in variants.values():
        switch()
        for _ in range(warmup):
            step()
    cpu: Dict[str, List[float]] = {name: [] for name in variants}
    wall: Dict[str, List[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, switch in variants.items():
            switch()
            t0, w0 = time.process_time(), time.perf_counter()
            step()
            cpu[name].append(time.process_time() - t0)
            wall[name].append(time.perf_counter() - w0)
    return cpu, wall
