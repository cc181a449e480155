"""``cropsal bench`` runs the real pipeline and reports what it promises (no timing asserted:
speed is measured by the benchmark, not by tests)."""

from __future__ import annotations

import json

from helpers import SAMPLE_IMAGES, run_cropsal


def test_bench_reports_throughput_stages_memory_and_the_decode_floor(tmp_path):
    result = run_cropsal(
        "bench", SAMPLE_IMAGES, "--rounds", "1", "--jobs", "2", "--device", "cpu",
        "--size", "200x200", "--json", tmp_path / "bench.json", "-q",
    )  # fmt: skip
    assert result.rc == 0, result.stderr
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["images"] == 9 and data["images_per_s"] > 0
    assert set(data["stage_ms"]) == {"decode", "preprocess", "network", "crop", "encode", "write"}
    assert data["peak_rss_mb"] > 0 and data["decode_floor_per_s"] > 0
    assert sum(data["decode_scales"].values()) == 9  # each image, at the scale it needed
    assert data["machine"]["model"].startswith("cropsal-")
