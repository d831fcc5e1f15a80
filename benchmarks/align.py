"""Alignment throughput on this machine's CPU: photos per second for HOG + 68 landmarks and for
HOG + 5 landmarks, with detection, landmark fitting and the FFHQ warp timed separately.

Runs over the real photos in ../shared/photos (19 photos, 53 faces), one pass each after a warm-up.

    python benchmarks/align.py [--size 256] [--photos DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alignment.ffhq import ffhq_quad, render_aligned  # noqa: E402
from alignment.inputs import list_inputs  # noqa: E402
from alignment.landmarks import FaceFinder  # noqa: E402
from common.photo_io import read_photo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(Path(__file__).resolve().parents[2] / "shared" / "photos"))
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    if not Path(args.photos).is_dir():
        sys.exit(f"no photos at {args.photos}; pass --photos DIR")
    photos = [read_photo(item.path) for item in list_inputs(args.photos)]
    megapixels = sum(p.rgb.shape[0] * p.rgb.shape[1] for p in photos) / 1e6
    print(f"{len(photos)} photos, {megapixels:.1f} megapixels in all, crops of {args.size}px")
    print(f"{'model':10s} {'faces':>6s} {'detect s':>9s} {'landmarks s':>12s} {'warp s':>8s} {'photos/s':>9s} {'faces/s':>8s}")
    for landmarks in ("68", "5"):
        finder = FaceFinder(landmarks=landmarks)
        finder.find(photos[0].rgb)  # warm-up
        detect = fit = warp = 0.0
        faces = 0
        for photo in photos:
            start = time.perf_counter()
            boxes = finder.detect(photo.rgb)
            detect += time.perf_counter() - start
            for box, _ in boxes:
                start = time.perf_counter()
                points = finder.landmarks(photo.rgb, box)
                fit += time.perf_counter() - start
                start = time.perf_counter()
                render_aligned(photo.rgb, ffhq_quad(points), args.size)
                warp += time.perf_counter() - start
                faces += 1
        total = detect + fit + warp
        print(f"HOG+{landmarks:6s} {faces:6d} {detect:9.2f} {fit:12.3f} {warp:8.2f} {len(photos) / total:9.2f} {faces / total:8.2f}")


if __name__ == "__main__":
    main()
