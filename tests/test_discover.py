"""Stage *discover*: walking folders, filters, stdin path lists, symlinks."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from cropsal.discover import discover, matches, read_path_list, walk


def touch(root: Path, *rels: str) -> None:
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def rels(items) -> list[str]:
    return [str(i.rel) for i in items]


TREE = [
    "b.jpg",
    "A.jpg",
    "a/y.png",
    "a/x.jpg",
    "a/deep/z.jpg",
    "c/w.jpeg",
    "notes.txt",
    "c/readme.md",
    ".hidden.jpg",
    ".git/q.jpg",
    "a/.cache/p.png",
    "e/f.TIFF",
]

# Each folder's images in name order, then its subfolders depth-first in name order.
WALK_ORDER = ["A.jpg", "b.jpg", "a/x.jpg", "a/y.png", "a/deep/z.jpg", "c/w.jpeg", "e/f.TIFF"]


def test_walk_order(tmp_path):
    touch(tmp_path, *TREE)
    items = list(walk(tmp_path))
    assert rels(items) == WALK_ORDER
    assert all(i.error is None for i in items)
    assert all(i.path == tmp_path / i.rel for i in items)


def test_walk_order_does_not_depend_on_creation_order(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    touch(first, *TREE)
    touch(second, *reversed(TREE))
    assert rels(walk(first)) == rels(walk(second)) == WALK_ORDER


def test_walk_skips_hidden_files_and_folders(tmp_path):
    touch(tmp_path, ".x.jpg", ".d/y.jpg", "d/.z.png", "ok.png", "d/ok2.jpg")
    assert rels(walk(tmp_path)) == ["ok.png", "d/ok2.jpg"]


def test_walk_reports_folder_named_like_an_image(tmp_path):
    (tmp_path / "album.jpg").mkdir()
    touch(tmp_path, "album.jpg/inner.jpg")
    items = list(walk(tmp_path))
    assert rels(items) == ["album.jpg"]  # handed on for decode to report, not walked


def test_symlink_loop_is_reported_not_looped(tmp_path):
    root = tmp_path / "root"
    touch(root, "top.jpg", "sub/inner.jpg")
    os.symlink(root, root / "sub" / "loop")
    os.symlink(root / "sub", root / "sub" / "self")
    items = list(walk(root))
    errors = [i for i in items if i.error]
    assert sorted(rels(errors)) == ["sub/loop", "sub/self"]
    assert all("symlink loop" in i.error for i in errors)
    images = [str(i.rel) for i in items if not i.error]
    assert images == ["top.jpg", "sub/inner.jpg"]


def test_second_path_to_a_walked_folder_is_not_a_loop(tmp_path):
    root = tmp_path / "sl"
    touch(root, "real/pic.jpg", "real/deeper/more.jpg")
    os.symlink("real", root / "alias")  # a sibling, not an ancestor: no cycle
    items = list(walk(root))
    assert not any(i.error for i in items)
    assert rels(items) == ["alias/pic.jpg", "alias/deeper/more.jpg"]  # each image once


def test_symlinked_folder_outside_root_is_followed(tmp_path):
    touch(tmp_path / "elsewhere", "far.jpg")
    touch(tmp_path / "root", "near.jpg")
    os.symlink(tmp_path / "elsewhere", tmp_path / "root" / "link")
    items = list(walk(tmp_path / "root"))
    assert rels(items) == ["near.jpg", "link/far.jpg"]
    assert not any(i.error for i in items)


def test_discover_keeps_argument_order_and_reports_missing(tmp_path):
    touch(tmp_path, "dir/b.jpg", "dir/a.jpg", "single.png")
    items = discover(
        [str(tmp_path / "single.png"), str(tmp_path / "dir"), str(tmp_path / "missing.jpg")]
    )
    assert rels(items) == ["single.png", "a.jpg", "b.jpg", "missing.jpg"]
    assert [i.error for i in items[:3]] == [None, None, None]
    assert items[3].error == "no such file or folder"
    assert items[3].path == tmp_path / "missing.jpg"


def test_discover_takes_each_path_once_but_every_name_of_a_file(tmp_path):
    touch(tmp_path, "dir/a.jpg", "dir/b.jpg")
    os.symlink(tmp_path / "dir" / "a.jpg", tmp_path / "dir" / "link.jpg")
    a = str(tmp_path / "dir" / "a.jpg")
    items = discover([a, str(tmp_path / "dir"), a, str(tmp_path / "dir" / "." / "b.jpg")])
    assert rels(items) == ["a.jpg", "b.jpg", "link.jpg"]  # a link is another name: kept


def test_discover_takes_a_file_given_directly_whatever_its_name(tmp_path):
    touch(tmp_path, ".hidden.jpg", "notes.txt")
    items = discover([str(tmp_path / ".hidden.jpg"), str(tmp_path / "notes.txt")])
    assert rels(items) == [".hidden.jpg", "notes.txt"]


def test_discover_broken_symlink_given_directly_is_kept(tmp_path):
    os.symlink(tmp_path / "gone.jpg", tmp_path / "dangling.jpg")
    items = discover([str(tmp_path / "dangling.jpg")])
    assert rels(items) == ["dangling.jpg"] and items[0].error is None  # decode reports it


def test_discover_filters(tmp_path):
    touch(tmp_path, "a.jpg", "b.png", "sub/c.jpg", "sub/d.png", "raw/e.jpg")
    root = str(tmp_path)
    assert rels(discover([root], include=("*.jpg",))) == ["a.jpg", "raw/e.jpg", "sub/c.jpg"]
    assert rels(discover([root], exclude=("sub/*",))) == ["a.jpg", "b.png", "raw/e.jpg"]
    assert rels(discover([root], include=("*.jpg",), exclude=("raw/*", "a.*"))) == ["sub/c.jpg"]
    assert rels(discover([root], include=("sub/*",))) == ["sub/c.jpg", "sub/d.png"]
    assert rels(discover([str(tmp_path / "a.jpg")], exclude=("*.jpg",))) == []


def test_discover_filters_keep_errors(tmp_path):
    root = tmp_path / "root"
    touch(root, "a.jpg")
    os.symlink(root, root / "loop")
    items = discover([str(root)], include=("*.png",))
    assert [(str(i.rel), bool(i.error)) for i in items] == [("loop", True)]


@pytest.mark.parametrize(
    ("rel", "include", "exclude", "expected"),
    [
        ("a.jpg", (), (), True),
        ("x/a.jpg", ("a.jpg",), (), True),
        ("x/a.jpg", ("x/*",), (), True),
        ("x/a.jpg", ("y/*",), (), False),
        ("x/a.jpg", ("*.jpg",), ("a.*",), False),
        ("x/a.jpg", (), ("*/a.jpg",), False),
        ("x/a.jpg", ("*.png", "*.jpg"), (), True),
    ],
)
def test_matches(rel, include, exclude, expected):
    assert matches(PurePosixPath(rel), include, exclude) is expected


def test_read_path_list():
    assert read_path_list("a.jpg\n\n  \nb c.jpg\r\nd.png", nul=False) == [
        "a.jpg",
        "b c.jpg",
        "d.png",
    ]
    assert read_path_list(["a.jpg\n", "b.jpg\n"], nul=False) == ["a.jpg", "b.jpg"]
    assert read_path_list("a b.jpg\0line\nbreak.jpg\0\0", nul=True) == [
        "a b.jpg",
        "line\nbreak.jpg",
    ]
