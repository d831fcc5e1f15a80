"""End-to-end throughput of `run` on this machine's CPU: photos per minute, and time split by stage.

Uses the bundled example model (64 px StyleGAN2 + its encoder) unless --generator/--encoder are given,
on the real photos of ../shared/photos/face-recognition (10 faces in 9 photos) by default.

    python benchmarks/pipeline.py [--photos DIR] [--steps 100] [--generator CKPT --encoder ENC]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.run import DEFAULT_ENCODER, DEFAULT_GENERATOR, RunOptions, run_pipeline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(Path(__file__).resolve().parents[2] / "shared" / "photos" / "face-recognition"))
    parser.add_argument("--generator", default=str(DEFAULT_GENERATOR))
    parser.add_argument("--encoder", default=str(DEFAULT_ENCODER))
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    if not Path(args.photos).is_dir():
        sys.exit(f"no photos at {args.photos}; pass --photos DIR")
    out = Path(tempfile.mkdtemp(prefix="sefa-bench-"))
    try:
        start = time.perf_counter()
        result = run_pipeline(args.photos, out, Path(args.generator), Path(args.encoder) if args.encoder else None,
                              RunOptions(steps=args.steps), device="cpu")
        total = time.perf_counter() - start
        rerun_start = time.perf_counter()
        run_pipeline(args.photos, out, Path(args.generator), Path(args.encoder) if args.encoder else None,
                     RunOptions(steps=args.steps), device="cpu")
        rerun = time.perf_counter() - rerun_start
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"{result['photos']} photos, {result['faces']} faces, {args.steps} inversion steps, generator {Path(args.generator).name}")
    print(f"total {total:.1f} s: {60 * result['photos'] / total:.1f} photos/min, {60 * result['faces'] / total:.1f} faces/min")
    for stage, seconds in result["seconds"].items():
        print(f"  {stage:10s} {seconds:7.2f} s  ({100 * seconds / total:4.1f}%)")
    print(f"rerun with everything done: {rerun:.1f} s")


if __name__ == "__main__":
    main()
