"""Shared fixtures for cropsal's tests (helpers live in ``helpers.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# the test modules import ``helpers`` from this folder, whatever pytest's import mode
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from helpers import SAMPLE_IMAGES, write_image


@pytest.fixture(scope="session")
def sample_images() -> Path:
    assert SAMPLE_IMAGES.is_dir(), f"{SAMPLE_IMAGES} is missing"
    return SAMPLE_IMAGES


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """A small folder of generated images: two at the top, one in a subfolder."""
    root = tmp_path / "images"
    write_image(root / "wide.jpg", 160, 90, seed=1)
    write_image(root / "tall.png", 72, 128, seed=2)
    write_image(root / "sub" / "square.jpg", 100, 100, seed=3)
    return root


@pytest.fixture(scope="session")
def cropper():
    from cropsal.api import Cropper

    return Cropper(device="cpu", threads=2)
