"""Throughput of `align` and `run` on this machine: photos per minute with 1 and N worker processes, and
`run` stage by stage (`--no-stream`) against streamed (with the time until its first photo is pasted
back), side by side in one run.

Uses the bundled example model (64 px StyleGAN2 + its encoder) unless --generator/--encoder are given,
on the real photos of ../shared/photos (both folders: 19 photos, 53 faces; 3 times over for the align
rows) by default. Every measurement starts from an empty OUT; the outputs of the variants are checked
to be the same bytes.

    python benchmarks/pipeline.py [--photos DIR] [--steps 0 20] [--workers N] [--generator CKPT --encoder ENC]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from alignment.stage import AlignOptions, run_align  # noqa: E402
from common.process_pool import usable_cores  # noqa: E402
from pipeline.run import DEFAULT_ENCODER, DEFAULT_GENERATOR, RunOptions, run_pipeline  # noqa: E402

MEDIA = (".png", ".jpg", ".npy")


def media(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix in MEDIA and not p.name.startswith(".")}


def timed(work) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def first_photo_after(out: Path, work) -> tuple[float, float | None, object]:
    """(seconds, seconds until the first pasted-back photo was complete, result): a watcher thread sees
    the first `.paste.json` marker, written once a photo's pictures are all there."""
    seen: list[float] = []
    start = time.perf_counter()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and not seen:
            if any((out / "photos").glob("*/.paste.json")):
                seen.append(time.perf_counter() - start)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    result = work()
    done.set()
    watcher.join()
    return time.perf_counter() - start, seen[0] if seen else None, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(Path(__file__).resolve().parents[2] / "shared" / "photos"))
    parser.add_argument("--generator", default=str(DEFAULT_GENERATOR))
    parser.add_argument("--encoder", default=str(DEFAULT_ENCODER))
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 20], help="inversion steps of the `run` rows")
    parser.add_argument("--workers", type=int, default=usable_cores())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--align-repeat", type=int, default=3,
                        help="the align rows see the photos this many times (copies under other names): a longer batch, "
                             "as a user's folder is, so the workers' start-up (about 2 s: Python, dlib's models) is paid once")
    args = parser.parse_args()
    if not Path(args.photos).is_dir():
        sys.exit(f"no photos at {args.photos}; pass --photos DIR")
    scratch = Path(tempfile.mkdtemp(prefix="sefa-bench-"))
    generator, encoder = Path(args.generator), Path(args.encoder) if args.encoder else None
    rows: list[tuple] = []  # what, seconds, photos, faces (, seconds to the first pasted photo)
    try:
        aligned = {}
        many = scratch / "photos"
        for copy in range(args.align_repeat):
            for photo in sorted(Path(args.photos).rglob("*")):
                if photo.suffix.lower() in (".jpg", ".jpeg", ".png") and photo.is_file():
                    target = many / f"copy{copy}" / photo.relative_to(args.photos)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(photo.resolve())
        for workers in sorted({1, args.workers}):
            out = scratch / f"align{workers}"
            seconds, summary = timed(lambda: run_align(str(many), out, AlignOptions(), lambda r: None, lambda m: None,
                                                       workers=workers))
            rows.append((f"align, {workers} worker(s)", seconds, summary.photos, summary.crops, None))
            aligned[workers] = media(out)
        same_align = len({tuple(sorted(m.items())) for m in aligned.values()}) == 1
        for steps in args.steps:
            made = {}
            variants = [("stage by stage, 1 worker", False, 1), (f"stage by stage, {args.workers} workers", False, args.workers),
                        (f"streamed, {args.workers} workers", True, args.workers)]
            for name, stream, workers in variants:
                out = scratch / f"run{steps}_{stream}_{workers}"
                options = RunOptions(steps=steps, workers=workers, stream=stream, perceptual="none")
                seconds, first, result = first_photo_after(
                    out, lambda: run_pipeline(args.photos, out, generator, encoder, options, device=args.device))
                rows.append((f"run --steps {steps}, {name}", seconds, result["photos"], result["faces"], first))
                made[name] = media(out)
            same = len({tuple(sorted(m.items())) for m in made.values()}) == 1
            rows.append((f"  (run --steps {steps}: outputs {'byte-identical' if same else 'DIFFER'} across the three)", 0, 0, 0, None))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{usable_cores()} usable core(s); generator {generator.name}; photos {args.photos}; device {args.device}")
    print(f"{'what':<48} {'seconds':>8} {'photos/min':>11} {'faces/min':>10} {'first photo':>12}")
    for what, seconds, photos, faces, first in rows:
        if not seconds:
            print(what)
            continue
        print(f"{what:<48} {seconds:8.1f} {60 * photos / seconds:11.1f} {60 * faces / seconds:10.1f} "
              f"{'' if first is None else f'{first:.1f} s':>12}")
    print(f"align outputs {'byte-identical' if same_align else 'DIFFER'} across worker counts")


if __name__ == "__main__":
    main()
