"""Debug output: the saliency as a colour overlay with the chosen crops drawn on it, and the
raw log-density map as ``.npy``."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from cropsal.write import atomic_write, encode

OVERLAY_LONG_SIDE = 1024  # overlays of larger images are drawn at this size
CROP_COLOURS = [(255, 255, 255), (0, 255, 255), (255, 0, 255), (0, 255, 0), (255, 128, 0)]


def overlay(bgr: np.ndarray, log_density: np.ndarray, boxes: list[tuple[str, tuple]]) -> np.ndarray:
    """The image (at most ``OVERLAY_LONG_SIDE`` px) blended with the density as a colour map,
    each ``(label, (x, y, w, h))`` box drawn and labelled; ``HxWx3 uint8 BGR``."""
    scale = min(1.0, OVERLAY_LONG_SIDE / max(bgr.shape[:2]))
    view = (
        cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if scale < 1
        else bgr.copy()
    )
    h, w = view.shape[:2]
    density = np.exp(log_density - log_density.max())
    heat = cv2.resize(density.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap((np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    out = cv2.addWeighted(view, 0.45, heat, 0.55, 0)

    thickness = max(1, round(max(h, w) / 300))
    for i, (label, (x, y, bw, bh)) in enumerate(boxes):
        colour = CROP_COLOURS[i % len(CROP_COLOURS)]
        p0 = (int(x * scale), int(y * scale))
        p1 = (int((x + bw) * scale) - 1, int((y + bh) * scale) - 1)
        cv2.rectangle(out, p0, p1, colour, thickness)
        cv2.putText(
            out,
            label,
            (p0[0] + 4, p0[1] + 18 + 20 * i),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            colour,
            max(1, thickness - 1),
            cv2.LINE_AA,
        )
    return out


def heatmap_paths(stem_path: Path) -> tuple[Path, Path]:
    """``<stem>_saliency.jpg`` (overlay) and ``<stem>_saliency.npy`` (raw map) of a stem."""
    return (
        stem_path.with_name(stem_path.name + "_saliency.jpg"),
        stem_path.with_name(stem_path.name + "_saliency.npy"),
    )


def write_heatmaps(
    stem_path: Path,
    bgr: np.ndarray,
    log_density: np.ndarray,
    boxes: list[tuple[str, tuple]],
    keep: frozenset[Path] = frozenset(),
) -> tuple[Path, Path]:
    """Write ``<stem>_saliency.jpg`` (overlay) and ``<stem>_saliency.npy`` (float32 log-density
    with the image's aspect ratio), except those in ``keep`` (already there, left as they
    are); returns both paths."""
    overlay_path, raw_path = heatmap_paths(stem_path)
    if overlay_path not in keep:
        atomic_write(overlay_path, encode(overlay(bgr, log_density, boxes), "jpg", 90))
    if raw_path not in keep:
        buf = io.BytesIO()
        np.save(buf, log_density.astype(np.float32))
        atomic_write(raw_path, buf.getvalue())
    return overlay_path, raw_path
