"""The ``cropsal`` command end to end, in subprocesses (exit codes, files, JSON, stderr)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    expected_window,
    image_files,
    logsumexp,
    read_image,
    run_cropsal,
    synthetic_image,
    temp_files,
    write_image,
)

from cropsal import __version__
from cropsal.geometry import largest_window, parse_aspect

DEFAULT_SUFFIXES = ("1x1", "16x9", "9x16")
RECORD_FIELDS = {"input", "width", "height", "salient_point", "crops", "error"}
CROP_FIELDS = {"aspect", "x", "y", "width", "height", "output"}


def relative_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def assert_clean_stderr(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert 'File "' not in stderr


def assert_crop_record(crop: dict, width: int, height: int) -> None:
    assert CROP_FIELDS <= set(crop)
    for key in ("x", "y", "width", "height"):
        assert type(crop[key]) is int, crop
    assert 0 <= crop["x"] and 0 <= crop["y"]
    assert crop["x"] + crop["width"] <= width and crop["y"] + crop["height"] <= height
    if "x" in crop["aspect"]:  # an exact --size: the window has the size's aspect
        w, h = (int(v) for v in crop["aspect"].split("x"))
        ratio = w / h
    else:
        ratio = parse_aspect(crop["aspect"]).ratio
    if crop["rule"] == "zoom":  # --zoom: a smaller window of (about) the same shape
        w, h = largest_window(width, height, ratio)
        assert crop["width"] <= w and crop["height"] <= h
        assert abs(crop["width"] - crop["height"] * ratio) <= 1 + ratio
    else:
        shape = expected_window(width, height, ratio, crop["rule"])
        assert (crop["width"], crop["height"]) == shape


def assert_ok_record(rec: dict) -> None:
    assert RECORD_FIELDS <= set(rec)
    assert rec["error"] is None
    assert type(rec["width"]) is int and type(rec["height"]) is int
    point = rec["salient_point"]
    assert set(point) == {"x", "y"}
    assert 0 <= point["x"] < rec["width"] and 0 <= point["y"] < rec["height"]
    for crop in rec["crops"]:
        assert_crop_record(crop, rec["width"], rec["height"])


# --- the shipped sample images -----------------------------------------------------------------


def walk_order(root: Path) -> list[Path]:
    """Each folder's images in name order, then its subfolders (the documented walk)."""
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in (".jpg", ".png"))
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files += walk_order(sub)
    return files


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, sample_images):
    base = tmp_path_factory.mktemp("sample")
    out, json_path = base / "out", base / "records.jsonl"
    result = run_cropsal("crop", sample_images, "-o", out, "--json", json_path, "--batch-size", "4")
    lines = json_path.read_text(encoding="utf-8").splitlines()
    return result, out, json_path, [json.loads(line) for line in lines]


def test_version():
    result = run_cropsal("--version")
    assert result.rc == 0
    assert result.stdout.strip() == f"cropsal, version {__version__}"


def test_help_lists_the_crop_options():
    result = run_cropsal("crop", "--help", defaults=False)
    assert result.rc == 0
    for option in ("--aspect", "--size", "--json", "--heatmaps", "--skip-existing", "-0"):
        assert option in result.stdout


def test_sample_run_succeeds(sample_run):
    result, _, _, _ = sample_run
    assert result.rc == 0, result.stderr
    assert result.error_lines() == []
    assert_clean_stderr(result.stderr)
    assert result.stdout == ""


def test_sample_output_tree_mirrors_input(sample_run, sample_images):
    _, out, _, _ = sample_run
    expected = {
        (p.relative_to(sample_images).parent / f"{p.stem}_{s}.jpg").as_posix()
        for p in image_files(sample_images)
        for s in DEFAULT_SUFFIXES
    }
    assert relative_files(out) == expected
    assert (out / "space" / "astronaut_16x9.jpg").is_file()
    assert (out / "chelsea_9x16.jpg").is_file()
    assert temp_files(out) == []


def test_sample_records(sample_run, sample_images):
    _, out, json_path, records = sample_run
    assert [r["input"] for r in records] == [str(p) for p in walk_order(sample_images)]
    for rec in records:
        assert_ok_record(rec)
        src = read_image(Path(rec["input"]))
        assert (rec["width"], rec["height"]) == (src.shape[1], src.shape[0])
        assert [c["aspect"] for c in rec["crops"]] == ["1:1", "16:9", "9:16"]
        rel = Path(rec["input"]).relative_to(sample_images)
        for crop, suffix in zip(rec["crops"], DEFAULT_SUFFIXES):
            assert crop["output"] == str(out / rel.parent / f"{rel.stem}_{suffix}.jpg")
            written = read_image(Path(crop["output"]))
            assert written.shape[:2] == (crop["height"], crop["width"])
    assert temp_files(json_path.parent) == []


def test_sample_crops_hold_the_pixels_of_their_window(sample_run):
    _, _, _, records = sample_run
    rec = next(r for r in records if r["input"].endswith("chelsea.jpg"))
    src = read_image(Path(rec["input"])).astype(np.float64)
    for crop in rec["crops"]:
        written = read_image(Path(crop["output"])).astype(np.float64)
        x, y, w, h = crop["x"], crop["y"], crop["width"], crop["height"]
        assert np.abs(written - src[y : y + h, x : x + w]).mean() < 6  # JPEG round trip


# --- targets and formats -----------------------------------------------------------------------


def test_size_gives_exact_output_sizes_also_when_upscaling(tmp_path):
    src = tmp_path / "in"
    write_image(src / "small.jpg", 120, 80, seed=1)
    write_image(src / "thin.png", 50, 200, seed=2)
    write_image(src / "big.jpg", 900, 700, seed=3)
    out = tmp_path / "out"
    result = run_cropsal(
        "crop", src, "-o", out, "--size", "600x600", "--size", "300x100", "--json", "-"
    )
    assert result.rc == 0, result.stderr
    assert relative_files(out) == {
        f"{s}_{t}.jpg" for s in ("small", "thin", "big") for t in ("600x600", "300x100")
    }
    for p in out.iterdir():
        size = p.stem.rsplit("_", 1)[1]
        w, h = (int(v) for v in size.split("x"))
        assert read_image(p).shape[:2] == (h, w), p
    for rec in result.records():
        assert_ok_record(rec)
        assert [c["aspect"] for c in rec["crops"]] == ["600x600", "300x100"]


def test_repeated_aspect(tmp_path, image_dir):
    out = tmp_path / "out"
    result = run_cropsal(
        "crop",
        image_dir,
        "-o",
        out,
        "--aspect",
        "4:3",
        "--aspect",
        "1:1",
        "--aspect",
        "4:3",
        "--aspect",
        "21:9",
        "--json",
        "-",
    )
    assert result.rc == 0, result.stderr
    assert relative_files(out) == {
        f"{stem}_{s}.jpg" for stem in ("wide", "tall", "sub/square") for s in ("4x3", "1x1", "21x9")
    }
    for rec in result.records():
        assert_ok_record(rec)
        assert [c["aspect"] for c in rec["crops"]] == ["4:3", "1:1", "21:9"]


@pytest.mark.parametrize(("fmt", "magic"), [("png", b"\x89PNG\r\n\x1a\n"), ("webp", b"RIFF")])
def test_output_format(tmp_path, image_dir, fmt, magic):
    out = tmp_path / "out"
    result = run_cropsal(
        "crop", image_dir, "-o", out, "--format", fmt, "--aspect", "1:1", "--json", "-"
    )
    assert result.rc == 0, result.stderr
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert [p.relative_to(out).as_posix() for p in files] == sorted(
        f"{s}_1x1.{fmt}" for s in ("wide", "tall", "sub/square")
    )
    for p in files:
        assert p.read_bytes().startswith(magic)
        assert read_image(p).ndim == 3
    for rec in result.records():
        assert rec["crops"][0]["output"].endswith(f"_1x1.{fmt}")


# --- JSON ------------------------------------------------------------------------------------


def test_json_to_stdout_is_only_json(tmp_path, image_dir):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = run_cropsal("crop", image_dir, "--json", "-", "-v", cwd=cwd)
    assert result.rc == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert [Path(r["input"]).name for r in records] == ["tall.png", "wide.jpg", "square.jpg"]
    for rec in records:
        assert_ok_record(rec)
        assert rec["skipped"] is False
        assert [c["output"] for c in rec["crops"]] == [None, None, None]
    assert list(cwd.iterdir()) == []  # JSON only: no image written anywhere


def test_json_file_and_parent_folders_are_created(tmp_path, image_dir):
    json_path = tmp_path / "a" / "b" / "records.jsonl"
    result = run_cropsal("crop", image_dir, "--json", json_path, "--aspect", "1:1")
    assert result.rc == 0, result.stderr
    assert result.stdout == ""
    records = [json.loads(line) for line in json_path.read_text("utf-8").splitlines()]
    assert len(records) == 3
    assert os.listdir(json_path.parent) == ["records.jsonl"]


# --- broken inputs -----------------------------------------------------------------------------


@pytest.fixture
def broken_dir(tmp_path):
    root = tmp_path / "mixed"
    write_image(root / "good.jpg", 90, 60, seed=1)
    write_image(root / "fine.png", 60, 90, seed=2)
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("this is not a picture\n")
    data = (root / "good.jpg").read_bytes()
    (root / "cut.jpg").write_bytes(data[: len(data) // 3])
    (root / "folder.jpg").mkdir()
    return root


def test_broken_inputs_exit_1_and_the_rest_is_cropped(tmp_path, broken_dir):
    out = tmp_path / "out"
    missing = tmp_path / "missing.jpg"
    result = run_cropsal("crop", broken_dir, missing, "-o", out, "--aspect", "1:1", "--json", "-")
    assert result.rc == 1
    assert_clean_stderr(result.stderr)
    assert relative_files(out) == {"good_1x1.jpg", "fine_1x1.jpg"}
    assert temp_files(out) == []

    bad = {broken_dir / n for n in ("empty.jpg", "text.png", "cut.jpg", "folder.jpg")} | {missing}
    errors = result.error_lines()
    assert len(errors) == len(bad)
    for path in bad:
        naming = [line for line in errors if f" {path}: " in line]
        assert len(naming) == 1, (path, errors)

    records = {r["input"]: r for r in result.records()}  # stdout is still only JSON
    assert set(records) == {str(p) for p in bad} | {
        str(broken_dir / "good.jpg"),
        str(broken_dir / "fine.png"),
    }
    for path in bad:
        rec = records[str(path)]
        assert isinstance(rec["error"], str) and rec["error"].strip()
        assert "\n" not in rec["error"]
        assert rec["crops"] == []
    assert "empty" in records[str(broken_dir / "empty.jpg")]["error"]
    assert "not an image" in records[str(broken_dir / "text.png")]["error"]
    assert "no such file" in records[str(missing)]["error"]
    assert "folder" in records[str(broken_dir / "folder.jpg")]["error"]
    for name in ("good.jpg", "fine.png"):
        assert_ok_record(records[str(broken_dir / name)])


def test_only_missing_input_exit_1(tmp_path):
    result = run_cropsal("crop", tmp_path / "nope.jpg", "--json", "-")
    assert result.rc == 1
    assert_clean_stderr(result.stderr)
    (rec,) = result.records()
    assert rec["error"] == "no such file or folder" and rec["crops"] == []


def test_empty_folder_is_not_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cropsal("crop", tmp_path / "empty", "--json", "-")
    assert result.rc == 0
    assert result.stdout == ""
    assert "no images found" in result.stderr


@pytest.mark.parametrize("model", ["{tmp}/none.onnx", "nosuch"], ids=["path", "name"])
def test_missing_model_is_one_line_exit_2(tmp_path, image_dir, model):
    model = model.format(tmp=tmp_path)
    result = run_cropsal("crop", image_dir, "--json", "-", "--model", model)
    assert result.rc == 2
    assert_clean_stderr(result.stderr)
    (line,) = result.error_lines()
    assert model in line and "not found" in line
    assert result.stdout == ""


@pytest.mark.skipif(
    "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
    reason="a CUDA build of ONNX Runtime is installed",
)
def test_a_model_that_cannot_load_leaves_nothing_behind(tmp_path, image_dir):
    # the session loads in the background while images decode: its error still comes before
    # any output folder or JSON file is made
    out, records = tmp_path / "out", tmp_path / "records.jsonl"
    result = run_cropsal(
        "crop", image_dir, "-o", out, "--json", records, "--device", "cuda", defaults=False
    )
    assert result.rc == 2
    assert_clean_stderr(result.stderr)
    (line,) = result.error_lines()
    assert "cuda" in line
    assert not out.exists() and not records.exists()
    assert list(tmp_path.iterdir()) == [image_dir]


def test_engine_ray_without_ray_says_how_to_install_it(tmp_path, image_dir):
    shim = tmp_path / "no-ray" / "ray"  # an importable 'ray' that fails as a missing one does
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'ray'\")\n")
    path = os.pathsep.join(p for p in (str(shim.parent), os.environ.get("PYTHONPATH")) if p)
    result = run_cropsal(
        "crop", image_dir, "--json", "-", "--engine", "ray", env={"PYTHONPATH": path}
    )
    assert result.rc == 2, result.stderr
    assert_clean_stderr(result.stderr)
    (line,) = result.error_lines()
    assert "pip install 'cropsal[ray]'" in line and "ModuleNotFoundError" not in line
    assert result.stdout == ""


def test_max_pixels_refuses_large_images(image_dir):
    result = run_cropsal("crop", image_dir, "--json", "-", "--max-pixels", "9500")
    assert result.rc == 1
    assert_clean_stderr(result.stderr)
    by_name = {Path(r["input"]).name: r for r in result.records()}
    assert by_name["tall.png"]["error"] is None  # 72 × 128 = 9216 pixels
    for name in ("wide.jpg", "square.jpg"):
        assert "max-pixels" in by_name[name]["error"] and by_name[name]["crops"] == []
    assert len(result.error_lines()) == 2


@pytest.mark.parametrize("flags", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_a_blocked_output_path_fails_only_its_image(tmp_path, image_dir, flags):
    out = tmp_path / "out"
    (out / "wide_1x1.jpg").mkdir(parents=True)  # a folder where a crop must go
    (out / "sub").write_bytes(b"")  # a file where the crops of sub/ must go
    result = run_cropsal(
        "crop", image_dir, "-o", out, "--aspect", "1:1", "--json", "-", "--batch-size", "1", *flags
    )
    assert result.rc == 1
    assert_clean_stderr(result.stderr)
    by_name = {Path(r["input"]).name: r for r in result.records()}
    assert (
        by_name["wide.jpg"]["error"]
        == f"{out / 'wide_1x1.jpg'}: cannot write output: Is a directory"
    )
    assert by_name["square.jpg"]["error"] == f"{out / 'sub'}: cannot write output: Not a directory"
    assert by_name["wide.jpg"]["crops"] == by_name["square.jpg"]["crops"] == []
    assert by_name["tall.png"]["error"] is None
    assert read_image(Path(by_name["tall.png"]["crops"][0]["output"])).shape[:2] == (72, 72)
    errors = result.error_lines()
    assert len(errors) == 2
    for name in ("wide.jpg", "square.jpg"):
        rec = by_name[name]
        assert f"cropsal: error: {rec['input']}: {rec['error']}" in errors
    assert "1 cropped, 2 failed" in result.stderr
    assert temp_files(out) == []


@pytest.mark.parametrize("option", ["-o", "--heatmaps"])
def test_an_output_folder_that_cannot_be_made_stops_the_run(tmp_path, image_dir, option):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    result = run_cropsal("crop", image_dir, option, blocker / "out", "--json", "-")
    assert result.rc == 1
    assert_clean_stderr(result.stderr)
    assert result.error_lines() == [
        f"cropsal: error: {blocker / 'out'}: cannot write output: Not a directory"
    ]
    assert result.stdout == "" and "cropped" not in result.stderr
    assert os.listdir(tmp_path) == ["file", "images"]


def test_json_path_that_is_a_folder(tmp_path, image_dir):
    json_path = tmp_path / "records.jsonl"
    json_path.mkdir()
    result = run_cropsal("crop", image_dir, "--json", json_path, "--aspect", "1:1")
    assert result.rc in (1, 2)
    assert_clean_stderr(result.stderr)
    assert temp_files(tmp_path) == []


# --- usage errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--aspect", "0:1", "--json", "-"], "'0:1'"),
        (["--aspect", "banana", "--json", "-"], "'banana'"),
        (["--size", "10x0", "--json", "-"], "'10x0'"),
        (["--size", "99999x99999", "--json", "-"], "'99999x99999'"),
        ([], "nothing to write"),
        (["-o", "{out}", "--overwrite", "--skip-existing"], "exclude each other"),
        (["--json", "-", "--format", "gif"], "gif"),
        (["--json", "-", "--quality", "101"], "101"),
        (["--json", "-", "--bogus"], "--bogus"),
        (["-", "-", "--json", "-"], "once"),
        (["--json", "-", "--zoom", "0.05"], "0.05"),
    ],
    ids=[
        "aspect-zero",
        "aspect-word",
        "size-zero",
        "size-huge",
        "no-output",
        "both-flags",
        "format",
        "quality",
        "unknown-option",
        "stdin-twice",
        "zoom",
    ],
)
def test_usage_errors_exit_2(tmp_path, image_dir, args, message):
    out = tmp_path / "out"
    args = [a.format(out=out) for a in args]
    result = run_cropsal("crop", image_dir, *args)
    assert result.rc == 2, (result.rc, result.stderr)
    assert message in result.stderr
    assert_clean_stderr(result.stderr)
    assert result.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize("args", [["crop"], ["frobnicate"]], ids=["no-input", "no-command"])
def test_usage_errors_without_inputs_exit_2(args):
    result = run_cropsal(*args, defaults=False)
    assert result.rc == 2
    assert_clean_stderr(result.stderr)


def test_absurd_aspect_value_is_a_usage_error(image_dir):
    result = run_cropsal("crop", image_dir, "--json", "-", "--aspect", "1" * 400 + ".5:1")
    assert result.rc == 2
    assert_clean_stderr(result.stderr)


# --- stdin -------------------------------------------------------------------------------------


@pytest.fixture
def odd_names(tmp_path):
    root = tmp_path / "in dir"
    paths = [
        write_image(root / "with space é.jpg", 80, 60, seed=1),
        write_image(root / "日本語の写真.png", 60, 80, seed=2),
        write_image(root / "plain.jpg", 70, 70, seed=3),
    ]
    return paths


def test_stdin_newline_separated(tmp_path, odd_names):
    out = tmp_path / "out"
    stdin = ("\n".join(str(p) for p in odd_names) + "\n\n").encode("utf-8")
    result = run_cropsal("crop", "-", "-o", out, "--aspect", "1:1", "--json", "-", stdin=stdin)
    assert result.rc == 0, result.stderr
    assert [r["input"] for r in result.records()] == [str(p) for p in odd_names]
    assert relative_files(out) == {f"{p.stem}_1x1.jpg" for p in odd_names}


def test_stdin_nul_separated(tmp_path, odd_names):
    odd_names.append(write_image(odd_names[0].parent / "line\nbreak.jpg", 50, 40, seed=4))
    out = tmp_path / "out"
    stdin = b"\0".join(os.fsencode(p) for p in odd_names) + b"\0"
    result = run_cropsal(
        "crop", "-0", "-", "-o", out, "--aspect", "1:1", "--json", "-", stdin=stdin
    )
    assert result.rc == 0, result.stderr
    assert [r["input"] for r in result.records()] == [str(p) for p in odd_names]
    assert relative_files(out) == {f"{p.stem}_1x1.jpg" for p in odd_names}


def test_stdin_mixed_with_arguments(tmp_path, odd_names, image_dir):
    stdin = f"{odd_names[2]}\n".encode()
    result = run_cropsal("crop", image_dir / "wide.jpg", "-", "--json", "-", stdin=stdin)
    assert result.rc == 0, result.stderr
    assert [r["input"] for r in result.records()] == [
        str(image_dir / "wide.jpg"),
        str(odd_names[2]),
    ]


# --- filters and hidden files ------------------------------------------------------------------


def test_include_exclude(tmp_path):
    src = tmp_path / "in"
    for i, rel in enumerate(["a.jpg", "b.png", "sub/c.jpg", "sub/d.png", "raw/e.jpg"]):
        write_image(src / rel, 40, 30, seed=i)
    out = tmp_path / "out"
    result = run_cropsal(
        "crop",
        src,
        "-o",
        out,
        "--aspect",
        "1:1",
        "--include",
        "*.jpg",
        "--include",
        "d.png",
        "--exclude",
        "raw/*",
        "--exclude",
        "sub/c.jpg",
    )
    assert result.rc == 0, result.stderr
    assert relative_files(out) == {"a_1x1.jpg", "sub/d_1x1.jpg"}


def test_hidden_files_and_folders_are_skipped(tmp_path):
    src = tmp_path / "in"
    for i, rel in enumerate(
        [".hidden.jpg", ".cache/x.jpg", "sub/.y.png", "visible.jpg", "sub/seen.png"]
    ):
        write_image(src / rel, 40, 30, seed=i)
    out = tmp_path / "out"
    result = run_cropsal("crop", src, "-o", out, "--aspect", "1:1", "--json", "-")
    assert result.rc == 0, result.stderr
    assert relative_files(out) == {"visible_1x1.jpg", "sub/seen_1x1.jpg"}
    assert len(result.records()) == 2


def test_symlink_loop_is_reported_once(tmp_path):
    src = tmp_path / "in"
    write_image(src / "sub" / "pic.jpg", 40, 30)
    os.symlink(src, src / "sub" / "back")
    result = run_cropsal("crop", src, "--json", "-", "--aspect", "1:1")
    assert result.rc == 1
    assert_clean_stderr(result.stderr)
    records = result.records()
    assert len(records) == 2
    loop = next(r for r in records if r["error"])
    assert loop["input"] == str(src / "sub" / "back") and "loop" in loop["error"]


def test_a_second_path_to_a_folder_is_not_a_loop(tmp_path):
    src = tmp_path / "sl"
    write_image(src / "real" / "pic.jpg", 40, 30)
    os.symlink("real", src / "alias")
    result = run_cropsal("crop", src, "--json", "-", "--aspect", "1:1")
    assert result.rc == 0, result.stderr
    assert result.error_lines() == []
    assert [r["input"] for r in result.records()] == [str(src / "alias" / "pic.jpg")]


def test_control_characters_in_names_are_escaped_on_error_lines(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("red\x1b[31m.jpg", "bell\x07.jpg", "tab\tdel\x7f.jpg"):
        (src / name).write_bytes(b"not an image")
    result = run_cropsal("crop", src, "--json", "-")
    assert result.rc == 1
    for char in "\x1b\x07\t\x7f":
        assert char not in result.stderr
    errors = result.error_lines()
    assert len(errors) == 3
    for escaped in ("red\\x1b[31m.jpg", "bell\\x07.jpg", "tab\\tdel\\x7f.jpg"):
        assert sum(f"{src}/{escaped}: " in line for line in errors) == 1, (escaped, errors)


# --- heatmaps ----------------------------------------------------------------------------------


def test_heatmaps(tmp_path, image_dir):
    heat = tmp_path / "heat"
    result = run_cropsal("crop", image_dir, "--heatmaps", heat, "--aspect", "1:1", "--json", "-")
    assert result.rc == 0, result.stderr
    assert relative_files(heat) == {
        f"{stem}_saliency.{ext}"
        for stem in ("wide", "tall", "sub/square")
        for ext in ("jpg", "npy")
    }
    for rec in result.records():
        assert_ok_record(rec)
        assert rec["crops"][0]["output"] is None
        rel = Path(rec["input"]).relative_to(image_dir)
        stem = heat / rel.parent / f"{rel.stem}_saliency"
        assert rec["heatmap"] == f"{stem}.jpg" and rec["saliency_map"] == f"{stem}.npy"
        overlay = read_image(Path(rec["heatmap"]))
        assert overlay.shape == (rec["height"], rec["width"], 3)
        raw = np.load(rec["saliency_map"])
        assert raw.dtype == np.float32 and raw.ndim == 2
        assert logsumexp(raw) == pytest.approx(0.0, abs=1e-4)
        map_h, map_w = raw.shape
        assert map_w / map_h == pytest.approx(rec["width"] / rec["height"], rel=0.25)
    assert temp_files(heat) == []


def test_heatmaps_follow_the_rules_for_existing_outputs(tmp_path, image_dir):
    heat = tmp_path / "heat"
    args = ("crop", image_dir, "--heatmaps", heat, "--aspect", "1:1", "--json", "-")
    assert run_cropsal(*args).rc == 0
    overlay, raw = heat / "wide_saliency.jpg", heat / "wide_saliency.npy"
    overlay.write_bytes(b"kept")

    again = run_cropsal(*args)
    assert again.rc == 1
    assert len(again.error_lines()) == 3
    for rec in again.records():
        assert "output exists" in rec["error"] and "--overwrite" in rec["error"]
    assert overlay.read_bytes() == b"kept"

    raw.unlink()
    resumed = run_cropsal(*args, "--skip-existing")
    assert resumed.rc == 0, resumed.stderr
    by_name = {Path(r["input"]).name: r for r in resumed.records()}
    assert [n for n, r in by_name.items() if not r["skipped"]] == ["wide.jpg"]
    assert by_name["wide.jpg"]["saliency_map"] == str(raw) and np.load(raw).ndim == 2
    assert overlay.read_bytes() == b"kept"

    assert run_cropsal(*args, "--overwrite").rc == 0
    assert read_image(overlay).shape == (90, 160, 3)


# --- existing outputs --------------------------------------------------------------------------


def test_existing_outputs(tmp_path, image_dir):
    out = tmp_path / "out"
    args = ("crop", image_dir, "-o", out, "--aspect", "1:1", "--aspect", "16:9", "--json", "-")
    first = run_cropsal(*args)
    assert first.rc == 0, first.stderr
    outputs = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(outputs) == 6
    before = {p: p.read_bytes() for p in outputs}

    again = run_cropsal(*args)
    assert again.rc == 1
    assert_clean_stderr(again.stderr)
    errors = again.error_lines()
    assert len(errors) == 3
    for rec in again.records():
        assert "exists" in rec["error"] and "--overwrite" in rec["error"]
        assert rec["crops"] == []
        assert any(f" {rec['input']}: " in line for line in errors)
    assert {p: p.read_bytes() for p in outputs} == before

    # a damaged output stays as it is when skipped, and is replaced with --overwrite
    damaged = out / "wide_1x1.jpg"
    damaged.write_bytes(b"garbage")
    skipped = run_cropsal(*args, "--skip-existing")
    assert skipped.rc == 0, skipped.stderr
    for rec in skipped.records():
        assert rec["skipped"] is True and rec["error"] is None and rec["crops"] == []
    assert damaged.read_bytes() == b"garbage"

    replaced = run_cropsal(*args, "--overwrite")
    assert replaced.rc == 0, replaced.stderr
    assert all(r["error"] is None and len(r["crops"]) == 2 for r in replaced.records())
    assert read_image(damaged).shape[:2] == (90, 90)
    assert temp_files(out) == []


def test_skip_existing_redoes_an_input_with_some_outputs_missing(tmp_path, image_dir):
    out = tmp_path / "out"
    args = ("crop", image_dir, "-o", out, "--aspect", "1:1", "--aspect", "16:9", "--json", "-")
    assert run_cropsal(*args).rc == 0
    (out / "wide_16x9.jpg").unlink()
    result = run_cropsal(*args, "--skip-existing")
    assert result.rc == 0, result.stderr
    by_name = {Path(r["input"]).name: r for r in result.records()}
    assert by_name["wide.jpg"]["skipped"] is False and len(by_name["wide.jpg"]["crops"]) == 2
    assert by_name["tall.png"]["skipped"] is True
    assert (out / "wide_16x9.jpg").is_file()


def test_skip_existing_keeps_the_records_of_the_earlier_run(tmp_path, image_dir):
    out, heat, json_path = tmp_path / "out", tmp_path / "heat", tmp_path / "r.jsonl"
    args = ("crop", image_dir, "-o", out, "--heatmaps", heat, "--aspect", "1:1")
    args += ("--json", json_path)

    def records() -> dict[str, dict]:
        lines = json_path.read_text("utf-8").splitlines()
        return {r["input"]: r for r in map(json.loads, lines)}

    assert run_cropsal(*args).rc == 0
    first = records()
    wide = str(image_dir / "wide.jpg")
    (out / "wide_1x1.jpg").unlink()
    for second_time in (False, True):  # then every image is skipped, its record still whole
        result = run_cropsal(*args, "--skip-existing")
        assert result.rc == 0, result.stderr
        again = records()
        assert list(again) == list(first)
        for name, rec in again.items():
            redone = name == wide and not second_time
            assert rec == {**first[name], "skipped": not redone}, name
    assert "0 cropped, 0 failed, 3 skipped" in result.stderr


# --- output names ------------------------------------------------------------------------------


def test_same_stem_different_extension_get_distinct_outputs(tmp_path):
    src = tmp_path / "in"
    write_image(src / "a.jpg", 64, 48, seed=1)
    write_image(src / "a.png", 64, 48, seed=2)
    out = tmp_path / "out"
    result = run_cropsal("crop", src, "-o", out, "--aspect", "1:1", "--json", "-")
    assert result.rc == 0, result.stderr
    assert relative_files(out) == {"a-jpg_1x1.jpg", "a-png_1x1.jpg"}
    outputs = [r["crops"][0]["output"] for r in result.records()]
    assert sorted(outputs) == [str(out / "a-jpg_1x1.jpg"), str(out / "a-png_1x1.jpg")]
    jpg, png = read_image(out / "a-jpg_1x1.jpg"), read_image(out / "a-png_1x1.jpg")
    assert np.abs(jpg.astype(int) - png.astype(int)).mean() > 5


def test_renamed_stem_does_not_collide_with_another_input(tmp_path):
    src = tmp_path / "in"
    for i, name in enumerate(["a.jpg", "a.png", "a-jpg.jpg"]):
        write_image(src / name, 64, 48, seed=i)
    out = tmp_path / "out"
    result = run_cropsal("crop", src, "-o", out, "--aspect", "1:1", "--json", "-")
    outputs = [r["crops"][0]["output"] for r in result.records() if r["crops"]]
    assert len(set(outputs)) == 3
    assert len(relative_files(out)) == 3


def test_aspect_and_size_that_would_share_a_file_name_are_refused(tmp_path, image_dir):
    out = tmp_path / "out"
    result = run_cropsal(
        "crop",
        image_dir / "wide.jpg",
        "-o",
        out,
        "--aspect",
        "1920:1080",
        "--size",
        "1920x1080",
        "--json",
        "-",
    )
    assert result.rc == 2
    assert "would both write" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_non_utf8_file_name_with_json_file(tmp_path):
    src = tmp_path / "in"
    write_image(src / "ok.jpg", 64, 48, seed=1)
    odd = os.path.join(os.fsencode(src), b"caf\xe9.jpg")
    try:
        with open(odd, "wb") as f:
            f.write((src / "ok.jpg").read_bytes())
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    json_path = tmp_path / "records.jsonl"
    out = tmp_path / "out"
    result = run_cropsal("crop", src, "-o", out, "--aspect", "1:1", "--json", json_path)
    assert result.rc == 0, result.stderr
    assert len(json_path.read_bytes().splitlines()) == 2
    assert len(relative_files(out)) == 2


# --- EXIF orientation --------------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    stored = np.zeros((60, 120, 3), np.uint8)  # 120 wide, 60 tall as stored
    stored[:, :60] = 255  # left half white: the top half once rotated for display
    img = pil.fromarray(stored)
    exif = pil.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    src = tmp_path / "in"
    src.mkdir()
    img.save(src / "rotated.jpg", exif=exif.tobytes(), quality=95)

    out = tmp_path / "out"
    result = run_cropsal(
        "crop", src, "-o", out, "--aspect", "1:1", "--size", "60x120", "--json", "-"
    )
    assert result.rc == 0, result.stderr
    (rec,) = result.records()
    assert (rec["width"], rec["height"]) == (60, 120)
    square, whole = rec["crops"]
    assert (square["width"], square["height"]) == (60, 60)
    assert (whole["x"], whole["y"], whole["width"], whole["height"]) == (0, 0, 60, 120)
    assert read_image(out / "rotated_1x1.jpg").shape[:2] == (60, 60)
    shown = read_image(out / "rotated_60x120.jpg")
    assert shown.shape[:2] == (120, 60)
    assert shown[:50].mean() > 200 and shown[70:].mean() < 50  # white on top, black below


# --- policy options and consistency with the API -------------------------------------------


def test_zoom_option(tmp_path, image_dir):
    out = tmp_path / "out"
    result = run_cropsal(
        "crop", image_dir, "-o", out, "--zoom", "0.5", "--size", "64x64", "--json", "-"
    )
    assert result.rc == 0, result.stderr
    for rec in result.records():
        assert_ok_record(rec)
        (crop,) = rec["crops"]
        assert crop["rule"] in ("zoom", "mass", "flat", "symmetric", "whole")
        assert read_image(Path(crop["output"])).shape[:2] == (64, 64)


def test_cli_crops_match_the_python_api(tmp_path, image_dir, cropper):
    result = run_cropsal("crop", image_dir, "--json", "-", "--aspect", "1:1", "--aspect", "9:16")
    assert result.rc == 0, result.stderr
    for rec in result.records():
        api = cropper.crop(read_image(Path(rec["input"]))[..., :3], aspects=["1:1", "9:16"])
        assert (api.width, api.height) == (rec["width"], rec["height"])
        assert [(c.aspect, c.x, c.y, c.width, c.height, c.rule) for c in api.crops] == [
            (c["aspect"], c["x"], c["y"], c["width"], c["height"], c["rule"]) for c in rec["crops"]
        ]


# --- odd but valid images ----------------------------------------------------------------------


def test_grey_alpha_16bit_and_tiny_images_are_cropped(tmp_path):
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    base = synthetic_image(90, 60)
    cv2.imwrite(str(src / "grey.png"), base[..., 0])
    cv2.imwrite(str(src / "alpha.png"), np.dstack([base, np.full(base.shape[:2], 128, np.uint8)]))
    cv2.imwrite(str(src / "deep.png"), base.astype(np.uint16) * 257)
    cv2.imwrite(str(src / "dot.png"), base[:1, :1])
    cv2.imwrite(str(src / "line.png"), synthetic_image(700, 1))
    cv2.imwrite(str(src / "pic.bmp"), base)
    out = tmp_path / "out"
    result = run_cropsal("crop", src, "-o", out, "--json", "-")
    assert result.rc == 0, result.stderr
    records = result.records()
    assert len(records) == 6
    for rec in records:
        assert_ok_record(rec)
        for crop in rec["crops"]:
            assert read_image(Path(crop["output"])).shape[:2] == (crop["height"], crop["width"])
    assert temp_files(out) == []


def test_a_reader_that_stops_early_ends_the_run_quietly(tmp_path):
    # `cropsal crop … --json - | head -1`: the closed pipe is not reported as an error
    import subprocess
    import sys

    src = tmp_path / "in"
    for i in range(12):
        write_image(src / f"{i:02d}.jpg", 160, 120, seed=i)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cropsal", "crop", src, "--json", "-", "--batch-size", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert json.loads(first)["input"].endswith("00.jpg")
    assert "error" not in stderr and "Traceback" not in stderr, stderr


def test_json_under_a_regular_file_says_not_a_directory(tmp_path, image_dir):
    blocker = tmp_path / "plain"
    blocker.write_text("a file\n")
    result = run_cropsal("crop", image_dir, "--json", blocker / "r.jsonl")
    assert result.rc == 1
    (line,) = result.error_lines()
    assert "cannot write JSON: Not a directory" in line
