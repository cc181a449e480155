"""Make a folder of camera-sized JPEGs (4000×3000, quality 90) for throughput benchmarks, by
upscaling photos of an eye-tracking data set (they stay out of the repository).

    python benchmarks/make_large_jpegs.py ../shared/eyetracking/osie /tmp/large --count 100
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with images/ (or images directly)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()

    folder = args.source / "images" if (args.source / "images").is_dir() else args.source
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    args.out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(paths[: args.count]):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        w, h = (
            (args.width, args.height) if img.shape[1] >= img.shape[0] else (args.height, args.width)
        )
        big = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(args.out / f"{i:04d}_{path.stem}.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 90])


if __name__ == "__main__":
    main()
