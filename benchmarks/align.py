"""Alignment throughput on this machine's CPU: photos per second for HOG + 68 landmarks and for
HOG + 5 landmarks, with detection, landmark fitting and the FFHQ crop timed separately; then the FFHQ
crop alone, side by side with a straightforward PIL implementation of the dataset tool
(`benchmarks/ffhq_pil.py`), on the reference faces of ../shared/reference/ffhq-align, with the PSNR of
each against the tool's own crops.

    python benchmarks/align.py [--size 256] [--photos DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import json  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from alignment.ffhq import ffhq_quad, render_aligned  # noqa: E402
from benchmarks.ffhq_pil import pil_ffhq_crop  # noqa: E402
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


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def crop_side_by_side(shared: Path) -> None:
    """sefa-edit's FFHQ crop against the plain PIL implementation, per reference face and size."""
    reference = shared / "reference" / "ffhq-align"
    if not (reference / "faces.json").is_file():
        print(f"(no reference crops at {reference}; crop comparison skipped)")
        return
    print("\nFFHQ crop alone, from the reference landmarks (best of 3 runs each)")
    print(f"{'crop':32s} {'ours ms':>8s} {'PIL ms':>8s} {'speed-up':>9s} {'ours dB':>8s} {'PIL dB':>7s}")
    totals = [0.0, 0.0]
    for face in json.loads((reference / "faces.json").read_text())["faces"]:
        photo = Image.open(shared / face["photo"]).convert("RGB")
        rgb = np.asarray(photo)
        quad = ffhq_quad(np.array(face["landmarks_68"]))
        for size, name in face["crops"].items():
            expected = np.asarray(Image.open(reference / name).convert("RGB"))
            times = []
            for render in (lambda: render_aligned(rgb, quad, int(size)).pixels, lambda: pil_ffhq_crop(photo, quad, int(size))):
                best = float("inf")
                for _ in range(3):
                    start = time.perf_counter()
                    result = render()
                    best = min(best, time.perf_counter() - start)
                times.append((best, psnr(result, expected)))
            (ours, ours_db), (pil, pil_db) = times
            totals[0] += ours
            totals[1] += pil
            print(f"{name:32s} {ours * 1000:8.0f} {pil * 1000:8.0f} {pil / ours:8.1f}x {ours_db:8.1f} {pil_db:7.1f}")
    print(f"{'all':32s} {totals[0] * 1000:8.0f} {totals[1] * 1000:8.0f} {totals[1] / totals[0]:8.1f}x")


if __name__ == "__main__":
    main()
    crop_side_by_side(Path(__file__).resolve().parents[2] / "shared")
