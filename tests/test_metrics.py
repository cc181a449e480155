"""Saliency metrics against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cropsal import metrics

W, H = 64, 48


@pytest.fixture
def fixations():
    """Twenty fixations clustered around two points, in pixel coordinates."""
    rng = np.random.default_rng(3)
    xs = np.concatenate([rng.normal(16, 2, 12), rng.normal(48, 2, 8)])
    ys = np.concatenate([rng.normal(12, 2, 12), rng.normal(36, 2, 8)])
    return np.clip(xs, 0, W - 1), np.clip(ys, 0, H - 1)


def uniform_log_density(width=W, height=H):
    return np.full((height, width), -np.log(width * height))


def mixed_log_density(density, uniform=0.01):
    """A density mixed with a little of the uniform one, so its logarithm is finite."""
    return np.log((1 - uniform) * density + uniform / density.size)


def test_fixation_pixels_round_and_clip():
    cols, rows = metrics.fixation_pixels(
        np.array([-3.0, 0.4, 0.6, 9.0, 99.0]), np.array([0.0, 1.49, 1.51, -1.0, 4.6]), 10, 5
    )
    assert cols.tolist() == [0, 0, 1, 9, 9]
    assert rows.tolist() == [0, 1, 2, 0, 4]


def test_uniform_map_auc_judd_is_half(fixations):
    assert metrics.auc_judd(np.ones((H, W)), *fixations) == 0.5


def test_uniform_map_nss_is_zero(fixations):
    assert metrics.nss(np.full((H, W), 0.25), *fixations) == 0.0


def test_uniform_map_shuffled_auc_is_half(fixations):
    rng = np.random.default_rng(0)
    other = rng.uniform(0, W - 1, 50), rng.uniform(0, H - 1, 50)
    assert metrics.auc_shuffled(np.ones((H, W)), *fixations, *other) == 0.5


def test_map_peaked_at_fixations(fixations):
    xs, ys = fixations
    cols, rows = metrics.fixation_pixels(xs, ys, W, H)
    peaked = np.zeros((H, W))
    peaked[rows, cols] = 1.0
    assert metrics.auc_judd(peaked, xs, ys) == pytest.approx(1.0)
    assert metrics.auc_judd(peaked, xs, ys) > 0.99
    assert metrics.nss(peaked, xs, ys) > 1.0
    # the inverted map puts the fixated pixels lowest (AUC-Judd thresholds only at fixated
    # values, so it cannot drop below 0.5 here; NSS turns negative)
    assert metrics.auc_judd(1.0 - peaked, xs, ys) == 0.5
    assert metrics.nss(1.0 - peaked, xs, ys) < 0


def test_blurred_density_is_better_than_uniform(fixations):
    density = metrics.fixation_density(*fixations, W, H, sigma_px=3.0)
    assert 0.9 < metrics.auc_judd(density, *fixations) <= 1.0
    assert metrics.nss(density, *fixations) > 1.0
    gain = metrics.information_gain(mixed_log_density(density), uniform_log_density(), *fixations)
    assert gain > 1.0


def test_fixation_density_is_normalised(fixations):
    density = metrics.fixation_density(*fixations, W, H, sigma_px=2.5)
    assert density.shape == (H, W)
    assert density.dtype == np.float64
    assert density.sum() == pytest.approx(1.0)
    assert density.min() >= 0


def test_fixation_density_without_fixations_is_uniform():
    density = metrics.fixation_density(np.zeros(0), np.zeros(0), 8, 4, sigma_px=1.0)
    np.testing.assert_allclose(density, np.full((4, 8), 1 / 32))


def test_cc_and_kl_of_the_blurred_fixation_density_with_itself(fixations):
    density = metrics.fixation_density(*fixations, W, H, sigma_px=3.0)
    assert metrics.cc(density, density) == pytest.approx(1.0, abs=1e-12)
    assert metrics.kl_divergence(density, density) == pytest.approx(0.0, abs=1e-12)
    # both are invariant to the scale of the maps
    assert metrics.cc(7.0 * density, density) == pytest.approx(1.0, abs=1e-12)
    assert metrics.kl_divergence(7.0 * density, density) == pytest.approx(0.0, abs=1e-9)


def test_cc_and_kl_of_other_maps(fixations):
    density = metrics.fixation_density(*fixations, W, H, sigma_px=3.0)
    uniform = np.full((H, W), 1.0 / (W * H))
    assert metrics.cc(uniform, density) == 0.0
    assert metrics.cc(density.max() - density, density) == pytest.approx(-1.0)
    assert metrics.kl_divergence(uniform, density) > 0.5
    # KL(p ‖ uniform) = log2(N) − H(p)
    p = density[density > 0]
    expected = np.log2(W * H) + (p * np.log2(p)).sum()
    assert metrics.kl_divergence(uniform, density) == pytest.approx(expected, rel=1e-6)


def test_information_gain_of_a_map_against_itself_is_zero(fixations):
    density = metrics.fixation_density(*fixations, W, H, sigma_px=3.0)
    ld = mixed_log_density(density)
    assert metrics.information_gain(ld, ld, *fixations) == 0.0
    assert metrics.information_gain(uniform_log_density(), uniform_log_density(), *fixations) == 0


def test_information_gain_known_value():
    # model puts half the mass on one pixel of four; the baseline is uniform: log2(0.5 / 0.25)
    model = np.log(np.array([[0.5, 1 / 6], [1 / 6, 1 / 6]]))
    baseline = np.log(np.full((2, 2), 0.25))
    assert metrics.information_gain(model, baseline, np.array([0.0]), np.array([0.0])) == (
        pytest.approx(1.0)
    )
    assert np.isnan(metrics.information_gain(model, baseline, np.zeros(0), np.zeros(0)))


def test_log_likelihood_bits():
    ld = np.log(np.full((2, 4), 1 / 8))
    bits = metrics.log_likelihood_bits(ld, np.array([0.0, 3.0]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(bits, [-3.0, -3.0])


@pytest.mark.parametrize(("value", "expected"), [(4.0, 1.0), (3.0, 5 / 6), (1.0, 0.5)])
def test_auc_judd_hand_computed(value, expected):
    sal = np.array([[1.0, 2.0], [3.0, 4.0]])
    row, col = map(int, np.argwhere(sal == value)[0])
    assert metrics.auc_judd(sal, np.array([col]), np.array([row])) == pytest.approx(expected)


def test_auc_judd_counts_fixated_pixels_once():
    sal = np.array([[1.0, 2.0], [3.0, 4.0]])
    once = metrics.auc_judd(sal, np.array([0.0]), np.array([1.0]))
    thrice = metrics.auc_judd(sal, np.array([0.0, 0.0, 0.2]), np.array([1.0, 1.0, 0.9]))
    assert once == thrice


def test_auc_judd_undefined_cases_are_nan():
    assert np.isnan(metrics.auc_judd(np.ones((2, 2)), np.zeros(0), np.zeros(0)))
    xs, ys = np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0, 1.0])
    assert np.isnan(metrics.auc_judd(np.ones((2, 2)), xs, ys))


def test_shuffled_auc_hand_computed():
    sal = np.array([[1.0, 2.0, 3.0, 4.0]])
    pos_x, pos_y = np.array([2.0]), np.array([0.0])  # value 3
    neg_x, neg_y = np.array([0.0, 1.0, 3.0]), np.zeros(3)  # values 1, 2, 4
    assert metrics.auc_shuffled(sal, pos_x, pos_y, neg_x, neg_y) == pytest.approx(2 / 3)
    # a tie counts half
    assert metrics.auc_shuffled(sal, pos_x, pos_y, pos_x, pos_y) == 0.5
    assert np.isnan(metrics.auc_shuffled(sal, pos_x, pos_y, np.zeros(0), np.zeros(0)))


def test_shuffled_auc_penalises_pure_centre_bias():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:H, 0:W]
    centre = np.exp(-((xx - W / 2) ** 2 + (yy - H / 2) ** 2) / (2 * 8.0**2))
    xs, ys = rng.normal(W / 2, 6, 40), rng.normal(H / 2, 6, 40)
    oxs, oys = rng.normal(W / 2, 6, 200), rng.normal(H / 2, 6, 200)
    # the same fixation distribution for positives and negatives: no better than chance
    assert metrics.auc_shuffled(centre, xs, ys, oxs, oys) == pytest.approx(0.5, abs=0.1)
    # ... while AUC-Judd rewards the centre bias
    assert metrics.auc_judd(centre, xs, ys) > 0.8


def test_shuffled_auc_of_a_map_peaked_at_the_fixations(fixations):
    xs, ys = fixations
    cols, rows = metrics.fixation_pixels(xs, ys, W, H)
    peaked = np.zeros((H, W))
    peaked[rows, cols] = 1.0
    others = np.array([2.0, 60.0, 30.0]), np.array([45.0, 2.0, 24.0])
    assert metrics.auc_shuffled(peaked, xs, ys, *others) == 1.0
