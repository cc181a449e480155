"""Stage *decode*: read one file into an ``HxWx3 uint8 BGR`` array as displayed.

The header is read first (:mod:`cropsal.probe`), so a truncated file, an unsupported format or
a decompression bomb is refused before any pixel is allocated. EXIF orientation is applied by
OpenCV's decoder; 16-bit images are reduced to 8 bits; an alpha channel is kept beside the
colour pixels, which are composited on a neutral grey for the network; an embedded ICC profile
is converted to sRGB; an animation gives its first frame. Every such step is noted in the
image's record.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from cropsal.colour import convert_to_srgb
from cropsal.discover import is_uri
from cropsal.errors import ImageError
from cropsal.probe import ImageInfo, probe

log = logging.getLogger(__name__)
# OpenCV's own decoder messages would appear on stderr without the file's name; cropsal reports
# every failure itself, with the name.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

# EXIF orientation → the operations that display the stored pixels upright
ORIENT = {
    2: lambda a: cv2.flip(a, 1),
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
    4: lambda a: cv2.flip(a, 0),
    5: lambda a: cv2.flip(cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE), 1),
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: cv2.flip(cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE), 1),
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}

DEFAULT_MAX_PIXELS = 200_000_000
NEUTRAL_GREY = 128  # background under transparent pixels, for the network


REDUCED_FLAGS = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


@dataclass
class DecodedImage:
    """Pixels of one image. ``width × height`` is the displayed size in full-resolution
    pixels; ``bgr`` may be smaller when a JPEG was decoded at a reduced scale."""

    bgr: np.ndarray  # [h, w, 3] uint8 BGR, displayed orientation, sRGB; alpha composited on grey
    format: str
    width: int = 0
    height: int = 0
    alpha: np.ndarray | None = None  # [H, W] uint8 (255 opaque), None when fully opaque
    colour: np.ndarray | None = None  # [H, W, 3] uint8 BGR before compositing (when alpha)
    notes: list[str] = field(default_factory=list)
    # [h', w', 3] uint8 BGR the network input is made from (see decode_bytes' network_shrink);
    # None when not asked for
    network: np.ndarray | None = None


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


def read_uri(uri: str) -> bytes:
    """The bytes of a remote object, read through ``pyarrow.fs`` (installed with the ``ray``
    extra); :class:`ImageError` when it cannot be read."""
    try:
        from pyarrow import fs
    except ImportError as e:
        raise ImageError("cannot read URIs without pyarrow (pip install 'cropsal[ray]')") from e
    try:
        filesystem, path = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(path)
        if info.type == fs.FileType.NotFound:
            raise ImageError("cannot read: No such file or directory")
        if info.type != fs.FileType.File:
            raise ImageError("not a regular file")
        if info.size == 0:
            raise ImageError("empty file (0 bytes)")
        with filesystem.open_input_stream(path) as stream:
            return stream.read()
    except (OSError, ValueError) as e:  # pyarrow's errors derive from these
        raise ImageError(
            f"cannot read: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from e


def read_input(source: str | Path) -> bytes:
    """The bytes of a local file or of a remote object (see :func:`is_uri`)."""
    return read_uri(source) if is_uri(source) else read_bytes(Path(source))


def check_header(info: ImageInfo, max_pixels: int) -> None:
    """Refuse what the header already shows to be unusable."""
    if info.width is not None and info.height is not None:
        if info.width == 0 or info.height == 0:
            raise ImageError(f"{info.format} header gives an empty size {info.width}x{info.height}")
        if info.width * info.height > max_pixels:
            raise ImageError(
                f"{info.format} of {info.width}x{info.height} pixels is over --max-pixels "
                f"{max_pixels:,} (refused before decoding)"
            )
    if info.truncated:
        raise ImageError(f"truncated {info.format} file (it ends before the image data does)")


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return (pixels >> 8).astype(np.uint8)
    if pixels.dtype.kind == "f":
        return np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8)
    raise ImageError(f"unsupported pixel type {pixels.dtype}")


def split_alpha(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``[H, W]``, ``[H, W, 2|3|4]`` pixels → ``(HxWx3 BGR, alpha or None)``, 8 bits."""
    pixels = to_8bit(pixels)
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR), None
    channels = pixels.shape[2]
    if channels == 1:
        return cv2.cvtColor(pixels[..., 0], cv2.COLOR_GRAY2BGR), None
    if channels == 2:
        return cv2.cvtColor(pixels[..., 0], cv2.COLOR_GRAY2BGR), pixels[..., 1].copy()
    if channels == 3:
        return pixels, None
    return np.ascontiguousarray(pixels[..., :3]), pixels[..., 3].copy()


def composite(bgr: np.ndarray, alpha: np.ndarray, background: int) -> np.ndarray:
    """``HxWx3 uint8`` over a flat ``background`` grey level by ``alpha`` (0–255)."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    return (bgr.astype(np.float32) * a + background * (1.0 - a) + 0.5).astype(np.uint8)


def reduction(info: ImageInfo, shrink: float) -> int:
    """JPEG DCT-domain scale 1, 2, 4 or 8: the largest not above ``shrink`` (how much smaller
    than full resolution the caller can use the pixels)."""
    if info.format != "JPEG" or info.width is None:
        return 1
    return max([1] + [r for r in REDUCED_FLAGS if r <= shrink])


Shrink = float | Callable[[int, int], float]


def _decode_pixels(buf: np.ndarray, info: ImageInfo, flags: int, max_pixels: int) -> np.ndarray:
    """``cv2.imdecode`` with ``flags``, turned upright; :class:`ImageError` when it fails."""
    try:
        pixels = cv2.imdecode(buf, flags)
    except cv2.error as e:
        raise ImageError(f"cannot decode {info.format}: {str(e).strip().splitlines()[-1]}") from e
    if pixels is None:
        raise ImageError(f"cannot decode {info.format} (corrupt file)")
    if pixels.shape[0] * pixels.shape[1] > max_pixels:
        raise ImageError(f"{pixels.shape[1]}x{pixels.shape[0]} is over --max-pixels {max_pixels:,}")
    if flags == cv2.IMREAD_UNCHANGED and info.orientation in ORIENT:
        pixels = ORIENT[info.orientation](pixels)  # OpenCV turns only what it decodes as colour
    return pixels


def decode_scales(
    info: ImageInfo, shrink: float, network_shrink: float | None
) -> tuple[int, int | None]:
    """The DCT scales :func:`decode_bytes` decodes at: ``(for the outputs, for the network)``.
    The outputs' scale is never coarser than the network's, as one decode then serves both
    (outputs may have more pixels than they need)."""
    factor = reduction(info, shrink)
    if network_shrink is None:
        return factor, None
    network_factor = reduction(info, network_shrink)
    return min(factor, network_factor), network_factor


def _flags(info: ImageInfo, factor: int) -> int:
    return cv2.IMREAD_UNCHANGED if info.alpha else REDUCED_FLAGS.get(factor, cv2.IMREAD_COLOR)


def decode_bytes(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    shrink: Shrink = 1.0,
    network_shrink: Shrink | None = None,
) -> DecodedImage:
    """Decode an image file's bytes; raises :class:`ImageError` with a one-line reason (no file
    name: the caller's record carries it). ``shrink`` ≥ 1 (or a function of the stored width
    and height giving it) allows a JPEG to be decoded with up to that many times fewer pixels
    per side (libjpeg's scaled decoding: 1/2, 1/4 or 1/8).

    ``network_shrink`` (a number or function, as ``shrink``) asks for the pixels the network
    sees: ``image.network`` is the image decoded at that scale, the same pixels whatever
    ``shrink`` is, so the saliency map and the crop boxes do not depend on the outputs asked
    for. It is ``image.bgr`` itself when the outputs need no more pixels than the network (one
    decode at the network's scale), else a second, smaller decode."""
    info = probe(data)
    check_header(info, max_pixels)
    buf = np.frombuffer(data, np.uint8)
    known = bool(info.width and info.height)
    if callable(shrink):
        shrink = shrink(info.width, info.height) if known else 1.0
    if callable(network_shrink):
        network_shrink = network_shrink(info.width, info.height) if known else 1.0
    factor, network_factor = decode_scales(info, shrink, network_shrink)
    pixels = _decode_pixels(buf, info, _flags(info, factor), max_pixels)
    bgr, alpha = split_alpha(pixels)
    height, width = bgr.shape[:2]
    if factor > 1:  # displayed full-resolution size: the header's, turned as EXIF turned it
        turned = (height > width) != (info.height > info.width)
        width, height = (info.height, info.width) if turned else (info.width, info.height)
    image = DecodedImage(bgr, info.format, width, height, notes=list(info.problems))
    if info.frames > 1:
        image.notes.append(f"animated {info.format}: first of {info.frames} frames")
    if info.icc_profile:
        bgr, note = convert_to_srgb(bgr, info.icc_profile)
        image.bgr = bgr
        if note:
            image.notes.append(note)
    if alpha is not None and alpha.min() < 255:
        image.alpha, image.colour = alpha, image.bgr
        image.bgr = composite(image.bgr, alpha, NEUTRAL_GREY)
        image.notes.append("transparency composited on grey for the saliency network")
    if network_factor is not None:
        if network_factor == factor:
            image.network = image.bgr
        else:  # only JPEGs decode at reduced scales; they have no transparency
            small = split_alpha(
                _decode_pixels(buf, info, _flags(info, network_factor), max_pixels)
            )[0]
            if info.icc_profile:
                small = convert_to_srgb(small, info.icc_profile)[0]
            image.network = small
    return image


def decode_file(
    path: Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    shrink: Shrink = 1.0,
    network_shrink: Shrink | None = None,
) -> DecodedImage:
    """Read and decode ``path`` (see :func:`decode_bytes`)."""
    return decode_bytes(read_bytes(path), max_pixels, shrink, network_shrink)
