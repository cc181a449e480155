"""Helpers shared by cropsal's tests: generated images, a subprocess runner for the CLI.

Every image a test needs is generated with numpy/OpenCV into the test's tmp folder; the only
files read from the repository are the model and ``sample_images/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_IMAGES = REPO_ROOT / "sample_images"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}

# Every CLI run in the tests uses these, so that runs are reproducible on any machine.
CLI_DEFAULTS = ("--device", "cpu", "--jobs", "2")


def synthetic_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An ``HxWx3 uint8 BGR`` test picture: a noisy grey gradient with one bright disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 60 + 40 * xx / max(1, width - 1) + 20 * yy / max(1, height - 1)
    img = np.repeat(base[..., None], 3, axis=2) + rng.normal(0, 6, (height, width, 3))
    cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    radius = max(1.0, 0.12 * min(width, height))
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
    img[disc] = rng.uniform(150, 255, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """Encode a :func:`synthetic_image` in the format named by ``path``'s suffix."""
    ext = path.suffix.lower()
    ok, buf = cv2.imencode(
        ".jpg" if ext in (".jpg", ".jpeg") else ext, synthetic_image(width, height, seed)
    )
    assert ok, f"cannot encode {path}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())
    return path


def image_files(root: Path) -> list[Path]:
    """Non-hidden image files under ``root``, sorted."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def temp_files(root: Path) -> list[Path]:
    """Leftover temporary files (``*.part``) anywhere under ``root``."""
    return sorted(p for p in root.rglob("*.part")) if root.exists() else []


def read_image(path: Path) -> np.ndarray:
    img = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None, f"{path} does not decode"
    return img


def expected_window(width: int, height: int, ratio: float, rule: str) -> tuple[int, int]:
    """``(w, h)`` a crop of aspect ``ratio`` must have, given the policy rule that chose it:
    the whole image when the image already has (nearly) that shape or the rounding makes the
    largest window the whole image, else the largest window."""
    from cropsal.geometry import largest_window

    if rule == "whole":
        near = abs(np.log(width / height / ratio)) < np.log(1.05)
        assert near or largest_window(width, height, ratio) == (width, height), (width, height)
        return width, height
    return largest_window(width, height, ratio)


def logsumexp(a: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    m = a.max()
    return float(m + np.log(np.exp(a - m).sum()))


@dataclass
class CliResult:
    rc: int
    stdout: str
    stderr: str

    def records(self) -> list[dict]:
        """The JSON Lines on stdout (every non-empty line must be one JSON object)."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("cropsal: error:")]


def run_cropsal(
    *args: str | os.PathLike,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    defaults: bool = True,
    env: dict[str, str] | None = None,
) -> CliResult:
    """Run ``python -m cropsal ARGS`` in a subprocess and capture its exit status and output;
    ``env`` adds to (or replaces) variables of this process's environment."""
    argv = [sys.executable, "-m", "cropsal", *(os.fspath(a) for a in args)]
    if defaults and len(args) and args[0] == "crop":
        argv += list(CLI_DEFAULTS)
    proc = subprocess.run(
        argv,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        cwd=cwd,
        env={**os.environ, **env} if env else None,
        timeout=180,
        check=False,
    )
    decode = lambda b: b.decode("utf-8", "surrogateescape")
    return CliResult(proc.returncode, decode(proc.stdout), decode(proc.stderr))
