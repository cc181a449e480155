"""What every training stage shares: configuration files, the run folder, the optimiser, and a
resumable loop that logs progress, validates, writes ``metrics.csv`` and checkpoints."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import tomllib
import torch

from cropsal.training.nets import NetConfig, SaliencyNet

log = logging.getLogger(__name__)
C = TypeVar("C")
WARMUP_STEPS = 100
LOG_EVERY = 50


def load_config(cls: type[C], path: str | Path | None, overrides: dict | None = None) -> C:
    """A stage's dataclass from a TOML file plus overrides; a ``[net]`` table becomes its
    :class:`NetConfig`. Unknown settings are an error naming them."""
    raw = tomllib.loads(Path(path).read_text()) if path else {}
    raw.update(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
    if "net" in fields and "net" in raw:
        raw["net"] = NetConfig(**raw["net"])
    return cls(**raw)


def start_run(cfg, out: Path) -> np.random.Generator:
    """Create the run folder, write the resolved configuration, seed torch and numpy."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    if getattr(cfg, "threads", 0):
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    return np.random.default_rng(cfg.seed)


def make_optimizer(model: SaliencyNet, cfg) -> torch.optim.Optimizer:
    """AdamW with the readout and centre bias at ``lr_head`` and the trunk's trainable blocks
    (from ``freeze_blocks`` on) at ``lr_backbone``."""
    for i, block in enumerate(model.features):
        block.requires_grad_(i >= cfg.freeze_blocks)
    head = list(model.readout.parameters()) + list(model.centre_bias.parameters())
    trunk = [p for p in model.features.parameters() if p.requires_grad]
    return torch.optim.AdamW(
        [{"params": head, "lr": cfg.lr_head}, {"params": trunk, "lr": cfg.lr_backbone}],
        weight_decay=cfg.weight_decay,
    )


def freeze_batchnorm(model: SaliencyNet) -> None:
    """Keep ImageNet batch statistics: small batches would only add noise to them."""
    for m in model.features.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()


def write_row(path: Path, row: dict) -> None:
    """Append ``row`` to a CSV, writing the header when the file is new."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def fit(
    model: SaliencyNet,
    opt: torch.optim.Optimizer,
    cfg,
    out: Path,
    rng: np.random.Generator,
    batch_loss: Callable[[np.random.Generator], torch.Tensor],
    validate: Callable[[], dict],
) -> Path:
    """Train until ``cfg.steps`` with a warm-up and cosine decay, resuming from
    ``out/checkpoint.pt`` if there is one; every ``cfg.val_every`` steps (and at the end) append
    the mean training loss (nats) and ``validate()`` to ``metrics.csv`` and checkpoint."""
    ckpt, step = out / "checkpoint.pt", 0
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, rng = state["step"], state["rng"]
        log.info("resumed %s at step %d", ckpt, step)
    base_lrs = [g["lr"] for g in opt.param_groups]

    model.train()
    freeze_batchnorm(model)
    t0 = window_t0 = time.monotonic()
    running: list[float] = []
    while step < cfg.steps:
        scale = (
            min(1.0, (step + 1) / WARMUP_STEPS) * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        )
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * scale
        loss = batch_loss(rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running.append(loss.item())

        if step % cfg.val_every == 0 or step == cfg.steps:
            row = {
                "step": step,
                "train_loss": round(float(np.mean(running)), 4),
                "seconds": round(time.monotonic() - t0, 1),
            }
            model.eval()
            row.update(validate())
            model.train()
            freeze_batchnorm(model)
            running = []
            write_row(out / "metrics.csv", row)
            log.info("step %d: %s", step, row)
            state = {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "rng": rng,
                "config": dataclasses.asdict(cfg),
            }
            torch.save(state, ckpt)
        elif step % LOG_EVERY == 0:
            log.info(
                "step %d/%d loss %.4f (%.2f s/step)",
                step,
                cfg.steps,
                np.mean(running[-LOG_EVERY:]),
                (time.monotonic() - window_t0) / LOG_EVERY,
            )
        if step % LOG_EVERY == 0:
            window_t0 = time.monotonic()
    return ckpt
