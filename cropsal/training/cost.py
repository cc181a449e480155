"""Multiply-accumulates of a network, counted from the convolutions it actually runs."""

from __future__ import annotations

import torch
from torch import nn


def conv_macs(model: nn.Module, width: int = 256, height: int = 192) -> int:
    """Multiply-accumulates of every ``Conv2d`` for one ``[1, 3, height, width]`` input."""
    total = 0

    def count(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += output[0].numel() * (module.in_channels // module.groups) * k

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, height, width))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total
