"""Valid but awkward images (see ``corpus.write_valid_corpus``) must be cropped correctly: the
record's size and boxes are in displayed orientation, crops hold the right pixels, colours are
right (CMYK, YCCK, ICC), transparency is handled, animations give their first frame."""

from __future__ import annotations

import io
import json
from pathlib import Path, PurePosixPath

import corpus
import cv2
import numpy as np
import pytest
from helpers import expected_window, read_image, run_cropsal, temp_files
from PIL import Image, ImageCms

from cropsal.decode import decode_file
from cropsal.geometry import largest_window, parse_aspect

SUFFIXES = {"1:1": "1x1", "16:9": "16x9", "9:16": "9x16"}


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr and 'File "' not in stderr, stderr


def check_record(rec: dict, width: int, height: int) -> None:
    """A successful record of a ``width × height`` (displayed) image with the default targets."""
    assert rec["error"] is None, rec
    assert (rec["width"], rec["height"]) == (width, height), rec
    point = rec["salient_point"]
    assert 0 <= point["x"] < width and 0 <= point["y"] < height
    assert [c["aspect"] for c in rec["crops"]] == list(SUFFIXES)
    for c in rec["crops"]:
        assert c["x"] >= 0 and c["y"] >= 0, c
        assert c["x"] + c["width"] <= width and c["y"] + c["height"] <= height, c
        ratio = parse_aspect(c["aspect"]).ratio
        assert (c["width"], c["height"]) == expected_window(width, height, ratio, c["rule"]), c


def window(pixels: np.ndarray, crop: dict) -> np.ndarray:
    x, y, w, h = crop["x"], crop["y"], crop["width"], crop["height"]
    return pixels[y : y + h, x : x + w]


def rgb_of(path: Path) -> np.ndarray:
    """A written crop as RGB (or RGBA) array."""
    img = read_image(path)
    if img.ndim == 2:
        return np.dstack([img] * 3)
    return img[..., [2, 1, 0, 3]] if img.shape[2] == 4 else img[..., ::-1]


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """The valid corpus, cropped by one CLI run with the default targets."""
    base = tmp_path_factory.mktemp("valid")
    root, out, json_path = base / "in", base / "out", base / "records.jsonl"
    files = corpus.write_valid_corpus(root)
    result = run_cropsal("crop", root, "-o", out, "--json", json_path, "--batch-size", "8")
    lines = json_path.read_text("utf-8").splitlines()
    records = {Path(r["input"]).relative_to(root).as_posix(): r for r in map(json.loads, lines)}
    return result, root, out, files, records, len(lines)


def test_valid_corpus_run_succeeds(valid):
    result, root, out, files, records, n_lines = valid
    assert result.rc == 0, result.stderr
    assert result.error_lines() == []
    no_traceback(result.stderr)
    assert n_lines == len(files) and set(records) == set(files)
    assert temp_files(out) == [] and temp_files(root.parent) == []
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    expected = {
        (PurePosixPath(rel).parent / f"{PurePosixPath(rel).stem}_{s}.jpg").as_posix()
        for rel in files
        for s in SUFFIXES.values()
    }
    assert written == expected


KINDS = {
    "baseline-jpeg": "baseline.jpg",
    "progressive-jpeg": "progressive.jpg",
    "cmyk-jpeg": "cmyk.jpg",
    "ycck-jpeg": "ycck.jpg",
    "grey-jpeg": "grey.jpg",
    "grey-png": "grey_png.png",
    "png-8bit": "rgb8.png",
    "png-16bit": "rgb16.png",
    "png-palette": "palette.png",
    "png-palette-trns": "palette_trns.png",
    "png-rgba": "rgba.png",
    "gif-animated": "anim.gif",
    "webp-animated": "anim_webp.webp",
    "webp": "still.webp",
    "bmp": "pic.bmp",
    "tiff": "tiff_pic.tif",
    "icc-adobe": "icc_adobe.jpg",
    "icc-srgb": "icc_srgb.jpg",
    "1x1": "dot.jpg",
    "panorama-4000x40": "panorama.jpg",
    "banner-40x4000": "banner.jpg",
    "upper-case-JPG": "HOLIDAY.JPG",
    "upper-case-PNG": "SCAN.PNG",
    "space-non-ascii": "my photo ü 写真 №1.jpg",
    "nested-folders": "a/b c/ď/deep.png",
}


@pytest.mark.parametrize("rel", list(KINDS.values()), ids=list(KINDS))
def test_valid_image_is_cropped(valid, rel):
    """Record, output names and crop pixels for one kind of valid image; the decoded pixels
    (what the network sees) match the reference."""
    _, root, out, files, records, _ = valid
    expect, rec = files[rel], records[rel]
    check_record(rec, expect.width, expect.height)
    if expect.note:
        assert any(expect.note in n for n in rec["notes"]), rec["notes"]
    rel_path = PurePosixPath(rel)
    decoded = decode_file(root / rel)
    assert decoded.bgr.shape == (expect.height, expect.width, 3)
    if expect.rgb is not None:
        assert mean_diff(decoded.bgr[..., ::-1], expect.rgb) <= expect.tolerance
    if expect.rgba is not None:  # the network sees transparency over neutral grey
        assert mean_diff(decoded.bgr[..., ::-1], corpus.flatten(expect.rgba, 128)) <= 1.0
    if expect.rgba is not None:  # the colour and alpha behind the composite are kept
        assert np.array_equal(decoded.alpha, expect.rgba[..., 3])
        seen = expect.rgba[..., 3] > 0
        assert np.array_equal(decoded.colour[..., ::-1][seen], expect.rgba[..., :3][seen])
        source = corpus.flatten(expect.rgba, 255)  # JPEG crops are flattened on white
    else:
        source = decoded.bgr[..., ::-1]
    for crop in rec["crops"]:
        name = f"{rel_path.stem}_{SUFFIXES[crop['aspect']]}.jpg"
        assert crop["output"] == str(out / rel_path.parent / name)
        written = rgb_of(Path(crop["output"]))
        assert written.shape[:2] == (crop["height"], crop["width"])
        assert mean_diff(written, jpeg_round_trip(window(source, crop))) < 1.5, crop


def jpeg_round_trip(rgb: np.ndarray, quality: int = 90) -> np.ndarray:
    """What a correct crop of these pixels looks like once written as JPEG (same encoder)."""
    bgr = np.clip(np.round(rgb[..., ::-1]), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


@pytest.fixture(scope="module")
def whole_oriented(valid, tmp_path_factory):
    """The EXIF orientation images cropped to their whole displayed frame (``--size``)."""
    _, root, _, _, _, _ = valid
    out = tmp_path_factory.mktemp("whole") / "out"
    size = f"{corpus.ORIENT_W}x{corpus.ORIENT_H}"
    result = run_cropsal("crop", root, "--include", "orient/*", "--size", size, "-o", out)
    assert result.rc == 0, result.stderr
    return out, size


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(valid, whole_oriented, orientation):
    """Width/height and boxes are in displayed orientation; the crops display the right way
    round (red marker top-left, green top-right, gradients in place)."""
    _, root, _, _, records, _ = valid
    rel = f"orient/exif{orientation}.jpg"
    rec, shown = records[rel], corpus.marked(corpus.ORIENT_W, corpus.ORIENT_H)
    check_record(rec, corpus.ORIENT_W, corpus.ORIENT_H)
    # the test's own file: Pillow agrees it displays as intended
    with Image.open(root / rel) as im:
        assert im.getexif()[0x0112] == orientation
        from PIL import ImageOps

        assert mean_diff(np.asarray(ImageOps.exif_transpose(im)), shown) < 3

    rgb = decode_file(root / rel).bgr[..., ::-1]
    m = corpus.MARK
    assert mean_diff(rgb[2 : m - 2, 2 : m - 2], np.full((m - 4, m - 4, 3), corpus.RED)) < 12
    assert mean_diff(rgb[2 : m - 2, -m + 2 : -2], np.full((m - 4, m - 4, 3), corpus.GREEN)) < 12
    for crop in rec["crops"]:
        written = rgb_of(Path(crop["output"]))
        assert mean_diff(written, window(shown, crop)) < 5, crop
    # the whole frame as written: the markers are where they are displayed
    out, size = whole_oriented
    whole = rgb_of(out / "orient" / f"exif{orientation}_{size}.jpg")
    assert whole.shape[:2] == (corpus.ORIENT_H, corpus.ORIENT_W)
    corners = {"top-left": whole[2:8, 2:8], "top-right": whole[2:8, -8:-2]}
    corners |= {"bottom-left": whole[-8:-2, 2:8], "bottom-right": whole[-8:-2, -8:-2]}
    colour = {name: corner.reshape(-1, 3).mean(axis=0) for name, corner in corners.items()}
    assert np.abs(colour["top-left"] - corpus.RED).max() < 30, colour
    assert np.abs(colour["top-right"] - corpus.GREEN).max() < 30, colour
    for name in ("bottom-left", "bottom-right"):
        assert np.abs(colour[name] - corpus.RED).max() > 60, colour
        assert np.abs(colour[name] - corpus.GREEN).max() > 60, colour


def test_rgba_jpeg_crop_is_flattened_on_white(valid):
    """The 16:9 crop of the RGBA picture spans its width: fully transparent → white, half
    transparent red → pink, opaque blue → blue."""
    _, _, _, _, records, _ = valid
    (crop,) = [c for c in records["rgba.png"]["crops"] if c["aspect"] == "16:9"]
    assert (crop["x"], crop["width"]) == (0, 96)
    written = rgb_of(Path(crop["output"])).astype(float)
    y = crop["height"] // 2
    for x, colour in [(16, (255, 255, 255)), (48, (255, 127.5, 127.5)), (80, (0, 0, 255))]:
        patch = written[y - 4 : y + 4, x - 4 : x + 4].reshape(-1, 3).mean(axis=0)
        assert np.abs(patch - colour).max() <= 10, (x, patch, colour)


def test_cmyk_and_ycck_colours(valid):
    """Stripes saved as CMYK and as YCCK come out red, green, blue (not inverted or swapped)."""
    _, root, _, _, records, _ = valid
    ycck = (root / "ycck.jpg").read_bytes()
    assert ycck[ycck.index(b"Adobe") + 11] == 2, "the YCCK file must say transform 2"
    with Image.open(io.BytesIO(ycck)) as im:  # an independent decoder reads it as intended
        assert im.mode == "CMYK"
        assert mean_diff(np.asarray(im.convert("RGB")), corpus.stripes(90, 40)) < 3
    for name in ("cmyk.jpg", "ycck.jpg"):
        rgb = decode_file(root / name).bgr[..., ::-1]
        for x, colour in zip(corpus.stripe_centres(90), (corpus.RED, corpus.GREEN, corpus.BLUE)):
            assert np.abs(rgb[20, x].astype(int) - colour).max() <= 8, (name, x, rgb[20, x])
        for crop in records[name]["crops"]:  # the written crops are in colour too
            written = rgb_of(Path(crop["output"]))
            assert mean_diff(written, jpeg_round_trip(window(corpus.stripes(90, 40), crop))) < 3


def lcms_to_srgb(rgb: np.ndarray, icc: bytes) -> np.ndarray:
    """Reference conversion by littleCMS (Pillow's ImageCms) from ``icc`` to its sRGB."""
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    transform = ImageCms.buildTransform(src, ImageCms.createProfile("sRGB"), "RGB", "RGB")
    return np.asarray(ImageCms.applyTransform(Image.fromarray(rgb), transform))


def raw_rgb(path: Path) -> np.ndarray:
    """The file's pixels as stored, no colour management (OpenCV ignores ICC profiles)."""
    return cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def test_icc_adobe_like_profile_is_converted_to_srgb(valid, sample_images):
    _, root, _, _, records, _ = valid
    icc = corpus.adobe_like_profile()
    path = root / "icc_adobe.jpg"
    with Image.open(path) as im:
        assert im.info["icc_profile"] == icc
    stored = raw_rgb(path)
    got = decode_file(path).bgr[..., ::-1]
    ref = lcms_to_srgb(stored, icc)
    assert np.abs(got.astype(int) - ref).max() <= 3
    p = corpus.PATCH
    centre = {c: got[p // 2, p * k + p // 2].astype(int) for k, c in enumerate(corpus.ICC_COLOURS)}
    # grey stays grey (same white point; gamma 2.2 vs the sRGB curve moves it by a code or two)
    assert np.abs(centre[(128, 128, 128)] - 128).max() <= 3
    assert np.ptp(centre[(128, 128, 128)]) <= 1
    # moderately saturated Adobe RGB colours become more saturated sRGB numbers
    for colour in [(90, 170, 90), (60, 160, 170), (170, 70, 70), (170, 80, 160)]:
        assert np.ptp(centre[colour]) > np.ptp(colour) + 15, (colour, centre[colour])
        assert np.argmax(centre[colour]) == np.argmax(colour)
    assert centre[(90, 170, 90)][0] < 40  # Adobe's green is outside sRGB: red drops to ~0
    # primaries red and blue are shared by both spaces
    for colour in [(255, 0, 0), (0, 0, 255)]:
        assert np.abs(centre[colour] - colour).max() <= 3
    assert any("converted from ICC profile" in n for n in records["icc_adobe.jpg"]["notes"])

    # a real Adobe RGB (1998) profile, from a sample image, is converted the same way
    rocket = sample_images / "space" / "rocket.jpg"
    with Image.open(rocket) as im:
        real_icc = im.info["icc_profile"]
    got = decode_file(rocket).bgr[..., ::-1]
    ref = lcms_to_srgb(raw_rgb(rocket), real_icc)
    assert np.abs(got.astype(int) - ref).max() <= 3 and mean_diff(got, ref) < 0.6


def test_icc_srgb_profile_leaves_pixels_unchanged(valid, tmp_path):
    _, root, _, _, records, _ = valid
    path = root / "icc_srgb.jpg"
    assert np.array_equal(decode_file(path).bgr[..., ::-1], raw_rgb(path))
    assert not any("ICC" in n for n in records["icc_srgb.jpg"]["notes"])
    # littleCMS's own sRGB profile (v4, parametric curves) is recognised as sRGB too
    lcms_srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    other = tmp_path / "lcms_srgb.jpg"
    other.write_bytes(
        corpus.pil_bytes(corpus.icc_patches(), "JPEG", quality=100, icc_profile=lcms_srgb)
    )
    image = decode_file(other)
    assert np.array_equal(image.bgr[..., ::-1], raw_rgb(other)) and image.notes == []


def test_panorama_and_banner_boxes(valid):
    _, _, _, _, records, _ = valid
    for rel, (w, h) in {"panorama.jpg": (4000, 40), "banner.jpg": (40, 4000)}.items():
        crops = {c["aspect"]: c for c in records[rel]["crops"]}
        for aspect, crop in crops.items():
            size = largest_window(w, h, parse_aspect(aspect).ratio)
            assert (crop["width"], crop["height"]) == size
            assert read_image(Path(crop["output"])).shape[:2] == size[::-1]
        assert (crops["1:1"]["width"], crops["1:1"]["height"]) == (40, 40)


def test_transparency_kept_in_png_crops(valid, tmp_path):
    """With ``--format png`` crops keep the alpha channel and the unflattened colour."""
    _, root, _, files, _, _ = valid
    out = tmp_path / "out"
    names = ["rgba.png", "palette_trns.png"]
    include = [a for n in names for a in ("--include", n)]
    result = run_cropsal("crop", root, *include, "--format", "png", "-o", out, "--json", "-")
    assert result.rc == 0, result.stderr
    no_traceback(result.stderr)
    records = {Path(r["input"]).name: r for r in result.records()}
    assert set(records) == set(names)
    for name in names:
        rgba = files[name].rgba
        for crop in records[name]["crops"]:
            assert crop["output"].endswith(".png")
            written = rgb_of(Path(crop["output"]))
            assert written.shape == (crop["height"], crop["width"], 4)
            expected = window(rgba, crop)
            assert np.array_equal(written[..., 3], expected[..., 3]), crop
            seen = expected[..., 3] > 0
            assert np.array_equal(written[..., :3][seen], expected[..., :3][seen]), crop
    assert temp_files(out) == []


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_orientation_of_opaque_png_and_webp(tmp_path, fmt):
    """Control for the test below: without alpha, a rotated PNG/WebP displays upright."""
    check_rotated_file(tmp_path, fmt, alpha=False)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_orientation_of_png_and_webp_with_alpha(tmp_path, fmt):
    check_rotated_file(tmp_path, fmt, alpha=True)


def check_rotated_file(tmp_path: Path, fmt: str, alpha: bool) -> None:
    shown = corpus.marked(corpus.ORIENT_W, corpus.ORIENT_H)
    stored = np.ascontiguousarray(corpus.STORE[6](shown))
    if alpha:
        stored = np.dstack([stored, np.full(stored.shape[:2], 255, np.uint8)])
        stored[-1, -1, 3] = 0  # one transparent pixel, so the alpha channel is used
    exif = Image.Exif()
    exif[0x0112] = 6
    params = {"lossless": True} if fmt == "WEBP" else {}
    path = tmp_path / f"rotated.{fmt.lower()}"
    path.write_bytes(corpus.pil_bytes(stored, fmt, exif=exif.tobytes(), **params))
    decoded = decode_file(path)
    assert (decoded.alpha is not None) == alpha
    assert decoded.bgr.shape[:2] == (corpus.ORIENT_H, corpus.ORIENT_W)
    rgb = decoded.bgr[..., ::-1]
    assert mean_diff(rgb[2:8, 2:8], np.full((6, 6, 3), corpus.RED)) < 12
