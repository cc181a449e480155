"""Stage *decode*: read one file into an ``HxWx3 uint8 BGR`` array as displayed.

EXIF orientation is applied by OpenCV's decoder, so every coordinate cropsal reports is in
pixels of the displayed image.
"""

from __future__ import annotations

import logging
import stat
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cropsal.errors import ImageError

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 200_000_000

# Leading bytes → format name, for formats OpenCV decodes and for common ones it does not.
SIGNATURES = [
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
]
UNSUPPORTED = [(b"%PDF", "PDF"), (b"8BPS", "Photoshop PSD"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000")]


@dataclass
class DecodedImage:
    bgr: np.ndarray  # [H, W, 3] uint8 BGR, displayed orientation
    format: str


def sniff_format(head: bytes) -> str | None:
    """Format name from a file's first bytes, ``None`` when unknown."""
    for magic, name in SIGNATURES:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def describe_unsupported(head: bytes) -> str:
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", "replace").strip()
        return f"unsupported format (ISO media, brand {brand!r}: HEIC/AVIF are not supported)"
    for magic, name in UNSUPPORTED:
        if head.startswith(magic):
            return f"unsupported format ({name})"
    return "not an image (unknown file signature)"


def read_bytes(path: Path) -> bytes:
    """The file's bytes; :class:`ImageError` for folders, missing or unreadable files, empty files."""
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            raise ImageError("is a folder, not an image file")
        if not stat.S_ISREG(st.st_mode):
            raise ImageError("not a regular file")
        if st.st_size == 0:
            raise ImageError("empty file (0 bytes)")
        return path.read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read: {e.strerror or e}") from e


def decode_file(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode ``path``; raises :class:`ImageError` with a one-line reason (no file name: the
    caller's record carries it)."""
    data = read_bytes(path)
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise ImageError(describe_unsupported(data[:16]))
    buf = np.frombuffer(data, np.uint8)
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise ImageError(f"cannot decode {fmt}: {str(e).strip().splitlines()[-1]}") from e
    if bgr is None:
        raise ImageError(f"cannot decode {fmt} (corrupt or truncated file)")
    if bgr.shape[0] * bgr.shape[1] > max_pixels:
        raise ImageError(f"{bgr.shape[1]}x{bgr.shape[0]} is over --max-pixels {max_pixels:,}")
    return DecodedImage(bgr, fmt)
