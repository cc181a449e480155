"""Crop policy: where to put the window, given a saliency log-density over the image.

Rules, tried in order for each target shape (the one that decides is named in the record):

- ``whole``: the target shape is the image's shape (within ``shape_tolerance``): no crop.
- ``flat``: the map is nearly uniform (normalised entropy above ``flat_entropy``), so nothing
  says where to look: centre crop.
- ``symmetric``: the window slides horizontally and the image is nearly mirror-symmetric
  (thumbnail against its mirror): centre crop.
- ``mass``: the largest window of the shape, placed where it holds the most saliency mass.
  The density is constant over each map cell, so the mass of every placement is exact for that
  model and cheap to get from cumulative sums.
- ``zoom`` (only with ``zoom < 1``): the smallest window, down to ``zoom`` × the largest, that
  still holds ``zoom_keep`` of the mass of the best largest window.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cropsal.geometry import Box, largest_window

# Placements holding within this much mass of the best count as ties; the most central wins.
TIE_TOLERANCE = 1e-6
SYMMETRY_THUMBNAIL = 32  # side of the grey thumbnail compared with its mirror
# Window scales tried: 1 − k × ZOOM_STEP down to the zoom floor. The step does not depend on
# the floor, so a lower floor only adds smaller candidates and never gives a larger window.
ZOOM_STEP = 0.02
ZOOM_POSITIONS = 256  # positions tried per axis for each zoomed window


@dataclass(frozen=True)
class PolicyConfig:
    """Thresholds of the crop policy (defaults measured with ``cropsal eval``)."""

    shape_tolerance: float = 0.02  # relative aspect difference treated as the same shape
    flat_entropy: float = 0.985  # map entropy / log(cells) above which the map is "flat"
    symmetry: float = 0.12  # mirror_asymmetry below which an image counts as symmetric (~2 %)
    # The peak cell stays this fraction of the window inside its edges. Off: on the validation
    # fixations, 0.1 keeps fewer fixations in every aspect (pooled 16:9 0.956 → 0.953).
    peak_margin: float = 0.0
    temperature: float = 1.0  # the crop decision uses p ** temperature, renormalised
    zoom: float = 1.0  # smallest window scale allowed (1: never zoom)
    zoom_keep: float = 0.9  # share of the full window's mass a zoomed window must keep


DEFAULT_POLICY = PolicyConfig()


@dataclass(frozen=True)
class Placement:
    """A chosen window, the rule that chose it and the saliency mass it holds (0–1)."""

    box: Box
    rule: str
    confidence: float


def cell_density(log_density: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``[h, w]`` log-density → ``[h, w]`` float64 probabilities summing to 1, optionally
    sharpened (``temperature`` > 1) or flattened (< 1)."""
    p = np.exp(temperature * (log_density.astype(np.float64) - log_density.max()))
    return p / p.sum()


def mirror_asymmetry(bgr: np.ndarray) -> float:
    """How far an ``HxWx3 uint8 BGR`` image is from left-right symmetry: the mean absolute
    difference between a grey thumbnail and its mirror, relative to twice the thumbnail's mean
    absolute deviation (0 for a symmetric image, about 0.5 for a typical photo, 1 for noise;
    a flat image counts as symmetric)."""
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    thumb = cv2.resize(
        grey, (SYMMETRY_THUMBNAIL, SYMMETRY_THUMBNAIL), interpolation=cv2.INTER_AREA
    ).astype(np.float32)
    spread = 2.0 * float(np.abs(thumb - thumb.mean()).mean())
    if spread < 1.0:  # under one grey level of contrast: nothing to be asymmetric about
        return 0.0
    return float(np.abs(thumb - thumb[:, ::-1]).mean()) / spread


def normalised_entropy(density: np.ndarray) -> float:
    """Entropy of a cell density divided by that of a uniform map of the same size (0–1)."""
    if density.size < 2:
        return 1.0
    p = density[density > 0]
    return float(-(p * np.log(p)).sum() / np.log(density.size))


def window_masses(profile: np.ndarray, extent: int, window: int) -> np.ndarray:
    """Mass inside ``[x, x + window)`` for every integer ``x`` in ``0 … extent − window``.

    ``profile`` is the mass of each of ``n`` equal cells covering ``[0, extent)`` pixels; the
    cumulative mass is piecewise linear between cell edges.
    """
    knots = np.linspace(0.0, extent, profile.size + 1)
    cdf = np.concatenate([[0.0], np.cumsum(profile)])
    starts = np.arange(extent - window + 1, dtype=np.float64)
    return np.interp(starts + window, knots, cdf) - np.interp(starts, knots, cdf)


def keep_peak_inside(masses: np.ndarray, peak: int, window: int, margin: float) -> np.ndarray:
    """``masses`` with the offsets whose window would hold ``peak`` (pixels) less than
    ``margin × window`` from an edge set to −1, unless no offset qualifies."""
    if margin <= 0:
        return masses
    starts = np.arange(masses.size)
    inside = (peak >= starts + margin * window) & (peak <= starts + (1 - margin) * window)
    if not inside.any():
        return masses
    return np.where(inside, masses, -1.0)


def best_offset(masses: np.ndarray) -> int:
    """Index of the largest mass; among near-ties the one closest to the middle."""
    best = masses.max()
    candidates = np.flatnonzero(masses >= best - TIE_TOLERANCE)
    middle = (masses.size - 1) / 2.0
    return int(candidates[np.argmin(np.abs(candidates - middle))])


def linear_weights(knots: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices ``i0``, ``i1`` and weight ``t`` so that ``f(x) = (1 − t) f[i0] + t f[i1]`` for a
    piecewise-linear ``f`` given at ``knots``."""
    i1 = np.clip(np.searchsorted(knots, x, side="right"), 1, knots.size - 1)
    i0 = i1 - 1
    t = np.clip((x - knots[i0]) / (knots[i1] - knots[i0]), 0.0, 1.0)
    return i0, i1, t


class MassGrid:
    """Saliency mass of any axis-aligned window, from the 2-D cumulative mass of a cell density
    that covers a ``width × height`` image (bilinear between cell corners, so exact for a
    density that is constant within each cell)."""

    def __init__(self, density: np.ndarray, width: int, height: int) -> None:
        self.cdf = np.zeros((density.shape[0] + 1, density.shape[1] + 1))
        self.cdf[1:, 1:] = density.cumsum(0).cumsum(1)
        self.kx = np.linspace(0.0, width, density.shape[1] + 1)
        self.ky = np.linspace(0.0, height, density.shape[0] + 1)

    def at(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Cumulative mass at every ``(y, x)`` of the grid ``ys × xs``: ``[len(ys), len(xs)]``."""
        x0, x1, tx = linear_weights(self.kx, xs)
        y0, y1, ty = linear_weights(self.ky, ys)
        cols = self.cdf[:, x0] * (1 - tx) + self.cdf[:, x1] * tx  # [h + 1, len(xs)]
        return cols[y0] * (1 - ty)[:, None] + cols[y1] * ty[:, None]

    def windows(self, cw: int, ch: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Mass of the ``cw × ch`` window at every top-left ``(y, x)`` of ``ys × xs``."""
        return (
            self.at(ys + ch, xs + cw)
            - self.at(ys, xs + cw)
            - self.at(ys + ch, xs)
            + self.at(ys, xs)
        )

    def box(self, box: Box) -> float:
        x, y = np.array([float(box.x)]), np.array([float(box.y)])
        return float(self.windows(box.width, box.height, x, y)[0, 0])


def box_mass(density: np.ndarray, width: int, height: int, box: Box) -> float:
    """Saliency mass inside ``box`` (image pixels)."""
    return MassGrid(density, width, height).box(box)


def centred(width: int, height: int, cw: int, ch: int) -> Box:
    return Box((width - cw) // 2, (height - ch) // 2, cw, ch)


def place_window(
    density: np.ndarray,
    width: int,
    height: int,
    ratio: float,
    config: PolicyConfig = DEFAULT_POLICY,
    asymmetry: float | None = None,
) -> Placement:
    """Window of aspect ``ratio`` (w / h) in a ``width × height`` image, from ``density``
    (``[h, w]`` probabilities over the whole image); ``asymmetry`` is
    :func:`mirror_asymmetry` of the image, when known."""
    cw, ch = largest_window(width, height, ratio)
    same_shape = abs(np.log((width / height) / ratio)) <= np.log1p(config.shape_tolerance)
    if same_shape or (cw == width and ch == height):
        whole = Placement(Box(0, 0, width, height), "whole", 1.0)
        if config.zoom < 1.0 and not same_shape:
            return zoom_in(density, width, height, whole, config)
        return whole

    horizontal = cw < width
    if normalised_entropy(density) >= config.flat_entropy:
        box = centred(width, height, cw, ch)
        return Placement(box, "flat", box_mass(density, width, height, box))
    if horizontal and asymmetry is not None and asymmetry <= config.symmetry:
        box = centred(width, height, cw, ch)
        return Placement(box, "symmetric", box_mass(density, width, height, box))

    peak_x, peak_y = salient_point(density, width, height)
    if horizontal:
        masses = keep_peak_inside(
            window_masses(density.sum(axis=0), width, cw), peak_x, cw, config.peak_margin
        )
        x = best_offset(masses)
        best = Placement(Box(x, 0, cw, ch), "mass", float(masses[x]))
    else:
        masses = keep_peak_inside(
            window_masses(density.sum(axis=1), height, ch), peak_y, ch, config.peak_margin
        )
        y = best_offset(masses)
        best = Placement(Box(0, y, cw, ch), "mass", float(masses[y]))
    if config.zoom < 1.0:
        return zoom_in(density, width, height, best, config)
    return best


def zoom_in(
    density: np.ndarray, width: int, height: int, full: Placement, config: PolicyConfig
) -> Placement:
    """The smallest scaled-down window that keeps ``zoom_keep`` of ``full``'s mass: scales
    :func:`zoom_scales` are tried from the largest down until one loses too much; positions
    are tried on a grid of at most ``ZOOM_POSITIONS`` steps per axis."""
    grid, cw, ch = MassGrid(density, width, height), full.box.width, full.box.height
    chosen = full
    for scale in zoom_scales(config.zoom):
        zw, zh = max(1, round(cw * scale)), max(1, round(ch * scale))
        xs = np.unique(np.linspace(0, width - zw, min(width - zw + 1, ZOOM_POSITIONS)).round())
        ys = np.unique(np.linspace(0, height - zh, min(height - zh + 1, ZOOM_POSITIONS)).round())
        table = grid.windows(zw, zh, xs, ys)
        row, col = np.unravel_index(int(np.argmax(table)), table.shape)
        mass = float(table[row, col])
        if mass < config.zoom_keep * full.confidence:
            break
        chosen = Placement(Box(int(xs[col]), int(ys[row]), zw, zh), "zoom", mass)
    return chosen


def zoom_scales(floor: float) -> np.ndarray:
    """Window scales below 1 down to ``floor``, on a grid of :data:`ZOOM_STEP` that does not
    depend on ``floor``: ``zoom_scales(0.5)`` begins with every scale of ``zoom_scales(0.6)``."""
    count = int(np.floor((1.0 - floor) / ZOOM_STEP + 1e-9))
    return np.round(1.0 - ZOOM_STEP * np.arange(1, count + 1), 9)


def salient_point(density: np.ndarray, width: int, height: int) -> tuple[int, int]:
    """``(x, y)`` image pixel at the centre of the most probable map cell."""
    row, col = np.unravel_index(int(np.argmax(density)), density.shape)
    x = int((col + 0.5) * width / density.shape[1])
    y = int((row + 0.5) * height / density.shape[0])
    return min(x, width - 1), min(y, height - 1)
