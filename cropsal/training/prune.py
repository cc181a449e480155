"""Stage ``prune``: Fisher pruning of a student's feature maps, weighed by what each one costs.

Every expanded (hidden) feature map of the student's inverted-residual blocks gets a gate.
The loss increase from closing gate ``k`` is estimated, as in Theis et al. (2018), by
``½ · mean over images of (Σ_spatial a·∂L/∂a)²``; its cost is the multiply-accumulates the map
takes part in (its expand filter, its depthwise filter, its column of the projection). Each
round closes the maps with the smallest estimated increase per MAC saved, then fine-tunes a few
steps with the distillation loss. Validation information gain against MACs is written to
``curve.csv`` and ``curve.png``; the chosen point is saved as a compact network.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from cropsal.datasets import CentreBiasBaseline, load_fixation_set
from cropsal.training.cost import conv_macs
from cropsal.training.data import cache_images
from cropsal.training.mobilenet import InvertedResidual
from cropsal.training.nets import NetConfig, SaliencyNet
from cropsal.training.runs import freeze_batchnorm, load_config, start_run, write_row
from cropsal.training.student import (
    StudentConfig,
    distil_batch,
    distil_loss,
    ensemble_density,
    load_teacher_maps,
)
from cropsal.training.teacher import validate

log = logging.getLogger(__name__)


@dataclass
class PruneConfig:
    student: str = "runs/student/checkpoint.pt"  # the distil stage's checkpoint (and folder)
    maps_per_round: int = 32  # feature maps closed per round
    fisher_batches: int = 4  # batches over which the Fisher estimate is averaged
    finetune_steps: int = 25  # steps between rounds
    lr: float = 1e-4
    min_channels: int = 8  # a block keeps at least this many maps
    target_macs: float = 0.1e9  # stop once the student costs this little (at 256×192)
    keep_gain: float = 0.95  # the chosen point keeps this share of the unpruned gain
    val_every_rounds: int = 5
    val_limit: int = 0
    seed: int = 0
    threads: int = 0

    @classmethod
    def load(cls, path: str | Path | None) -> PruneConfig:
        return load_config(cls, path)


def gated_blocks(model: SaliencyNet) -> list[InvertedResidual]:
    return [b for b in model.features if isinstance(b, InvertedResidual) and b.expands]


def map_costs(model: SaliencyNet, blocks: list[InvertedResidual]) -> list[np.ndarray]:
    """MACs (at 256×192) that each hidden map of each block takes part in."""
    sizes: dict[int, tuple[int, int]] = {}

    def record(block):
        def hook(_m, inputs, output):
            sizes[id(block)] = (
                inputs[0].shape[-2] * inputs[0].shape[-1],
                output.shape[-2] * output.shape[-1],
            )

        return hook

    hooks = [b.register_forward_hook(record(b)) for b in blocks]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 192, 256))
    for h in hooks:
        h.remove()
    costs = []
    for b in blocks:
        in_px, out_px = sizes[id(b)]
        c_in, c_out = b.conv[0][0].in_channels, b.conv[-2].out_channels
        costs.append(np.full(b.hidden, in_px * c_in + out_px * 9 + out_px * c_out, np.float64))
    return costs


def gated_macs(model: SaliencyNet, blocks, costs) -> float:
    """MACs with closed maps removed (what the compact network will cost)."""
    full = conv_macs(model)
    closed = sum(float(c[b.gate.numpy() == 0].sum()) for b, c in zip(blocks, costs))
    return full - closed


def fisher_scores(model, blocks, batches, kl_weight: float) -> list[np.ndarray]:
    """½ · mean over images of (Σ_spatial a·g)² per hidden map of each block."""
    sums = [torch.zeros(b.hidden) for b in blocks]
    count = 0
    saved: dict[int, torch.Tensor] = {}
    for b in blocks:

        def keep(h, block=b):
            h.retain_grad()
            saved[id(block)] = h

        b.on_hidden = keep
    for batch, cells, target in batches:
        model.zero_grad(set_to_none=True)
        log_density = model(batch)
        loss = distil_loss(log_density, cells, target, kl_weight)
        loss.backward()
        for k, b in enumerate(blocks):
            h = saved[id(b)]
            sums[k] += ((h * h.grad).sum(dim=(2, 3)) ** 2).sum(0).detach() * batch.shape[0] ** 2
        count += batch.shape[0]
    for b in blocks:
        b.on_hidden = None
    model.zero_grad(set_to_none=True)
    # the loss is a batch mean, so per-image gradients are B times the batch gradient's share
    return [0.5 * (s / count).numpy() for s in sums]


def compact(model: SaliencyNet) -> SaliencyNet:
    """A network without the closed maps: same outputs, fewer channels."""
    blocks = gated_blocks(model)
    hidden = []
    for b in model.features[1:]:
        hidden.append(int(b.gate.sum()) if b in blocks else b.hidden)
    config = dataclasses.replace(model.config, hidden=hidden)
    small = SaliencyNet(config, imagenet=False)
    head = {k: v for k, v in model.state_dict().items() if not k.startswith("features.")}
    small.load_state_dict(head, strict=False)
    for src, dst in zip(model.features, small.features):
        if src not in blocks:
            dst.load_state_dict(src.state_dict())
            continue
        keep = torch.nonzero(src.gate).flatten()
        expand, dw, proj, bn_out = src.conv[0], src.conv[1], src.conv[2], src.conv[3]
        dst.conv[0][0].weight.data = expand[0].weight.data[keep].clone()
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(dst.conv[0][1], name).data = getattr(expand[1], name).data[keep].clone()
            getattr(dst.conv[1][1], name).data = getattr(dw[1], name).data[keep].clone()
        dst.conv[1][0].weight.data = dw[0].weight.data[keep].clone()
        dst.conv[2].weight.data = proj.weight.data[:, keep].clone()
        dst.conv[3].load_state_dict(bn_out.state_dict())
    return small.eval()


def plot_curve(rows: list[dict], chosen: dict | None, path: Path) -> None:
    """Information gain (pooled, bits) against MMAC as a PNG drawn with OpenCV."""
    w, h, m = 640, 420, 60
    img = np.full((h, w, 3), 255, np.uint8)
    macs = np.array([r["mmac"] for r in rows])
    gain = np.array([r["pooled_information_gain"] for r in rows])
    x0, x1 = 0.0, macs.max() * 1.05
    y0, y1 = min(gain.min(), 0.0), gain.max() * 1.1

    def to_px(x, y):
        return (
            int(m + (x - x0) / (x1 - x0) * (w - 2 * m)),
            int(h - m - (y - y0) / (y1 - y0) * (h - 2 * m)),
        )

    cv2.line(img, to_px(x0, y0), to_px(x1, y0), (0, 0, 0), 1)
    cv2.line(img, to_px(x0, y0), to_px(x0, y1), (0, 0, 0), 1)
    for a, b in zip(zip(macs, gain), list(zip(macs, gain))[1:]):
        cv2.line(img, to_px(*a), to_px(*b), (200, 80, 0), 2, cv2.LINE_AA)
    for x, y in zip(macs, gain):
        cv2.circle(img, to_px(x, y), 3, (200, 80, 0), -1)
    if chosen:
        cv2.circle(img, to_px(chosen["mmac"], chosen["pooled_information_gain"]), 8, (0, 0, 220), 2)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(
        img,
        "validation information gain (bits/fixation) vs MMAC at 256x192",
        (m, 30),
        font,
        0.5,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    for v in np.linspace(x0, x1, 5):
        cv2.putText(img, f"{v:.0f}", (to_px(v, y0)[0] - 10, h - m + 20), font, 0.4, (0, 0, 0), 1)
    for v in np.linspace(y0, y1, 5):
        cv2.putText(img, f"{v:.2f}", (5, to_px(x0, v)[1] + 4), font, 0.4, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)


def prune_student(cfg: PruneConfig, out: Path, smoke: bool = False) -> Path:
    """Prune, record the curve, save the chosen compact network; returns its checkpoint."""
    rng = start_run(cfg, out)

    state = torch.load(cfg.student, map_location="cpu", weights_only=False)
    scfg = StudentConfig(**{**state["config"], "net": NetConfig(**state["config"]["net"])})
    scfg = dataclasses.replace(scfg, val_limit=cfg.val_limit)
    model = SaliencyNet(scfg.net, imagenet=False)
    model.load_state_dict(state["model"])
    run = Path(cfg.student).parent
    sets = [load_fixation_set(p) for p in scfg.datasets]
    baseline = CentreBiasBaseline.fit(sets, "train")
    maps = load_teacher_maps(run / "teacher_maps.npz")
    weights = json.loads((run / "ensemble.json").read_text())
    images = cache_images(sets, "train", limit=8 if smoke else 0)
    densities = [ensemble_density(maps, weights, im.source) for im in images]

    blocks = gated_blocks(model)
    for b in blocks:
        b.gate = torch.ones(b.hidden)
    costs = map_costs(model, blocks)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)

    def batch():
        return distil_batch(images, densities, scfg.batch_size, rng, model.stride, scfg.long_side)

    curve_path = out / "curve.csv"
    curve_path.unlink(missing_ok=True)
    rows, snapshots, t0, round_no = [], {}, time.monotonic(), 0
    while True:
        macs = gated_macs(model, blocks, costs)
        if round_no % cfg.val_every_rounds == 0 or macs <= cfg.target_macs:
            row = {
                "round": round_no,
                "mmac": round(macs / 1e6, 2),
                "maps": int(sum(b.gate.sum() for b in blocks)),
                "seconds": round(time.monotonic() - t0, 1),
            }
            row.update(validate(model, scfg, sets, baseline))  # per set and pooled
            rows.append(row)
            write_row(curve_path, row)
            snapshots[round_no] = (
                copy.deepcopy([b.gate.clone() for b in blocks]),
                copy.deepcopy(model.state_dict()),
            )
            log.info(
                "round %d: %.1f MMAC, IG %.3f", round_no, macs / 1e6, row["pooled_information_gain"]
            )
        if macs <= cfg.target_macs or (smoke and round_no >= 2):
            break

        # close the maps whose removal costs least loss per MAC saved
        model.train()
        freeze_batchnorm(model)
        scores = fisher_scores(
            model, blocks, [batch() for _ in range(cfg.fisher_batches)], scfg.kl_weight
        )
        candidates = []
        for k, (b, s, c) in enumerate(zip(blocks, scores, costs)):
            open_maps = torch.nonzero(b.gate).numpy().flatten()
            if open_maps.size > cfg.min_channels:
                candidates += [(s[j] / c[j], k, j) for j in open_maps]
        if not candidates:
            break
        candidates.sort()
        per_block: dict[int, int] = {}
        for _, k, j in candidates[: cfg.maps_per_round]:
            if int(blocks[k].gate.sum()) - per_block.get(k, 0) > cfg.min_channels:
                blocks[k].gate[j] = 0.0
                per_block[k] = per_block.get(k, 0) + 1

        for _ in range(cfg.finetune_steps):
            b_img, cells, target = batch()
            loss = distil_loss(model(b_img), cells, target, scfg.kl_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        round_no += 1

    # the cheapest point that keeps enough of the unpruned gain
    full_gain = rows[0]["pooled_information_gain"]
    good = [r for r in rows if r["pooled_information_gain"] >= cfg.keep_gain * full_gain]
    chosen = min(good, key=lambda r: r["mmac"])
    plot_curve(rows, chosen, out / "curve.png")
    gates, weights_state = snapshots[chosen["round"]]
    model.load_state_dict(weights_state)
    for b, g in zip(blocks, gates):
        b.gate = g
    small = compact(model)
    for b in gated_blocks(small):
        b.gate = None
    result = {
        "chosen": chosen,
        "unpruned_gain": full_gain,
        "kept_share": chosen["pooled_information_gain"] / full_gain if full_gain else math.nan,
    }
    (out / "chosen.json").write_text(json.dumps(result, indent=2) + "\n")
    ckpt = out / "checkpoint.pt"
    config = dataclasses.asdict(scfg) | {"net": dataclasses.asdict(small.config)}
    torch.save({"model": small.state_dict(), "config": config, "step": chosen["round"]}, ckpt)
    log.info(
        "chose round %d: %.1f MMAC, IG %.3f (%.0f %% of %.3f)",
        chosen["round"],
        chosen["mmac"],
        chosen["pooled_information_gain"],
        100 * result["kept_share"],
        full_gain,
    )
    return ckpt
