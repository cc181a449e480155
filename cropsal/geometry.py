"""Crop targets and window geometry, in integer pixels of the image as displayed."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cropsal.errors import CropsalError

DEFAULT_ASPECTS = ("1:1", "16:9", "9:16")
MAX_TARGET_PIXELS = 100_000_000  # a --size larger than this is refused as a typo


@dataclass(frozen=True)
class Box:
    """An axis-aligned window: left ``x``, top ``y``, ``width`` and ``height`` in pixels."""

    x: int
    y: int
    width: int
    height: int

    def inside(self, width: int, height: int) -> bool:
        return (
            0 <= self.x
            and 0 <= self.y
            and self.width >= 1
            and self.height >= 1
            and self.x + self.width <= width
            and self.y + self.height <= height
        )


@dataclass(frozen=True)
class Target:
    """A requested crop: an aspect ratio ``ratio_w:ratio_h``, and optionally an exact output size.

    ``label`` is what the user asked for (``"16:9"`` or ``"600x600"``); ``suffix`` is the file
    name suffix (``"16x9"`` or ``"600x600"``).
    """

    ratio_w: int
    ratio_h: int
    size: tuple[int, int] | None = None

    @property
    def aspect(self) -> str:
        return f"{self.ratio_w}:{self.ratio_h}"

    @property
    def label(self) -> str:
        return f"{self.size[0]}x{self.size[1]}" if self.size else self.aspect

    @property
    def suffix(self) -> str:
        return self.label.replace(":", "x")

    @property
    def ratio(self) -> float:
        return self.ratio_w / self.ratio_h


_ASPECT = re.compile(r"^\s*(\d+(?:\.\d{1,6})?)\s*[:/x]\s*(\d+(?:\.\d{1,6})?)\s*$")
_SIZE = re.compile(r"^\s*(\d{1,9})\s*[xX×]\s*(\d{1,9})\s*$")


MAX_ASPECT_TERM = 100_000  # largest number accepted on either side of W:H


def parse_aspect(text: str) -> Target:
    """``"16:9"`` → ``Target(16, 9)``; raises :class:`CropsalError` naming the bad value."""
    shown = text if len(text) <= 40 else text[:37] + "..."
    m = _ASPECT.match(text)
    if m and any(len(p) > 12 or float(p) > MAX_ASPECT_TERM for p in (m[1], m[2])):
        raise CropsalError(
            f"invalid aspect {shown!r}: W and H must be at most {MAX_ASPECT_TERM:,} with at most "
            "6 decimals"
        )
    if not m or float(m[1]) <= 0 or float(m[2]) <= 0:
        raise CropsalError(
            f"invalid aspect {shown!r}: expected W:H with positive numbers, e.g. 16:9"
        )
    if "." in text:
        # keep decimals exact by scaling to integers (1.91:1 → 191:100)
        scale = 10 ** max(len(p.split(".")[1]) if "." in p else 0 for p in (m[1], m[2]))
        w, h = round(float(m[1]) * scale), round(float(m[2]) * scale)
        g = math.gcd(w, h)
        return Target(w // g, h // g)
    return Target(int(m[1]), int(m[2]))


def parse_size(text: str) -> Target:
    """``"600x600"`` → a target of that aspect (reduced) and that exact output size."""
    m = _SIZE.match(text)
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise CropsalError(f"invalid size {text!r}: expected WxH in whole pixels, e.g. 600x600")
    w, h = int(m[1]), int(m[2])
    if w * h > MAX_TARGET_PIXELS:
        raise CropsalError(f"invalid size {text!r}: more than {MAX_TARGET_PIXELS:,} pixels")
    g = math.gcd(w, h)
    return Target(w // g, h // g, (w, h))


def largest_window(width: int, height: int, ratio: float) -> tuple[int, int]:
    """``(w, h)`` of the largest window of aspect ``ratio`` (w / h) inside ``width × height``;
    the side that does not fill the image is rounded to the nearest pixel (at least 1)."""
    if width / height > ratio:
        return max(1, min(width, round(height * ratio))), height
    return width, max(1, min(height, round(width / ratio)))
