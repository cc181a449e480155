"""Saliency networks: a MobileNetV2 trunk, a DeepGaze-II-style readout, blur and centre bias.

Every network here maps ``[B, 3, H, W]`` float32 BGR images with values 0–255 to a
``[B, 1, h, w]`` log-density (``logsumexp = 0`` over each map) at stride 8, so that the ONNX
export carries its own pre-processing and the runtime only resizes the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from cropsal.training.mobilenet import build_features, load_imagenet

# The channel counts of the MobileNetV2 block outputs that can be tapped (index → channels).
BLOCK_CHANNELS = {3: 24, 6: 32, 10: 64, 13: 96, 16: 160, 17: 320}
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


@dataclass
class NetConfig:
    """Shape of a :class:`SaliencyNet`; stored with checkpoints so they rebuild exactly."""

    taps: list[int] = field(default_factory=lambda: [6, 13, 17])
    readout: list[int] = field(default_factory=lambda: [32, 16])
    blur_sigma: float = 1.5  # in output cells (stride 8)
    dropout: float = 0.3
    hidden: list[int] = field(default_factory=list)  # pruned widths of blocks 1…; [] = MobileNetV2


class GaussianBlur(nn.Module):
    """Separable Gaussian blur with edge replication; ``[B, 1, h, w]`` → same shape."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        radius = max(1, math.ceil(3 * sigma))
        taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
        self.radius = radius
        self.register_buffer("kernel", kernel / kernel.sum(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.radius
        x = F.pad(x, (r, r, r, r), mode="replicate")
        x = F.conv2d(x, self.kernel.view(1, 1, 1, -1))
        return F.conv2d(x, self.kernel.view(1, 1, -1, 1))


class CentreBias(nn.Module):
    """Learned anisotropic Gaussian log-prior over normalised image coordinates.

    The coordinate grid is built from cumulative sums of ones, not from Python shapes, so the
    exported graph stays valid for every input size.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.tensor([0.5, 0.5]))
        self.log_sigma = nn.Parameter(torch.log(torch.tensor([0.25, 0.25])))

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(like[:, :1])
        ys = torch.cumsum(ones, dim=2)
        xs = torch.cumsum(ones, dim=3)
        yn = (ys - 0.5) / ys[:, :, -1:, :]
        xn = (xs - 0.5) / xs[:, :, :, -1:]
        sigma = torch.exp(self.log_sigma)
        return -0.5 * (
            ((xn - self.mean[0]) / sigma[0]) ** 2 + ((yn - self.mean[1]) / sigma[1]) ** 2
        )


def log_softmax_2d(x: torch.Tensor) -> torch.Tensor:
    """Normalise ``[B, 1, h, w]`` scores to a log-density per map."""
    flat = x.flatten(1)
    return (flat - torch.logsumexp(flat, dim=1, keepdim=True)).view_as(x)


class SaliencyNet(nn.Module):
    """MobileNetV2 features at several depths → 1×1 readout → blur → + centre bias → log-softmax.

    Input ``[B, 3, H, W]`` float32 BGR 0–255; output ``[B, 1, ceil(H/8), ceil(W/8)]`` log-density.
    """

    stride = 8

    def __init__(self, config: NetConfig, imagenet: bool = True) -> None:
        super().__init__()
        self.config = config
        self.features = build_features(max(config.taps) + 1, config.hidden or None)
        if imagenet:
            load_imagenet(self.features)
        mean = torch.tensor(IMAGENET_MEAN_RGB[::-1]).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD_RGB[::-1]).view(1, 3, 1, 1) * 255.0
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)

        layers: list[nn.Module] = [nn.Dropout2d(config.dropout)]
        c_in = sum(BLOCK_CHANNELS[t] for t in config.taps)
        for c_out in config.readout:
            layers += [nn.Conv2d(c_in, c_out, 1), nn.Softplus()]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, 1, 1))
        self.readout = nn.Sequential(*layers)
        self.blur = GaussianBlur(config.blur_sigma)
        self.centre_bias = CentreBias()

    def tapped_features(self, bgr: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` BGR 0–255 → ``[B, C, ceil(H/8), ceil(W/8)]`` concatenated features."""
        x = ((bgr - self.pixel_mean) / self.pixel_std).flip(1)  # BGR → RGB, ImageNet scaling
        taps, out = set(self.config.taps), []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in taps:
                out.append(x)
        size = out[0].shape[-2:]
        return torch.cat(
            [out[0]] + [F.interpolate(t, size=size, mode="bilinear") for t in out[1:]], 1
        )

    def forward(self, bgr: torch.Tensor) -> torch.Tensor:
        scores = self.blur(self.readout(self.tapped_features(bgr)))
        return log_softmax_2d(scores + self.centre_bias(scores))
