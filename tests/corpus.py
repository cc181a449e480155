"""Generators of awkward and broken image files for the input-hardening tests.

Nothing here is committed as a binary: every file is built from numpy arrays with Pillow,
OpenCV or a few hand-packed bytes (ICC profiles, PNG/GIF/JPEG headers) into a test's tmp folder.
The functions return bytes, or write files and return what a test needs to check them.
"""

from __future__ import annotations

import io
import itertools
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# --- pixels ------------------------------------------------------------------------------------

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def stripes(width: int, height: int, colours=(RED, GREEN, BLUE)) -> np.ndarray:
    """``HxWx3 uint8 RGB``: vertical stripes of ``colours``, left to right, equal widths."""
    rgb = np.zeros((height, width, 3), np.uint8)
    edges = np.linspace(0, width, len(colours) + 1).round().astype(int)
    for colour, a, b in zip(colours, edges[:-1], edges[1:]):
        rgb[:, a:b] = colour
    return rgb


def stripe_centres(width: int, n: int = 3) -> list[int]:
    """x of the middle of each of ``n`` equal stripes across ``width``."""
    edges = np.linspace(0, width, n + 1)
    return [int((a + b) / 2) for a, b in itertools.pairwise(edges)]


def textured(width: int, height: int, seed: int = 0) -> np.ndarray:
    """``HxWx3 uint8 RGB`` with a colour gradient, soft noise and a bright disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack(
        [
            40 + 160 * xx / max(1, width - 1),
            90 + 0 * xx,
            40 + 160 * yy / max(1, height - 1),
        ],
        axis=-1,
    )
    img += rng.normal(0, 4, img.shape)
    cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
    r = max(1.0, 0.15 * min(width, height))
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (250, 240, 60)
    return np.clip(img, 0, 255).astype(np.uint8)


MARK = 10  # side of the corner markers


def marked(width: int, height: int) -> np.ndarray:
    """``HxWx3 uint8 RGB`` as it must be displayed: a red marker in the top-left corner, a
    green one in the top-right corner, a red→blue gradient left to right and dark→light top to
    bottom in the green channel, so that any flip or rotation is visible."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack(
        [
            200 - 150 * xx / (width - 1),
            40 + 120 * yy / (height - 1),
            50 + 150 * xx / (width - 1),
        ],
        axis=-1,
    ).astype(np.uint8)
    img[:MARK, :MARK] = RED
    img[:MARK, -MARK:] = GREEN
    return img


# EXIF orientation → how the stored pixels are turned into the displayed ones (numpy views).
DISPLAY = {
    1: lambda s: s,
    2: lambda s: s[:, ::-1],
    3: lambda s: s[::-1, ::-1],
    4: lambda s: s[::-1, :],
    5: lambda s: s.transpose(1, 0, 2),
    6: lambda s: np.rot90(s, -1),  # rotate 90° clockwise
    7: lambda s: s.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda s: np.rot90(s, 1),  # rotate 90° counter-clockwise
}
# … and its inverse: what to store so that the file displays as given
STORE = {**{o: DISPLAY[o] for o in (1, 2, 3, 4, 5, 7)}, 6: DISPLAY[8], 8: DISPLAY[6]}


# --- encoders ----------------------------------------------------------------------------------


def pil_bytes(image: np.ndarray | Image.Image, fmt: str, **params) -> bytes:
    """Encode an RGB(A)/grey array or a Pillow image with Pillow."""
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image))
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def cv2_bytes(bgr: np.ndarray, ext: str, params=()) -> bytes:
    ok, buf = cv2.imencode(ext, bgr, list(params))
    assert ok, ext
    return buf.tobytes()


def jpeg_markers(data: bytes) -> list[int]:
    """The marker codes of a JPEG up to its first scan (to check what a generator produced)."""
    pos, markers = 2, []
    while pos + 4 <= len(data):
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            break
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return markers


def exif_jpeg(displayed: np.ndarray, orientation: int) -> bytes:
    """A JPEG whose stored pixels, turned by EXIF ``orientation``, display as ``displayed``."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = np.ascontiguousarray(STORE[orientation](displayed))
    return pil_bytes(stored, "JPEG", quality=95, subsampling=0, exif=exif.tobytes())


def cmyk_jpeg(rgb: np.ndarray) -> bytes:
    """An Adobe CMYK JPEG (Pillow's RGB→CMYK, written inverted with an APP14 marker)."""
    return pil_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)


def _adobe_segment(data: bytes) -> int:
    """Offset of the APP14 "Adobe" segment's marker."""
    pos = data.find(b"\xff\xee\x00\x0eAdobe")
    assert pos > 0, "no Adobe APP14 segment"
    return pos


def ycck_jpeg(rgb: np.ndarray) -> bytes:
    """A YCCK JPEG: four components Y, Cb, Cr, K with the Adobe APP14 transform flag 2.

    Pillow cannot write YCCK itself, so the colour transform libjpeg applies when it writes
    YCCK is done here: from the stored (Adobe, inverted) CMYK samples C M Y K, the YCbCr of
    (255-C, 255-M, 255-Y) is computed and stored with K in a four-component JPEG, and the
    APP14 segment's transform byte is set from 0 (CMYK) to 2 (YCCK). Pillow stores CMYK
    inverted, so the samples handed to it are inverted first.
    """
    ink = np.asarray(Image.fromarray(rgb).convert("CMYK"), np.float64)  # 0 = no ink
    stored = 255.0 - ink  # what an Adobe CMYK JPEG holds
    r, g, b = (255.0 - stored[..., k] for k in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    ycck = np.clip(np.stack([y, cb, cr, stored[..., 3]], -1).round(), 0, 255).astype(np.uint8)
    handed = Image.fromarray(255 - ycck, "CMYK")  # Pillow inverts CMYK when it writes
    data = bytearray(pil_bytes(handed, "JPEG", quality=95))
    pos = _adobe_segment(bytes(data))
    assert data[pos + 15] == 0, "expected transform 0 (CMYK) in Pillow's APP14 segment"
    data[pos + 15] = 2
    return bytes(data)


def animated(fmt: str, colours, size=(40, 30), **params) -> bytes:
    """An animation of flat frames, one per colour (GIF or WebP)."""
    frames = [Image.new("RGB", size, c) for c in colours]
    return pil_bytes(
        frames[0], fmt, save_all=True, append_images=frames[1:], duration=80, loop=0, **params
    )


def rgba_image(width: int = 96, height: int = 64) -> np.ndarray:
    """``HxWx4 uint8 RGBA``: left third fully transparent (green underneath), middle third
    half-transparent red, right third opaque blue, with a little texture in the alpha-free
    colour so crops can be told apart."""
    rgba = np.zeros((height, width, 4), np.uint8)
    a, b = width // 3, 2 * width // 3
    rgba[:, :a] = (0, 200, 0, 0)
    rgba[:, a:b] = (255, 0, 0, 128)
    rgba[:, b:] = (0, 0, 255, 255)
    rgba[::4, :, 1] += 20  # faint horizontal lines (green channel)
    return rgba


def flatten(rgba: np.ndarray, background: int) -> np.ndarray:
    """RGBA composited over a flat grey ``background`` (float, RGB)."""
    a = rgba[..., 3:].astype(np.float64) / 255.0
    return rgba[..., :3] * a + background * (1.0 - a)


# --- ICC profiles ------------------------------------------------------------------------------

D50 = np.array([0.9642, 1.0, 0.8249])
BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)


def _xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def colorants_d50(primaries_xy, white_xy=(0.3127, 0.3290)) -> np.ndarray:
    """``[3, 3]`` linear RGB → XYZ (columns r, g, b) for the given primaries and white point,
    chromatically adapted to D50 with the Bradford transform, as a display profile stores it."""
    p = np.stack([_xyz(*xy) for xy in primaries_xy], axis=1)
    white = _xyz(*white_xy)
    m = p * np.linalg.solve(p, white)
    cone_src, cone_dst = BRADFORD @ white, BRADFORD @ D50
    adapt = np.linalg.inv(BRADFORD) @ np.diag(cone_dst / cone_src) @ BRADFORD
    return adapt @ m


SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
ADOBE_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz_tag(xyz) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def curv_gamma(gamma: float) -> bytes:
    """A ``curv`` tag holding a single gamma (u8Fixed8)."""
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))


def curv_table(values: np.ndarray) -> bytes:
    """A ``curv`` tag with a table of linear values 0–1 at evenly spaced codes."""
    table = np.clip(np.round(np.asarray(values) * 65535), 0, 65535).astype(">u2")
    return b"curv\0\0\0\0" + struct.pack(">I", len(table)) + table.tobytes()


def para_tag(function_type: int, params) -> bytes:
    """A ``para`` (parametric curve) tag."""
    return b"para\0\0\0\0" + struct.pack(">H2x", function_type) + b"".join(_s15(p) for p in params)


def srgb_trc_values(n: int = 1024) -> np.ndarray:
    x = np.linspace(0.0, 1.0, n)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _desc_tag(text: str) -> bytes:
    """A v2 ``textDescriptionType``: ASCII, empty Unicode and ScriptCode parts."""
    ascii_ = text.encode("ascii") + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_))
        + ascii_
        + struct.pack(">II", 0, 0)
        + struct.pack(">HB", 0, 0)
        + b"\0" * 67
    )


def icc_profile(
    description: str, matrix: np.ndarray, trc: bytes | tuple[bytes, bytes, bytes]
) -> bytes:
    """A small ICC v2 display profile (RGB, XYZ connection space) with colorant ``matrix``
    (columns r, g, b, D50) and tone curve tag(s) ``trc``."""
    curves = trc if isinstance(trc, tuple) else (trc, trc, trc)
    tags = [
        (b"desc", _desc_tag(description)),
        (b"cprt", b"text\0\0\0\0" + b"no copyright, test profile\0"),
        (b"wtpt", _xyz_tag(D50)),
        (b"rXYZ", _xyz_tag(matrix[:, 0])),
        (b"gXYZ", _xyz_tag(matrix[:, 1])),
        (b"bXYZ", _xyz_tag(matrix[:, 2])),
        (b"rTRC", curves[0]),
        (b"gTRC", curves[1]),
        (b"bTRC", curves[2]),
    ]
    table_end = 128 + 4 + 12 * len(tags)
    offset, table, body = table_end, b"", b""
    for sig, data in tags:
        table += struct.pack(">4sII", sig, offset, len(data))
        padded = data + b"\0" * (-len(data) % 4)
        body += padded
        offset += len(padded)
    size = offset
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"  # preferred CMM
        + struct.pack(">I", 0x02100000)  # version 2.1
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # perceptual intent
        + b"".join(_s15(v) for v in D50)
        + b"\0" * 4  # creator
        + b"\0" * 16  # profile ID
        + b"\0" * 28
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def adobe_like_profile() -> bytes:
    """Adobe-RGB-like: Adobe (1998) primaries, D65 white, a single gamma of 2.2."""
    return icc_profile("cropsal test Adobe-like", colorants_d50(ADOBE_PRIMARIES), curv_gamma(2.2))


def srgb_like_profile() -> bytes:
    """sRGB primaries and white with the sRGB tone curve as a 1024-entry table."""
    return icc_profile(
        "cropsal test sRGB", colorants_d50(SRGB_PRIMARIES), curv_table(srgb_trc_values())
    )


# --- hand-packed headers -----------------------------------------------------------------------


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_with_chunk(png: bytes, chunk: bytes) -> bytes:
    """``png`` with ``chunk`` inserted right after IHDR."""
    assert png[12:16] == b"IHDR"
    end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    return png[:end] + chunk + png[end:]


def png_bomb(width: int, height: int) -> bytes:
    """A well-formed PNG whose IHDR claims ``width × height`` RGB pixels, with a short IDAT
    (a few rows of zeros): the header alone asks for gigabytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its frame header (SOF) rewritten to claim ``width × height``."""
    data = bytearray(jpeg)
    pos = 2
    while True:
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        pos += 2 + length


def gif_bomb(width: int, height: int) -> bytes:
    """A GIF whose logical screen and one frame claim ``width × height``, with a tiny LZW
    stream; the trailer is there, so the file is complete as far as its structure goes."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    lzw = b"\x02\x02\x44\x01\x00"  # min code size 2, one sub-block, terminator
    return screen + frame + lzw + b"\x3b"


HEIC_HEAD = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 40
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n"
SVG_TEXT = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<rect width="10" height="10" fill="red"/></svg>\n'
)
XML_SVG_TEXT = b'<?xml version="1.0" encoding="UTF-8"?>\n' + SVG_TEXT
PSD_HEAD = b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 64, 64, 8, 3) + b"\x00" * 64


def random_bytes(n: int, seed: int) -> bytes:
    from cropsal.probe import sniff_format

    data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    assert sniff_format(data[:16]) is None, "random bytes that look like an image: change seed"
    return data


# --- corpora -----------------------------------------------------------------------------------


@dataclass
class Expect:
    """What a valid corpus file must decode to: the displayed size, and optionally reference
    pixels (RGB as displayed; RGBA for transparency), a note to find, a pixel tolerance."""

    width: int
    height: int
    rgb: np.ndarray | None = None
    rgba: np.ndarray | None = None
    note: str | None = None
    tolerance: float = 4.0  # mean absolute difference allowed against ``rgb``
    extra: dict = field(default_factory=dict)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


ORIENT_W, ORIENT_H = 64, 40  # displayed size of the EXIF orientation images


def write_valid_corpus(root: Path) -> dict[str, Expect]:
    """Valid but awkward images under ``root``; returns their relative paths → expectations."""
    files: dict[str, Expect] = {}

    def add(rel: str, data: bytes, expect: Expect) -> None:
        _write(root / rel, data)
        files[rel] = expect

    pic = textured(120, 80, seed=1)
    add("baseline.jpg", pil_bytes(pic, "JPEG", quality=95), Expect(120, 80, pic))
    prog = pil_bytes(pic, "JPEG", quality=95, progressive=True)
    assert 0xC2 in jpeg_markers(prog) and 0xC0 not in jpeg_markers(prog)
    add("progressive.jpg", prog, Expect(120, 80, pic))

    bands = stripes(90, 40)
    add("cmyk.jpg", cmyk_jpeg(bands), Expect(90, 40, bands, tolerance=6))
    add("ycck.jpg", ycck_jpeg(bands), Expect(90, 40, bands, tolerance=6))

    grey = np.asarray(Image.fromarray(pic).convert("L"))
    add("grey.jpg", pil_bytes(grey, "JPEG", quality=95), Expect(120, 80, np.dstack([grey] * 3)))
    add("grey_png.png", pil_bytes(grey, "PNG"), Expect(120, 80, np.dstack([grey] * 3), tolerance=0))

    shown = marked(ORIENT_W, ORIENT_H)
    for o in range(1, 9):
        add(f"orient/exif{o}.jpg", exif_jpeg(shown, o), Expect(ORIENT_W, ORIENT_H, shown))

    add("rgb8.png", pil_bytes(pic, "PNG"), Expect(120, 80, pic, tolerance=0))
    deep = pic.astype(np.uint16) * 256 + 0xA5  # 16 bits whose high byte is the 8-bit picture
    add("rgb16.png", cv2_bytes(deep[..., ::-1], ".png"), Expect(120, 80, pic, tolerance=0.5))
    pal = Image.fromarray(bands).quantize(colors=4)
    add("palette.png", pil_bytes(pal, "PNG"), Expect(90, 40, bands, tolerance=0))
    index = np.zeros((40, 90), np.uint8)
    index[:, 30:60], index[:, 60:] = 1, 2
    pal_t = Image.frombytes("P", (90, 40), index.tobytes())
    pal_t.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    rgba_pal = np.zeros((40, 90, 4), np.uint8)
    rgba_pal[:, :30] = (255, 0, 0, 0)  # index 0 is fully transparent via tRNS
    rgba_pal[:, 30:60] = (0, 255, 0, 255)
    rgba_pal[:, 60:] = (0, 0, 255, 255)
    add(
        "palette_trns.png",
        pil_bytes(pal_t, "PNG", transparency=0),
        Expect(90, 40, rgba=rgba_pal, note="transparency composited"),
    )
    rgba = rgba_image()
    add(
        "rgba.png",
        pil_bytes(rgba, "PNG"),
        Expect(96, 64, rgba=rgba, note="transparency composited"),
    )

    colours = (RED, GREEN, BLUE)
    add(
        "anim.gif",
        animated("GIF", colours),
        Expect(40, 30, np.full((30, 40, 3), RED, np.uint8), note="first of 3 frames"),
    )
    add(
        "anim_webp.webp",
        animated("WEBP", colours, lossless=True),
        Expect(40, 30, np.full((30, 40, 3), RED, np.uint8), note="first of 3 frames"),
    )
    add("still.webp", pil_bytes(pic, "WEBP", quality=95), Expect(120, 80, pic, tolerance=6))
    add("pic.bmp", pil_bytes(pic, "BMP"), Expect(120, 80, pic, tolerance=0))
    add(
        "tiff_pic.tif",
        pil_bytes(pic, "TIFF", compression="tiff_lzw"),
        Expect(120, 80, pic, tolerance=0),
    )

    patches = icc_patches()
    add(
        "icc_adobe.jpg",
        pil_bytes(patches, "JPEG", quality=100, subsampling=0, icc_profile=adobe_like_profile()),
        Expect(patches.shape[1], patches.shape[0], note="converted from ICC profile"),
    )
    add(
        "icc_srgb.jpg",
        pil_bytes(patches, "JPEG", quality=100, subsampling=0, icc_profile=srgb_like_profile()),
        Expect(patches.shape[1], patches.shape[0]),
    )

    add("dot.jpg", pil_bytes(np.full((1, 1, 3), 200, np.uint8), "JPEG"), Expect(1, 1))
    add("panorama.jpg", pil_bytes(textured(4000, 40, 2), "JPEG", quality=90), Expect(4000, 40))
    add("banner.jpg", pil_bytes(textured(40, 4000, 3), "JPEG", quality=90), Expect(40, 4000))

    add("HOLIDAY.JPG", pil_bytes(pic, "JPEG", quality=95), Expect(120, 80, pic))
    add("SCAN.PNG", pil_bytes(pic, "PNG"), Expect(120, 80, pic, tolerance=0))
    add("my photo ü 写真 №1.jpg", pil_bytes(pic, "JPEG", quality=95), Expect(120, 80, pic))
    add("a/b c/ď/deep.png", pil_bytes(pic, "PNG"), Expect(120, 80, pic, tolerance=0))
    return files


ICC_COLOURS = [  # RGB patches: grey, moderately saturated green / cyan / red / magenta, primaries
    (128, 128, 128),
    (90, 170, 90),
    (60, 160, 170),
    (170, 70, 70),
    (170, 80, 160),
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
]
PATCH = 16


def icc_patches() -> np.ndarray:
    """A row of flat ``PATCH × PATCH`` patches of :data:`ICC_COLOURS` (RGB)."""
    return np.concatenate([np.full((PATCH, PATCH, 3), c, np.uint8) for c in ICC_COLOURS], axis=1)


def truncations(data: bytes, cuts: list[int]) -> dict[int, bytes]:
    return {c: data[:c] for c in cuts}


@dataclass
class Broken:
    """What a broken input's error must say (lower-case substrings, all required)."""

    words: tuple[str, ...]
    kind: str


def write_broken_corpus(root: Path) -> dict[str, Broken]:
    """Broken inputs (plus two good images) under ``root``; relative path → expectation.

    Good images are ``good.jpg`` and ``sub/good.png``; everything else must fail cleanly.
    """
    files: dict[str, Broken] = {}

    def add(rel: str, data: bytes, kind: str, *words: str) -> None:
        _write(root / rel, data)
        files[rel] = Broken(words, kind)

    pic = textured(160, 120, seed=4)
    jpg = pil_bytes(pic, "JPEG", quality=90)
    png = pil_bytes(pic, "PNG")
    gif = animated("GIF", (RED, GREEN, BLUE), size=(60, 40))
    webp = pil_bytes(pic, "WEBP", quality=80)
    _write(root / "good.jpg", jpg)
    _write(root / "sub" / "good.png", png)

    add("empty.jpg", b"", "zero-byte", "empty")
    add("empty.png", b"", "zero-byte", "empty")
    sos = jpg.index(b"\xff\xda")
    for cut in (20, sos - 3, sos + 40, len(jpg) // 2, len(jpg) - 2, len(jpg) - 1):
        add(f"cut/jpeg_{cut}.jpg", jpg[:cut], "truncated JPEG", "truncated", "jpeg")
    idat = png.index(b"IDAT")
    for cut in (20, 40, idat + 100, len(png) // 2, len(png) - 12, len(png) - 1):
        add(f"cut/png_{cut}.png", png[:cut], "truncated PNG", "truncated", "png")
    for cut in (12, 300, len(gif) // 2, len(gif) - 1):
        add(f"cut/gif_{cut}.gif", gif[:cut], "truncated GIF", "truncated", "gif")
    for cut in (16, 40, len(webp) // 2, len(webp) - 1):
        add(f"cut/webp_{cut}.webp", webp[:cut], "truncated WebP", "truncated", "webp")

    add("notes.jpg", b"Shopping list:\n- milk\n- bread\n" * 20, "text", "not an image")
    add("noise.png", random_bytes(5000, seed=7), "random bytes", "not an image")
    add("noise.webp", random_bytes(300, seed=8), "random bytes", "not an image")

    add("bomb/huge.png", png_bomb(100_000, 100_000), "bomb PNG", "100000x100000", "max-pixels")
    add("bomb/huge.jpg", jpeg_with_size(jpg, 65_500, 65_500), "bomb JPEG", "65500x65500")
    add("bomb/huge.gif", gif_bomb(65_535, 65_535), "bomb GIF", "65535x65535", "max-pixels")

    (root / "folder.jpg").mkdir()
    files["folder.jpg"] = Broken(("folder",), "directory named .jpg")

    add("disguised/heic.jpg", HEIC_HEAD, "HEIC", "unsupported", "heic")
    add("disguised/pdf.png", PDF_HEAD, "PDF", "unsupported", "pdf")
    add("disguised/svg.png", XML_SVG_TEXT, "SVG", "unsupported", "svg")
    add("disguised/psd.tif", PSD_HEAD, "PSD", "unsupported", "psd")

    (root / "dangling.jpg").symlink_to(root / "nowhere" / "gone.jpg")
    files["dangling.jpg"] = Broken(("cannot read", "no such file"), "dangling symlink")
    os.mkfifo(root / "pipe.png")  # must be refused, not opened (opening would block)
    files["pipe.png"] = Broken(("not a regular file",), "named pipe")

    loop = root / "loop" / "inner"
    loop.mkdir(parents=True)
    (loop / "back").symlink_to(root / "loop", target_is_directory=True)
    files["loop/inner/back"] = Broken(("symlink loop",), "symlink loop")
    return files


def png_bad_crc(png: bytes) -> bytes:
    """``png`` with one byte of its first IDAT's data changed (the chunk CRC no longer fits)."""
    data = bytearray(png)
    data[png.index(b"IDAT") + 40] ^= 0xFF
    return bytes(data)


def gif_frame_outside_screen() -> bytes:
    """A structurally complete GIF whose one frame is larger than its 10×10 logical screen."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 600, 600, 0)
    return screen + frame + b"\x02\x02\x44\x01\x00" + b"\x3b"


def write_unsupported_named(root: Path) -> dict[str, Broken]:
    """Unsupported formats under their own extensions (given to the CLI by name, since a folder
    walk only picks image extensions)."""
    files = {
        "photo.heic": (HEIC_HEAD, "HEIC", ("unsupported", "heic")),
        "doc.pdf": (PDF_HEAD, "PDF", ("unsupported", "pdf")),
        "logo.svg": (SVG_TEXT, "SVG", ("unsupported", "svg")),
        "layers.psd": (PSD_HEAD, "PSD", ("unsupported", "psd")),
    }
    out = {}
    for name, (data, kind, words) in files.items():
        _write(root / name, data)
        out[name] = Broken(words, kind)
    return out
