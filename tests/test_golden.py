"""The windows chosen on the sample photos stay where they were when the golden file was made
(``tests/make_golden.py``), within 2 px, by the same rule."""

from __future__ import annotations

import json

import pytest
from make_golden import GOLDEN, choose

TOLERANCE_PX = 2


@pytest.fixture(scope="module")
def chosen(cropper):
    return choose(cropper)


def test_golden_file_covers_every_sample(chosen):
    assert sorted(json.loads(GOLDEN.read_text())) == sorted(chosen)


@pytest.mark.parametrize("name", sorted(json.loads(GOLDEN.read_text())))
def test_sample_windows_match_golden(chosen, name):
    for want, got in zip(json.loads(GOLDEN.read_text())[name], chosen[name], strict=True):
        assert got["rule"] == want["rule"], f"{name} {want['aspect']}"
        for key in ("x", "y", "width", "height"):
            assert abs(got[key] - want[key]) <= TOLERANCE_PX, (
                f"{name} {want['aspect']}: {key} {got[key]} != {want[key]} "
                "(after a model or policy change, rerun tests/make_golden.py and review the diff)"
            )
