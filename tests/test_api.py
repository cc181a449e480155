"""The Python API: ``Cropper`` with the shipped model, and crops from synthetic saliency."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import expected_window, logsumexp, synthetic_image

from cropsal.api import Crop, Cropper, CropResult, choose_crops
from cropsal.errors import CropsalError, ModelError
from cropsal.geometry import parse_aspect, parse_size
from cropsal.model import default_model_path


def test_default_constructor_loads_the_shipped_model():
    c = Cropper()
    assert c.model.path == default_model_path()
    assert c.model.path.name == "cropsal-v3.onnx"
    assert c.model.path.is_file()
    assert c.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")


def test_cropper_is_importable_lazily_from_the_package():
    import cropsal

    assert cropsal.Cropper is Cropper


def test_missing_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Cropper(tmp_path / "nope.onnx")


def test_garbage_model_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx file")
    with pytest.raises(ModelError) as info:
        Cropper(bad)
    assert str(bad) in str(info.value)


def test_unknown_device_is_refused():
    with pytest.raises(CropsalError, match="tpu"):
        Cropper(device="tpu")


@pytest.mark.parametrize(("width", "height"), [(400, 100), (100, 400), (300, 300), (640, 480)])
def test_saliency_is_a_normalised_log_density_with_the_image_aspect(cropper, width, height):
    ld = cropper.saliency(synthetic_image(width, height, seed=width + height))
    assert ld.dtype == np.float32
    assert ld.ndim == 2
    assert np.isfinite(ld).all()
    assert logsumexp(ld) == pytest.approx(0.0, abs=1e-4)
    map_h, map_w = ld.shape
    assert max(map_w, map_h) >= 8
    # the map's aspect is the image's, to within one cell of rounding on the short side
    if width >= height:
        assert abs(map_h - map_w * height / width) <= 0.5 + 1e-9
    else:
        assert abs(map_w - map_h * width / height) <= 0.5 + 1e-9


def test_saliency_of_a_4_to_1_image_is_4_to_1(cropper):
    map_h, map_w = cropper.saliency(synthetic_image(400, 100)).shape
    assert map_w / map_h == pytest.approx(4.0, rel=0.15)


@pytest.mark.parametrize("size", [(10, 7), (1, 1), (64, 16), (5, 40)])
def test_saliency_size_argument_is_honoured(cropper, size):
    ld = cropper.saliency(synthetic_image(200, 120), size=size)
    assert ld.shape == (size[1], size[0])
    assert ld.dtype == np.float32
    assert logsumexp(ld) == pytest.approx(0.0, abs=1e-4)


def test_saliency_is_deterministic(cropper):
    img = synthetic_image(320, 200, seed=5)
    np.testing.assert_array_equal(cropper.saliency(img), cropper.saliency(img))


def test_saliency_does_not_modify_the_image(cropper):
    img = synthetic_image(160, 120, seed=6)
    before = img.copy()
    cropper.saliency(img)
    np.testing.assert_array_equal(img, before)


EXACT = {"1:1": (720, 720), "16:9": (1280, 720), "9:16": (405, 720), "4:3": (960, 720)}


def test_crop_returns_requested_aspects_with_exact_shapes(cropper):
    img = synthetic_image(1280, 720, seed=11)
    aspects = ["16:9", "1:1", "9:16", "4:3"]
    result = cropper.crop(img, aspects=aspects)
    assert isinstance(result, CropResult)
    assert (result.width, result.height) == (1280, 720)
    assert [c.aspect for c in result.crops] == aspects
    for c in result.crops:
        assert isinstance(c, Crop)
        for v in (c.x, c.y, c.width, c.height):
            assert type(v) is int
        assert 0 <= c.x and 0 <= c.y and c.x + c.width <= 1280 and c.y + c.height <= 720
        assert (c.width, c.height) == EXACT[c.aspect]
        assert 0.0 <= c.confidence <= 1.0
        assert c.rule in ("mass", "whole")
    assert next(c for c in result.crops if c.aspect == "16:9").rule == "whole"
    assert 0 <= result.salient_point.x < 1280 and 0 <= result.salient_point.y < 720
    assert type(result.salient_point.x) is int and type(result.salient_point.y) is int
    assert result.log_density.dtype == np.float32


def test_crop_default_aspects(cropper):
    result = cropper.crop(synthetic_image(300, 200, seed=2))
    assert [c.aspect for c in result.crops] == ["1:1", "16:9", "9:16"]


@pytest.mark.parametrize(("width", "height"), [(1, 1), (3, 500), (500, 3), (37, 23), (2000, 17)])
def test_crop_of_odd_image_sizes_stays_inside(cropper, width, height):
    result = cropper.crop(synthetic_image(width, height), aspects=["1:1", "16:9", "9:16", "5:1"])
    for c in result.crops:
        assert 0 <= c.x and 0 <= c.y and c.x + c.width <= width and c.y + c.height <= height
        ratio = parse_aspect(c.aspect).ratio
        assert (c.width, c.height) == expected_window(width, height, ratio, c.rule)


def test_crop_accepts_targets_and_labels_sizes(cropper):
    result = cropper.crop(synthetic_image(400, 300), aspects=[parse_size("600x600"), "16:9"])
    assert [c.aspect for c in result.crops] == ["600x600", "16:9"]
    assert (result.crops[0].width, result.crops[0].height) == (300, 300)


def test_crop_from_saliency_with_synthetic_map(cropper):
    # all the mass in the rightmost column of a 16×9 map of a 1600×900 image
    ld = np.full((9, 16), -50.0, np.float32)
    ld[:, 15] = 0.0
    result = cropper.crop_from_saliency(ld, 1600, 900, aspects=["1:1", "9:16"])
    square, tall = result.crops
    assert (square.x + square.width, square.y, square.width, square.height) == (1600, 0, 900, 900)
    assert (tall.x + tall.width, tall.width, tall.height) == (1600, 506, 900)
    assert result.salient_point.x >= 1500
    assert result.log_density is ld


def test_choose_crops_with_synthetic_map_top_left():
    ld = np.full((20, 10), -40.0)
    ld[0, 0] = 0.0
    point, crops = choose_crops(ld, 500, 1000, [parse_aspect("1:1"), parse_aspect("16:9")])
    assert (point.x, point.y) == (25, 25)
    assert [(c.x, c.y, c.width, c.height) for c in crops] == [(0, 0, 500, 500), (0, 0, 500, 281)]
    assert all(c.confidence == pytest.approx(1.0, abs=1e-4) for c in crops)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 1), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((10, 10, 3), np.uint16),
        np.zeros((0, 10, 3), np.uint8),
        np.zeros((10, 0, 3), np.uint8),
        np.zeros((2, 10, 10, 3), np.uint8),
        [[[0, 0, 0]]],
        None,
        "cat.jpg",
    ],
    ids=[
        "gray",
        "1ch",
        "bgra",
        "float",
        "uint16",
        "no-rows",
        "no-cols",
        "4d",
        "list",
        "none",
        "str",
    ],
)
def test_bad_input_array_is_a_cropsal_error(cropper, image):
    with pytest.raises(CropsalError, match="HxWx3 uint8"):
        cropper.saliency(image)
    with pytest.raises(CropsalError, match="HxWx3 uint8"):
        cropper.crop(image)


def test_bad_aspect_in_api_is_a_cropsal_error(cropper):
    with pytest.raises(CropsalError, match="'sixteen:nine'"):
        cropper.crop(synthetic_image(64, 64), aspects=["sixteen:nine"])


def test_policy_zoom_gives_smaller_windows_of_the_same_shape():
    from cropsal.policy import PolicyConfig

    c = Cropper(device="cpu", threads=2, policy=PolicyConfig(zoom=0.5))
    ld = np.full((18, 32), -30.0, np.float32)
    ld[9, 20] = 0.0
    result = c.crop_from_saliency(ld, 1600, 900, aspects=["1:1", "9:16"])
    for crop, (w, h) in zip(result.crops, [(900, 900), (506, 900)]):
        assert crop.rule == "zoom"
        assert crop.width < w and crop.height < h
        assert crop.width / crop.height == pytest.approx(w / h, rel=0.02)
        assert 0 <= crop.x and crop.x + crop.width <= 1600
        assert 0 <= crop.y and crop.y + crop.height <= 900
