"""JPEGs decoded at 1/2, 1/4 or 1/8 scale (when every output allows it) give the same boxes as
a full-resolution decode (the network always sees the same decode), and outputs of the exact
size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cropsal.decode import decode_bytes, decode_file

SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"


@pytest.fixture(scope="module")
def big_jpegs(tmp_path_factory):
    """The sample photos upscaled to 2400 px, one of them also stored sideways with EXIF 6."""
    from PIL import Image

    root = tmp_path_factory.mktemp("big")
    names = [p.relative_to(SAMPLES) for p in sorted(SAMPLES.rglob("*.jpg"))]
    assert len(names) >= 6
    for name in names:
        img = cv2.imread(str(SAMPLES / name))
        big = cv2.resize(img, (2400, round(2400 * img.shape[0] / img.shape[1])))
        cv2.imwrite(str(root / Path(name).name), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    turned = Image.open(root / "rocket.jpg")
    exif = turned.getexif()
    exif[0x0112] = 6
    turned.save(root / "rocket_exif6.jpg", exif=exif.tobytes(), quality=92)
    return root


def boxes(root: Path, *targets: str) -> dict[str, list[tuple]]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cropsal",
            "crop",
            str(root),
            *targets,
            "--json",
            "-",
            "-q",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    records = [json.loads(line) for line in out.splitlines()]
    return {
        Path(r["input"]).name: (
            r["width"],
            r["height"],
            [(c["x"], c["y"], c["width"], c["height"]) for c in r["crops"]],
        )
        for r in records
    }


def test_reduced_decode_is_used_and_keeps_the_displayed_size(big_jpegs):
    full = decode_file(big_jpegs / "rocket_exif6.jpg")
    quarter = decode_file(big_jpegs / "rocket_exif6.jpg", shrink=4.5)
    assert quarter.bgr.shape[0] * 4 == pytest.approx(full.bgr.shape[0], abs=4)
    assert (quarter.width, quarter.height) == (full.width, full.height) == (1601, 2400)


def test_one_decode_serves_outputs_that_need_fewer_pixels_than_the_network(big_jpegs):
    data = (big_jpegs / "rocket.jpg").read_bytes()
    coarse = decode_bytes(data, shrink=8.0, network_shrink=4.0)  # thumbnails: 1/8 would do
    assert coarse.network is coarse.bgr and coarse.bgr.shape[1] == 600  # one decode, at 1/4
    fine = decode_bytes(data, shrink=2.0, network_shrink=4.0)  # crops need 1/2: two decodes
    assert fine.bgr.shape[1] == 1200 and fine.network.shape[1] == 600
    assert np.array_equal(fine.network, coarse.network)  # the network sees the same pixels


def test_boxes_match_a_full_resolution_decode(big_jpegs, tmp_path):
    sized = boxes(big_jpegs, "--size", "300x300", "--size", "480x270", "-o", str(tmp_path / "s"))
    # crops of an aspect (no --size) are cut from a full-resolution decode
    full = boxes(big_jpegs, "--aspect", "1:1", "--aspect", "16:9", "-o", str(tmp_path / "f"))
    json_only = boxes(big_jpegs, "--aspect", "1:1", "--aspect", "16:9")  # network scale only
    assert sized.keys() == full.keys() == json_only.keys()
    for name, (w, h, got) in sized.items():
        fw, fh, want = full[name]
        assert (w, h) == (fw, fh)
        assert json_only[name] == full[name]
        for a, b in zip(got, want, strict=True):
            assert np.abs(np.array(a) - np.array(b)).max() <= 1, (name, a, b)
    for path in (tmp_path / "s").iterdir():
        img = cv2.imread(str(path))
        assert img.shape[:2] in ((300, 300), (270, 480)), path.name
