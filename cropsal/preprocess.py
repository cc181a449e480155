"""Pre-processing shared by the runtime and the training code: the network's input size,
the image resize, and turning the network's small log-density into one of any size."""

from __future__ import annotations

import math

import cv2
import numpy as np


def network_input_size(
    width: int,
    height: int,
    long_side: int = 256,
    multiple: int = 16,
    min_short: int = 32,
    max_long: int = 1024,
) -> tuple[int, int]:
    """``(w, h)`` of the network input for a ``width × height`` image: the long side is
    ``long_side`` (grown up to ``max_long`` so that very thin images keep a short side of at
    least ``min_short``), both sides rounded to multiples of ``multiple``."""
    ratio = max(width, height) / max(1, min(width, height))
    long_px = min(max_long, max(long_side, math.ceil(min_short * ratio)))
    short_px = long_px / ratio

    def snap(v: float) -> int:
        return max(multiple, round(v / multiple) * multiple)

    w, h = (long_px, short_px) if width >= height else (short_px, long_px)
    return snap(w), snap(h)


# How resize_for_network shrinks, as written into exported models' metadata (cropsal.resize)
RESIZE_DESCRIPTION = (
    "while at least twice the input size per side: 2x2 means (odd last row/column dropped); "
    "then cv2.INTER_AREA when shrinking, cv2.INTER_LINEAR when enlarging"
)


def halve(bgr: np.ndarray) -> np.ndarray:
    """``HxWx3`` → ``⌊H/2⌋×⌊W/2⌋×3``, each pixel the mean of a 2×2 block (an odd last row or
    column is dropped, which keeps OpenCV on its fast path for exact halving)."""
    even = bgr[: bgr.shape[0] // 2 * 2, : bgr.shape[1] // 2 * 2]
    return cv2.resize(even, (even.shape[1] // 2, even.shape[0] // 2), interpolation=cv2.INTER_AREA)


def resize_for_network(bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``HxWx3 uint8 BGR`` → ``h×w×3 uint8 BGR`` at ``size = (w, h)``.

    Shrinking halves the image (2×2 means) while it is at least twice the target per side, then
    area-averages the rest of the way: about a third of the time of one area resize at a
    non-integer ratio (a 1000×750 decode to 256×192: 1.4 ms instead of 3.2 ms), for an input
    that differs from it by about one grey level on average.
    """
    w, h = size
    while bgr.shape[1] >= 2 * w and bgr.shape[0] >= 2 * h:
        bgr = halve(bgr)
    shrinking = w * h < bgr.shape[0] * bgr.shape[1]
    return cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def resize_log_density(log_density: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resample an ``[h, w]`` log-density to ``[height, width]``: bilinear on the density (cell
    centres aligned, as ``cv2.resize``), renormalised, logarithm; float32, logsumexp 0."""
    density = np.exp(log_density.astype(np.float64) - log_density.max())
    resized = cv2.resize(density, (width, height), interpolation=cv2.INTER_LINEAR)
    resized = np.maximum(resized, 1e-30)
    return np.log(resized / resized.sum()).astype(np.float32)


def map_size_for(width: int, height: int, long_side: int) -> tuple[int, int]:
    """``(w, h)`` of a map with ``long_side`` cells along the image's long side and the image's
    aspect ratio (at least one cell each way)."""
    if width >= height:
        return long_side, max(1, round(long_side * height / width))
    return max(1, round(long_side * width / height)), long_side
