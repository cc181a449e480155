"""Stage *write*: cut, resize and encode each crop, and write files atomically.

Every file goes to a temporary name in its final folder and is renamed into place, so an
interrupted run never leaves a partial image behind.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from cropsal.errors import ImageError, OutputError, OutputPathError
from cropsal.geometry import Box, Target

log = logging.getLogger(__name__)

FORMATS = {"jpg": ".jpg", "png": ".png", "webp": ".webp"}

# Write errors that no other path on the same file system would escape: they stop the run.
LOCATION_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})


def _file_mode() -> int:
    """0o666 less the process umask: the mode ``open()`` would give a new file (temporary files
    are created 0o600, so the mode is set explicitly before the rename)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


@dataclass(frozen=True)
class OutputSpec:
    """Where and how crops are written."""

    root: Path
    format: str = "jpg"
    quality: int = 90  # JPEG / WebP quality 1–100; PNG is lossless
    overwrite: bool = False
    skip_existing: bool = False


def output_stems(rels: list[PurePosixPath]) -> list[PurePosixPath]:
    """The relative path stem (folder/stem) of each input's outputs, unique over the whole run
    and ignoring case (for case-insensitive file systems): inputs that would share one
    (``a.jpg`` and ``a.png``) get their extension in the stem (``a-jpg``, ``a-png``), and
    ``-2``, ``-3`` … if that name is taken too."""
    keys = [r.parent / r.stem for r in rels]
    counts = Counter(str(k).lower() for k in keys)
    used = {str(k).lower() for k in keys if counts[str(k).lower()] == 1}
    stems = []
    for rel, key in zip(rels, keys):
        if counts[str(key).lower()] == 1:
            stems.append(key)
            continue
        ext = rel.suffix.lstrip(".").lower()
        base = key.parent / f"{key.name}-{ext}" if ext else key
        candidate, n = base, 2
        while str(candidate).lower() in used:
            candidate, n = base.parent / f"{base.name}-{n}", n + 1
        used.add(str(candidate).lower())
        stems.append(candidate)
    return stems


def crop_path(spec: OutputSpec, stem: PurePosixPath, target: Target) -> Path:
    """``OUTDIR/<rel dir>/<stem>_<suffix>.<ext>``, e.g. ``out/pets/cat_16x9.jpg``."""
    return spec.root / stem.parent / f"{stem.name}_{target.suffix}{FORMATS[spec.format]}"


def cut(bgr: np.ndarray, box: Box, size: tuple[int, int] | None) -> np.ndarray:
    """The ``box`` of an ``HxWx3`` image, resized to ``size = (w, h)`` when given: area
    averaging when it shrinks by 2× or more, bilinear when by less (on photos a quarter of a
    grey level from area averaging on average there, and three times faster: OpenCV's area
    filter is slow at ratios that are not whole numbers), bicubic when it enlarges."""
    window = bgr[box.y : box.y + box.height, box.x : box.x + box.width]
    if size is None or (window.shape[1], window.shape[0]) == size:
        return window
    ratio = min(window.shape[1] / size[0], window.shape[0] / size[1])
    if ratio >= 2.0:
        method = cv2.INTER_AREA
    elif ratio > 1.0:
        method = cv2.INTER_LINEAR
    else:
        method = cv2.INTER_CUBIC
    return cv2.resize(window, size, interpolation=method)


def encode(image: np.ndarray, fmt: str, quality: int) -> bytes:
    """Encode an image array in ``fmt`` (``jpg``, ``png`` or ``webp``)."""
    params = {
        "jpg": [cv2.IMWRITE_JPEG_QUALITY, quality],
        "webp": [cv2.IMWRITE_WEBP_QUALITY, quality],
        "png": [cv2.IMWRITE_PNG_COMPRESSION, 3],
    }[fmt]
    ok, buf = cv2.imencode(FORMATS[fmt], image, params)
    if not ok:
        raise ImageError(f"cannot encode {fmt.upper()}")
    return buf.tobytes()


def check_folder(root: Path) -> None:
    """Create the output folder ``root`` if needed and make sure a file can be created in it.

    Raises :class:`OutputError` when it cannot: the run stops before any image is processed.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".cropsal-", suffix=".part", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{root}: cannot write output: {write_reason(e)}") from e


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Raises :class:`OutputError` when the file system refuses any write (full, read-only,
    failing), which stops the run instead of failing image after image, and
    :class:`OutputPathError` when only this path is blocked (a folder in its place, a file where
    one of its folders should be, no permission there): that image fails.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as e:
        raise write_error(path.parent, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise write_error(path, e) from e
        raise


def write_error(where: Path, e: OSError) -> OutputError | OutputPathError:
    """The error for a failed write at ``where``: :class:`OutputError` when the whole file
    system refuses (:data:`LOCATION_ERRNOS`), else :class:`OutputPathError`."""
    message = f"{where}: cannot write output: {write_reason(e)}"
    return OutputError(message) if e.errno in LOCATION_ERRNOS else OutputPathError(message)


def write_reason(e: OSError) -> str:
    """Why a write failed, in words; a file found where a folder must go reads as such."""
    if e.errno == errno.EEXIST:  # mkdir found a file where a folder must go
        return os.strerror(errno.ENOTDIR)
    return e.strerror or str(e)
