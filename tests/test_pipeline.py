"""The pipeline's bookkeeping of files, without the network: the files an image is written to,
and the earlier record a skipped image keeps (``--skip-existing`` with ``--json FILE``)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from cropsal.geometry import parse_aspect, parse_size
from cropsal.pipeline import JobOptions, carried_over, planned_outputs
from cropsal.records import CropRecord, ImageRecord
from cropsal.write import OutputSpec

TARGETS = (parse_aspect("1:1"), parse_size("64x48"))
STEM = PurePosixPath("sub/cat")


def options(out: str = "out", heat: str | None = "heat") -> JobOptions:
    maps = OutputSpec(Path(heat), skip_existing=True) if heat else None
    return JobOptions(TARGETS, OutputSpec(Path(out), skip_existing=True), maps)


def earlier(out: str = "out", heat: str = "heat", error: str | None = None) -> ImageRecord:
    """What a run with :func:`options` wrote for ``in/sub/cat.jpg``."""
    crops = [
        CropRecord("1:1", 10, 0, 90, 90, f"{out}/sub/cat_1x1.jpg", "mass", 0.8),
        CropRecord("64x48", 0, 0, 120, 90, f"{out}/sub/cat_64x48.jpg", "whole", 1.0),
    ]
    return ImageRecord(
        "in/sub/cat.jpg",
        120,
        90,
        {"x": 50, "y": 40},
        crops,
        error,
        heatmap=f"{heat}/sub/cat_saliency.jpg",
        saliency_map=f"{heat}/sub/cat_saliency.npy",
    )


def test_planned_outputs_are_the_crops_then_the_heatmaps():
    opts = options()
    assert [(str(p), spec) for p, spec in planned_outputs(opts, STEM)] == [
        ("out/sub/cat_1x1.jpg", opts.output),
        ("out/sub/cat_64x48.jpg", opts.output),
        ("heat/sub/cat_saliency.jpg", opts.heatmaps),
        ("heat/sub/cat_saliency.npy", opts.heatmaps),
    ]
    assert planned_outputs(JobOptions(TARGETS, None), STEM) == []


def test_a_skipped_image_keeps_the_earlier_record_of_the_same_files():
    skipped = ImageRecord("in/sub/cat.jpg", skipped=True)
    previous = {skipped.input: [earlier(out="elsewhere"), earlier()]}
    kept = carried_over(skipped, STEM, options(), previous)
    assert kept.skipped and kept.crops == earlier().crops
    assert (kept.width, kept.height, kept.heatmap) == (120, 90, "heat/sub/cat_saliency.jpg")
    # without --heatmaps in this run, the record does not name the earlier run's heatmaps
    kept = carried_over(skipped, STEM, options(heat=None), previous)
    assert kept.crops == earlier().crops and kept.heatmap is kept.saliency_map is None


def test_an_earlier_record_of_other_files_or_of_a_failure_is_not_kept():
    skipped = ImageRecord("in/sub/cat.jpg", skipped=True)
    for previous in (
        {},
        {"in/other.jpg": [earlier()]},
        {skipped.input: [earlier(out="elsewhere")]},
        {skipped.input: [earlier(heat="elsewhere")]},
        {skipped.input: [earlier(error="cannot decode")]},
    ):
        assert carried_over(skipped, STEM, options(), previous) is skipped
    other_targets = JobOptions(TARGETS[:1], options().output, options().heatmaps)
    assert carried_over(skipped, STEM, other_targets, {skipped.input: [earlier()]}) is skipped
