"""Stage *discover*: turn command-line inputs (files, folders, ``-`` for stdin) into a list of
images with the relative path under which their outputs are written."""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
)


@dataclass(frozen=True)
class InputItem:
    """One image to process: ``path`` on disk (or a URI string such as ``s3://bucket/a.jpg``,
    see :func:`discover_uris`); ``rel`` its path relative to the folder it was found in (just its
    name for a file given directly); ``error`` set when it cannot be used."""

    path: Path | str
    rel: PurePosixPath
    error: str | None = None


def is_uri(source: str | Path) -> bool:
    """Whether ``source`` names an object in a remote file system (``s3://…``, ``gs://…``,
    ``file://…``) rather than a local path."""
    return isinstance(source, str) and "://" in source


def read_path_list(stream: Iterable[str] | str, nul: bool) -> list[str]:
    """Paths from stdin: one per line, or NUL-separated with ``nul``; blank entries skipped."""
    text = stream if isinstance(stream, str) else "".join(stream)
    parts = text.split("\0") if nul else text.splitlines()
    return [p for p in parts if p.strip()] if not nul else [p for p in parts if p]


def matches(rel: PurePosixPath, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """Glob filters, tried on the relative path and on the bare file name, ignoring case (as
    the extension check does)."""
    path, name = str(rel).lower(), rel.name.lower()

    def hit(pattern: str) -> bool:
        pattern = pattern.lower()
        return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(name, pattern)

    if include and not any(hit(p) for p in include):
        return False
    return not any(hit(p) for p in exclude)


def walk(root: Path, skip: frozenset[tuple[int, int]] = frozenset()) -> Iterator[InputItem]:
    """Image files under ``root``: each folder's files in name order, then its subfolders in
    name order (depth first); hidden entries skipped. A folder reached a second way (through a
    symlink) is walked once, at its first path in that order; a symlink to the folder itself or
    to one of its ancestors is a loop, reported as an item with an error."""
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Path, frozenset[tuple[int, int]]]] = [(root, frozenset())]
    while stack:
        folder, ancestors = stack.pop()
        try:
            key = _folder_key(folder)
        except OSError as e:
            yield _folder_error(folder, root, f"cannot list folder: {e.strerror or e}")
            continue
        if key in skip:  # one of this run's own output folders
            continue
        if key in ancestors:
            yield _folder_error(folder, root, "symlink loop: leads back to a folder it is in")
            continue
        if key in seen:
            log.debug("%s: already walked by another path, skipped", folder)
            continue
        seen.add(key)
        try:
            entries = sorted(os.scandir(folder), key=_name)
        except OSError as e:
            yield _folder_error(folder, root, f"cannot list folder: {e.strerror or e}")
            continue
        subfolders, inside = [], ancestors | {key}
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if _is_dir(entry) and path.suffix.lower() not in IMAGE_EXTENSIONS:
                subfolders.append((path, inside))
            elif path.suffix.lower() in IMAGE_EXTENSIONS and not (skip and _key(path) in skip):
                # a folder named like an image is reported by decode, not silently skipped
                yield InputItem(path, PurePosixPath(path.relative_to(root).as_posix()))
        stack.extend(reversed(subfolders))


def _folder_key(folder: Path) -> tuple[int, int]:
    st = folder.stat()
    return (st.st_dev, st.st_ino)


def _name(entry: os.DirEntry) -> str:
    return entry.name


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _folder_error(folder: Path, root: Path, reason: str) -> InputItem:
    return InputItem(folder, PurePosixPath(folder.relative_to(root).as_posix()), reason)


def _key(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def file_rel(raw: str) -> PurePosixPath:
    """Where a file given directly writes its outputs: its relative path when it is given as
    one inside the current folder (``find . -name '*.jpg'`` mirrors the tree), else its name."""
    path = PurePosixPath(Path(raw).as_posix())
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or ".." in parts or not parts:
        return PurePosixPath(path.name)
    return PurePosixPath(*parts)


def discover(
    inputs: Iterable[str],
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    skip: Iterable[Path] = (),
) -> list[InputItem]:
    """Expand inputs in order: a folder is walked recursively, a file is taken as given, a URI
    is listed with :func:`discover_uris`. Paths in ``skip`` (this run's output folders and
    files) are never taken as inputs."""
    skip_keys = frozenset(k for k in (_key(Path(p)) for p in skip) if k is not None)
    items: list[InputItem] = []
    for raw in inputs:
        if is_uri(raw):
            items.extend(discover_uris([raw], include, exclude))
            continue
        path = Path(raw)
        if path.is_dir() and path.suffix.lower() not in IMAGE_EXTENSIONS:
            items.extend(
                i for i in walk(path, skip_keys) if i.error or matches(i.rel, include, exclude)
            )
        elif path.exists() or path.is_symlink():
            rel = file_rel(raw)
            if matches(rel, include, exclude) and not (skip_keys and _key(path) in skip_keys):
                items.append(InputItem(path, rel))
        else:
            items.append(InputItem(path, PurePosixPath(path.name), "no such file or folder"))
    return first_of_each(items)


def first_of_each(items: list[InputItem]) -> list[InputItem]:
    """``items`` without repeats of the same path (a file given twice, or given and also found
    in a folder given), keeping the first; different names for one file (links) all stay."""
    seen: set[str] = set()
    unique = []
    for item in items:
        key = item.path if is_uri(item.path) else os.path.abspath(item.path)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    if len(unique) < len(items):
        log.info("%d inputs given more than once are cropped once", len(items) - len(unique))
    return unique


def uri_name(uri: str) -> PurePosixPath:
    """The last part of a URI (percent escapes decoded), where its outputs are named."""
    return PurePosixPath(unquote(uri.rstrip("/").rsplit("/", 1)[-1]))


def discover_uris(
    uris: Iterable[str], include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
) -> list[InputItem]:
    """:func:`discover` for remote file systems (``s3://``, ``gs://``, ``hdfs://``,
    ``file://``) through ``pyarrow.fs``: a prefix is listed recursively, in the order
    :func:`walk` uses (each folder's files by name, then its subfolders); hidden entries and
    files without an image extension are skipped. Items keep a URI as ``path``: the one given,
    or for listed files the prefix plus their percent-escaped relative path. A prefix that
    cannot be listed is one item with the reason."""
    items: list[InputItem] = []
    try:
        from pyarrow import fs
    except ImportError:
        reason = "reading URIs needs pyarrow (pip install 'cropsal[ray]')"
        return [InputItem(u, uri_name(u), reason) for u in uris]
    image_types = {e.lstrip(".") for e in IMAGE_EXTENSIONS}
    for uri in uris:
        try:
            filesystem, root = fs.FileSystem.from_uri(uri)
            info = filesystem.get_file_info(root)
            if info.type == fs.FileType.NotFound:
                items.append(InputItem(uri, uri_name(uri), "no such file or folder"))
                continue
            if info.type != fs.FileType.Directory or info.extension.lower() in image_types:
                rel = PurePosixPath(PurePosixPath(root).name)
                if matches(rel, include, exclude):
                    items.append(InputItem(uri, rel))
                continue
            found = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
        except Exception as e:  # noqa: BLE001 (pyarrow: OSError, ValueError, UnicodeDecodeError…)
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            items.append(InputItem(uri, uri_name(uri), f"cannot list: {reason}"))
            continue
        rels = []
        for f in found:
            rel = PurePosixPath(f.path).relative_to(PurePosixPath(root))
            if f.type != fs.FileType.File or any(p.startswith(".") for p in rel.parts):
                continue
            if rel.suffix.lower() in IMAGE_EXTENSIONS and matches(rel, include, exclude):
                rels.append(rel)
        # files of a folder before its subfolders, each group by name (as walk)
        rels.sort(key=lambda r: [(1, part) for part in r.parts[:-1]] + [(0, r.name)])
        base = uri.rstrip("/")
        for r in rels:
            escaped = "/".join(quote(part, safe="") for part in r.parts)
            items.append(InputItem(f"{base}/{escaped}", r))
    return items
