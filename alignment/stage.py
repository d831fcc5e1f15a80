"""`sefa-edit align`: photos in, FFHQ crops + sidecar JSON out, one JSON line per crop on stdout.

Outputs under OUT mirror the input tree: `OUT/<sub>/<stem>_<i>.png` and `<stem>_<i>.json` per face
(face 0 is the largest), `OUT/failures.jsonl` for photos with no face or that cannot be read, and
`OUT/.done/` markers so a rerun skips finished photos (`overwrite` redoes them).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from common import atomic, images
from common.errors import UserError
from common.photo_io import UnreadableImage, read_photo
from common.progress import track
from alignment.ffhq import ffhq_quad, render_aligned
from alignment.inputs import InputItem, list_inputs
from alignment.landmarks import FaceFinder

SIDECAR_VERSION = 1
SIZES = (256, 512, 1024)


@dataclass(frozen=True)
class AlignOptions:
    size: int = 256
    detector: str = "hog"
    landmarks: str = "68"
    largest: bool = False
    overwrite: bool = False
    upsample: int = 1
    detect_max_side: int = 1280
    min_score: float = 0.2


@dataclass
class AlignSummary:
    photos: int = 0
    crops: int = 0
    skipped_photos: int = 0
    no_face: int = 0
    unreadable: int = 0
    records: list[dict] = field(default_factory=list)


def _check_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{out_dir}: cannot write the output folder ({exc.strerror or exc}); choose a writable OUT") from exc


def _output_stems(items: list[InputItem]) -> dict[Path, Path]:
    """OUT-relative stem per input; photos that share a stem in one folder keep their suffix to stay apart."""
    counts = Counter(item.relative.with_suffix("") for item in items)
    return {
        item.path: item.relative.with_suffix("") if counts[item.relative.with_suffix("")] == 1
        else item.relative.with_name(item.relative.name.replace(".", "_"))
        for item in items
    }


def _record(crop: Path, meta: Path, source: Path, face_index: int) -> dict:
    return {"aligned": str(crop), "meta": str(meta), "source": str(source), "face_index": face_index}


def run_align(
    input_spec: str,
    out_dir: Path,
    options: AlignOptions,
    emit: Callable[[dict], None],
    say: Callable[[str], None],
    stdin: Iterator[str] | None = None,
) -> AlignSummary:
    if options.size not in SIZES:
        raise UserError(f"--size {options.size}: expected one of {', '.join(map(str, SIZES))}")
    if input_spec != "-" and not Path(input_spec).exists():
        raise UserError(f"{input_spec}: no such file or folder; pass a photo, a folder of photos, or - for stdin")
    if input_spec != "-" and not os.access(input_spec, os.R_OK):
        raise UserError(f"{input_spec}: not readable (permission denied)")
    try:
        items = list_inputs(input_spec, stdin)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    _check_out_dir(out_dir)
    summary = AlignSummary()
    if not items:
        say(f"no images found in {input_spec} (looked for .jpg .jpeg .png .webp .bmp .tif .tiff)")
        return summary
    finder: FaceFinder | None = None  # loaded on first need: a rerun with everything done skips the model load
    stems = _output_stems(items)
    failures = out_dir / "failures.jsonl"

    for item in track(items, "aligning"):
        summary.photos += 1
        stem = stems[item.path]
        done_marker = out_dir / ".done" / f"{stem}.json"
        if not options.overwrite and (previous := _finished(done_marker, out_dir, options)) is not None:
            summary.skipped_photos += 1
            for record in previous:
                summary.crops += 1
                summary.records.append(record)
                emit(record)
            continue
        try:
            photo = read_photo(item.path)
        except (UnreadableImage, OSError) as exc:
            summary.unreadable += 1
            reason = str(exc) if isinstance(exc, UnreadableImage) else f"cannot read ({exc.strerror or exc})"
            say(f"{item.path}: {reason}; skipped")
            atomic.append_jsonl(failures, {"source": str(item.path), "error": "unreadable", "reason": reason, "time": time.time()})
            continue
        if finder is None:
            finder = FaceFinder(options.detector, options.landmarks, options.upsample, options.detect_max_side,
                                min_score=options.min_score)
        faces = finder.find(photo.rgb)
        if options.largest:
            faces = faces[:1]
        if not faces:
            summary.no_face += 1
            say(f"{item.path}: no face found; skipped (try --detector cnn for small or turned faces)")
            atomic.append_jsonl(failures, {"source": str(item.path), "error": "no_face", "time": time.time()})
        crops = []
        for index, face in enumerate(faces):
            quad = ffhq_quad(face.landmarks)
            crop_path = out_dir / f"{stem}_{index}.png"
            meta_path = crop_path.with_suffix(".json")
            images.save_rgb(crop_path, render_aligned(photo.rgb, quad, options.size))
            atomic.write_json(meta_path, {
                "version": SIDECAR_VERSION,
                "source": str(item.path.resolve()),
                "source_size": [int(photo.rgb.shape[1]), int(photo.rgb.shape[0])],
                "exif_orientation": photo.exif_orientation,
                "face_index": index,
                "box": list(face.box),
                "detector": options.detector,
                "detector_score": round(face.score, 4),
                "landmarks_model": options.landmarks,
                "landmarks": face.landmarks.round(2).tolist(),
                "quad": quad.tolist(),
                "output_size": options.size,
                "crop": crop_path.name,
            })
            record = _record(crop_path, meta_path, item.path, index)
            crops.append(record)
            summary.crops += 1
            summary.records.append(record)
            emit(record)
        atomic.write_json(done_marker, {"source": str(item.path.resolve()), "size": options.size,
                                        "landmarks_model": options.landmarks, "largest": options.largest, "crops": crops})
    return summary


def _finished(marker: Path, out_dir: Path, options: AlignOptions) -> list[dict] | None:
    """The records of a photo finished by an earlier run with the same settings, if all its files exist."""
    if not marker.is_file():
        return None
    try:
        done = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if (done.get("size"), done.get("landmarks_model"), done.get("largest")) != (options.size, options.landmarks, options.largest):
        return None
    crops = done.get("crops", [])
    if not all(Path(r["aligned"]).is_file() and Path(r["meta"]).is_file() for r in crops):
        return None
    return crops


def summary_line(summary: AlignSummary, out_dir: Path) -> str:
    parts = [f"aligned {summary.crops} face(s) from {summary.photos} photo(s)"]
    if summary.skipped_photos:
        parts.append(f"{summary.skipped_photos} photo(s) already done")
    problems = []
    if summary.no_face:
        problems.append(f"{summary.no_face} without a face")
    if summary.unreadable:
        problems.append(f"{summary.unreadable} unreadable")
    line = "; ".join(parts)
    if problems:
        line += f"; {', '.join(problems)} (see {out_dir / 'failures.jsonl'})"
    return line
