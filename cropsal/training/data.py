"""Training views of the eye-tracking images: whole images and augmented crops, in batches.

Images are decoded once and kept in memory at a long side of ``cache_long_side`` pixels
(1,909 photos at 320 px take about 0.4 GB); fixations are scaled with them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from cropsal.datasets import FixationSet
from cropsal.preprocess import network_input_size, resize_for_network

log = logging.getLogger(__name__)

# Batch input shapes (w, h) at long side 256 and how often each is drawn: mostly the 4:3 and
# 3:4 of the data, but also the squares and bands that crops produce.
BATCH_SHAPES = [
    ((256, 192), 0.45),
    ((192, 256), 0.15),
    ((256, 256), 0.15),
    ((256, 144), 0.15),
    ((144, 256), 0.10),
]


@dataclass
class CachedImage:
    bgr: np.ndarray  # [h, w, 3] uint8 BGR
    xs: np.ndarray  # [F] float32, pixels of ``bgr``
    ys: np.ndarray
    source: str


def cache_images(
    sets: list[FixationSet], split: str, long_side: int = 320, limit: int = 0
) -> list[CachedImage]:
    """Decode every image of ``split`` in ``sets`` (at most ``limit`` per set, 0: all), resized
    to ``long_side``, with its fixations."""
    cached = []
    for fs in sets:
        for i in fs.indices(split)[: limit or None]:
            bgr = cv2.imread(str(fs.image_path(i)), cv2.IMREAD_COLOR)
            if bgr is None:
                raise OSError(f"{fs.image_path(i)}: cannot decode")
            scale = long_side / max(bgr.shape[:2])
            small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            sx, sy = small.shape[1] / bgr.shape[1], small.shape[0] / bgr.shape[0]
            xs, ys = fs.fixations(i)
            cached.append(
                CachedImage(
                    small, (xs + 0.5) * sx - 0.5, (ys + 0.5) * sy - 0.5, f"{fs.name}/{fs.images[i]}"
                )
            )
    log.info("cached %d images (%s split)", len(cached), split)
    return cached


def random_view(
    img: CachedImage,
    size: tuple[int, int],
    rng: np.random.Generator,
    crop_prob: float = 0.5,
    density: np.ndarray | None = None,
) -> (
    tuple[np.ndarray, np.ndarray, np.ndarray]
    | tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
):
    """One augmented view at ``size = (w, h)``: the whole image (stretched to the shape) or a
    random crop of that shape covering 45–100 % of the largest such window, randomly flipped.
    Returns ``(bgr [h, w, 3] uint8, xs, ys)`` with fixations in the view's pixels; with a
    teacher ``density`` (any ``[mh, mw]`` probabilities over the whole image) also that density
    carried through the same crop and flip, per view pixel ``[h, w]`` (not renormalised)."""
    H, W = img.bgr.shape[:2]
    w, h = size
    if rng.random() < crop_prob:
        aspect = w / h
        cw, ch = (W, W / aspect) if W / H < aspect else (H * aspect, H)
        scale = np.sqrt(rng.uniform(0.45, 1.0))
        cw, ch = max(8.0, cw * scale), max(8.0, ch * scale)
        x0, y0 = rng.uniform(0, W - cw), rng.uniform(0, H - ch)
    else:
        x0, y0, cw, ch = 0.0, 0.0, float(W), float(H)

    # affine map from source pixels to view pixels (pixel centres at integers)
    ax, ay = w / cw, h / ch
    m = np.array([[ax, 0, (0.5 - x0) * ax - 0.5], [0, ay, (0.5 - y0) * ay - 0.5]], np.float32)
    view = cv2.warpAffine(
        img.bgr,
        m,
        (w, h),
        flags=cv2.INTER_AREA if ax < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    xs, ys = img.xs * m[0, 0] + m[0, 2], img.ys * m[1, 1] + m[1, 2]
    keep = (xs > -0.5) & (xs < w - 0.5) & (ys > -0.5) & (ys < h - 0.5)
    xs, ys = xs[keep], ys[keep]
    flip = rng.random() < 0.5
    if flip:
        view, xs = view[:, ::-1], (w - 1) - xs
    if density is None:
        return np.ascontiguousarray(view), xs, ys
    per_pixel = cv2.resize(density.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
    warped = cv2.warpAffine(
        per_pixel, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    if flip:
        warped = warped[:, ::-1]
    return np.ascontiguousarray(view), xs, ys, np.ascontiguousarray(warped)


def fixation_cells(
    xs: np.ndarray, ys: np.ndarray, size: tuple[int, int], stride: int
) -> np.ndarray:
    """Flat indices into a ``ceil(h/stride) × ceil(w/stride)`` map of the cells holding fixations."""
    w, h = size
    mw, mh = -(-w // stride), -(-h // stride)
    cols = np.clip(((xs + 0.5) / stride).astype(np.int64), 0, mw - 1)
    rows = np.clip(((ys + 0.5) / stride).astype(np.int64), 0, mh - 1)
    return rows * mw + cols


def sample_batch(
    images: list[CachedImage],
    batch_size: int,
    rng: np.random.Generator,
    stride: int,
    long_side: int = 256,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A batch of views of one shape: ``[B, 3, h, w]`` float32 BGR 0–255 and, per view, the flat
    map cells of its fixations (views that lost every fixation to the crop are redrawn).
    ``BATCH_SHAPES`` are scaled to ``long_side`` (multiples of 16)."""
    shapes, weights = zip(*BATCH_SHAPES)
    w, h = shapes[rng.choice(len(shapes), p=np.array(weights) / sum(weights))]
    size = (round(w * long_side / 256 / 16) * 16, round(h * long_side / 256 / 16) * 16)
    views, cells = [], []
    while len(views) < batch_size:
        view, xs, ys = random_view(images[rng.integers(len(images))], size, rng)
        if xs.size:
            views.append(view)
            cells.append(torch.from_numpy(fixation_cells(xs, ys, size, stride)))
    batch = torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).float()
    return batch, cells


def whole_image_input(bgr: np.ndarray, long_side: int) -> torch.Tensor:
    """The runtime's input for one image: ``[1, 3, h, w]`` float32 BGR 0–255."""
    h_w = network_input_size(bgr.shape[1], bgr.shape[0], long_side)
    x = resize_for_network(bgr, h_w)
    return torch.from_numpy(x).permute(2, 0, 1)[None].float()
