"""The output side under stress: an interrupted run leaves only whole files and whole JSON
lines, ``--skip-existing`` resumes, same-stem inputs keep distinct outputs, an unwritable output
location stops the run with one error."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import corpus
import cv2
import numpy as np
from helpers import CLI_DEFAULTS, read_image, run_cropsal, temp_files
from PIL import Image

SUFFIXES = ("1x1", "16x9", "9x16")


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr and 'File "' not in stderr, stderr


def write_many(root: Path, count: int, width: int = 640, height: int = 480) -> list[Path]:
    """``count`` distinct JPEGs (a shifted copy of one picture each), in two folders."""
    base = corpus.textured(width, height, seed=11)[..., ::-1]
    paths = []
    for k in range(count):
        path = root / ("odd" if k % 2 else "even") / f"img{k:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(corpus.cv2_bytes(np.roll(base, 9 * k, axis=1), ".jpg"))
        paths.append(path)
    return paths


def fully_decodes(path: Path) -> tuple[int, int]:
    """(width, height) of an image file that decodes to its last byte (Pillow is strict about
    truncation by default; OpenCV must read it too)."""
    with Image.open(path) as im:
        im.load()
        size = im.size
    assert cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR) is not None
    return size


def stem_of(output: Path, out: Path) -> str:
    rel = output.relative_to(out)
    return (rel.parent / rel.stem.rsplit("_", 1)[0]).as_posix()


def test_interrupted_run_leaves_whole_files_and_records(tmp_path):
    src, out, json_path = tmp_path / "in", tmp_path / "out", tmp_path / "records.jsonl"
    inputs = write_many(src, 60)
    argv = [sys.executable, "-m", "cropsal", "crop", str(src), "-o", str(out)]
    argv += ["--json", str(json_path), "--batch-size", "4", *CLI_DEFAULTS]
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = time.monotonic() + 60
        try:
            while not any(out.rglob("img*.jpg")) and proc.poll() is None:
                assert time.monotonic() < deadline, "no output appeared within 60 s"
                time.sleep(0.005)
            proc.send_signal(signal.SIGINT)  # mid-run: writing has started
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    stderr = (tmp_path / "stderr.txt").read_text("utf-8", "replace")
    assert rc == 130, (rc, stderr)
    assert "interrupted" in stderr
    no_traceback(stderr)
    assert temp_files(tmp_path) == [], "temporary files left behind"
    assert not any(p.name.startswith(".") for p in tmp_path.rglob("*")), "hidden leftovers"

    text = json_path.read_text("utf-8")
    assert text == "" or text.endswith("\n"), "the last JSON line is cut short"
    records = [json.loads(line) for line in text.splitlines()]  # every line parses
    by_stem = {}
    for rec in records:
        assert rec["error"] is None and len(rec["crops"]) == 3, rec
        rel = Path(rec["input"]).relative_to(src)
        by_stem[(rel.parent / rel.stem).as_posix()] = rec
    assert len(by_stem) == len(records), "an image recorded twice"
    assert 0 < len(records) < len(inputs), "the interrupt did not stop the run part-way"

    written = sorted(p for p in out.rglob("*") if p.is_file())
    for path in written:  # every output is complete
        fully_decodes(path)
    for stem in {stem_of(p, out) for p in written}:  # whatever has crops has its record
        assert stem in by_stem, f"crops of {stem} exist but no JSON record says so"
    for stem, rec in by_stem.items():  # … and every record's crops all exist
        for crop in rec["crops"]:
            assert fully_decodes(Path(crop["output"])) == (crop["width"], crop["height"])
    assert {stem_of(p, out) for p in written} == set(by_stem)

    # resuming finishes the job, redoing nothing that was recorded
    resumed = run_cropsal("crop", src, "-o", out, "--json", "-", "--skip-existing")
    assert resumed.rc == 0, resumed.stderr
    skipped = {
        (Path(r["input"]).relative_to(src).with_suffix("")).as_posix()
        for r in resumed.records()
        if r["skipped"]
    }
    assert skipped == set(by_stem)
    assert len(list(out.rglob("*.jpg"))) == 3 * len(inputs)


def test_skip_existing_processes_only_what_is_missing(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    paths = write_many(src, 4, 160, 120)
    first = run_cropsal("crop", src, "-o", out, "--json", "-")
    assert first.rc == 0, first.stderr
    kept = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*.jpg")}
    assert len(kept) == 12
    gone = paths[1]  # all crops of one input removed, one of another, one input added
    removed = [out / "odd" / f"{gone.stem}_{suffix}.jpg" for suffix in SUFFIXES]
    removed.append(out / "even" / f"{paths[2].stem}_16x9.jpg")
    for path in removed:
        path.unlink()
    added = src / "even" / "new.jpg"
    added.write_bytes(corpus.cv2_bytes(corpus.textured(90, 60, seed=5), ".jpg"))

    second = run_cropsal("crop", src, "-o", out, "--json", "-", "--skip-existing")
    assert second.rc == 0, second.stderr
    records = {Path(r["input"]).name: r for r in second.records()}
    assert {n for n, r in records.items() if r["skipped"]} == {paths[0].name, paths[3].name}
    for name in (gone.name, paths[2].name, added.name):
        assert records[name]["skipped"] is False and len(records[name]["crops"]) == 3
    for path, (data, mtime) in kept.items():  # what existed is left alone
        if path not in removed:
            assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime, path
    assert len(list(out.rglob("*.jpg"))) == 15
    assert temp_files(out) == []


def test_same_stem_inputs_keep_distinct_outputs(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    pictures = {
        "a.jpg": corpus.textured(120, 80, seed=1),
        "a.png": corpus.textured(120, 80, seed=2)[::-1],
        "sub/b.jpg": corpus.textured(80, 120, seed=3),
        "sub/B.PNG": corpus.textured(80, 120, seed=4)[:, ::-1],
    }
    for rel, rgb in pictures.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        fmt = "JPEG" if rel.lower().endswith(".jpg") else "PNG"
        (src / rel).write_bytes(corpus.pil_bytes(rgb, fmt, quality=95))
    result = run_cropsal("crop", src, "-o", out, "--aspect", "1:1", "--json", "-")
    assert result.rc == 0, result.stderr
    records = {Path(r["input"]).relative_to(src).as_posix(): r for r in result.records()}
    outputs = {rel: rec["crops"][0]["output"] for rel, rec in records.items()}
    assert len(set(outputs.values())) == 4
    assert len(list(out.rglob("*.jpg"))) == 4
    # case-insensitively distinct too (b and B on a case-insensitive file system)
    assert len({o.lower() for o in outputs.values()}) == 4
    for rel, rec in records.items():  # each output holds its own input's pixels
        crop = rec["crops"][0]
        x, y, w, h = crop["x"], crop["y"], crop["width"], crop["height"]
        got = read_image(Path(crop["output"]))[..., ::-1].astype(float)
        for other, rgb in pictures.items():
            if rgb.shape != pictures[rel].shape:
                continue
            diff = np.abs(got - rgb[y : y + h, x : x + w]).mean()
            assert (diff < 6) == (other == rel), (rel, other, diff)


def test_unwritable_output_location_stops_the_run(tmp_path):
    src = tmp_path / "in"
    write_many(src, 6, 96, 64)
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file where a folder should be\n")
    json_path = tmp_path / "records.jsonl"
    result = run_cropsal(
        "crop", src, "-o", blocker / "out", "--json", json_path, "--batch-size", "2"
    )
    assert result.rc == 1
    no_traceback(result.stderr)
    errors = result.error_lines()
    assert len(errors) == 1, result.stderr
    assert str(blocker) in errors[0] and "cannot write" in errors[0]
    assert "not a directory" in errors[0].lower()
    assert "cropped" not in result.stderr  # stopped: no summary of a finished run
    assert blocker.read_text() == "a regular file where a folder should be\n"
    assert temp_files(tmp_path) == []
    assert not json_path.exists()  # stopped before its first record: no JSON file is left
