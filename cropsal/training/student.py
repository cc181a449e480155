"""Stage ``distil``: a small student network learns the teacher ensemble's density.

Teachers: a :class:`SaliencyNet` trained by the ``teacher`` stage (run at its own input size)
and Twitter's 2018 network plus the centre bias; the ensemble is their mixture, weighted by
the validation likelihood of the fixations. Teacher densities are computed once per image
(cached in ``teacher_maps.npz``) and carried through each augmented view's crop and flip. The
student's loss is ``kl_weight × KL(ensemble ‖ student) + (1 − kl_weight) × fixation NLL``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from cropsal.datasets import CentreBiasBaseline, FixationSet, load_fixation_set
from cropsal.preprocess import resize_log_density
from cropsal.training.cost import conv_macs
from cropsal.training.data import BATCH_SHAPES, cache_images, fixation_cells, random_view
from cropsal.training.export import load_checkpoint
from cropsal.training.nets import NetConfig, SaliencyNet
from cropsal.training.runs import fit, load_config, make_optimizer, start_run
from cropsal.training.teacher import fixation_nll, torch_predictor, validate

log = logging.getLogger(__name__)
MIXTURE_WEIGHTS = np.linspace(0.0, 1.0, 21)


@dataclass
class StudentConfig:
    datasets: list[str] = field(
        default_factory=lambda: [
            "../shared/eyetracking/mit1003",
            "../shared/eyetracking/osie",
            "../shared/eyetracking/eyecrowd",
        ]
    )
    teacher: str = "runs/teacher512/checkpoint.pt"
    fastgaze: str = "../shared/teachers/twitter-fastgaze/fastgaze.vxm"  # "" leaves it out
    long_side: int = 256
    steps: int = 3000
    batch_size: int = 8
    kl_weight: float = 0.7
    lr_head: float = 3e-3
    lr_backbone: float = 3e-4
    weight_decay: float = 1e-4
    freeze_blocks: int = 2
    val_every: int = 500
    val_limit: int = 0
    seed: int = 0
    threads: int = 0
    # a checkpoint.pt to start from instead of ImageNet (e.g. a pruned student, to recover what
    # pruning cost); its network replaces ``net``
    init: str = ""
    # a teacher_maps.npz written by an earlier distil run, reused instead of running the teachers
    maps: str = ""
    net: NetConfig = field(default_factory=lambda: NetConfig(taps=[6, 13], readout=[16]))

    @classmethod
    def load(cls, path: str | Path | None, overrides: dict | None = None) -> StudentConfig:
        return load_config(cls, path, overrides)


def member_predictors(cfg: StudentConfig, baseline: CentreBiasBaseline) -> dict:
    """The ensemble's members as ``HxWx3 uint8 BGR → [h, w] log-density`` predictors."""
    members = {}
    teacher, tcfg = load_checkpoint(Path(cfg.teacher))
    members["mobilenet"] = torch_predictor(teacher, tcfg["long_side"])
    if cfg.fastgaze and Path(cfg.fastgaze).is_file():
        from cropsal.evaluate import fastgaze_predictor
        from cropsal.teachers.fastgaze import FastGaze

        members["fastgaze"] = fastgaze_predictor(FastGaze(cfg.fastgaze), baseline)
    elif cfg.fastgaze:
        log.warning("%s not found: the ensemble has one member", cfg.fastgaze)
    return members


def teacher_maps(
    cfg: StudentConfig, sets: list[FixationSet], baseline, out: Path, limit: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """``{member: {"set/image": [h, w] log-density}}`` for every train and val image, cached."""
    path = out / "teacher_maps.npz"
    if path.exists():
        return load_teacher_maps(path)
    members = member_predictors(cfg, baseline)
    maps = {m: {} for m in members}
    t0 = time.monotonic()
    for fs in sets:
        for i in fs.indices("all")[: limit or None]:
            bgr = cv2.imread(str(fs.image_path(i)), cv2.IMREAD_COLOR)
            grid = None
            for member, predict in members.items():
                m = predict(bgr)
                grid = grid or m.shape  # every member on the first member's grid
                maps[member][f"{fs.name}/{fs.images[i]}"] = resize_log_density(m, grid[1], grid[0])
        log.info("teacher maps of %s done (%.0f s)", fs.name, time.monotonic() - t0)
    np.savez(path, **{f"{m}|{k}": v for m, d in maps.items() for k, v in d.items()})
    return maps


def load_teacher_maps(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """The cache written by :func:`teacher_maps` (keys ``member|set/image``)."""
    maps: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            member, name = key.split("|", 1)
            maps.setdefault(member, {})[name] = data[key]
    return maps


def mixture_weights(maps, sets: list[FixationSet], baseline) -> dict[str, float]:
    """Weights of a two-member mixture chosen by the fixations' likelihood on the val split
    (a single member gets weight 1). Logged with each member's information gain."""
    members = list(maps)
    if len(members) == 1:
        return {members[0]: 1.0}
    gains = {w: [] for w in MIXTURE_WEIGHTS}
    for fs in sets:
        for i in fs.indices("val"):
            name, (w_px, h_px) = (
                f"{fs.name}/{fs.images[i]}",
                (int(fs.widths[i]), int(fs.heights[i])),
            )
            xs, ys = fs.fixations(i)
            cols = np.clip(np.rint(xs), 0, w_px - 1).astype(int)
            rows = np.clip(np.rint(ys), 0, h_px - 1).astype(int)
            dens = [
                np.exp(resize_log_density(maps[m][name], w_px, h_px)[rows, cols]) for m in members
            ]
            base = np.exp(baseline.log_density(w_px, h_px)[rows, cols])
            for w in MIXTURE_WEIGHTS:
                gains[w].append(np.log2((w * dens[0] + (1 - w) * dens[1]) / base))
    scores = {w: float(np.concatenate(g).mean()) for w, g in gains.items()}
    best = max(scores, key=scores.get)
    log.info(
        "ensemble: IG %s; chosen weight of %s %.2f (IG %.3f bits)",
        {f"{w:.2f}": round(v, 3) for w, v in scores.items() if w in (0.0, 1.0)},
        members[0],
        best,
        scores[best],
    )
    return {members[0]: float(best), members[1]: float(1 - best)}


def ensemble_density(maps, weights: dict[str, float], name: str) -> np.ndarray:
    """``[h, w]`` probabilities of the weighted mixture for one image."""
    return sum(w * np.exp(maps[m][name].astype(np.float64)) for m, w in weights.items() if w > 0)


def distil_batch(images, densities, batch_size: int, rng, stride: int, long_side: int):
    """Views of one shape with fixation cells and the ensemble's density per student cell."""
    shapes, weights = zip(*BATCH_SHAPES)
    w, h = shapes[rng.choice(len(shapes), p=np.array(weights) / sum(weights))]
    size = (round(w * long_side / 256 / 16) * 16, round(h * long_side / 256 / 16) * 16)
    views, cells, targets = [], [], []
    while len(views) < batch_size:
        k = int(rng.integers(len(images)))
        view, xs, ys, dens = random_view(images[k], size, rng, density=densities[k])
        if not xs.size:
            continue
        pooled = cv2.resize(
            dens, (size[0] // stride, size[1] // stride), interpolation=cv2.INTER_AREA
        )
        pooled = np.maximum(pooled.astype(np.float64), 1e-12)
        views.append(view)
        cells.append(torch.from_numpy(fixation_cells(xs, ys, size, stride)))
        targets.append(torch.from_numpy((pooled / pooled.sum()).astype(np.float32)))
    batch = torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).float()
    return batch, cells, torch.stack(targets)


def kl_from(target: torch.Tensor, log_density: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(target ‖ model) in nats; target ``[B, h, w]`` probabilities."""
    t = target.flatten(1)
    return (t * (torch.log(t.clamp_min(1e-12)) - log_density.flatten(1))).sum(1).mean()


def train_student(cfg: StudentConfig, out: Path, smoke: bool = False) -> Path:
    """Run (or resume) the stage; returns the checkpoint path."""
    init = None
    if cfg.init:  # the resolved configuration names the network actually trained
        init, init_config = load_checkpoint(Path(cfg.init))
        cfg = dataclasses.replace(cfg, net=NetConfig(**init_config["net"]))
    rng = start_run(cfg, out)
    sets = [load_fixation_set(p) for p in cfg.datasets]
    baseline = CentreBiasBaseline.fit(sets, "train")
    if cfg.maps:
        maps = load_teacher_maps(Path(cfg.maps))
    else:
        maps = teacher_maps(cfg, sets, baseline, out, limit=12 if smoke else 0)
    weights = (
        mixture_weights(maps, sets, baseline) if not smoke else {m: 1 / len(maps) for m in maps}
    )
    (out / "ensemble.json").write_text(json.dumps(weights, indent=2) + "\n")
    images = cache_images(sets, "train", limit=8 if smoke else 0)
    densities = [ensemble_density(maps, weights, im.source) for im in images]

    model = init if init is not None else SaliencyNet(cfg.net, imagenet=True)
    opt = make_optimizer(model, cfg)
    log.info(
        "student: %.2f M parameters, %.1f MMAC at 256x192",
        sum(p.numel() for p in model.parameters()) / 1e6,
        conv_macs(model) / 1e6,
    )

    def batch_loss(rng: np.random.Generator) -> torch.Tensor:
        batch, cells, target = distil_batch(
            images, densities, cfg.batch_size, rng, model.stride, cfg.long_side
        )
        return distil_loss(model(batch), cells, target, cfg.kl_weight)

    return fit(model, opt, cfg, out, rng, batch_loss, lambda: validate(model, cfg, sets, baseline))


def distil_loss(log_density, cells, target, kl_weight: float) -> torch.Tensor:
    """``kl_weight × KL(ensemble ‖ student) + (1 − kl_weight) × fixation NLL`` (nats)."""
    return kl_weight * kl_from(target, log_density[:, 0]) + (1 - kl_weight) * fixation_nll(
        log_density, cells
    )
