"""Tiny train-structure models with non-trivial BatchNorm statistics, for the deploy tests."""
from __future__ import annotations

import torch

import unireplknet


def tiny_model(in_chans: int = 1, num_classes: int = 10, kernel_sizes=((3,), (7,), (5, 0), (7,)), seed: int = 0):
    """A tiny UniRepLKNet whose BN statistics, layer scales and GRN parameters are far from their init."""
    torch.manual_seed(seed)
    m = unireplknet.UniRepLKNet(in_chans=in_chans, num_classes=num_classes, depths=(1, 1, 2, 1),
                                dims=(8, 16, 32, 64), kernel_sizes=kernel_sizes)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
        for name, p in m.named_parameters():
            if name.endswith(("gamma", "beta")):
                p.uniform_(-1.0, 1.0)
    return m.eval()
