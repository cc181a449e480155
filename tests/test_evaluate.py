"""Crop scoring of ``cropsal eval``: the gap closed against known answers, the human-consistency
row, and the command end to end on a small generated eye-tracking data set."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import run_cropsal

from cropsal.evaluate import gap_closed, observer_inside
from cropsal.geometry import parse_aspect

W, H = 192, 96  # 2:1, so a 1:1 window slides sideways over 96 columns


def test_gap_of_the_centre_crop_is_zero_and_of_the_best_is_one():
    centre, best = np.array([5, 8, 2]), np.array([9, 10, 6])
    assert gap_closed(centre, centre, best)[0] == 0.0
    assert gap_closed(best, centre, best)[0] == 1.0


def test_gap_sums_over_images_before_dividing():
    # (1 + 0) / (2 + 2): the second image's window kept no more than its centre crop
    value, low, high = gap_closed(np.array([6, 3]), np.array([5, 3]), np.array([7, 5]))
    assert value == 0.25
    assert 0.0 <= low <= value <= high <= 0.5


def test_gap_interval_is_a_point_when_every_image_agrees():
    value, low, high = gap_closed(np.array([6, 7, 8]), np.array([4, 5, 6]), np.array([8, 9, 10]))
    assert value == low == high == pytest.approx(0.5)


def test_gap_is_undefined_when_the_centre_crop_is_already_best():
    assert all(math.isnan(v) for v in gap_closed(np.array([3]), np.array([4]), np.array([4])))


def test_gap_interval_is_deterministic():
    rng = np.random.default_rng(1)
    centre = rng.integers(0, 50, 40)
    args = (centre + rng.integers(-3, 6, 40), centre, centre + rng.integers(0, 8, 40))
    assert gap_closed(*args) == gap_closed(*args)


def test_observers_who_agree_choose_the_best_window():
    # four observers, all looking near the left edge: each half's window holds the other's gaze
    rng = np.random.default_rng(0)
    xs = rng.normal(20, 3, 40).clip(0, W - 1)
    ys = rng.normal(48, 10, 40).clip(0, H - 1)
    observers = np.repeat(np.arange(4), 10)
    (inside,) = observer_inside(xs, ys, observers, W, H, [parse_aspect("1:1")])
    assert inside.shape == xs.shape and inside.all()


def test_observers_who_disagree_lose_fixations():
    # observers 0 and 2 look left, 1 and 3 right: each half's window misses the other half
    xs = np.concatenate([np.full(10, 15.0), np.full(10, 175.0)] * 2)
    ys = np.full(40, 48.0)
    observers = np.repeat(np.arange(4), 10)
    (inside,) = observer_inside(xs, ys, observers, W, H, [parse_aspect("1:1")])
    assert not inside.any()


def test_a_single_observer_is_scored_on_the_centre_crop():
    xs, ys = np.array([5.0, 96.0]), np.array([48.0, 48.0])
    (inside,) = observer_inside(xs, ys, np.zeros(2, int), W, H, [parse_aspect("1:1")])
    assert inside.tolist() == [False, True]


@pytest.fixture
def fixation_set(tmp_path: Path) -> Path:
    """Ten 192×96 photos with a bright square near the left or right edge, and the fixations of
    four observers on that square, in the layout of ``../shared/eyetracking/<name>``."""
    root = tmp_path / "toy"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(7)
    names, xs, ys, subjects, offsets = [], [], [], [], [0]
    for i in range(10):
        image = np.full((H, W, 3), 40, np.uint8)
        cx = 24 if i % 2 else W - 24
        cv2.rectangle(image, (cx - 12, 36), (cx + 12, 60), (255, 255, 255), -1)
        names.append(f"{i:02d}.jpg")
        cv2.imwrite(str(root / "images" / names[-1]), image)
        xs.append(rng.normal(cx, 3, 24).clip(0, W - 1))
        ys.append(rng.normal(48, 4, 24).clip(0, H - 1))
        subjects.append(np.repeat(np.arange(4), 6))
        offsets.append(offsets[-1] + 24)
    np.savez(
        root / "fixations.npz",
        image=np.array(names),
        width=np.full(10, W, np.int32),
        height=np.full(10, H, np.int32),
        offsets=np.array(offsets, np.int64),
        x=np.concatenate(xs).astype(np.float32),
        y=np.concatenate(ys).astype(np.float32),
        subject=np.concatenate(subjects).astype(np.int16),
    )
    return root


def test_eval_scores_crops_against_the_observers(fixation_set: Path, tmp_path: Path):
    result = run_cropsal(
        "eval",
        fixation_set,
        "--split",
        "all",
        "--aspect",
        "1:1",
        "--fastgaze",
        tmp_path / "absent.vxm",
        "--json",
        "-",
        "-q",
    )
    assert result.rc == 0, result.stderr
    results = json.loads(result.stdout)["results"]
    rows = results["toy"]
    # every fixation sits on the square, off-centre: the centre crop keeps none, the best all
    assert rows["centre-crop"]["crop_1:1"] == 0.0
    assert rows["oracle"]["crop_1:1"] == 1.0
    assert rows["observers"]["crop_1:1"] == 1.0
    assert rows["observers"]["gap_1:1"] == 1.0
    assert rows["observers"]["gap_1:1_interval"] == [1.0, 1.0]
    model = rows["cropsal-v3"]
    low, high = model["gap_1:1_interval"]
    assert low <= model["gap_1:1"] <= high
    assert model["gap_1:1"] == pytest.approx(model["crop_1:1"])  # centre 0, best 1
    assert "gap_1:1 peak" in model
    assert results["pooled"]["observers"] == rows["observers"]  # one set: pooled is that set
