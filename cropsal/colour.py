"""Colour management for matrix/TRC ("matrix-shaper") ICC profiles: pixels in a profile's RGB
space (Display P3, Adobe RGB, ProPhoto, …) converted to sRGB, which the network and every
viewer of a preview assume.

Only RGB profiles with a colorant matrix and tone curves are converted; LUT-based, CMYK and
grey profiles are reported as left as they are.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

# sRGB colorants adapted to the D50 connection space (Bradford), as in the ICC sRGB profiles.
SRGB_D50 = np.array(
    [
        [0.4360747, 0.3850649, 0.1430804],
        [0.2225045, 0.7168786, 0.0606169],
        [0.0139322, 0.0971045, 0.7141733],
    ]
)
SAME_AS_SRGB = 2e-3  # colorant difference under which a profile is treated as sRGB
LINEAR_LEVELS = 4096  # resolution of the linear-light table used for re-encoding


@dataclass
class RGBProfile:
    name: str
    matrix: np.ndarray  # [3, 3] linear RGB → XYZ (D50), columns r, g, b
    curves: list[np.ndarray]  # per channel r, g, b: [256] linear values of the 8-bit codes


def _s15(b: bytes) -> float:
    return struct.unpack(">i", b)[0] / 65536.0


def _curve(tag: bytes) -> np.ndarray:
    """``curv`` or ``para`` tone curve sampled at the 256 8-bit codes (0–1 → 0–1)."""
    x = np.linspace(0.0, 1.0, 256)
    kind = tag[:4]
    if kind == b"curv":
        (count,) = struct.unpack(">I", tag[8:12])
        if count == 0:
            return x
        if count == 1:
            return x ** (struct.unpack(">H", tag[12:14])[0] / 256.0)
        table = np.frombuffer(tag[12 : 12 + 2 * count], ">u2") / 65535.0
        return np.interp(x, np.linspace(0.0, 1.0, count), table)
    if kind == b"para":
        (ftype,) = struct.unpack(">H", tag[8:10])
        n = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}[ftype]
        p = [_s15(tag[12 + 4 * i : 16 + 4 * i]) for i in range(n)] + [0.0] * (7 - n)
        g, a, b, c, d, e, f = p
        if ftype == 0:
            return x**g
        if ftype == 1:
            return np.where(x >= -b / a, np.maximum(a * x + b, 0) ** g, 0.0)
        if ftype == 2:
            return np.where(x >= -b / a, np.maximum(a * x + b, 0) ** g + c, c)
        if ftype == 3:
            return np.where(x >= d, np.maximum(a * x + b, 0) ** g, c * x)
        return np.where(x >= d, np.maximum(a * x + b, 0) ** g + e, c * x + f)
    raise ValueError(f"unknown tone curve type {kind!r}")


def _description(tag: bytes | None) -> str:
    if not tag:
        return "unnamed"
    if tag[:4] == b"desc":
        (n,) = struct.unpack(">I", tag[8:12])
        return tag[12 : 12 + n].rstrip(b"\x00").decode("latin-1", "replace")
    if tag[:4] == b"mluc":
        count, _ = struct.unpack(">II", tag[8:16])
        if count:
            length, offset = struct.unpack(">II", tag[20:28])
            return tag[offset : offset + length].decode("utf-16-be", "replace")
    return "unnamed"


def parse_profile(icc: bytes) -> RGBProfile | str:
    """A matrix-shaper RGB profile, or a string saying why the profile cannot be used."""
    try:
        space, pcs = icc[16:20], icc[20:24]
        (count,) = struct.unpack(">I", icc[128:132])
        tags = {}
        for k in range(count):
            sig, offset, size = struct.unpack(">4sII", icc[132 + 12 * k : 144 + 12 * k])
            tags[sig] = icc[offset : offset + size]
        name = _description(tags.get(b"desc"))
        if space != b"RGB " or pcs != b"XYZ ":
            return f"ICC profile {name!r} ({space.decode('latin-1').strip()}) not converted"
        if not all(t in tags for t in (b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC")):
            return f"ICC profile {name!r} is table-based; not converted"
        matrix = np.array(
            [
                [_s15(tags[t][8 + 4 * i : 12 + 4 * i]) for t in (b"rXYZ", b"gXYZ", b"bXYZ")]
                for i in range(3)
            ]
        )
        with np.errstate(all="ignore"):
            curves = [_curve(tags[t]) for t in (b"rTRC", b"gTRC", b"bTRC")]
        if not all(np.isfinite(c).all() and c.min() >= -0.01 and c.max() <= 1.5 for c in curves):
            return f"ICC profile {name!r} has invalid tone curves; not converted"
        if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-6:
            return f"ICC profile {name!r} has an invalid colorant matrix; not converted"
        return RGBProfile(name, matrix, curves)
    except (struct.error, ValueError, IndexError, KeyError, ZeroDivisionError) as e:
        return f"unreadable ICC profile ({e}); not converted"


def srgb_encode_table() -> np.ndarray:
    """``[LINEAR_LEVELS]`` uint8 sRGB codes of evenly spaced linear-light values 0–1."""
    v = np.linspace(0.0, 1.0, LINEAR_LEVELS)
    encoded = np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)
    return np.clip(np.round(encoded * 255), 0, 255).astype(np.uint8)


def is_srgb(profile: RGBProfile) -> bool:
    srgb_curve = _srgb_decode()
    close_curves = all(np.abs(c - srgb_curve).max() < 0.01 for c in profile.curves)
    return close_curves and np.abs(profile.matrix - SRGB_D50).max() < SAME_AS_SRGB


def _srgb_decode() -> np.ndarray:
    x = np.linspace(0.0, 1.0, 256)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def to_srgb(bgr: np.ndarray, profile: RGBProfile) -> np.ndarray:
    """``HxWx3 uint8 BGR`` in ``profile``'s space → ``HxWx3 uint8 BGR`` in sRGB."""
    convert = np.linalg.inv(SRGB_D50) @ profile.matrix  # profile linear RGB → sRGB linear RGB
    linear = np.empty(bgr.shape, np.float32)
    for ch in range(3):  # BGR planes take the b, g, r curves
        linear[..., ch] = profile.curves[2 - ch].astype(np.float32)[bgr[..., ch]]
    rgb = linear[..., ::-1] @ convert.T.astype(np.float32)
    codes = np.clip(rgb * (LINEAR_LEVELS - 1) + 0.5, 0, LINEAR_LEVELS - 1).astype(np.int32)
    return np.ascontiguousarray(srgb_encode_table()[codes][..., ::-1])


def convert_to_srgb(bgr: np.ndarray, icc: bytes) -> tuple[np.ndarray, str | None]:
    """Apply an embedded profile; returns the pixels and a note for the record (``None`` when
    the profile is sRGB already)."""
    profile = parse_profile(icc)
    if isinstance(profile, str):
        return bgr, profile
    if is_srgb(profile):
        return bgr, None
    return to_srgb(bgr, profile), f"converted from ICC profile {profile.name!r} to sRGB"
