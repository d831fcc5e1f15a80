"""`factorize --describe`'s cost: seconds for 10 directions at 64 and 256 px on this CPU, split into
rendering and measuring, in one run.

No trained weights exist here, so two kinds of renders are timed side by side: a StyleGAN2 (the bundled
64 px model, and FFHQ-256's layout with random weights), whose renders have no face (dlib looks and finds
none: the cheap case), and the stand-in of `tests/test_describe.py`, a real face crop turned and zoomed
by the code (every render has a face: all measures and the identity descriptor run, the costly case).

    python benchmarks/describe.py [--directions 10] [--samples 6]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.tune import stand_in  # noqa: E402
from factorization import describe  # noqa: E402
from tests.test_describe import FRONTAL, TurningFace, face_crop  # noqa: E402


def timed(generator, directions: int, samples: int, layers: list[int]) -> tuple[float, float, int]:
    """(total seconds, of which measuring, faces found) for `directions` random unit directions."""
    measuring = 0.0
    original = describe.summarise

    def counted(*args, **kwargs):
        nonlocal measuring
        start = time.perf_counter()
        result = original(*args, **kwargs)
        measuring += time.perf_counter() - start
        return result

    describe.summarise = counted
    try:
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(directions, generator.w_dim))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        start = time.perf_counter()
        results = describe.describe_directions(generator, vectors, layers, describe.DescribeSettings(num_samples=samples),
                                               torch.device("cpu"))
        total = time.perf_counter() - start
    finally:
        describe.summarise = original
    return total, measuring, sum(r.faces_found for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directions", type=int, default=10)
    parser.add_argument("--samples", type=int, default=6)
    args = parser.parse_args()
    print(f"--describe, {args.directions} directions x {args.samples} samples x 2 ends, {torch.get_num_threads()} threads on CPU")
    print(f"{'renders':44}{'px':>5}{'total s':>10}{'measuring s':>13}{'s/direction':>13}{'faces':>8}")
    for resolution in (64, 256):
        generator = stand_in(resolution, torch.device("cpu"))
        total, measuring, faces = timed(generator, args.directions, args.samples, list(range(generator.num_ws)))
        print(f"{'StyleGAN2, random / untrained (no face)':44}{resolution:>5}{total:>10.1f}{measuring:>13.1f}"
              f"{total / args.directions:>13.2f}{faces:>8}")
        face = TurningFace(face_crop(FRONTAL, resolution))
        total, measuring, faces = timed(face, args.directions, args.samples, [0])
        print(f"{'a real face turned and zoomed (every render)':44}{resolution:>5}{total:>10.1f}{measuring:>13.1f}"
              f"{total / args.directions:>13.2f}{faces:>8}")


if __name__ == "__main__":
    main()
