"""Loading a model: its metadata read without ONNX Runtime, and the session made in the
background while the caller goes on."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from helpers import synthetic_image

from cropsal.errors import ModelError
from cropsal.model import SaliencyModel, resolve_model
from cropsal.onnx_metadata import read_metadata


@pytest.mark.parametrize("name", ["cropsal-v3", "cropsal-v1"])
def test_metadata_matches_onnx_runtime(name):
    path = resolve_model(name)
    expected = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    assert read_metadata(path) == expected
    assert read_metadata(path)["cropsal.name"] == name


def test_garbage_is_not_an_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx file")
    with pytest.raises(ValueError, match="not an ONNX model"):
        read_metadata(bad)


def test_a_truncated_model_is_refused(tmp_path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(resolve_model("cropsal-v3").read_bytes()[:5000])
    with pytest.raises(ValueError, match="past the end"):
        read_metadata(cut)
    with pytest.raises(ModelError, match="cut.onnx"):
        SaliencyModel(cut)


def test_background_loading_gives_the_same_maps():
    image = synthetic_image(320, 240, seed=4)
    now = SaliencyModel(device="cpu", threads=1)
    later = SaliencyModel(device="cpu", threads=1, background=True)
    assert later.preprocessing == now.preprocessing and later.name == now.name
    np.testing.assert_array_equal(later.predict([image])[0], now.predict([image])[0])


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="a CUDA build is installed"
)
def test_a_background_load_error_is_raised_on_first_use():
    model = SaliencyModel(device="cuda", background=True)  # returns before the failure
    with pytest.raises(ModelError, match="cuda"):
        model.predict([synthetic_image(64, 48, seed=1)])


@pytest.mark.parametrize(
    ("key", "value"), [("cropsal.multiple", "0"), ("cropsal.long_side", "-256")]
)
def test_unusable_preprocessing_metadata_is_a_model_error(tmp_path, key, value):
    import onnx

    model = onnx.load(str(resolve_model("cropsal-v3")))
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
    path = tmp_path / "odd.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match=f"odd.onnx: unusable pre-processing metadata.*{value}"):
        SaliencyModel(path)
