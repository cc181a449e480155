"""Stage ``teacher``: fit a :class:`SaliencyNet` to human fixations by their log-likelihood.

The same stage trains cropsal's first shipped model (a fine-tuned MobileNetV2 trunk at long
side 256) and, at larger inputs, the ensemble's MobileNetV2 teacher. Each run writes its
resolved configuration (``config.json``), a metrics CSV (``metrics.csv``) and a checkpoint
(``checkpoint.pt``) from which an interrupted run resumes.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cropsal.datasets import CentreBiasBaseline, load_fixation_set
from cropsal.evaluate import evaluate
from cropsal.training.data import cache_images, sample_batch, whole_image_input
from cropsal.training.nets import NetConfig, SaliencyNet
from cropsal.training.runs import (
    fit,
    freeze_batchnorm,
    load_config,
    make_optimizer,
    start_run,
)

log = logging.getLogger(__name__)


@dataclass
class TeacherConfig:
    """Everything a run depends on; saved resolved next to its outputs."""

    datasets: list[str] = field(
        default_factory=lambda: [
            "../shared/eyetracking/mit1003",
            "../shared/eyetracking/osie",
            "../shared/eyetracking/eyecrowd",
        ]
    )
    split: str = "train"  # images trained on; validation always uses the "val" split
    long_side: int = 256  # of the network input in training, validation and at run time
    cache_long_side: int = 320  # images are kept in memory at this long side
    init_from: str = ""  # checkpoint.pt whose network weights start this run ("": ImageNet)
    steps: int = 3000
    batch_size: int = 8
    lr_head: float = 3e-3
    lr_backbone: float = 2e-4
    weight_decay: float = 1e-4
    freeze_blocks: int = 4  # MobileNetV2 blocks [0, freeze_blocks) keep their ImageNet weights
    val_every: int = 500
    val_limit: int = 0  # validate on at most this many images per data set (0: all)
    seed: int = 0
    threads: int = 0  # torch threads (0: torch's default)
    net: NetConfig = field(default_factory=NetConfig)

    @classmethod
    def load(cls, path: str | Path | None, overrides: dict | None = None) -> TeacherConfig:
        return load_config(cls, path, overrides)


def torch_predictor(model: SaliencyNet, long_side: int):
    """Wrap a network as an ``HxWx3 uint8 BGR → [h, w] log-density`` predictor."""

    @torch.no_grad()
    def predict(bgr: np.ndarray) -> np.ndarray:
        return model(whole_image_input(bgr, long_side))[0, 0].numpy()

    return predict


def validate(model: SaliencyNet, cfg: TeacherConfig, sets, baseline) -> dict[str, float]:
    """Validation NSS / AUC-Judd / information gain per data set (model in eval mode)."""
    model.eval()
    predictors = {"model": torch_predictor(model, cfg.long_side)}
    results = evaluate(predictors, sets, "val", baseline, aspects=(), limit=cfg.val_limit)
    row = {
        f"{name}_{k}": round(results[name]["model"][k], 4)
        for name in results
        for k in ("nss", "auc_judd", "information_gain")
    }
    model.train()
    freeze_batchnorm(model)
    return row


def fixation_nll(log_density: torch.Tensor, cells: list[torch.Tensor]) -> torch.Tensor:
    """Mean over images of the mean negative log-probability (nats) of each fixation's cell,
    plus ``log(cells)`` so that a uniform map scores 0 whatever the map size."""
    flat = log_density.flatten(1)
    per_image = [-(flat[b, c].mean() + math.log(flat.shape[1])) for b, c in enumerate(cells)]
    return torch.stack(per_image).mean()


def train_teacher(cfg: TeacherConfig, out: Path, smoke: bool = False) -> Path:
    """Run (or resume) the stage; returns the checkpoint path."""
    rng = start_run(cfg, out)
    sets = [load_fixation_set(p) for p in cfg.datasets]
    baseline = CentreBiasBaseline.fit(sets, "train")
    images = cache_images(sets, cfg.split, cfg.cache_long_side, limit=8 if smoke else 0)

    model = SaliencyNet(cfg.net, imagenet=not cfg.init_from)
    if cfg.init_from:
        state = torch.load(cfg.init_from, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        log.info("started from %s", cfg.init_from)
    opt = make_optimizer(model, cfg)

    def batch_loss(rng: np.random.Generator) -> torch.Tensor:
        batch, cells = sample_batch(images, cfg.batch_size, rng, model.stride, cfg.long_side)
        return fixation_nll(model(batch), cells)

    return fit(model, opt, cfg, out, rng, batch_loss, lambda: validate(model, cfg, sets, baseline))
