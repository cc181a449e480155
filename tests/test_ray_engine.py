"""The Ray Data engine gives what the local engine gives: the same records (boxes, rules, errors),
the same output names and the same crop bytes, on a local two-CPU Ray instance.

Needs the ``ray`` extra; skipped, saying so, without it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path, PurePosixPath

import corpus
import pytest
from helpers import SAMPLE_IMAGES, run_cropsal, write_image

ray = pytest.importorskip("ray", reason="the Ray engine needs the 'ray' extra")
pytest.importorskip("ray.data", reason="the Ray engine needs ray[data]")

from cropsal.discover import discover
from cropsal.errors import CropsalError, OutputError
from cropsal.geometry import parse_aspect, parse_size
from cropsal.pipeline import CropJob, JobOptions
from cropsal.ray_engine import WorkerSettings, crop_dataset, paths_dataset, run_records
from cropsal.write import OutputSpec

TARGETS = (parse_aspect("1:1"), parse_aspect("16:9"), parse_size("120x90"))


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance with two CPUs; yields its address for the CLI's --address."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # nothing is reported anywhere
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=200 * 2**20,
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """sample_images, the broken corpus beside them, and two inputs sharing one output stem."""
    root = tmp_path_factory.mktemp("mixed") / "in"
    shutil.copytree(SAMPLE_IMAGES, root / "photos", ignore=shutil.ignore_patterns("*.md"))
    corpus.write_broken_corpus(root / "broken")
    write_image(root / "twins" / "a.jpg", 160, 90, seed=4)
    write_image(root / "twins" / "a.png", 90, 160, seed=5)
    return root


def lines_with(path: Path, old: str, new: str) -> list[dict]:
    return [json.loads(line.replace(old, new)) for line in path.read_text("utf-8").splitlines()]


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_cli_ray_engine_matches_the_local_engine(cluster, mixed, tmp_path):
    local_out, ray_out = tmp_path / "local", tmp_path / "ray"
    common = ["--aspect", "1:1", "--aspect", "9:16", "--size", "200x100"]
    local = run_cropsal("crop", mixed, "-o", local_out, "--json", tmp_path / "l.jsonl", *common)
    distributed = run_cropsal(
        "crop", mixed, "-o", ray_out, "--json", tmp_path / "r.jsonl", *common,
        "--engine", "ray", "--address", cluster, "--batch-size", "4",
    )  # fmt: skip
    assert local.rc == distributed.rc == 1, distributed.stderr  # the broken files fail
    expected = lines_with(tmp_path / "l.jsonl", str(local_out), str(ray_out))
    got = lines_with(tmp_path / "r.jsonl", str(ray_out), str(ray_out))
    assert [r["input"] for r in got] == [r["input"] for r in expected]  # input order kept
    assert got == expected
    assert sum(1 for r in got if r["error"]) >= 10 and sum(1 for r in got if not r["error"]) >= 11
    assert files_under(ray_out) == files_under(local_out)  # same names, same bytes
    assert (ray_out / "twins" / "a-jpg_1x1.jpg").is_file()  # collision resolved run-wide
    errors = lambda s: sorted(line for line in s.splitlines() if line.startswith("cropsal: error"))
    assert errors(distributed.stderr) == errors(local.stderr)


def test_python_entry_point_on_a_dataset_of_paths(cluster, mixed, tmp_path):
    paths = [mixed / "photos" / "coffee.jpg", mixed / "photos" / "space" / "rocket.jpg"]
    paths += [mixed / "broken" / "truncated.jpg", tmp_path / "missing.jpg"]
    options = JobOptions(TARGETS, OutputSpec(tmp_path / "out"), batch_size=2, jobs=1)
    records = crop_dataset(
        ray.data.from_items([{"path": str(p)} for p in paths]), WorkerSettings(options)
    ).take_all()
    by_input = {r["input"]: json.loads(r["record"]) for r in records}
    assert set(by_input) == {str(p) for p in paths}

    from cropsal.api import Cropper

    job = CropJob(Cropper(device="cpu", threads=1), JobOptions(TARGETS, None))
    local = {r.input: r for r in job.run(discover([str(p) for p in paths[:2]]))}
    for p in paths[:2]:
        rec = by_input[str(p)]
        assert rec["error"] is None
        boxes = [(c["x"], c["y"], c["width"], c["height"]) for c in rec["crops"]]
        assert boxes == [(c.x, c.y, c.width, c.height) for c in local[str(p)].crops]
        for c in rec["crops"]:  # outputs named after the file
            assert Path(c["output"]).is_file() and Path(c["output"]).name.startswith(p.stem)
    for p in paths[2:]:
        assert by_input[str(p)]["error"] and by_input[str(p)]["crops"] == []
    row = next(r for r in records if r["input"] == str(tmp_path / "missing.jpg"))
    assert "No such file" in row["error"]


def test_bare_paths_with_one_name_get_distinct_outputs(cluster, tmp_path):
    a, b = (
        write_image(tmp_path / "x" / "a.jpg", 90, 60),
        write_image(tmp_path / "y" / "a.jpg", 60, 90),
    )
    options = JobOptions(TARGETS[:1], OutputSpec(tmp_path / "out"), batch_size=1, jobs=1)
    ds = ray.data.from_items([{"path": str(a)}, {"path": str(b)}])
    records = [
        json.loads(r["record"]) for r in crop_dataset(ds, WorkerSettings(options)).take_all()
    ]
    outputs = {r["crops"][0]["output"] for r in records}
    assert len(outputs) == 2 and all(Path(o).is_file() for o in outputs)
    assert all(r["error"] is None for r in records)


def test_a_cluster_too_small_for_a_worker_is_an_error_not_a_hang(cluster, tmp_path):
    options = JobOptions(TARGETS[:1], None)
    ds = ray.data.from_items([{"path": str(tmp_path / "a.jpg")}])
    with pytest.raises(CropsalError, match="64 CPUs"):
        crop_dataset(ds, WorkerSettings(options, threads=64))
    with pytest.raises(CropsalError, match="GPU"):
        crop_dataset(ds, WorkerSettings(options, device="cuda"))


def test_an_unwritable_output_folder_stops_the_run_with_its_own_error(cluster, tmp_path):
    photo = write_image(tmp_path / "in" / "a.jpg", 90, 60)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    options = JobOptions(TARGETS[:1], OutputSpec(blocker / "out"), batch_size=1, jobs=1)
    with pytest.raises(OutputError, match="cannot write output"):
        list(run_records(discover([str(photo)]), WorkerSettings(options)))


def test_a_resumed_run_keeps_earlier_records_and_fails_only_a_blocked_image(cluster, tmp_path):
    for k, name in enumerate("abc"):
        write_image(tmp_path / "in" / f"{name}.jpg", 90, 60, seed=k)
    items, out = discover([str(tmp_path / "in")]), tmp_path / "out"
    options = JobOptions(TARGETS[:1], OutputSpec(out), batch_size=2, jobs=1)
    first = list(run_records(items, WorkerSettings(options)))
    assert all(r.error is None for r in first)
    (out / "b_1x1.jpg").unlink()
    (out / "c_1x1.jpg").unlink()
    (out / "c_1x1.jpg").mkdir()  # a folder where the crop must go: that image fails

    resume = replace(options, output=OutputSpec(out, skip_existing=True))
    previous = {r.input: [r] for r in first}
    a, b, c = run_records(items, WorkerSettings(resume), previous=previous)
    assert a == replace(first[0], skipped=True)  # the earlier record, carried over
    assert not b.skipped and b.crops == first[1].crops  # redone
    assert c.error == f"{out / 'c_1x1.jpg'}: cannot write output: Is a directory"


def test_paths_dataset_lists_uris_like_local_folders(cluster, mixed):
    pytest.importorskip("pyarrow")
    local = discover([str(mixed / "photos")])
    rows = paths_dataset([(mixed / "photos").as_uri()]).take_all()
    assert [r["rel"] for r in rows] == [i.rel.as_posix() for i in local]
    assert [r["stem"] for r in rows] == [(i.rel.parent / i.rel.stem).as_posix() for i in local]
    assert all(r["path"].startswith("file://") and not r["error"] for r in rows)


def test_uri_listing_escapes_odd_file_names(tmp_path):
    pytest.importorskip("pyarrow")
    names = ["with space.jpg", "pct%20.jpg", "ünï cødé.png", "hash#q?.jpg"]
    for k, name in enumerate(names):
        write_image(tmp_path / "odd" / name, 64, 48, seed=k)
    result = run_cropsal("crop", (tmp_path / "odd").as_uri(), "--json", tmp_path / "r.jsonl")
    assert result.rc == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert sorted(PurePosixPath(r["input"]).name for r in records) != []
    assert len(records) == len(names) and all(r["error"] is None for r in records)


def test_local_engine_reads_file_uris(mixed, tmp_path):
    pytest.importorskip("pyarrow")
    photo = mixed / "photos" / "chelsea.jpg"
    by_path = run_cropsal("crop", photo, "--json", tmp_path / "a.jsonl")
    by_uri = run_cropsal("crop", photo.as_uri(), "--json", tmp_path / "b.jsonl")
    missing = run_cropsal("crop", (mixed / "nope.jpg").as_uri(), "--json", tmp_path / "c.jsonl")
    assert by_path.rc == by_uri.rc == 0, by_uri.stderr
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.jsonl", "b.jsonl"))
    assert b["input"] == photo.as_uri() and a["crops"] == b["crops"]
    assert missing.rc == 1 and "no such file" in missing.stderr.lower()
    assert PurePosixPath(json.loads((tmp_path / "c.jsonl").read_text())["input"]).name == "nope.jpg"
