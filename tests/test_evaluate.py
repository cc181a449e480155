"""Crop scoring of ``cropsal eval``: the gap closed against known answers, the human-consistency
row, data sets that cannot be used, and the command end to end on small generated eye-tracking
data sets."""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import run_cropsal

from cropsal.cli.eval import eval_command, gap_cell, json_text
from cropsal.datasets import CentreBiasBaseline, load_fixation_set
from cropsal.errors import ImageError
from cropsal.evaluate import centre_bias_predictor, evaluate, gap_closed, observer_inside
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


def make_set(
    root: Path, images: int = 10, fixations: int = 24, observers: int = 4, centred: bool = False
) -> Path:
    """``images`` 192×96 photos with a bright square near the left or right edge (or, when
    ``centred``, in the middle), and ``fixations`` of ``observers`` observers on that square, in
    the layout of ``../shared/eyetracking/<name>``."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(7)
    names, xs, ys, subjects, offsets = [], [], [], [], [0]
    for i in range(images):
        image = np.full((H, W, 3), 40, np.uint8)
        cx = W // 2 if centred else 24 if i % 2 else W - 24
        cv2.rectangle(image, (cx - 12, 36), (cx + 12, 60), (255, 255, 255), -1)
        names.append(f"{i:02d}.jpg")
        cv2.imwrite(str(root / "images" / names[-1]), image)
        xs.append(rng.normal(cx, 3, fixations).clip(0, W - 1))
        ys.append(rng.normal(48, 4, fixations).clip(0, H - 1))
        subjects.append(np.arange(fixations) * observers // fixations)
        offsets.append(offsets[-1] + fixations)
    np.savez(
        root / "fixations.npz",
        image=np.array(names),
        width=np.full(images, W, np.int32),
        height=np.full(images, H, np.int32),
        offsets=np.array(offsets, np.int64),
        x=np.concatenate(xs).astype(np.float32),
        y=np.concatenate(ys).astype(np.float32),
        subject=np.concatenate(subjects).astype(np.int16),
    )
    return root


def rewrite_npz(root: Path, drop: tuple[str, ...] = (), **arrays: np.ndarray) -> Path:
    """Replace (or with ``drop``, remove) arrays of ``root``'s fixations.npz; returns the file."""
    npz = root / "fixations.npz"
    with np.load(npz) as data:
        stored = {k: data[k] for k in data.files if k not in drop}
    np.savez(npz, **(stored | arrays))
    return npz


def stored(root: Path, key: str) -> np.ndarray:
    with np.load(root / "fixations.npz") as data:
        return data[key]


def score(*roots: Path, split: str = "all", aspects: tuple[str, ...] = ("1:1",)) -> dict:
    """``evaluate`` with the centre-bias baseline as the only predictor (no network)."""
    sets = [load_fixation_set(r) for r in roots]
    baseline = CentreBiasBaseline.fit(sets, "all")
    predictors = {"centre-bias": centre_bias_predictor(baseline)}
    return evaluate(predictors, sets, split, baseline, aspects)


@pytest.fixture
def fixation_set(tmp_path: Path) -> Path:
    return make_set(tmp_path / "toy")


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


def one_error_line(stderr: str, start: str) -> bool:
    """The whole of ``stderr`` is one ``cropsal: error:`` line beginning with ``start``."""
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith(f"cropsal: error: {start}")


@pytest.mark.parametrize("damage", ["missing", "undecodable"])
def test_an_unusable_image_stops_the_run_with_one_line(fixation_set: Path, damage: str):
    image = fixation_set / "images" / "03.jpg"
    if damage == "missing":
        image.unlink()
    else:
        image.write_bytes(b"not a photo")
    result = run_cropsal("eval", fixation_set, "--split", "all", "--fastgaze", "absent.vxm", "-q")
    assert result.rc == 2
    assert one_error_line(result.stderr, f"{image}: "), result.stderr


def test_an_undecodable_image_is_an_image_error_naming_it(fixation_set: Path):
    (fixation_set / "images" / "03.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    with pytest.raises(ImageError, match=r"03\.jpg: truncated JPEG"):
        score(fixation_set)


def test_a_stored_size_unlike_the_image_is_refused(fixation_set: Path):
    width = stored(fixation_set, "width")
    width[2] = 200
    rewrite_npz(fixation_set, width=width)
    with pytest.raises(ValueError, match=r"02\.jpg: .* 200x96 but the image is 192x96"):
        score(fixation_set)


def _offsets(root: Path) -> np.ndarray:
    return stored(root, "offsets")


INCONSISTENT = {
    "offsets too short": (lambda r: {"offsets": _offsets(r)[:-1]}, "'offsets' has 10 entries"),
    "offsets falling": (
        lambda r: {"offsets": _offsets(r)[[0, 1, 3, 2, 4, 5, 6, 7, 8, 9, 10]]},
        "'offsets' decreases",
    ),
    "offsets short of the fixations": (
        lambda r: {"offsets": _offsets(r) - np.r_[np.zeros(10, int), 1]},
        "'offsets' ends at 239",
    ),
    "offsets not from 0": (lambda r: {"offsets": _offsets(r) + 1}, "'offsets' starts at 1"),
    "width short": (lambda r: {"width": np.full(9, W)}, "'width' has 9 entries"),
    "height long": (lambda r: {"height": np.full(11, H)}, "'height' has 11 entries"),
    "image short": (lambda r: {"image": stored(r, "image")[:9]}, "'width' has 10 entries"),
    "y short": (lambda r: {"y": stored(r, "y")[:-1]}, "'y' has 239 entries"),
    "size zero": (lambda r: {"height": np.r_[np.full(9, H), 0]}, "'height' of image 9 is 0"),
    "y not a number": (
        lambda r: {"y": np.r_[stored(r, "y")[:7], np.nan, stored(r, "y")[8:]]},
        "'y' of fixation 7 is nan",
    ),
}


@pytest.mark.parametrize("case", INCONSISTENT)
def test_inconsistent_arrays_are_refused_by_name(fixation_set: Path, case: str):
    change, message = INCONSISTENT[case]
    npz = rewrite_npz(fixation_set, **change(fixation_set))
    with pytest.raises(ValueError, match=f"^{npz}: {message}"):
        load_fixation_set(fixation_set)


def test_the_command_refuses_an_inconsistent_file_in_one_line(fixation_set: Path):
    npz = rewrite_npz(fixation_set, offsets=_offsets(fixation_set)[:-1])
    result = run_cropsal("eval", fixation_set, "--fastgaze", "absent.vxm", "-q")
    assert result.rc == 2
    assert one_error_line(result.stderr, f"{npz}: 'offsets'"), result.stderr


def test_images_with_one_observer_are_counted_in_one_warning(fixation_set: Path, caplog):
    subjects = stored(fixation_set, "subject")
    subjects[:24] = subjects[48:72] = 0  # images 0 and 2: a single observer
    rewrite_npz(fixation_set, subject=subjects)
    with caplog.at_level(logging.INFO, logger="cropsal"):
        score(fixation_set)
    notes = [r for r in caplog.records if "observer" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.WARNING
    assert "2 of 10 images have fewer than two observers" in notes[0].getMessage()


def test_a_set_without_observer_numbers_has_no_observers_row(tmp_path: Path, caplog):
    with_ids = make_set(tmp_path / "with")
    without = make_set(tmp_path / "without", images=4)
    rewrite_npz(without, drop=("subject",))
    with caplog.at_level(logging.INFO, logger="cropsal"):
        results = score(with_ids, without)
    notes = [r for r in caplog.records if "observers row" in r.getMessage()]
    assert [(r.levelno, r.getMessage().split(":")[0]) for r in notes] == [(logging.INFO, "without")]
    assert "observers" in results["with"]
    assert "observers" not in results["without"] and "observers" not in results["pooled"]


def test_crop_rows_count_their_images_and_fixations(fixation_set: Path):
    results = score(fixation_set)
    for rows in (results["toy"], results["pooled"]):
        for name in ("centre-bias", "centre-crop", "oracle", "observers"):
            assert (rows[name]["images"], rows[name]["fixations"]) == (10, 240), name


def test_images_without_fixations_are_left_out_without_numpy_warnings(fixation_set: Path):
    offsets = _offsets(fixation_set)
    offsets[1] = 0  # image 0 has no fixations, image 1 the first 48
    rewrite_npz(fixation_set, offsets=offsets)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = score(fixation_set)["toy"]
    assert rows["centre-bias"]["images"] == rows["centre-crop"]["images"] == 9


def test_a_single_scored_image_gives_nan_without_numpy_warnings(tmp_path: Path):
    # one image in the validation split: shuffled AUC has no other image to draw from
    root = make_set(tmp_path / "tiny", images=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = score(root, split="val")["tiny"]
    assert rows["centre-bias"]["images"] == 1 and math.isnan(rows["centre-bias"]["auc_shuffled"])


def test_an_undefined_gap_reads_n_a_in_the_table():
    nan = float("nan")
    assert gap_cell({"gap_1:1": nan, "gap_1:1_interval": [nan, nan]}, "1:1") == "n/a"
    assert (
        gap_cell({"gap_1:1": 0.44, "gap_1:1_interval": [0.3, 0.58]}, "1:1") == "0.44 [0.30, 0.58]"
    )


def strict_json(text: str) -> dict:
    """Parse ``text`` as JSON proper: ``NaN`` and ``Infinity`` tokens are refused."""

    def refuse(token: str):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_writes_null_for_undefined_numbers():
    nan = float("nan")
    results = {"a": nan, "b": [1.0, nan], "c": {"d": float("inf"), "e": 2}}
    assert strict_json(json_text(results)) == {
        "a": None,
        "b": [1.0, None],
        "c": {"d": None, "e": 2},
    }


def test_eval_on_a_tiny_split_writes_valid_json_and_nothing_on_stderr(tmp_path: Path):
    # three images, fixations on the centre: one validation image, and the centre crop is best
    root = make_set(tmp_path / "tiny", images=3, centred=True)
    result = run_cropsal(
        "eval",
        root,
        "--split",
        "val",
        "--aspect",
        "1:1",
        "--fastgaze",
        "absent.vxm",
        "--json",
        "-",
        "-q",
    )
    assert result.rc == 0 and result.stderr == ""
    rows = strict_json(result.stdout)["results"]["tiny"]
    assert rows["observers"]["gap_1:1"] is None
    assert rows["observers"]["gap_1:1_interval"] == [None, None]
    assert rows["centre-bias"]["auc_shuffled"] is None


def test_eval_help_describes_a_data_set_folder():
    result = CliRunner().invoke(eval_command, ["--help"])
    assert result.exit_code == 0
    for part in ("images/<name>.jpg", "fixations.npz", "width", "height", "offsets", "subject"):
        assert part in result.output, part


def test_an_unwritable_json_path_stops_before_scoring(fixation_set: Path, tmp_path: Path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be\n")
    result = run_cropsal(
        "eval", fixation_set, "--fastgaze", "absent.vxm", "--json", blocker / "r.json", "-q"
    )
    assert result.rc == 2
    assert one_error_line(result.stderr, f"{blocker}: cannot write output"), result.stderr


def test_json_into_a_new_folder_is_written(fixation_set: Path, tmp_path: Path):
    target = tmp_path / "new" / "folder" / "results.json"
    result = run_cropsal(
        "eval", fixation_set, "--split", "all", "--fastgaze", "absent.vxm", "--json", target, "-q"
    )
    assert result.rc == 0, result.stderr
    assert strict_json(target.read_text())["results"]["toy"]["oracle"]["images"] == 10
