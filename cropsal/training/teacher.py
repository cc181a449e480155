"""Stage ``teacher``: fit a :class:`SaliencyNet` to human fixations by their log-likelihood.

The same stage trains cropsal's first shipped model (a fine-tuned MobileNetV2 trunk at long
side 256) and, at larger inputs, the ensemble's MobileNetV2 teacher. Each run writes its
resolved configuration (``config.json``), a metrics CSV (``metrics.csv``) and a checkpoint
(``checkpoint.pt``) from which an interrupted run resumes.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tomllib
import torch

from cropsal.datasets import CentreBiasBaseline, load_fixation_set
from cropsal.evaluate import evaluate
from cropsal.training.data import cache_images, sample_batch, whole_image_input
from cropsal.training.nets import NetConfig, SaliencyNet

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
        raw = tomllib.loads(Path(path).read_text()) if path else {}
        raw.update(overrides or {})
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
        net = NetConfig(**raw.pop("net", {}))
        return cls(net=net, **raw)


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


def freeze_batchnorm(model: SaliencyNet) -> None:
    """Keep ImageNet batch statistics: small batches would only add noise to them."""
    for m in model.features.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()


def fixation_nll(log_density: torch.Tensor, cells: list[torch.Tensor]) -> torch.Tensor:
    """Mean over images of the mean negative log-probability (nats) of each fixation's cell,
    plus ``log(cells)`` so that a uniform map scores 0 whatever the map size."""
    flat = log_density.flatten(1)
    per_image = [-(flat[b, c].mean() + math.log(flat.shape[1])) for b, c in enumerate(cells)]
    return torch.stack(per_image).mean()


def train_teacher(cfg: TeacherConfig, out: Path, smoke: bool = False) -> Path:
    """Run (or resume) the stage; returns the checkpoint path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    sets = [load_fixation_set(p) for p in cfg.datasets]
    baseline = CentreBiasBaseline.fit(sets, "train")
    images = cache_images(sets, cfg.split, cfg.cache_long_side, limit=8 if smoke else 0)

    model = SaliencyNet(cfg.net, imagenet=not cfg.init_from)
    if cfg.init_from:
        state = torch.load(cfg.init_from, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        log.info("started from %s", cfg.init_from)
    for i, block in enumerate(model.features):
        block.requires_grad_(i >= cfg.freeze_blocks)
    head = list(model.readout.parameters()) + list(model.centre_bias.parameters())
    trunk = [p for p in model.features.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": head, "lr": cfg.lr_head}, {"params": trunk, "lr": cfg.lr_backbone}],
        weight_decay=cfg.weight_decay,
    )
    base_lrs = [g["lr"] for g in opt.param_groups]

    ckpt, step = out / "checkpoint.pt", 0
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, rng = state["step"], state["rng"]
        log.info("resumed %s at step %d", ckpt, step)

    metrics_path = out / "metrics.csv"
    model.train()
    freeze_batchnorm(model)
    t0, running, window_t0 = time.monotonic(), [], time.monotonic()
    while step < cfg.steps:
        # cosine decay with a short warm-up
        frac = step / cfg.steps
        scale = min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * frac))
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * scale

        batch, cells = sample_batch(images, cfg.batch_size, rng, model.stride, cfg.long_side)
        loss = fixation_nll(model(batch), cells)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running.append(loss.item())

        if step % cfg.val_every == 0 or step == cfg.steps:
            row = {
                "step": step,
                "train_bits": round(-float(np.mean(running)) / math.log(2), 4),
                "seconds": round(time.monotonic() - t0, 1),
            }
            row.update(validate(model, cfg, sets, baseline))
            running = []
            write_row(metrics_path, row)
            log.info("step %d: %s", step, row)
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "step": step,
                    "rng": rng,
                    "config": dataclasses.asdict(cfg),
                },
                ckpt,
            )
        elif step % 50 == 0:
            log.info(
                "step %d/%d loss %.4f (%.2f s/step)",
                step,
                cfg.steps,
                np.mean(running[-50:]),
                (time.monotonic() - window_t0) / 50,
            )
        if step % 50 == 0:
            window_t0 = time.monotonic()
    return ckpt


def write_row(path: Path, row: dict) -> None:
    """Append ``row`` to a CSV, writing the header when the file is new."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
