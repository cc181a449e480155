"""Broken inputs (see ``corpus.write_broken_corpus``) get one clear line each, naming the file,
on stderr and in the record's "error"; the batch goes on; exit status 1; no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import corpus
import numpy as np
import pytest
from helpers import CLI_DEFAULTS, CliResult, read_image, run_cropsal, temp_files

from cropsal.decode import decode_file
from cropsal.errors import ImageError


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr and 'File "' not in stderr, stderr


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """The broken corpus (a folder walked) and unsupported formats given by name, in one run."""
    base = tmp_path_factory.mktemp("broken")
    root, named, out, json_path = base / "in", base / "named", base / "out", base / "rec.jsonl"
    files = {str(root / rel): b for rel, b in corpus.write_broken_corpus(root).items()}
    files |= {str(named / rel): b for rel, b in corpus.write_unsupported_named(named).items()}
    (named / "album.jpg").mkdir()  # a folder named like an image, given by name
    files[str(named / "album.jpg")] = corpus.Broken(("folder",), "directory named .jpg")
    args = [str(p) for p in files if Path(p).parent == named]
    result = run_cropsal("crop", root, *args, "-o", out, "--json", json_path, "--batch-size", "8")
    lines = json_path.read_text("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    return result, root, out, files, records


def test_broken_batch_fails_cleanly_and_the_rest_is_cropped(broken):
    result, root, out, files, records = broken
    assert result.rc == 1
    no_traceback(result.stderr)
    by_input = {r["input"]: r for r in records}
    assert len(by_input) == len(records), "one record per input"
    good = {str(root / "good.jpg"), str(root / "sub" / "good.png")}
    assert set(by_input) == set(files) | good
    for path in good:  # the good images are cropped though they sit among broken ones
        rec = by_input[path]
        assert rec["error"] is None and len(rec["crops"]) == 3, rec
        for crop in rec["crops"]:
            assert read_image(Path(crop["output"])).shape[:2] == (crop["height"], crop["width"])
    assert len(result.error_lines()) == len(files)
    assert temp_files(out) == [] and temp_files(root.parent) == []
    assert "cropsal: 2 cropped" in result.stderr


def test_stderr_holds_only_cropsal_lines(broken):
    """Nothing but cropsal's own one-line messages: no decoder chatter, no stack dumps."""
    result = broken[0]
    stray = [line for line in result.stderr.splitlines() if not line.startswith("cropsal: ")]
    assert stray == []


# the parametrisation needs the expectations before the fixture runs: the corpus is
# deterministic, so a throwaway copy gives the same names
with tempfile.TemporaryDirectory(prefix="cropsal-plan-") as _plan_root:
    _PLAN = {
        **{("in", r): b for r, b in corpus.write_broken_corpus(Path(_plan_root, "in")).items()},
        **{("named", r): b for r, b in corpus.write_unsupported_named(Path(_plan_root)).items()},
        ("named", "album.jpg"): corpus.Broken(("folder",), "directory named .jpg"),
    }


@pytest.mark.parametrize(
    "where", list(_PLAN), ids=[f"{b.kind}:{rel}" for (_, rel), b in _PLAN.items()]
)
def test_broken_input_gets_one_clear_line(broken, where):
    result, root, _, files, records = broken
    base = root if where[0] == "in" else root.parent / "named"
    path = str(base / where[1])
    expect = files[path]
    (rec,) = [r for r in records if r["input"] == path]
    error = rec["error"]
    assert isinstance(error, str) and error.strip() and "\n" not in error
    for word in expect.words:
        assert word in error.lower(), (word, error)
    assert rec["crops"] == [] and rec["width"] is None and rec["salient_point"] is None
    assert result.error_lines().count(f"cropsal: error: {path}: {error}") == 1


def test_plan_matches_the_corpus(broken):
    """The parametrisation above covers every broken input of the fixture's corpus."""
    _, root, _, files, _ = broken
    planned = {str((root if w == "in" else root.parent / "named") / rel) for w, rel in _PLAN}
    assert planned == set(files)


# --- corrupt (not truncated) files -------------------------------------------------------------


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory):
    """Files whose structure is complete but whose data the decoders reject."""
    root = tmp_path_factory.mktemp("corrupt")
    png = corpus.pil_bytes(corpus.textured(64, 48), "PNG")
    (root / "bad_crc.png").write_bytes(corpus.png_bad_crc(png))
    (root / "big_frame.gif").write_bytes(corpus.gif_frame_outside_screen())
    (root / "ok.png").write_bytes(png)
    return root, run_cropsal("crop", root, "--json", "-")


def test_corrupt_files_get_one_clear_line(corrupt):
    root, result = corrupt
    assert result.rc == 1
    no_traceback(result.stderr)
    records = {Path(r["input"]).name: r for r in result.records()}
    assert records["ok.png"]["error"] is None
    for name in ("bad_crc.png", "big_frame.gif"):
        error = records[name]["error"]
        assert error and "\n" not in error and records[name]["crops"] == []
        assert result.error_lines().count(f"cropsal: error: {root / name}: {error}") == 1


def test_corrupt_files_leave_no_decoder_chatter_on_stderr(corrupt):
    _, result = corrupt
    stray = [line for line in result.stderr.splitlines() if not line.startswith("cropsal: ")]
    assert stray == []


# --- decompression bombs -----------------------------------------------------------------------


def run_measured(*args: str | os.PathLike) -> tuple[CliResult, float, int]:
    """Run the CLI; return its result, wall time (s) and peak RSS (bytes) of that process."""
    argv = [sys.executable, "-m", "cropsal", *map(os.fspath, args), *CLI_DEFAULTS]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        killer = threading.Timer(120, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        result = CliResult(proc.returncode, out.read().decode(), err.read().decode())
    return result, wall, usage.ru_maxrss * 1024


BOMBS = {
    "png-100000x100000": lambda: corpus.png_bomb(100_000, 100_000),
    "jpeg-65500x65500": lambda: corpus.jpeg_with_size(
        corpus.pil_bytes(corpus.textured(64, 48), "JPEG"), 65_500, 65_500
    ),
    "gif-65535x65535": lambda: corpus.gif_bomb(65_535, 65_535),
}


def test_decompression_bombs_are_refused_quickly_without_allocating(tmp_path):
    src = tmp_path / "bombs"
    src.mkdir()
    for name, make in BOMBS.items():
        data = make()
        assert len(data) < 10_000
        path = src / f"{name}.{name.split('-')[0].replace('jpeg', 'jpg')}"
        path.write_bytes(data)
        started = time.perf_counter()
        with pytest.raises(ImageError, match="max-pixels"):
            decode_file(path)
        assert time.perf_counter() - started < 2.0, name

    tiny = tmp_path / "tiny" / "dot.png"
    tiny.parent.mkdir()
    tiny.write_bytes(corpus.pil_bytes(np.full((1, 1, 3), 9, np.uint8), "PNG"))
    base, base_wall, base_rss = run_measured("crop", tiny, "--json", "-")
    assert base.rc == 0, base.stderr
    result, wall, rss = run_measured("crop", src, "--json", "-")
    assert result.rc == 1
    no_traceback(result.stderr)
    assert len(result.error_lines()) == len(BOMBS)
    # the same as cropping a 1×1 image: no pixel buffer for billions of pixels
    assert rss < base_rss + 64 * 2**20, (rss / 2**20, base_rss / 2**20)
    assert wall < base_wall + 1.5, (wall, base_wall)


def test_iccp_profile_bomb_is_not_inflated(tmp_path):
    """A PNG whose iCCP chunk inflates to 64 MB (a 65 kB file): reading the header must not
    allocate it (ICC profiles are a few kB; libpng caps them too)."""
    png = corpus.pil_bytes(corpus.textured(32, 24), "PNG")
    deflate = zlib.compressobj(9)
    stream = b"".join(deflate.compress(bytes(2**20)) for _ in range(64)) + deflate.flush()
    chunk = corpus.png_chunk(b"iCCP", b"bomb\x00\x00" + stream)
    path = tmp_path / "iccp_bomb.png"
    path.write_bytes(corpus.png_with_chunk(png, chunk))
    assert path.stat().st_size < 100_000
    code = (
        "import resource, sys, pathlib\n"
        "from cropsal.decode import decode_bytes\n"
        "from cropsal.errors import CropsalError\n"
        "data = pathlib.Path(sys.argv[1]).read_bytes()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    decode_bytes(data)\nexcept CropsalError:\n    pass\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    grown_mb = int(proc.stdout.split()[-1])
    assert grown_mb < 32, f"decoding grew the process by {grown_mb} MB"


# --- unreadable files --------------------------------------------------------------------------


def test_unreadable_file(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    locked = src / "locked.jpg"
    locked.write_bytes(corpus.pil_bytes(corpus.textured(40, 30), "JPEG"))
    (src / "open.jpg").write_bytes(locked.read_bytes())
    locked.chmod(0)
    try:
        try:
            with open(locked, "rb"):
                readable = True
        except PermissionError:
            readable = False
        if readable:
            pytest.skip(
                "running as root (or with CAP_DAC_OVERRIDE): chmod 000 does not stop this "
                "process from reading the file, so an unreadable file cannot be made here"
            )
        result = run_cropsal("crop", src, "--json", "-")
        assert result.rc == 1
        no_traceback(result.stderr)
        records = {Path(r["input"]).name: r for r in result.records()}
        assert records["open.jpg"]["error"] is None
        error = records["locked.jpg"]["error"]
        assert "cannot read" in error and "permission denied" in error.lower()
        assert result.error_lines() == [f"cropsal: error: {locked}: {error}"]
    finally:
        locked.chmod(0o644)


def test_broken_corpus_fails_in_the_library_too(tmp_path):
    """The same refusals from the Python API (``decode_file``), without the CLI."""
    files = corpus.write_broken_corpus(tmp_path)
    for rel, expect in files.items():
        if rel.startswith("loop/"):  # a loop is a property of a folder walk
            continue
        with pytest.raises(ImageError) as info:
            decode_file(tmp_path / rel)
        for word in expect.words:
            assert word in str(info.value).lower(), (rel, str(info.value))
