"""Saliency metrics on human fixations, each with its exact variant stated.

Conventions: a *log-density* is an ``[H, W]`` float array over image pixels with
``logsumexp = 0``; fixations are float pixel coordinates (pixel centres at integers) that are
rounded to the nearest pixel and clipped into the image. Fixations are counted with
multiplicity (two observers on one pixel count twice) unless a docstring says otherwise.
"""

from __future__ import annotations

import numpy as np

LOG2 = np.log(2.0)


def fixation_pixels(xs: np.ndarray, ys: np.ndarray, width: int, height: int) -> tuple:
    """Round fixations to integer pixels inside a ``width × height`` image; returns (cols, rows)."""
    cols = np.clip(np.rint(xs), 0, width - 1).astype(np.int64)
    rows = np.clip(np.rint(ys), 0, height - 1).astype(np.int64)
    return cols, rows


def nss(saliency: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> float:
    """Normalised scanpath saliency: the map standardised to mean 0, std 1 over all pixels,
    averaged over the fixated pixels (with multiplicity). A constant map scores 0."""
    sal = saliency.astype(np.float64)
    std = sal.std()
    if std == 0:
        return 0.0
    cols, rows = fixation_pixels(xs, ys, sal.shape[1], sal.shape[0])
    return float(((sal[rows, cols] - sal.mean()) / std).mean())


def auc_judd(saliency: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> float:
    """AUC-Judd: thresholds at the map's values on the fixated pixels (unique pixels, a binary
    fixation map); true-positive rate over fixated pixels, false-positive rate over all other
    pixels; trapezoidal area with the end points (0, 0) and (1, 1). No jitter is added, so a
    constant map scores exactly 0.5."""
    sal = saliency.astype(np.float64).ravel()
    cols, rows = fixation_pixels(xs, ys, saliency.shape[1], saliency.shape[0])
    fixated = np.zeros(sal.size, bool)
    fixated[rows * saliency.shape[1] + cols] = True
    n_fix, n_other = int(fixated.sum()), int(sal.size - fixated.sum())
    if n_fix == 0 or n_other == 0:
        return float("nan")

    thresholds = np.unique(sal[fixated])[::-1]
    ordered = np.sort(sal)
    above_all = sal.size - np.searchsorted(ordered, thresholds, side="left")
    above_fix = n_fix - np.searchsorted(np.sort(sal[fixated]), thresholds, side="left")
    tpr = np.concatenate([[0.0], above_fix / n_fix, [1.0]])
    fpr = np.concatenate([[0.0], (above_all - above_fix) / n_other, [1.0]])
    return float(np.trapezoid(tpr, fpr))


def auc_shuffled(
    saliency: np.ndarray, xs: np.ndarray, ys: np.ndarray, other_xs: np.ndarray, other_ys: np.ndarray
) -> float:
    """Shuffled AUC: positives are the map's values at this image's fixations, negatives its
    values at fixations of *other* images (given in this image's pixel coordinates); the exact
    rank-based area (Mann–Whitney U, ties counted half). Penalises a pure centre bias."""
    h, w = saliency.shape
    cols, rows = fixation_pixels(xs, ys, w, h)
    ocols, orows = fixation_pixels(other_xs, other_ys, w, h)
    pos, neg = saliency[rows, cols].astype(np.float64), saliency[orows, ocols].astype(np.float64)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return _rank_auc(pos, neg)


def _rank_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + 0.5 P(pos = neg), from ranks."""
    values = np.concatenate([pos, neg])
    order = values.argsort(kind="mergesort")
    ranks = np.empty(values.size)
    sorted_vals = values[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def log_likelihood_bits(log_density: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Per-fixation log2-density (bits) of a pixel log-density at the fixated pixels."""
    cols, rows = fixation_pixels(xs, ys, log_density.shape[1], log_density.shape[0])
    return log_density[rows, cols].astype(np.float64) / LOG2


def information_gain(
    log_density: np.ndarray, baseline_log_density: np.ndarray, xs: np.ndarray, ys: np.ndarray
) -> float:
    """Information gain in bits per fixation of a model over a baseline (both pixel log-densities
    of the same shape): mean over fixations of ``log2 p_model − log2 p_baseline``."""
    gain = log_likelihood_bits(log_density, xs, ys) - log_likelihood_bits(
        baseline_log_density, xs, ys
    )
    return float(gain.mean()) if gain.size else float("nan")


def fixation_density(
    xs: np.ndarray, ys: np.ndarray, width: int, height: int, sigma_px: float
) -> np.ndarray:
    """Empirical fixation density: fixations (with multiplicity) blurred by a Gaussian of
    ``sigma_px`` pixels, normalised to sum 1; ``[height, width]`` float64."""
    import cv2

    counts = np.zeros((height, width), np.float64)
    cols, rows = fixation_pixels(xs, ys, width, height)
    np.add.at(counts, (rows, cols), 1.0)
    blurred = cv2.GaussianBlur(counts, (0, 0), sigma_px, borderType=cv2.BORDER_CONSTANT)
    total = blurred.sum()
    return blurred / total if total > 0 else np.full_like(counts, 1.0 / counts.size)


def cc(density: np.ndarray, reference: np.ndarray) -> float:
    """Pearson correlation over pixels between a predicted density and a reference density."""
    a, b = density.astype(np.float64).ravel(), reference.astype(np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def kl_divergence(density: np.ndarray, reference: np.ndarray, eps: float = 1e-12) -> float:
    """KL(reference ‖ predicted) in bits, both normalised to sum 1 over pixels; ``eps`` keeps the
    logarithm finite where the prediction is zero (lower is better)."""
    p = reference.astype(np.float64) / reference.sum()
    q = density.astype(np.float64) / density.sum()
    return float((p * (np.log2(p + eps) - np.log2(q + eps))).sum())
