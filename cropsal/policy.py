"""Crop policy: where to put the window, given a saliency log-density over the image.

The window of the target shape is placed where it holds the most saliency mass. The density
is treated as constant over each map cell, so the mass of any window is exact for that model
and cheap to get from cumulative sums along the axis the window can slide on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cropsal.geometry import Box, largest_window

# Placements holding within this much mass of the best count as ties; the most central wins.
TIE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Placement:
    """A chosen window, the rule that chose it and the saliency mass it holds (0–1)."""

    box: Box
    rule: str
    confidence: float


def cell_density(log_density: np.ndarray) -> np.ndarray:
    """``[h, w]`` log-density → ``[h, w]`` float64 probabilities summing to 1."""
    p = np.exp(log_density.astype(np.float64) - log_density.max())
    return p / p.sum()


def window_masses(profile: np.ndarray, extent: int, window: int) -> np.ndarray:
    """Mass inside ``[x, x + window)`` for every integer ``x`` in ``0 … extent − window``.

    ``profile`` is the mass of each of ``n`` equal cells covering ``[0, extent)`` pixels; the
    cumulative mass is piecewise linear between cell edges.
    """
    knots = np.linspace(0.0, extent, profile.size + 1)
    cdf = np.concatenate([[0.0], np.cumsum(profile)])
    starts = np.arange(extent - window + 1, dtype=np.float64)
    return np.interp(starts + window, knots, cdf) - np.interp(starts, knots, cdf)


def best_offset(masses: np.ndarray) -> int:
    """Index of the largest mass; among near-ties the one closest to the middle."""
    best = masses.max()
    candidates = np.flatnonzero(masses >= best - TIE_TOLERANCE)
    middle = (masses.size - 1) / 2.0
    return int(candidates[np.argmin(np.abs(candidates - middle))])


def place_window(density: np.ndarray, width: int, height: int, ratio: float) -> Placement:
    """Largest window of aspect ``ratio`` in a ``width × height`` image, slid to the position of
    greatest mass of ``density`` (``[h, w]`` probabilities over the whole image)."""
    cw, ch = largest_window(width, height, ratio)
    if cw < width:
        masses = window_masses(density.sum(axis=0), width, cw)
        x = best_offset(masses)
        return Placement(Box(x, 0, cw, ch), "mass", float(masses[x]))
    if ch < height:
        masses = window_masses(density.sum(axis=1), height, ch)
        y = best_offset(masses)
        return Placement(Box(0, y, cw, ch), "mass", float(masses[y]))
    return Placement(Box(0, 0, width, height), "whole", 1.0)


def salient_point(density: np.ndarray, width: int, height: int) -> tuple[int, int]:
    """``(x, y)`` image pixel at the centre of the most probable map cell."""
    row, col = np.unravel_index(int(np.argmax(density)), density.shape)
    x = int((col + 0.5) * width / density.shape[1])
    y = int((row + 0.5) * height / density.shape[0])
    return min(x, width - 1), min(y, height - 1)
