"""Crop targets (``--aspect`` / ``--size`` parsing) and the window geometry."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import expected_window

from cropsal.errors import CropsalError
from cropsal.geometry import (
    DEFAULT_ASPECTS,
    MAX_TARGET_PIXELS,
    Box,
    Target,
    largest_window,
    parse_aspect,
    parse_size,
)
from cropsal.policy import cell_density, place_window

# --- parse_aspect ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ratio_w", "ratio_h"),
    [
        ("16:9", 16, 9),
        ("9:16", 9, 16),
        ("1:1", 1, 1),
        ("4/3", 4, 3),
        ("3x2", 3, 2),
        (" 16 : 9 ", 16, 9),
        ("21:9", 21, 9),
        ("1.91:1", 191, 100),
        ("2.35:1", 47, 20),
        ("1.5:1", 3, 2),
        ("16:9.0", 16, 9),
        ("0.5:1", 1, 2),
    ],
)
def test_parse_aspect_valid(text, ratio_w, ratio_h):
    t = parse_aspect(text)
    assert (t.ratio_w, t.ratio_h, t.size) == (ratio_w, ratio_h, None)
    assert isinstance(t.ratio_w, int) and isinstance(t.ratio_h, int)
    assert t.ratio == pytest.approx(ratio_w / ratio_h)


def test_parse_aspect_label_and_suffix():
    t = parse_aspect("16:9")
    assert t.aspect == t.label == "16:9"
    assert t.suffix == "16x9"


def test_default_aspects_parse():
    assert [parse_aspect(a).label for a in DEFAULT_ASPECTS] == list(DEFAULT_ASPECTS)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "16",
        "16:",
        ":9",
        "0:1",
        "1:0",
        "0.0:1",
        "-1:1",
        "1:-1",
        "a:b",
        "16:9:1",
        "1e3:1",
        "16;9",
        "16 9",
        ".5:1",
        "1.:1",
        "inf:1",
        "nan:1",
    ],
)
def test_parse_aspect_invalid(text):
    with pytest.raises(CropsalError) as info:
        parse_aspect(text)
    assert repr(text) in str(info.value)
    assert "\n" not in str(info.value)


def test_parse_aspect_huge_decimal_is_a_cropsal_error():
    with pytest.raises(CropsalError):
        parse_aspect("1" * 400 + ".5:1")


def test_parse_aspect_huge_integer_is_a_cropsal_error():
    with pytest.raises(CropsalError):
        _ = parse_aspect("9" * 400 + ":1").ratio


# --- parse_size ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size", "ratio"),
    [
        ("600x600", (600, 600), (1, 1)),
        ("1920X1080", (1920, 1080), (16, 9)),
        ("1080×1920", (1080, 1920), (9, 16)),
        (" 640 x 480 ", (640, 480), (4, 3)),
        ("1x1", (1, 1), (1, 1)),
        ("601x600", (601, 600), (601, 600)),
        ("10000x10000", (10000, 10000), (1, 1)),
    ],
)
def test_parse_size_valid(text, size, ratio):
    t = parse_size(text)
    assert t.size == size
    assert (t.ratio_w, t.ratio_h) == ratio
    assert t.label == f"{size[0]}x{size[1]}"
    assert t.suffix == t.label


@pytest.mark.parametrize(
    "text",
    [
        "",
        "600",
        "600x",
        "x600",
        "0x600",
        "600x0",
        "0x0",
        "-1x5",
        "6.5x6",
        "600:600",
        "600*600",
        "600x600x3",
        "abc",
        "20000x20000",
    ],
)
def test_parse_size_invalid(text):
    with pytest.raises(CropsalError) as info:
        parse_size(text)
    assert repr(text) in str(info.value)


def test_parse_size_limit_is_inclusive():
    side = int(MAX_TARGET_PIXELS**0.5)
    assert parse_size(f"{side}x{side}").size == (side, side)
    with pytest.raises(CropsalError, match="pixels"):
        parse_size(f"{side + 1}x{side}")


def test_targets_are_hashable_and_compare_by_value():
    assert parse_aspect("16:9") == parse_aspect("16/9") == Target(16, 9)
    assert parse_size("600x600") != parse_aspect("1:1")
    assert len({parse_aspect("16:9"), parse_aspect("16x9"), parse_aspect("9:16")}) == 2


# --- largest_window --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "ratio", "expected"),
    [
        (1920, 1080, 16 / 9, (1920, 1080)),
        (1280, 720, 1.0, (720, 720)),
        (1280, 720, 9 / 16, (405, 720)),
        (1280, 720, 4 / 3, (960, 720)),
        (400, 300, 1.0, (300, 300)),
        (300, 400, 1.0, (300, 300)),
        (451, 300, 1.0, (300, 300)),
        (451, 300, 16 / 9, (451, 254)),
        (451, 300, 9 / 16, (169, 300)),
        (100, 100, 16 / 9, (100, 56)),
        (640, 480, 4 / 3, (640, 480)),
        (10, 1000, 1.0, (10, 10)),
        (1000, 10, 9 / 16, (6, 10)),
        (1, 1, 16 / 9, (1, 1)),
        (700, 1, 16 / 9, (2, 1)),
        (1, 700, 16 / 9, (1, 1)),
        (1, 700, 9 / 16, (1, 2)),
    ],
)
def test_largest_window_exact(width, height, ratio, expected):
    assert largest_window(width, height, ratio) == expected


RATIOS = [1.0, 16 / 9, 9 / 16, 4 / 3, 3 / 4, 21 / 9, 191 / 100, 3.0, 1 / 3, 10.0, 0.1]
SIZES = [1, 2, 3, 7, 16, 31, 90, 99, 100, 101, 255, 333, 480, 512, 720, 1000, 1079, 4096]


@pytest.mark.parametrize("ratio", RATIOS)
def test_largest_window_properties(ratio):
    for width, height in itertools.product(SIZES, SIZES):
        w, h = largest_window(width, height, ratio)
        assert isinstance(w, int) and isinstance(h, int)
        # fits inside the image
        assert 1 <= w <= width and 1 <= h <= height, (width, height, ratio, w, h)
        # touches both sides on (at least) one axis
        assert w == width or h == height, (width, height, ratio, w, h)
        # the free side is the aspect, rounded to the nearest pixel (or clamped to 1 / the image)
        if h == height and w < width:
            assert w == 1 or abs(w - height * ratio) <= 0.5 + 1e-9, (width, height, ratio, w, h)
        if w == width and h < height:
            assert h == 1 or abs(h - width / ratio) <= 0.5 + 1e-9, (width, height, ratio, w, h)
        # largest: the window could not fill the other axis instead
        if w == width and h < height:
            assert width / ratio < height
        if h == height and w < width:
            assert height * ratio < width + 0.5


def test_largest_window_matching_aspect_is_whole_image():
    for width, height in [(1600, 900), (900, 1600), (64, 64), (3, 1)]:
        assert largest_window(width, height, width / height) == (width, height)


# --- Box -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "inside"),
    [
        (Box(0, 0, 100, 50), True),
        (Box(10, 5, 90, 45), True),
        (Box(99, 49, 1, 1), True),
        (Box(1, 0, 100, 50), False),
        (Box(0, 1, 100, 50), False),
        (Box(-1, 0, 10, 10), False),
        (Box(0, -1, 10, 10), False),
        (Box(0, 0, 0, 10), False),
        (Box(0, 0, 10, 0), False),
        (Box(100, 0, 1, 1), False),
    ],
)
def test_box_inside(box, inside):
    assert box.inside(100, 50) is inside


def test_every_placed_box_is_inside_the_image():
    rng = np.random.default_rng(1234)
    targets = [parse_aspect(a) for a in ("1:1", "16:9", "9:16", "4:3", "21:9", "1:3")]
    for _ in range(150):
        width, height = (int(v) for v in rng.integers(1, 2000, 2))
        mh, mw = (int(v) for v in rng.integers(1, 40, 2))
        log_density = rng.normal(0, rng.uniform(0.1, 8), (mh, mw))
        density = cell_density(log_density)
        for t in targets:
            p = place_window(density, width, height, t.ratio)
            assert p.box.inside(width, height), (width, height, t, p)
            shape = expected_window(width, height, t.ratio, p.rule)
            assert (p.box.width, p.box.height) == shape, (width, height, t, p)
            assert all(isinstance(v, int) for v in (p.box.x, p.box.y, p.box.width, p.box.height))
            assert -1e-9 <= p.confidence <= 1 + 1e-9
