"""Stage *write*: output names, cutting, encoding, atomic writes, heatmap files."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pytest
from helpers import logsumexp, synthetic_image

from cropsal.cli.run import json_sink, read_records
from cropsal.errors import OutputError, OutputPathError
from cropsal.geometry import Box, parse_aspect, parse_size
from cropsal.heatmap import write_heatmaps
from cropsal.records import ImageRecord
from cropsal.write import (
    OutputSpec,
    atomic_write,
    check_folder,
    crop_path,
    cut,
    encode,
    output_stems,
)


def stems(*rels: str) -> list[str]:
    return [str(s) for s in output_stems([PurePosixPath(r) for r in rels])]


# --- output_stems ----------------------------------------------------------------------------


def test_output_stems_without_collisions_are_the_plain_stems():
    assert stems("a.jpg", "b.png", "sub/a.jpg", "sub/deep/c.webp") == [
        "a",
        "b",
        "sub/a",
        "sub/deep/c",
    ]


def test_output_stems_same_stem_different_extension():
    assert stems("a.jpg", "a.png") == ["a-jpg", "a-png"]
    assert stems("sub/a.jpg", "b.jpg", "sub/a.png") == ["sub/a-jpg", "b", "sub/a-png"]


def test_output_stems_same_file_twice_are_numbered():
    assert stems("a.jpg", "a.jpg", "a.jpg") == ["a-jpg", "a-jpg-2", "a-jpg-3"]


def test_output_stems_extension_case():
    result = stems("a.JPG", "a.jpg")
    assert len(set(result)) == 2
    assert result[0] == "a-jpg"


def test_output_stems_name_without_extension():
    result = stems("a", "a.png")
    assert len(set(result)) == 2


def test_output_stems_same_name_in_different_folders_do_not_collide():
    assert stems("x/a.jpg", "y/a.jpg") == ["x/a", "y/a"]


def test_output_stems_keep_length_and_folder():
    rels = ["p/q.jpg", "p/q.png", "q.jpg", "p/r.gif", "p/q.jpg"]
    result = output_stems([PurePosixPath(r) for r in rels])
    assert len(result) == len(rels)
    assert [str(s.parent) for s in result] == [str(PurePosixPath(r).parent) for r in rels]


@pytest.mark.parametrize(
    "rels",
    [("a.jpg", "a.png", "a-jpg.jpg"), ("a.JPG", "a.jpg", "a-jpg-2.png")],
    ids=["renamed-vs-plain", "numbered-vs-plain"],
)
def test_output_stems_are_always_unique(rels):
    result = stems(*rels)
    assert len(set(result)) == len(result), result


# --- crop_path, cut, encode ------------------------------------------------------------------


def test_crop_path():
    spec = OutputSpec(Path("/out"), "webp")
    assert crop_path(spec, PurePosixPath("pets/cat"), parse_aspect("16:9")) == Path(
        "/out/pets/cat_16x9.webp"
    )
    assert crop_path(OutputSpec(Path("o")), PurePosixPath("x"), parse_size("600x600")) == Path(
        "o/x_600x600.jpg"
    )


def test_cut_takes_the_box():
    img = np.arange(20 * 30 * 3, dtype=np.uint32).reshape(20, 30, 3).astype(np.uint8)
    window = cut(img, Box(5, 2, 10, 8), None)
    np.testing.assert_array_equal(window, img[2:10, 5:15])


@pytest.mark.parametrize("size", [(600, 600), (7, 5), (30, 20), (1, 1)])
def test_cut_resizes_to_exactly_the_size(size):
    img = synthetic_image(30, 20)
    out = cut(img, Box(0, 0, 30, 20), size)
    assert out.shape == (size[1], size[0], 3)
    assert out.dtype == np.uint8


@pytest.mark.parametrize(
    ("fmt", "magic"), [("jpg", b"\xff\xd8\xff"), ("png", b"\x89PNG"), ("webp", b"RIFF")]
)
def test_encode_formats(fmt, magic):
    img = synthetic_image(40, 30)
    data = encode(img, fmt, 90)
    assert data.startswith(magic)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == img.shape
    if fmt == "png":
        np.testing.assert_array_equal(decoded, img)


# --- atomic_write ----------------------------------------------------------------------------


def test_atomic_write_creates_folders_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "a" / "b" / "c.jpg"
    atomic_write(target, b"hello")
    assert target.read_bytes() == b"hello"
    assert sorted(os.listdir(target.parent)) == ["c.jpg"]


def test_atomic_write_replaces_an_existing_file(tmp_path):
    target = tmp_path / "c.jpg"
    target.write_bytes(b"old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["c.jpg"]


def test_atomic_write_failing_rename_cleans_up(tmp_path, monkeypatch):
    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    target = tmp_path / "c.jpg"
    with pytest.raises(OutputError, match="No space left"):
        atomic_write(target, b"data")
    assert os.listdir(tmp_path) == []


def test_atomic_write_interrupted_cleans_up_and_reraises(tmp_path, monkeypatch):
    def interrupt(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "c.jpg", b"data")
    assert os.listdir(tmp_path) == []


def test_a_file_where_the_folder_must_go_fails_that_path_only(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(OutputPathError, match=f"{blocker}: cannot write output: Not a dir"):
        atomic_write(blocker / "c.jpg", b"data")
    with pytest.raises(OutputPathError, match="Not a directory"):
        atomic_write(blocker / "deeper" / "c.jpg", b"data")
    assert os.listdir(tmp_path) == ["file"]


def test_a_folder_in_place_of_the_file_fails_that_path_only(tmp_path):
    (tmp_path / "c.jpg").mkdir()
    with pytest.raises(OutputPathError, match="c.jpg: cannot write output: Is a directory"):
        atomic_write(tmp_path / "c.jpg", b"data")
    assert os.listdir(tmp_path) == ["c.jpg"]


def test_check_folder_creates_the_output_folder_and_leaves_nothing_in_it(tmp_path):
    check_folder(tmp_path / "a" / "out")
    assert os.listdir(tmp_path / "a" / "out") == []


def test_check_folder_refuses_a_folder_that_cannot_be_made(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(OutputError, match=f"{blocker / 'out'}: cannot write output"):
        check_folder(blocker / "out")
    assert os.listdir(tmp_path) == ["file"]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_write_respects_the_umask(tmp_path, umask_022):
    target = tmp_path / "c.jpg"
    atomic_write(target, b"data")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


# --- the JSON Lines file ----------------------------------------------------------------------


def test_json_sink_writes_through_a_temporary_file(tmp_path):
    target = tmp_path / "deep" / "records.jsonl"
    with json_sink(str(target)) as sink:
        sink.write('{"a": 1}\n')
        assert not target.exists()
        assert [p.suffix for p in target.parent.iterdir()] == [".part"]
    assert target.read_text() == '{"a": 1}\n'
    assert os.listdir(target.parent) == ["records.jsonl"]


def test_json_sink_keeps_the_lines_of_an_interrupted_run(tmp_path):
    target = tmp_path / "records.jsonl"
    with pytest.raises(KeyboardInterrupt), json_sink(str(target)) as sink:
        sink.write('{"a": 1}\n')
        raise KeyboardInterrupt
    assert target.read_text() == '{"a": 1}\n'
    assert os.listdir(tmp_path) == ["records.jsonl"]


def test_json_sink_of_an_interrupted_run_keeps_the_earlier_records_it_did_not_reach(tmp_path):
    target = tmp_path / "records.jsonl"
    earlier = [ImageRecord(input=name, width=10, height=10) for name in ("a", "b", "c")]
    target.write_text("".join(r.to_json() + "\n" for r in earlier), "utf-8")
    with pytest.raises(KeyboardInterrupt), json_sink(str(target)) as sink:
        sink.write(ImageRecord(input="b", width=20, height=20).to_json() + "\n")
        raise KeyboardInterrupt
    records = [ImageRecord.from_json(line) for line in target.read_text().splitlines()]
    assert [(r.input, r.width) for r in records] == [("b", 20), ("a", 10), ("c", 10)]
    assert os.listdir(tmp_path) == ["records.jsonl"]


def test_json_sink_of_a_finished_run_holds_only_its_own_records(tmp_path):
    target = tmp_path / "records.jsonl"
    target.write_text(ImageRecord(input="a").to_json() + "\n", "utf-8")
    with json_sink(str(target)) as sink:
        sink.write(ImageRecord(input="b").to_json() + "\n")
    assert [ImageRecord.from_json(line).input for line in target.read_text().splitlines()] == ["b"]


def test_read_records_groups_by_input_and_passes_over_other_lines(tmp_path):
    target = tmp_path / "records.jsonl"
    lines = [ImageRecord(input="a", width=1).to_json(), "not json", "[1]", '{"x": 1}']
    lines += [ImageRecord(input="a", width=2).to_json(), ImageRecord(input="b").to_json()]
    target.write_text("\n".join(lines) + "\n", "utf-8")
    records = read_records(str(target))
    assert {k: [r.width for r in v] for k, v in records.items()} == {"a": [1, 2], "b": [None]}
    assert read_records(str(tmp_path / "missing.jsonl")) == read_records("-") == {}


def test_json_sink_respects_the_umask(tmp_path, umask_022):
    target = tmp_path / "records.jsonl"
    with json_sink(str(target)) as sink:
        sink.write("{}\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


# --- heatmaps --------------------------------------------------------------------------------


def test_write_heatmaps(tmp_path):
    img = synthetic_image(300, 200)
    ld = np.log(np.full((21, 32), 1 / (21 * 32), np.float32))
    over, raw = write_heatmaps(
        tmp_path / "h" / "sub" / "cat",
        img,
        ld,
        [("1:1", (50, 0, 200, 200)), ("16:9", (0, 16, 300, 169))],
    )
    assert over == tmp_path / "h" / "sub" / "cat_saliency.jpg"
    assert raw == tmp_path / "h" / "sub" / "cat_saliency.npy"
    overlay = cv2.imread(str(over))
    assert overlay.shape == (200, 300, 3)
    saved = np.load(raw)
    assert saved.dtype == np.float32 and saved.shape == (21, 32)
    assert logsumexp(saved) == pytest.approx(0.0, abs=1e-5)
    assert sorted(os.listdir(over.parent)) == ["cat_saliency.jpg", "cat_saliency.npy"]


def test_write_heatmaps_leaves_the_files_to_keep(tmp_path):
    img, ld = synthetic_image(60, 40), np.zeros((8, 12), np.float32)
    over, raw = write_heatmaps(tmp_path / "cat", img, ld, [])
    over.write_bytes(b"kept")
    raw.unlink()
    assert write_heatmaps(tmp_path / "cat", img, ld, [], keep=frozenset({over})) == (over, raw)
    assert over.read_bytes() == b"kept" and np.load(raw).shape == (8, 12)


def test_heatmap_overlay_of_a_large_image_is_shrunk(tmp_path):
    img = synthetic_image(2048, 512)
    over, _ = write_heatmaps(tmp_path / "big", img, np.zeros((8, 32), np.float32), [])
    assert cv2.imread(str(over)).shape == (256, 1024, 3)


def test_mild_shrinking_stays_close_to_area_averaging(sample_images):
    photo = cv2.imread(str(sample_images / "coffee.jpg"))  # 600x400
    box = Box(0, 0, 500, 400)
    out = cut(photo, box, (400, 320))  # 1.25x smaller, as 600x600 crops of 12-MP photos
    area = cv2.resize(photo[:400, :500], (400, 320), interpolation=cv2.INTER_AREA)
    assert out.shape == area.shape
    assert np.abs(out.astype(int) - area).mean() < 1.0
