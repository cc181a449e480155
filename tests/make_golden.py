"""Rebuild ``tests/golden/sample_crops.json``, the windows the shipped model and policy choose on
``sample_images``. Run after changing the model or the policy, and review the diff:

    python tests/make_golden.py
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from cropsal import Cropper

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_images"
GOLDEN = Path(__file__).resolve().parent / "golden" / "sample_crops.json"
ASPECTS = ("1:1", "16:9", "9:16", "4:5")


def sample_paths() -> list[Path]:
    return sorted(p for p in SAMPLES.rglob("*") if p.suffix.lower() in {".jpg", ".png"})


def choose(cropper: Cropper) -> dict[str, list[dict]]:
    out = {}
    for path in sample_paths():
        result = cropper.crop(cv2.imread(str(path)), ASPECTS)
        out[path.relative_to(SAMPLES).as_posix()] = [
            {
                "aspect": c.aspect,
                "x": c.x,
                "y": c.y,
                "width": c.width,
                "height": c.height,
                "rule": c.rule,
            }
            for c in result.crops
        ]
    return out


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(choose(Cropper(device="cpu")), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
