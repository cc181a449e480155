"""Score saliency predictors and crop policies on fixation data sets.

A *predictor* maps an ``HxWx3 uint8 BGR`` image to a small ``[h, w]`` log-density over it.
Saliency metrics are computed after resizing that density to the stored image (bilinear);
crop metrics run cropsal's policy on the map exactly as ``cropsal crop`` does.

Averaging: NSS, AUC-Judd, shuffled AUC, CC and KL are means over images; information gain and
crop coverage are pooled over fixations (each fixation counts once).

Crop windows are also scored as the share of the centre-to-best gap they close,
``(kept − centre kept) / (best kept − centre kept)`` in fixations summed over images, with a
bootstrap interval over images (the validation splits hold 50–71 photos, so one photo can move
it by several hundredths). Next to the models, a human-consistency row: each half of the
observers is scored on the window the policy chooses from the other half's fixations.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from cropsal import metrics
from cropsal.api import choose_crops
from cropsal.datasets import CentreBiasBaseline, FixationSet
from cropsal.decode import decode_bytes, read_bytes
from cropsal.errors import ImageError
from cropsal.geometry import Box, Target, largest_window, parse_aspect
from cropsal.policy import (
    DEFAULT_POLICY,
    PolicyConfig,
    best_offset,
    cell_density,
    centred,
    mirror_asymmetry,
    salient_point,
)
from cropsal.preprocess import map_size_for, resize_log_density

log = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray], np.ndarray]
SALIENCY_METRICS = ("nss", "auc_judd", "auc_shuffled", "cc", "kl", "information_gain")
DEFAULT_CROP_ASPECTS = ("1:1", "16:9", "9:16")
BLUR_FRACTION = 0.03  # σ of the reference fixation map, as a fraction of the long side
SHUFFLED_NEGATIVES = 2000  # fixations of other images drawn as shuffled-AUC negatives
MAP_LONG_SIDE = 32  # cells along the long side of the map the crop policy sees
GAP_BOOTSTRAP = 2000  # resamplings of the images for the gap's interval
GAP_INTERVAL = 0.9  # central probability of that interval
OBSERVERS = "observers"  # the human-consistency row (other half of the observers)


@dataclass
class Tally:
    """Running sums for one (predictor or crop baseline, data set) pair."""

    per_image: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    gains: list[np.ndarray] = field(default_factory=list)
    inside: dict[str, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    images: int = 0  # images scored
    fixations: int = 0  # their fixations

    def count(self, fixations: int) -> None:
        """Note one more image scored, with ``fixations`` fixations."""
        self.images += 1
        self.fixations += fixations

    def merge(self, other: Tally) -> None:
        self.images += other.images
        self.fixations += other.fixations
        for k, v in other.per_image.items():
            self.per_image[k].extend(v)
        self.gains.extend(other.gains)
        for k, v in other.inside.items():
            self.inside[k].extend(v)

    def kept(self, key: str) -> np.ndarray:
        """Fixations inside the window of ``key`` (an aspect, or an aspect and a variant), per
        image: ``[images]`` int."""
        return np.array([a.sum() for a in self.inside[key]], dtype=np.int64)

    def summary(self) -> dict[str, float]:
        """Counts and metrics; NaN where a metric is undefined (no image or fixation for it)."""
        out: dict[str, float] = {"images": self.images, "fixations": self.fixations}
        for k in SALIENCY_METRICS[:-1]:
            if k in self.per_image:
                values = np.asarray(self.per_image[k], np.float64)
                out[k] = mean_or_nan(values[~np.isnan(values)])
        if self.gains:
            out["information_gain"] = mean_or_nan(np.concatenate(self.gains))
        for k, v in sorted(self.inside.items()):
            out[f"crop_{k}"] = mean_or_nan(np.concatenate(v))
        return out


def mean_or_nan(values: np.ndarray) -> float:
    """Mean of ``values`` (``[n]``), or NaN when there are none (without numpy's warning)."""
    return float(values.mean()) if values.size else float("nan")


def fixations_inside(
    box: Box, xs: np.ndarray, ys: np.ndarray, width: int, height: int
) -> np.ndarray:
    """Boolean per fixation (rounded to its pixel): inside ``box``."""
    cols, rows = metrics.fixation_pixels(xs, ys, width, height)
    return (
        (cols >= box.x) & (cols < box.x + box.width) & (rows >= box.y) & (rows < box.y + box.height)
    )


def centre_box(width: int, height: int, ratio: float) -> Box:
    return centred(width, height, *largest_window(width, height, ratio))


def point_box(width: int, height: int, ratio: float, x: int, y: int) -> Box:
    """Largest window centred on ``(x, y)``, clamped into the image (Twitter's 2018 rule)."""
    cw, ch = largest_window(width, height, ratio)
    left = min(max(0, x - cw // 2), width - cw)
    top = min(max(0, y - ch // 2), height - ch)
    return Box(left, top, cw, ch)


def oracle_box(xs: np.ndarray, ys: np.ndarray, width: int, height: int, ratio: float) -> Box:
    """The largest window of ``ratio`` that holds the most of these fixations (ties: central)."""
    cw, ch = largest_window(width, height, ratio)
    cols, rows = metrics.fixation_pixels(xs, ys, width, height)
    if cw < width:
        counts = np.bincount(cols, minlength=width).astype(float)
        sums = np.convolve(counts, np.ones(cw), "valid")
        x = best_offset(sums)
        return Box(x, 0, cw, ch)
    if ch < height:
        counts = np.bincount(rows, minlength=height).astype(float)
        y = best_offset(np.convolve(counts, np.ones(ch), "valid"))
        return Box(0, y, cw, ch)
    return Box(0, 0, width, height)


def gap_closed(
    kept: np.ndarray, centre: np.ndarray, best: np.ndarray, seed: int = 0
) -> tuple[float, float, float]:
    """Share of the centre-to-best gap a crop closes, ``Σ(kept − centre) / Σ(best − centre)``
    over images (each ``[images]``: fixations inside that image's window), and the
    :data:`GAP_INTERVAL` percentile interval of the same ratio over :data:`GAP_BOOTSTRAP`
    resamplings of the images: ``(value, low, high)``; NaN where the best window keeps no more
    than the centre crop."""
    gain, room = (kept - centre).astype(np.float64), (best - centre).astype(np.float64)
    if room.sum() <= 0:
        return float("nan"), float("nan"), float("nan")
    picks = np.random.default_rng(seed).integers(0, gain.size, (GAP_BOOTSTRAP, gain.size))
    g, r = gain[picks].sum(axis=1), room[picks].sum(axis=1)
    ratios = g[r > 0] / r[r > 0]
    tail = (1.0 - GAP_INTERVAL) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return float(gain.sum() / room.sum()), float(low), float(high)


def add_gaps(summaries: dict[str, dict], tallies: dict[str, Tally]) -> None:
    """Put ``gap_<key>`` (value) and ``gap_<key>_interval`` ([low, high]) beside every
    ``crop_<key>`` of every window that is not itself a baseline."""
    if "centre-crop" not in tallies or "oracle" not in tallies:
        return
    for name, tally in tallies.items():
        if name in ("centre-crop", "oracle"):
            continue
        for key in tally.inside:
            aspect = key.split(" ")[0]
            value, low, high = gap_closed(
                tally.kept(key),
                tallies["centre-crop"].kept(aspect),
                tallies["oracle"].kept(aspect),
            )
            summaries[name][f"gap_{key}"] = value
            summaries[name][f"gap_{key}_interval"] = [low, high]


def observer_inside(
    xs: np.ndarray,
    ys: np.ndarray,
    observers: np.ndarray,
    width: int,
    height: int,
    targets: list[Target],
    policy: PolicyConfig = DEFAULT_POLICY,
) -> list[np.ndarray]:
    """Human consistency: the observers are split into two halves (alternate observer
    numbers), and each fixation is tested against the window the crop policy chooses from the
    *other* half's fixation map (blurred as the reference map, at the policy's map size). Per
    target, a boolean per fixation; with fewer than two observers, the centre crop's (see
    :func:`report_observers`)."""
    ids = np.unique(observers)
    if ids.size < 2:
        return [
            fixations_inside(centre_box(width, height, t.ratio), xs, ys, width, height)
            for t in targets
        ]
    first = np.isin(observers, ids[::2])
    inside = [np.zeros(xs.size, bool) for _ in targets]
    mw, mh = map_size_for(width, height, MAP_LONG_SIDE)
    for chooser, scored in ((first, ~first), (~first, first)):
        sigma = BLUR_FRACTION * max(width, height)
        density = metrics.fixation_density(xs[chooser], ys[chooser], width, height, sigma)
        cells = cv2.resize(density, (mw, mh), interpolation=cv2.INTER_AREA)
        log_map = np.log(np.maximum(cells / cells.sum(), 1e-300))
        _, crops = choose_crops(log_map, width, height, targets, policy)
        for k, c in enumerate(crops):
            box = Box(c.x, c.y, c.width, c.height)
            inside[k][scored] = fixations_inside(box, xs[scored], ys[scored], width, height)
    return inside


def shuffled_negatives(
    fs: FixationSet, indices: list[int], i: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Fixations of the other images of ``indices`` in normalised coordinates (0–1), subsampled."""
    others = [j for j in indices if j != i]
    xs = (
        np.concatenate([(fs.fixations(j)[0] + 0.5) / fs.widths[j] for j in others])
        if others
        else np.zeros(0)
    )
    ys = (
        np.concatenate([(fs.fixations(j)[1] + 0.5) / fs.heights[j] for j in others])
        if others
        else np.zeros(0)
    )
    if xs.size > SHUFFLED_NEGATIVES:
        pick = rng.choice(xs.size, SHUFFLED_NEGATIVES, replace=False)
        xs, ys = xs[pick], ys[pick]
    return xs, ys


def evaluate(
    predictors: dict[str, Predictor],
    sets: list[FixationSet],
    split: str,
    baseline: CentreBiasBaseline,
    aspects: tuple[str, ...] = DEFAULT_CROP_ASPECTS,
    limit: int = 0,
    progress: Callable[[], None] | None = None,
    policy: PolicyConfig = DEFAULT_POLICY,
) -> dict:
    """Every metric for every predictor on ``split`` of each set, plus pooled; crop baselines
    (centre crop and fixation oracle) are reported under the names ``centre-crop`` and
    ``oracle``. Returns ``{set name or "pooled": {predictor: {metric: value}}}``.

    Raises :class:`ImageError` (a listed image is missing or cannot be decoded) or
    ``ValueError`` (an image's size is not the one stored with its fixations), naming the file:
    scores over a partial split would not compare with other runs."""
    targets = [parse_aspect(a) for a in aspects]
    chosen = [fs.indices(split)[: limit or None] for fs in sets]
    for fs, indices in zip(sets, chosen):
        check_images_exist(fs, indices)  # before minutes of scoring, not after

    results: dict[str, dict[str, dict]] = {}
    pooled: dict[str, Tally] = defaultdict(Tally)
    for fs, indices in zip(sets, chosen):
        tallies = score_set(fs, indices, predictors, baseline, targets, progress, policy)
        results[fs.name] = {name: t.summary() for name, t in tallies.items()}
        add_gaps(results[fs.name], tallies)
        for name, t in tallies.items():
            pooled[name].merge(t)

    if any(fs.subjects is None for fs in sets):
        pooled.pop(OBSERVERS, None)  # its images would not be those of the crop baselines
    results["pooled"] = {name: t.summary() for name, t in pooled.items()}
    add_gaps(results["pooled"], pooled)
    return results


def score_set(
    fs: FixationSet,
    indices: list[int],
    predictors: dict[str, Predictor],
    baseline: CentreBiasBaseline,
    targets: list[Target],
    progress: Callable[[], None] | None = None,
    policy: PolicyConfig = DEFAULT_POLICY,
) -> dict[str, Tally]:
    """Tallies of every predictor and crop baseline over the images ``indices`` of ``fs``;
    images without fixations are left out (no metric is defined on them), with a warning."""
    scored = {i for i in indices if fs.offsets[i + 1] > fs.offsets[i]}
    if len(scored) < len(indices):
        log.warning(
            "%s: %d of %d images have no fixations and are not scored",
            fs.name,
            len(indices) - len(scored),
            len(indices),
        )
    if targets:
        report_observers(fs, sorted(scored))

    tallies: dict[str, Tally] = defaultdict(Tally)
    rng = np.random.default_rng(0)
    for i in indices:
        if i in scored:
            score_image(fs, i, indices, predictors, baseline, targets, tallies, rng, policy)
        if progress:
            progress()
    return tallies


def check_images_exist(fs: FixationSet, indices: list[int]) -> None:
    """:class:`ImageError` naming the first image of ``indices`` that is not a file."""
    for i in indices:
        path = fs.image_path(i)
        if not path.is_file():
            raise ImageError(f"{path}: no such image file (listed in {fs.root / 'fixations.npz'})")


def report_observers(fs: FixationSet, indices: list[int]) -> None:
    """Log, once for the set, what the observers row cannot score as defined: every image when
    the file has no ``subject`` array (the row is left out), and the images with fewer than
    two observers (scored with the centre crop)."""
    if fs.subjects is None:
        log.info(
            "%s: fixations.npz has no 'subject' array: the observers row is left out for this "
            "set and for pooled",
            fs.name,
        )
        return
    few = sum(np.unique(fs.observers(i)).size < 2 for i in indices)
    if few:
        log.warning(
            "%s: %d of %d images have fewer than two observers; the observers row scores them "
            "with the centre crop",
            fs.name,
            few,
            len(indices),
        )


def load_image(fs: FixationSet, i: int) -> np.ndarray:
    """Image ``i`` of ``fs`` as ``HxWx3 uint8 BGR`` (decoded as ``cropsal crop`` decodes it);
    :class:`ImageError` or ``ValueError`` naming the file when it cannot be read or decoded or
    its size is not the ``width × height`` stored with its fixations."""
    path = fs.image_path(i)
    try:
        bgr = decode_bytes(read_bytes(path)).bgr
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from e
    h, w = bgr.shape[:2]
    if (w, h) != (fs.widths[i], fs.heights[i]):
        raise ValueError(
            f"{path}: fixations.npz gives its size as {fs.widths[i]}x{fs.heights[i]} but the "
            f"image is {w}x{h}"
        )
    return bgr


def score_image(
    fs: FixationSet,
    i: int,
    indices: list[int],
    predictors: dict[str, Predictor],
    baseline: CentreBiasBaseline,
    targets: list[Target],
    tallies: dict[str, Tally],
    rng: np.random.Generator,
    policy: PolicyConfig = DEFAULT_POLICY,
) -> None:
    """Add image ``i`` of ``fs`` to ``tallies``: the saliency metrics and crop windows of each
    predictor, the crop baselines and, when ``fs`` has observer numbers, the observers row."""
    bgr = load_image(fs, i)
    h, w = bgr.shape[:2]
    xs, ys = fs.fixations(i)
    base = baseline.log_density(w, h)
    reference = metrics.fixation_density(xs, ys, w, h, BLUR_FRACTION * max(w, h))
    nx, ny = shuffled_negatives(fs, indices, i, rng)
    neg_x, neg_y = nx * w - 0.5, ny * h - 0.5
    asymmetry = mirror_asymmetry(bgr) if targets else None

    if targets:
        score_crop_baselines(xs, ys, fs.observers(i), w, h, targets, tallies, policy)

    for name, predict in predictors.items():
        small = predict(bgr)
        log_density = resize_log_density(small, w, h)
        density = np.exp(log_density.astype(np.float64))
        tally = tallies[name]
        tally.count(xs.size)
        tally.per_image["nss"].append(metrics.nss(density, xs, ys))
        tally.per_image["auc_judd"].append(metrics.auc_judd(density, xs, ys))
        tally.per_image["auc_shuffled"].append(metrics.auc_shuffled(density, xs, ys, neg_x, neg_y))
        tally.per_image["cc"].append(metrics.cc(density, reference))
        tally.per_image["kl"].append(metrics.kl_divergence(density, reference))
        tally.gains.append(
            metrics.log_likelihood_bits(log_density, xs, ys)
            - metrics.log_likelihood_bits(base, xs, ys)
        )

        if not targets:
            continue
        # crops exactly as `cropsal crop` chooses them, from the map at the image's aspect
        mw, mh = map_size_for(w, h, MAP_LONG_SIDE)
        crop_map = resize_log_density(small, mw, mh)
        _, crops = choose_crops(crop_map, w, h, targets, policy, asymmetry)
        px, py = salient_point(cell_density(crop_map), w, h)
        for t, c in zip(targets, crops):
            box = Box(c.x, c.y, c.width, c.height)
            tally.inside[t.aspect].append(fixations_inside(box, xs, ys, w, h))
            tally.inside[f"{t.aspect} peak"].append(
                fixations_inside(point_box(w, h, t.ratio, px, py), xs, ys, w, h)
            )


def score_crop_baselines(
    xs: np.ndarray,
    ys: np.ndarray,
    observers: np.ndarray | None,
    width: int,
    height: int,
    targets: list[Target],
    tallies: dict[str, Tally],
    policy: PolicyConfig = DEFAULT_POLICY,
) -> None:
    """Add one image's model-free windows to ``tallies``: the centre crop, the fixation oracle
    and, when ``observers`` (``[F]`` int) is given, the other half of the observers."""
    tallies["centre-crop"].count(xs.size)
    tallies["oracle"].count(xs.size)
    for t in targets:
        tallies["centre-crop"].inside[t.aspect].append(
            fixations_inside(centre_box(width, height, t.ratio), xs, ys, width, height)
        )
        tallies["oracle"].inside[t.aspect].append(
            fixations_inside(oracle_box(xs, ys, width, height, t.ratio), xs, ys, width, height)
        )
    if observers is None:
        return
    tallies[OBSERVERS].count(xs.size)
    halves = observer_inside(xs, ys, observers, width, height, targets, policy)
    for t, inside in zip(targets, halves):
        tallies[OBSERVERS].inside[t.aspect].append(inside)


def centre_bias_predictor(baseline: CentreBiasBaseline, cells: int = 64) -> Predictor:
    """The baseline itself as a predictor (a ``cells``-wide map with the image's aspect)."""

    def predict(bgr: np.ndarray) -> np.ndarray:
        mw, mh = map_size_for(bgr.shape[1], bgr.shape[0], cells)
        return baseline.log_density(mw, mh).astype(np.float32)

    return predict


def model_predictor(model) -> Predictor:
    """A :class:`cropsal.model.SaliencyModel` as a predictor."""
    return lambda bgr: model.predict([bgr])[0]


def fastgaze_predictor(fastgaze, baseline: CentreBiasBaseline) -> Predictor:
    """Twitter's network plus the centre-bias log-density, normalised (as its README advises)."""

    def predict(bgr: np.ndarray) -> np.ndarray:
        s = fastgaze.log_saliency(bgr).astype(np.float64)
        s = s + baseline.log_density(s.shape[1], s.shape[0])
        s -= s.max()
        return (s - np.log(np.exp(s).sum())).astype(np.float32)

    return predict
