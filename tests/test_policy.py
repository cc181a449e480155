"""The crop policy on synthetic densities: where the window goes and what it holds."""

from __future__ import annotations

import numpy as np
import pytest

from cropsal.geometry import Box, largest_window
from cropsal.policy import (
    TIE_TOLERANCE,
    PolicyConfig,
    best_offset,
    cell_density,
    mirror_asymmetry,
    place_window,
    salient_point,
    window_masses,
)


def blob(map_w: int, map_h: int, col: float, row: float, sigma: float = 0.6) -> np.ndarray:
    """``[map_h, map_w]`` log-density of a Gaussian blob centred on cell ``(col, row)``."""
    yy, xx = np.mgrid[0:map_h, 0:map_w].astype(np.float64)
    log_p = -((xx - col) ** 2 + (yy - row) ** 2) / (2 * sigma**2)
    return log_p - np.log(np.exp(log_p).sum())


def cell_span(index: int, cells: int, extent: int) -> tuple[float, float]:
    """Pixel interval ``[start, end)`` covered by map cell ``index`` of ``cells``."""
    return index * extent / cells, (index + 1) * extent / cells


def brute_force_masses(profile: np.ndarray, extent: int, window: int) -> np.ndarray:
    """Mass of ``[x, x + window)`` for every integer ``x``, integrating the piecewise constant
    density pixel by pixel (independently of the implementation's interpolated CDF)."""
    cells = profile.size
    per_pixel = np.zeros(extent)
    for c in range(cells):
        lo, hi = cell_span(c, cells, extent)
        for p in range(int(np.floor(lo)), min(extent, int(np.ceil(hi)))):
            overlap = min(hi, p + 1) - max(lo, p)
            if overlap > 0:
                per_pixel[p] += profile[c] * overlap / (hi - lo)
    sums = np.concatenate([[0.0], np.cumsum(per_pixel)])
    return sums[window:] - sums[: extent - window + 1]


def test_cell_density_is_a_probability_and_handles_extreme_logs():
    ld = np.array([[-1000.0, -1001.0], [-1002.0, -5000.0]], np.float32)
    p = cell_density(ld)
    assert p.dtype == np.float64
    assert np.isfinite(p).all() and p.min() >= 0
    assert p.sum() == pytest.approx(1.0)
    assert p[0, 0] > p[0, 1] > p[1, 0] > p[1, 1]


@pytest.mark.parametrize("col", [5.0, 12.0, 20.0, 26.0])
def test_one_blob_wide_image_window_contains_it(col):
    width, height, map_w, map_h = 800, 400, 32, 16
    density = cell_density(blob(map_w, map_h, col, 8))
    p = place_window(density, width, height, 1.0)
    assert (p.box.y, p.box.width, p.box.height) == (0, 400, 400)
    lo, hi = cell_span(int(col), map_w, width)
    assert p.box.x <= lo and hi <= p.box.x + p.box.width
    assert p.rule == "mass"
    assert p.confidence > 0.99


@pytest.mark.parametrize("row", [3.0, 10.0, 17.0])
def test_one_blob_tall_image_window_contains_it(row):
    width, height, map_w, map_h = 300, 960, 10, 32
    density = cell_density(blob(map_w, map_h, 5, row))
    p = place_window(density, width, height, 1.0)
    assert (p.box.x, p.box.width, p.box.height) == (0, 300, 300)
    lo, hi = cell_span(int(row), map_h, height)
    assert p.box.y <= lo and hi <= p.box.y + p.box.height
    assert p.confidence > 0.99


def test_blob_at_left_and_right_edges():
    width, height = 1000, 500
    left = place_window(cell_density(blob(32, 16, 0, 8)), width, height, 9 / 16)
    right = place_window(cell_density(blob(32, 16, 31, 8)), width, height, 9 / 16)
    assert left.box.x == 0
    assert right.box.x + right.box.width == width
    assert left.box.width == right.box.width == round(500 * 9 / 16)


def test_blob_at_top_and_bottom_edges():
    width, height = 400, 1200
    top = place_window(cell_density(blob(11, 32, 5, 0)), width, height, 16 / 9)
    bottom = place_window(cell_density(blob(11, 32, 5, 31)), width, height, 16 / 9)
    assert top.box.y == 0
    assert bottom.box.y + bottom.box.height == height


@pytest.mark.parametrize(
    ("width", "height", "ratio"),
    [
        (800, 400, 1.0),
        (801, 400, 1.0),
        (1000, 600, 9 / 16),
        (300, 900, 1.0),
        (300, 901, 1.0),
        (1280, 720, 4 / 3),
        (500, 333, 16 / 9),
    ],
)
def test_flat_map_gives_centred_window(width, height, ratio):
    density = cell_density(np.zeros((13, 21)))
    p = place_window(density, width, height, ratio)
    w, h = largest_window(width, height, ratio)
    assert (p.box.width, p.box.height) == (w, h)
    assert p.box.x == (width - w) // 2
    assert p.box.y == (height - h) // 2
    assert p.confidence == pytest.approx(w * h / (width * height), abs=1e-6)


def test_matching_aspect_takes_the_whole_image():
    p = place_window(cell_density(blob(16, 9, 2, 2)), 1600, 900, 16 / 9)
    assert (p.box.x, p.box.y, p.box.width, p.box.height) == (0, 0, 1600, 900)
    assert p.rule == "whole"
    assert p.confidence == 1.0


def test_window_masses_matches_brute_force():
    rng = np.random.default_rng(7)
    for cells, extent, window in [(5, 17, 4), (32, 451, 300), (7, 7, 3), (3, 100, 99), (40, 41, 1)]:
        profile = rng.random(cells)
        profile /= profile.sum()
        np.testing.assert_allclose(
            window_masses(profile, extent, window),
            brute_force_masses(profile, extent, window),
            atol=1e-12,
        )


@pytest.mark.parametrize("seed", range(12))
def test_chosen_window_holds_maximal_mass(seed):
    rng = np.random.default_rng(seed)
    width, height = (int(v) for v in rng.integers(20, 700, 2))
    map_h, map_w = (int(v) for v in rng.integers(2, 33, 2))
    # log-normal cell masses with a large spread: far from a flat map
    log_density = rng.normal(0, rng.uniform(2, 5), (map_h, map_w))
    density = cell_density(log_density)
    checked = 0
    for ratio in (1.0, 16 / 9, 9 / 16, 3.0, 1 / 3, 4 / 3, 3 / 4):
        p = place_window(density, width, height, ratio)
        if p.rule == "whole":
            assert (p.box.x, p.box.y, p.box.width, p.box.height) == (0, 0, width, height)
            continue
        assert p.rule == "mass"
        w, h = largest_window(width, height, ratio)
        assert (p.box.width, p.box.height) == (w, h)
        if w < width:
            masses = brute_force_masses(density.sum(axis=0), width, w)
            offset = p.box.x
            assert p.box.y == 0
        else:
            masses = brute_force_masses(density.sum(axis=1), height, h)
            offset = p.box.y
            assert p.box.x == 0
        assert masses[offset] >= masses.max() - TIE_TOLERANCE - 1e-12
        assert p.confidence == pytest.approx(masses[offset], abs=1e-9)
        checked += 1
    assert checked >= 5


def test_best_offset_prefers_the_middle_among_ties():
    assert best_offset(np.array([1.0, 1.0, 1.0, 1.0, 1.0])) == 2
    assert best_offset(np.array([0.2, 0.5, 0.5, 0.5, 0.2])) == 2
    assert best_offset(np.array([0.5, 0.1, 0.1, 0.1, 0.5])) in (0, 4)
    assert best_offset(np.array([0.1, 0.9, 0.2])) == 1
    assert best_offset(np.array([0.3])) == 0


def test_two_equal_blobs_symmetric_choice_is_deterministic():
    ld = np.logaddexp(blob(32, 8, 4, 4), blob(32, 8, 27, 4))
    density = cell_density(ld)
    first = place_window(density, 1280, 320, 1.0)
    again = place_window(density, 1280, 320, 1.0)
    assert first == again


@pytest.mark.parametrize(
    ("map_w", "map_h", "col", "row", "width", "height"),
    [
        (32, 18, 20, 5, 1920, 1080),
        (32, 18, 0, 0, 1920, 1080),
        (32, 18, 31, 17, 1920, 1080),
        (7, 3, 6, 2, 10, 5),
        (18, 32, 3, 30, 1080, 1920),
        (1, 1, 0, 0, 5, 5),
    ],
)
def test_salient_point_is_in_the_blob_cell(map_w, map_h, col, row, width, height):
    density = cell_density(blob(map_w, map_h, col, row, sigma=0.3))
    x, y = salient_point(density, width, height)
    assert isinstance(x, int) and isinstance(y, int)
    assert 0 <= x < width and 0 <= y < height
    x_lo, x_hi = cell_span(col, map_w, width)
    y_lo, y_hi = cell_span(row, map_h, height)
    assert x_lo <= x < max(x_hi, x_lo + 1)
    assert y_lo <= y < max(y_hi, y_lo + 1)


def test_salient_point_on_map_larger_than_image_stays_inside():
    density = cell_density(blob(64, 64, 63, 63, sigma=0.3))
    assert salient_point(density, 3, 2) == (2, 1)


# --- the rules before and after "mass" ---------------------------------------------------------


def test_rule_whole_within_the_shape_tolerance():
    density = cell_density(blob(32, 32, 3, 3))
    near = place_window(density, 1000, 990, 1.0, PolicyConfig(shape_tolerance=0.02))
    assert (near.box, near.rule, near.confidence) == (Box(0, 0, 1000, 990), "whole", 1.0)
    strict = place_window(density, 1000, 990, 1.0, PolicyConfig(shape_tolerance=0.0))
    assert strict.rule == "mass"
    assert (strict.box.width, strict.box.height) == (990, 990)


def test_rule_flat_centres_the_window():
    p = place_window(cell_density(np.zeros((9, 16))), 1600, 900, 1.0, PolicyConfig())
    assert p.rule == "flat"
    assert p.box == Box(350, 0, 900, 900)
    assert p.confidence == pytest.approx(900 / 1600, abs=1e-6)


def test_rule_flat_only_for_a_nearly_uniform_map():
    peaked = cell_density(blob(16, 9, 1, 4))
    assert place_window(peaked, 1600, 900, 1.0, PolicyConfig()).rule == "mass"


def test_rule_symmetric_centres_horizontal_windows_only():
    config = PolicyConfig(symmetry=0.05)
    wide = cell_density(blob(32, 16, 2, 8))
    sym = place_window(wide, 800, 400, 1.0, config, asymmetry=0.01)
    assert (sym.rule, sym.box) == ("symmetric", Box(200, 0, 400, 400))
    assert place_window(wide, 800, 400, 1.0, config, asymmetry=0.5).rule == "mass"
    assert place_window(wide, 800, 400, 1.0, config, asymmetry=None).rule == "mass"
    # a window sliding vertically is placed by mass even in a symmetric image
    tall = cell_density(blob(10, 32, 5, 2))
    p = place_window(tall, 300, 960, 1.0, config, asymmetry=0.0)
    assert p.rule == "mass" and p.box.y == 0


def test_mirror_asymmetry():
    rng = np.random.default_rng(0)
    half = rng.integers(0, 256, (64, 50, 3), dtype=np.uint8)
    symmetric = np.concatenate([half, half[:, ::-1]], axis=1)
    assert mirror_asymmetry(symmetric) == pytest.approx(0.0, abs=1e-6)
    lopsided = np.zeros((64, 100, 3), np.uint8)
    lopsided[:, :50] = 255
    assert mirror_asymmetry(lopsided) > 0.9
    assert 0.0 <= mirror_asymmetry(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)) <= 1.0


@pytest.mark.parametrize(("width", "height", "ratio"), [(1600, 900, 1.0), (900, 1600, 16 / 9)])
def test_rule_zoom_shrinks_around_a_small_blob(width, height, ratio):
    density = cell_density(blob(32, 32, 20, 12, sigma=0.5))
    full = place_window(density, width, height, ratio, PolicyConfig(zoom=1.0))
    config = PolicyConfig(zoom=0.5, zoom_keep=0.9)
    p = place_window(density, width, height, ratio, config)
    assert full.rule == "mass" and p.rule == "zoom"
    assert p.box.inside(width, height)
    assert p.box.width < full.box.width and p.box.height < full.box.height
    assert p.box.width >= 0.5 * full.box.width - 1 and p.box.height >= 0.5 * full.box.height - 1
    assert p.box.width / p.box.height == pytest.approx(ratio, rel=0.01)
    assert p.confidence >= 0.9 * full.confidence - 1e-9
    # the blob's cell is inside the zoomed window
    x_lo, x_hi = cell_span(20, 32, width)
    y_lo, y_hi = cell_span(12, 32, height)
    assert p.box.x <= x_lo and x_hi <= p.box.x + p.box.width
    assert p.box.y <= y_lo and y_hi <= p.box.y + p.box.height


def test_rule_zoom_keeps_the_full_window_when_mass_is_spread():
    density = cell_density(np.random.default_rng(2).normal(0, 2.5, (16, 32)))
    config = PolicyConfig(zoom=0.9, zoom_keep=0.999)
    p = place_window(density, 1600, 800, 1.0, config)
    assert p == place_window(density, 1600, 800, 1.0, PolicyConfig())


def test_a_lower_zoom_floor_never_gives_a_larger_window():
    # a blob whose best window loses 10 % of the mass between scales 0.98 and 0.955: with a
    # number of scales fixed between 1 and the floor, zoom 0.1 stepped over it and kept 164 px
    # while zoom 0.6 gave 158 px
    density = cell_density(blob(32, 24, 16, 12, sigma=4.0))
    sides = [
        place_window(density, 320, 240, 1.0, PolicyConfig(zoom=zoom)).box.width
        for zoom in (1.0, 0.9, 0.6, 0.3, 0.1)
    ]
    assert sides == sorted(sides, reverse=True), sides
    assert sides[-1] < sides[0]
