"""Readers for eye-tracking data sets in the layout of ``../shared/eyetracking/<name>``.

A data set folder holds ``images/<name>.jpg`` and ``fixations.npz`` (one row per image in
``image``, ``width``, ``height``; fixations of image ``i`` in rows ``offsets[i]:offsets[i+1]``
of ``x``, ``y``, ``subject``, ``index``, ``duration_ms``). The validation split is fixed: every
tenth image (positions 0, 10, 20, … in the file's order).
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VALIDATION_EVERY = 10
REQUIRED = ("image", "width", "height", "offsets", "x", "y")  # arrays of fixations.npz


@dataclass(frozen=True)
class FixationSet:
    """One data set: image names and sizes, and every fixation in stored-image pixels."""

    name: str
    root: Path
    images: list[str]
    widths: np.ndarray  # [N] int
    heights: np.ndarray  # [N] int
    offsets: np.ndarray  # [N + 1] int
    xs: np.ndarray  # [F] float32 pixels
    ys: np.ndarray  # [F] float32 pixels
    subjects: np.ndarray | None = None  # [F] int observer numbers, when the file has them

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, i: int) -> Path:
        return self.root / "images" / self.images[i]

    def fixations(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(xs, ys)`` of image ``i`` in stored-image pixels, float32 ``[F_i]`` each."""
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.xs[lo:hi], self.ys[lo:hi]

    def observers(self, i: int) -> np.ndarray | None:
        """Observer number of each fixation of image ``i`` (``[F_i]`` int), or None."""
        if self.subjects is None:
            return None
        return self.subjects[self.offsets[i] : self.offsets[i + 1]]

    def indices(self, split: str) -> list[int]:
        """Image indices of ``split``: ``"train"``, ``"val"`` or ``"all"``."""
        every = np.arange(len(self)) % VALIDATION_EVERY == 0
        if split == "val":
            return [int(i) for i in np.flatnonzero(every)]
        if split == "train":
            return [int(i) for i in np.flatnonzero(~every)]
        if split == "all":
            return list(range(len(self)))
        raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'all'")


def load_fixation_set(root: str | Path) -> FixationSet:
    """Read a data set folder; raises ``FileNotFoundError``/``ValueError`` naming the problem."""
    root = Path(root)
    npz = root / "fixations.npz"
    if not npz.is_file():
        raise FileNotFoundError(f"{root}: not an eye-tracking data set (no fixations.npz)")
    arrays = read_arrays(npz)
    check_arrays(npz, arrays)
    subjects = arrays.get("subject")
    return FixationSet(
        name=root.name,
        root=root,
        images=[str(s) for s in arrays["image"]],
        widths=arrays["width"].astype(np.int64),
        heights=arrays["height"].astype(np.int64),
        offsets=arrays["offsets"].astype(np.int64),
        xs=arrays["x"].astype(np.float32),
        ys=arrays["y"].astype(np.float32),
        subjects=subjects.astype(np.int64) if subjects is not None else None,
    )


def read_arrays(npz: Path) -> dict[str, np.ndarray]:
    """The arrays of ``fixations.npz`` that cropsal uses (:data:`REQUIRED`, and ``subject``
    when present); ``ValueError`` naming the file when it cannot be read or lacks one."""
    try:
        with np.load(npz) as data:
            arrays = {k: data[k] for k in data.files if k in (*REQUIRED, "subject")}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"{npz}: cannot read ({e})") from e
    missing = set(REQUIRED) - set(arrays)
    if missing:
        raise ValueError(f"{npz}: missing arrays {sorted(missing)}")
    return arrays


def check_arrays(npz: Path, arrays: dict[str, np.ndarray]) -> None:
    """Raise ``ValueError`` naming ``npz`` and the first inconsistency: every array 1-D, one
    ``image``/``width``/``height`` per image (sizes positive), one ``x``/``y``/``subject`` per
    fixation, and ``offsets`` (images + 1 entries) rising from 0 to the number of fixations."""
    for key, a in arrays.items():
        if a.ndim != 1:
            raise ValueError(f"{npz}: '{key}' has shape {a.shape}; expected one dimension")
    images, fixations = arrays["image"].size, arrays["x"].size
    for key, expected, per in (
        ("width", images, "image"),
        ("height", images, "image"),
        ("y", fixations, "x"),
        ("subject", fixations, "x"),
    ):
        if key in arrays and arrays[key].size != expected:
            raise ValueError(
                f"{npz}: '{key}' has {arrays[key].size} entries but '{per}' has {expected}"
            )
    for key in ("x", "y"):
        bad = np.flatnonzero(~np.isfinite(arrays[key].astype(np.float64)))
        if bad.size:
            raise ValueError(
                f"{npz}: '{key}' of fixation {bad[0]} is {arrays[key][bad[0]]}; expected a number"
            )
    for key in ("width", "height"):
        bad = np.flatnonzero(arrays[key] <= 0)
        if bad.size:
            raise ValueError(
                f"{npz}: '{key}' of image {bad[0]} is {arrays[key][bad[0]]}; expected > 0"
            )
    check_offsets(npz, arrays["offsets"], images, fixations)


def check_offsets(npz: Path, offsets: np.ndarray, images: int, fixations: int) -> None:
    """``offsets`` must have ``images + 1`` entries, start at 0, never decrease and end at
    ``fixations``; ``ValueError`` naming ``npz`` and the first violation otherwise."""
    if offsets.size != images + 1:
        raise ValueError(
            f"{npz}: 'offsets' has {offsets.size} entries; expected {images + 1} (images + 1)"
        )
    if offsets[0] != 0:
        raise ValueError(f"{npz}: 'offsets' starts at {offsets[0]}; expected 0")
    falls = np.flatnonzero(np.diff(offsets) < 0)
    if falls.size:
        i = falls[0]
        raise ValueError(
            f"{npz}: 'offsets' decreases from {offsets[i]} to {offsets[i + 1]} (entries {i} and "
            f"{i + 1}); expected non-decreasing"
        )
    if offsets[-1] != fixations:
        raise ValueError(
            f"{npz}: 'offsets' ends at {offsets[-1]}; expected the number of fixations, {fixations}"
        )


class CentreBiasBaseline:
    """Non-parametric centre bias: a ``grid × grid`` histogram of fixations in normalised image
    coordinates, blurred by ``sigma`` (fraction of a side) and mixed with ``uniform`` of a flat
    density. Evaluated on any image by bilinear resize and renormalisation."""

    def __init__(self, density: np.ndarray) -> None:
        self.density = density  # [grid, grid] float64, sums to 1

    @classmethod
    def fit(
        cls,
        sets: list[FixationSet],
        split: str = "train",
        grid: int = 64,
        sigma: float = 0.04,
        uniform: float = 0.02,
    ) -> CentreBiasBaseline:
        import cv2

        hist = np.zeros((grid, grid), np.float64)
        for fs in sets:
            for i in fs.indices(split):
                xs, ys = fs.fixations(i)
                u = np.clip((xs + 0.5) / fs.widths[i] * grid, 0, grid - 1e-6).astype(int)
                v = np.clip((ys + 0.5) / fs.heights[i] * grid, 0, grid - 1e-6).astype(int)
                np.add.at(hist, (v, u), 1.0)
        hist = cv2.GaussianBlur(hist, (0, 0), sigma * grid, borderType=cv2.BORDER_REPLICATE)
        hist /= hist.sum()
        return cls((1 - uniform) * hist + uniform / hist.size)

    def log_density(self, width: int, height: int) -> np.ndarray:
        """``[height, width]`` float64 pixel log-density (logsumexp 0)."""
        import cv2

        d = cv2.resize(self.density, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.log(d / d.sum())
