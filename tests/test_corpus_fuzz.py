"""Mutated image bytes (truncated, bit-flipped, overwritten, with garbage inserted or bytes
deleted) either decode and crop, or fail with a :class:`CropsalError`: never another exception,
never slowly. Plus the specific inputs that broke that promise."""

from __future__ import annotations

import time
from datetime import timedelta

import corpus
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from cropsal.decode import decode_bytes
from cropsal.errors import CropsalError

SAMPLES = ["chelsea.jpg", "text.png", "space/rocket.jpg"]  # rocket.jpg carries Adobe RGB ICC


def generated_seeds() -> dict[str, bytes]:
    """Small files exercising the probe's and decoder's less common paths."""
    pic = corpus.textured(64, 48, seed=3)
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "baseline.jpg": corpus.pil_bytes(pic, "JPEG", quality=80),
        "progressive.jpg": corpus.pil_bytes(pic, "JPEG", quality=80, progressive=True),
        "exif6.jpg": corpus.pil_bytes(pic, "JPEG", exif=exif.tobytes()),
        "cmyk.jpg": corpus.cmyk_jpeg(pic),
        "icc.jpg": corpus.pil_bytes(pic, "JPEG", icc_profile=corpus.adobe_like_profile()),
        "grey.jpg": corpus.pil_bytes(pic[..., 1], "JPEG"),
        "rgb.png": corpus.pil_bytes(pic, "PNG"),
        "rgba.png": corpus.pil_bytes(corpus.rgba_image(48, 32), "PNG"),
        "palette_trns.png": corpus.pil_bytes(
            Image.fromarray(pic).quantize(16), "PNG", transparency=0
        ),
        "deep.png": corpus.cv2_bytes(pic.astype(np.uint16) * 257, ".png"),
        "icc.png": corpus.pil_bytes(pic, "PNG", icc_profile=corpus.adobe_like_profile()),
    }


@pytest.fixture(scope="module")
def seeds(sample_images) -> dict[str, bytes]:
    found = {name: (sample_images / name).read_bytes() for name in SAMPLES}
    return found | generated_seeds()


SEED_NAMES = SAMPLES + list(generated_seeds())
# in-place edits are listed twice: they keep the structure and reach the decoders more often
MUTATIONS = ("flip", "flip", "overwrite", "overwrite", "truncate", "insert", "delete")


@st.composite
def mutations(draw) -> tuple[str, list[tuple]]:
    """A seed file's name and 1–3 edits, each with positions as fractions of the length (so
    that they shrink well and fit whatever length the previous edits left)."""
    name = draw(st.sampled_from(SEED_NAMES))
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(MUTATIONS))
        at = draw(st.floats(0.0, 1.0, allow_nan=False))
        if kind == "flip":
            edits.append((kind, at, draw(st.integers(1, 255))))
        elif kind in ("overwrite", "insert"):
            edits.append((kind, at, draw(st.binary(min_size=1, max_size=64))))
        elif kind == "delete":
            edits.append((kind, at, draw(st.integers(1, 64))))
        else:
            edits.append((kind, at, None))
    return name, edits


KEEP = 8  # the signature is left alone (a wrong signature is tested elsewhere)


def apply(data: bytes, edits: list[tuple]) -> bytes:
    buf = bytearray(data)
    for kind, at, arg in edits:
        pos = min(KEEP + int(at * (len(buf) - KEEP)), max(0, len(buf) - 1))
        if kind == "truncate":
            del buf[pos:]
        elif kind == "flip" and buf:
            buf[pos] ^= arg
        elif kind == "overwrite":
            buf[pos : pos + len(arg)] = arg
        elif kind == "insert":
            buf[pos:pos] = arg
        elif kind == "delete":
            del buf[pos : pos + arg]
    return bytes(buf)


@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=mutations())
def test_mutated_bytes_crop_or_fail_cleanly(seeds, cropper, case):
    name, edits = case
    data = apply(seeds[name], edits)
    started = time.perf_counter()
    try:
        image = decode_bytes(data)
    except CropsalError as e:
        assert str(e).strip() and "\n" not in str(e)
        event(f"refused: {str(e).split(' (')[0][:40]}")
        return
    height, width = image.bgr.shape[:2]
    assert image.bgr.dtype == np.uint8 and image.bgr.shape[2] == 3
    if image.alpha is not None:
        assert image.alpha.shape == (height, width)
    try:
        result = cropper.crop(image.bgr)
    except CropsalError:
        event("crop refused")
        return
    event("cropped")
    assert (result.width, result.height) == (width, height)
    assert len(result.crops) == 3
    for c in result.crops:
        assert 0 <= c.x and 0 <= c.y and c.width >= 1 and c.height >= 1
        assert c.x + c.width <= width and c.y + c.height <= height
    assert 0 <= result.salient_point.x < width and 0 <= result.salient_point.y < height
    assert time.perf_counter() - started < 2.0


def test_unmutated_seeds_all_crop(seeds, cropper):
    """The property starts from files that work (else it tests nothing)."""
    for name, data in seeds.items():
        image = decode_bytes(data)
        assert cropper.crop(image.bgr).crops, name


# --- inputs found to break the clean-error promise ---------------------------------------------


def decode_or_clean_error(data: bytes) -> None:
    try:
        decode_bytes(data)
    except CropsalError:
        pass


def test_iccp_chunk_without_name_terminator():
    png = corpus.pil_bytes(corpus.textured(32, 24), "PNG")
    data = corpus.png_with_chunk(png, corpus.png_chunk(b"iCCP", b"profile-name-with-no-end"))
    decode_or_clean_error(data)


def test_icc_profile_with_negative_gamma():
    profile = corpus.icc_profile(
        "negative gamma", corpus.colorants_d50(corpus.ADOBE_PRIMARIES), corpus.para_tag(0, [-1.0])
    )
    data = corpus.pil_bytes(corpus.icc_patches(), "JPEG", icc_profile=profile)
    with np.errstate(all="ignore"):
        decode_or_clean_error(data)
