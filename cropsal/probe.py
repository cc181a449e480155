"""Read an image file's header without decoding it: format, pixel size, frames, transparency,
an embedded ICC profile, and whether the file is cut short.

Knowing the size first lets cropsal refuse a decompression bomb before allocating its pixels,
and knowing the file is truncated turns a silently grey-filled decode into a clear error.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from cropsal.errors import ImageError

MAX_ICC_BYTES = 4 << 20  # a larger embedded profile (compressed or not) is ignored


@dataclass
class ImageInfo:
    format: str  # "JPEG", "PNG", "GIF", "WebP", "BMP", "TIFF"
    width: int | None = None
    height: int | None = None
    frames: int = 1
    alpha: bool = False
    truncated: bool = False
    icc_profile: bytes | None = None
    orientation: int = 1  # EXIF orientation found in a PNG eXIf or WebP EXIF chunk (1–8)
    problems: list[str] = field(default_factory=list)  # parts of the header that were ignored


SIGNATURES = [
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
]
UNSUPPORTED = [
    (b"%PDF", "PDF"),
    (b"8BPS", "Photoshop PSD"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000 codestream"),
    (b"\x00\x00\x01\x00", "Windows icon (ICO)"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip archive"),
]


def sniff_format(head: bytes) -> str | None:
    """Format name from a file's first bytes, ``None`` when unknown."""
    for magic, name in SIGNATURES:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def describe_unsupported(head: bytes) -> str:
    """A one-line reason for a file whose signature is not a supported image format."""
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", "replace").strip()
        kind = (
            "HEIC/HEIF"
            if brand.startswith(("hei", "mif", "hev"))
            else ("AVIF" if brand.startswith("avi") else f"ISO media, brand {brand!r}")
        )
        return f"unsupported format: {kind}"
    for magic, name in UNSUPPORTED:
        if head.startswith(magic):
            return f"unsupported format: {name}"
    text = head.lstrip()[:5].lower()
    if text.startswith((b"<svg", b"<?xml")):
        return "unsupported format: SVG/XML (vector images are not supported)"
    return "not an image (unknown file signature)"


def probe(data: bytes) -> ImageInfo:
    """Header facts of ``data``; raises :class:`ImageError` for unknown or unsupported formats."""
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise ImageError(describe_unsupported(data[:16]))
    reader = {"JPEG": _jpeg, "PNG": _png, "GIF": _gif, "WebP": _webp, "BMP": _bmp, "TIFF": _tiff}
    info = ImageInfo(fmt)
    try:
        reader[fmt](data, info)
    except (struct.error, IndexError, zlib.error):
        info.truncated = True
    return info


def _jpeg(data: bytes, info: ImageInfo) -> None:
    """Walk the markers to the first scan; the file is complete if an EOI follows it."""
    pos, icc_parts = 2, {}
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageError("corrupt JPEG (bad marker)")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + length]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            info.height, info.width = struct.unpack(">HH", segment[1:5])
        elif marker == 0xE2 and segment.startswith(b"ICC_PROFILE\x00"):
            icc_parts[segment[12]] = segment[14:]
        elif marker == 0xDA:  # start of scan: entropy-coded data follows
            info.truncated = data.rfind(b"\xff\xd9") < pos
            break
        pos += 2 + length
    else:
        info.truncated = True
    if icc_parts:
        info.icc_profile = b"".join(icc_parts[k] for k in sorted(icc_parts))


def _png(data: bytes, info: ImageInfo) -> None:
    """Walk the chunks; complete when IEND is reached inside the file."""
    pos, frames, idat = 8, 0, False
    while True:
        if pos + 8 > len(data):
            info.truncated = True
            return
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if pos + 12 + length > len(data):
            info.truncated = True
            return
        if kind == b"IHDR":
            info.width, info.height, _, colour = struct.unpack(">IIBB", body[:10])
            info.alpha = colour in (4, 6)
        elif kind == b"tRNS":
            info.alpha = True
        elif kind == b"iCCP":
            info.icc_profile = _inflate_profile(body, info)
        elif kind == b"eXIf":
            info.orientation = exif_orientation(body)
        elif kind == b"acTL":
            (frames,) = struct.unpack(">I", body[:4])
        elif kind == b"IDAT":
            idat = True
        if (
            zlib.crc32(data[pos + 4 : pos + 8 + length])
            != struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        ):
            raise ImageError(f"corrupt PNG (bad checksum in {kind.decode('latin-1')!r} chunk)")
        if kind == b"IEND":
            info.truncated = not idat
            info.frames = max(1, frames)
            return
        pos += 12 + length


def _inflate_profile(body: bytes, info: ImageInfo) -> bytes | None:
    """The profile of an ``iCCP`` chunk (name, NUL, method, zlib data), inflated at most to
    ``MAX_ICC_BYTES``; ``None`` (with a note) when it is malformed or larger."""
    name_end = body.find(b"\x00")
    if name_end < 0:
        info.problems.append("malformed ICC profile chunk ignored")
        return None
    inflater = zlib.decompressobj()
    profile = inflater.decompress(body[name_end + 2 :], MAX_ICC_BYTES)
    if inflater.unconsumed_tail:
        info.problems.append(f"ICC profile over {MAX_ICC_BYTES >> 20} MB ignored")
        return None
    return profile


def exif_orientation(tiff: bytes) -> int:
    """The Orientation tag (0x0112) of a TIFF-structured EXIF block, 1 when absent or invalid."""
    if tiff.startswith(b"Exif\x00\x00"):
        tiff = tiff[6:]
    if tiff[:2] not in (b"II", b"MM") or len(tiff) < 8:
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
        for k in range(count):
            tag, _, _, value = struct.unpack(
                order + "HHI4s", tiff[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
            )
            if tag == 0x0112:
                (v,) = struct.unpack(order + "H", value[:2])
                return v if 1 <= v <= 8 else 1
    except struct.error:
        return 1
    return 1


def _gif(data: bytes, info: ImageInfo) -> None:
    """Count the image descriptors up to the trailer (0x3B)."""
    info.width, info.height, flags = struct.unpack("<HHB", data[6:11])
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    frames = 0
    while True:
        block = data[pos]
        if block == 0x3B:
            break
        if block == 0x21:  # extension: label, then sub-blocks
            if data[pos + 1] == 0xF9 and data[pos + 3] & 1:
                info.alpha = True
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor, optional local table, LZW size, sub-blocks
            frames += 1
            left, top, fw, fh = struct.unpack("<HHHH", data[pos + 1 : pos + 9])
            if left + fw > info.width or top + fh > info.height:
                raise ImageError(f"corrupt GIF (frame {frames} lies outside the image)")
            local = data[pos + 9]
            pos += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)
        else:
            raise ImageError(f"corrupt GIF (unknown block 0x{block:02x})")
    info.frames = max(1, frames)
    info.truncated = frames == 0


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    while True:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
        if pos >= len(data):
            raise IndexError


def _webp(data: bytes, info: ImageInfo) -> None:
    """RIFF chunks: VP8X (canvas, flags), VP8/VP8L (size), ANMF (frames), ICCP."""
    (riff_size,) = struct.unpack("<I", data[4:8])
    info.truncated = len(data) < 8 + riff_size
    pos, frames = 12, 0
    while pos + 8 <= min(len(data), 8 + riff_size):
        kind, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if kind == b"VP8X":
            info.alpha = bool(body[0] & 0x10)
            info.width = 1 + int.from_bytes(body[4:7], "little")
            info.height = 1 + int.from_bytes(body[7:10], "little")
        elif kind == b"VP8 " and info.width is None:
            w, h = struct.unpack("<HH", body[6:10])
            info.width, info.height = w & 0x3FFF, h & 0x3FFF
        elif kind == b"VP8L" and info.width is None:
            bits = int.from_bytes(body[1:5], "little")
            info.width, info.height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
            info.alpha = bool(bits >> 28 & 1)
        elif kind == b"ANMF":
            frames += 1
        elif kind == b"ICCP":
            info.icc_profile = body if size <= MAX_ICC_BYTES else None
        elif kind == b"EXIF":
            info.orientation = exif_orientation(body)
        pos += 8 + size + (size & 1)
    info.frames = max(1, frames)


def _bmp(data: bytes, info: ImageInfo) -> None:
    (file_size,) = struct.unpack("<I", data[2:6])
    width, height = struct.unpack("<ii", data[18:26])
    (bits,) = struct.unpack("<H", data[28:30])
    info.width, info.height = abs(width), abs(height)
    info.alpha = bits == 32
    info.truncated = len(data) < file_size


def _tiff(data: bytes, info: ImageInfo) -> None:
    """Width and length tags of the first directory (strips are left to the decoder)."""
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    for k in range(count):
        tag, kind, _, value = struct.unpack(
            order + "HHI4s", data[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
        )
        number = struct.unpack(order + ("H" if kind == 3 else "I"), value[: 2 if kind == 3 else 4])[
            0
        ]
        if tag == 256:
            info.width = number
        elif tag == 257:
            info.height = number
        elif tag == 338:  # ExtraSamples: an alpha channel
            info.alpha = True
