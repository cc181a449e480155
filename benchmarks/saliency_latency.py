"""Latency of ``Cropper.saliency()`` (pre-processing included) against Twitter's network on the
same 384×512 photo, interleaved in one run on the same machine; prints medians and the ratio.

    python benchmarks/saliency_latency.py [--model cropsal/models/X.onnx] [--rounds 50]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from cropsal import Cropper
from cropsal.teachers.fastgaze import DEFAULT_PATH, FastGaze

PHOTO = Path(__file__).resolve().parents[1] / "sample_images" / "space" / "rocket.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: shipped)")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    image = cv2.resize(cv2.imread(str(PHOTO)), (512, 384), interpolation=cv2.INTER_AREA)
    cropper = Cropper(args.model, device="cpu", threads=args.threads)
    fastgaze = FastGaze(DEFAULT_PATH, threads=args.threads)
    for _ in range(5):  # warm-up
        cropper.saliency(image)
        fastgaze.log_saliency(image)
    ours, theirs = [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        cropper.saliency(image)
        t1 = time.perf_counter()
        fastgaze.log_saliency(image)
        t2 = time.perf_counter()
        ours.append(t1 - t0)
        theirs.append(t2 - t1)
    result = {
        "image": "384x512",
        "threads": args.threads,
        "cropsal_model": cropper.model.name,
        "cropsal_ms": round(1000 * float(np.median(ours)), 2),
        "fastgaze_ms": round(1000 * float(np.median(theirs)), 2),
    }
    result["speedup"] = round(result["fastgaze_ms"] / result["cropsal_ms"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
