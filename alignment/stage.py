"""`sefa-edit align`: photos in, FFHQ crops + sidecar JSON out, one JSON line per crop on stdout.

Outputs under OUT mirror the input tree: `OUT/<sub>/<stem>_<i>.png` and `<stem>_<i>.json` per face
(face 0 is the largest), `OUT/failures.jsonl` for photos that could not be used, and `OUT/.done/`
markers. A marker records the fingerprint of what made the photo's crops (the photo's bytes and every
setting that changes a crop), so a rerun skips exactly the photos whose fingerprint is unchanged and
redoes the others, removing crops the new settings no longer produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from common import atomic, images
from common.errors import UserError
from common.failures import FailureLog
from common.fingerprint import content_sha256, fingerprint
from common.naming import unique_stems
from common.output_folder import claimed_output_folder, check_output_path
from common.photo_io import DEFAULT_MAX_PIXELS, UnreadableImage, check_max_pixels, read_photo
from common.process_pool import OrderedPool, WorkerDied
from common.progress import track
from alignment.ffhq import ffhq_quad, render_aligned
from alignment.inputs import InputItem, list_inputs
from alignment.landmarks import FaceFinder

SIDECAR_VERSION = 2  # 2: "quad" is the crop's true source quad (shrink offset included)
MARKER_VERSION = 2
SIZES = (256, 512, 1024)
DETECTORS = ("hog", "cnn")
LANDMARK_MODELS = ("68", "5")
NO_FACE = "no face found (try --detector cnn for small or turned faces)"


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
    max_pixels: int = DEFAULT_MAX_PIXELS

    def validate(self) -> None:
        """Every option checked before any photo is read or model loaded."""
        if self.size not in SIZES:
            raise UserError(f"--size {self.size}: expected one of {', '.join(map(str, SIZES))}")
        if self.detector not in DETECTORS:
            raise UserError(f"--detector {self.detector!r}: expected hog or cnn")
        if self.landmarks not in LANDMARK_MODELS:
            raise UserError(f"--landmarks {self.landmarks!r}: expected 68 or 5")
        if not 0 <= self.upsample <= 4:
            raise UserError(f"--upsample {self.upsample}: expected 0 to 4")
        check_max_pixels(self.max_pixels)

    def result_settings(self) -> dict:
        """The settings that change the crops (and so belong in their fingerprint)."""
        return {"size": self.size, "detector": self.detector, "landmarks": self.landmarks, "largest": self.largest,
                "upsample": self.upsample, "detect_max_side": self.detect_max_side, "min_score": self.min_score,
                "sidecar": SIDECAR_VERSION}


@dataclass
class AlignSummary:
    photos: int = 0
    crops: int = 0
    skipped_photos: int = 0
    redone_photos: int = 0
    no_face: int = 0
    unreadable: int = 0
    records: list[dict] = field(default_factory=list)


def _record(crop: Path, meta: Path, source: Path, face_index: int) -> dict:
    """What stdout and the marker hold: absolute paths, so nothing depends on the working directory."""
    return {"aligned": str(crop.resolve()), "meta": str(meta.resolve()), "source": str(Path(source).resolve()),
            "face_index": face_index}


def run_align(
    input_spec: str,
    out_dir: Path,
    options: AlignOptions,
    emit: Callable[[dict], None],
    say: Callable[[str], None],
    stdin: Iterator[str] | None = None,
    exclude: Path | None = None,
    workers: int = 1,
) -> AlignSummary:
    """Align every photo of `input_spec` on `workers` processes; `exclude` (default OUT) is a folder never
    scanned for input."""
    options.validate()
    check_output_path(out_dir)
    if input_spec != "-" and not Path(input_spec).exists() and not Path(input_spec).is_symlink():
        raise UserError(f"{input_spec}: no such file or folder; pass a photo, a folder of photos, or - for stdin")
    try:
        items = list_inputs(input_spec, stdin, exclude=exclude or out_dir)
    except ValueError as exc:  # a bad stdin line
        raise UserError(str(exc)) from exc
    with claimed_output_folder(out_dir):
        return _align_all(items, input_spec, out_dir, options, emit, say, workers)


@dataclass(frozen=True)
class PhotoJob:
    """One photo to align, with everything a worker process needs (it shares nothing with the driver)."""

    item: InputItem
    stem: str
    out_dir: Path
    options: AlignOptions
    fingerprint: str
    previous: dict | None  # the earlier run's marker


@dataclass(frozen=True)
class PhotoResult:
    """What aligning one photo did: `kind` is aligned, skipped (done before), unreadable or crashed."""

    item: InputItem
    kind: str
    crops: tuple[dict, ...] = ()
    reason: str = ""
    redone: bool = False


class AlignRecorder:
    """The driver's side of alignment: counts, `failures.jsonl`, JSON lines, in photo order. One recorder
    whether the photos were aligned here, in worker processes, on Ray or streamed into `run`."""

    def __init__(self, out_dir: Path, emit: Callable[[dict], None], say: Callable[[str], None]) -> None:
        self.summary = AlignSummary()
        self.failures = FailureLog(out_dir, say, key="source")
        self.emit = emit

    def record(self, result: PhotoResult) -> None:
        summary = self.summary
        summary.photos += 1
        summary.redone_photos += result.redone
        if result.kind == "skipped":
            summary.skipped_photos += 1
        if result.kind in ("unreadable", "crashed"):
            summary.unreadable += 1
            self.failures.add(result.item.path, result.kind, result.reason)
            return
        if not result.crops:
            summary.no_face += 1
            self.failures.add(result.item.path, "no_face", NO_FACE)
        for record in result.crops:
            summary.crops += 1
            summary.records.append(record)
            self.emit(record)


def plan_photos(items: list[InputItem], out_dir: Path, options: AlignOptions) -> list[PhotoJob | PhotoResult]:
    """Per photo, in order: its result when an earlier run already made it (fingerprint unchanged, crops
    there), else the job that makes it. Checked here, not in workers, so a rerun starts no process."""
    stems = unique_stems([item.relative.as_posix() for item in items])
    settings = options.result_settings()
    planned: list[PhotoJob | PhotoResult] = []
    for item, stem in zip(items, stems):
        try:
            photo_digest = content_sha256(item.path) if item.path.is_file() else None
        except OSError:
            photo_digest = None
        photo_print = fingerprint(photo=photo_digest, **settings)
        previous = _read_marker(out_dir / ".done" / f"{stem}.json")
        if not options.overwrite and previous is not None and previous.get("fingerprint") == photo_print \
                and _all_present(previous.get("crops", [])):
            planned.append(PhotoResult(item, "skipped", tuple(previous["crops"])))
        else:
            planned.append(PhotoJob(item, stem, out_dir, options, photo_print, previous))
    return planned


def align_planned(planned: list[PhotoJob | PhotoResult], pool: OrderedPool, run_ahead: bool = False) -> Iterator[PhotoResult]:
    """Every photo's result in order, the jobs done by `pool` (local processes, or Ray tasks with the
    same interface: `pipeline/ray_stages.py`). `run_ahead`: every photo is handed to the workers at once,
    so they align on while the caller spends its time on each photo (`run` inverting its faces)."""
    jobs = [(entry,) for entry in planned if isinstance(entry, PhotoJob)]
    done = pool.map(align_photo, jobs, ahead=len(jobs) + 1 if run_ahead else None)
    for entry in planned:
        if isinstance(entry, PhotoResult):
            yield entry
            continue
        result = next(done)
        yield PhotoResult(entry.item, "crashed", reason=f"alignment failed: {result}", redone=entry.previous is not None) \
            if isinstance(result, WorkerDied) else result


def _align_all(items: list[InputItem], input_spec: str, out_dir: Path, options: AlignOptions, emit, say,
               workers: int = 1) -> AlignSummary:
    recorder = AlignRecorder(out_dir, emit, say)
    if not items:
        say(f"no images found in {input_spec} (looked for .jpg .jpeg .png .webp .bmp .tif .tiff)")
        return recorder.summary
    planned = plan_photos(items, out_dir, options)
    jobs = sum(isinstance(entry, PhotoJob) for entry in planned)
    with OrderedPool(min(workers, jobs)) as pool:  # no process is started for a rerun with every photo done
        # every photo handed out at once: a slow group photo at the head of the order never leaves a worker idle
        for result in track(align_planned(planned, pool, run_ahead=True), "aligning", total=len(planned), unit="photos"):
            recorder.record(result)
    if recorder.summary.redone_photos:
        say(f"{recorder.summary.redone_photos} photo(s) redone: the photo, the settings or the earlier outputs changed")
    return recorder.summary


_finders: dict[tuple, FaceFinder] = {}  # per process: the detector and landmark models, loaded on first need


def align_photo(job: PhotoJob) -> PhotoResult:
    """Detect, fit landmarks, crop and write one photo's faces and its marker (in whichever process runs it)."""
    item, options, out_dir, previous = job.item, job.options, job.out_dir, job.previous
    redone = previous is not None
    try:
        photo = read_photo(item.path, max_pixels=options.max_pixels)
    except (UnreadableImage, OSError) as exc:
        _forget(previous, out_dir / ".done" / f"{job.stem}.json")
        reason = str(exc) if isinstance(exc, UnreadableImage) else f"cannot read ({exc.strerror or exc})"
        return PhotoResult(item, "unreadable", reason=reason, redone=redone)
    key = (options.detector, options.landmarks, options.upsample, options.detect_max_side, options.min_score)
    if key not in _finders:
        _finders[key] = FaceFinder(options.detector, options.landmarks, options.upsample, options.detect_max_side,
                                   min_score=options.min_score)
    faces = _finders[key].find(photo.rgb)
    if options.largest:
        faces = faces[:1]
    crops = []
    for index, face in enumerate(faces):
        quad = ffhq_quad(face.landmarks)
        crop_path = out_dir / f"{job.stem}_{index}.png"
        meta_path = crop_path.with_suffix(".json")
        aligned = render_aligned(photo.rgb, quad, options.size)
        images.save_rgb(crop_path, aligned.pixels)
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
            "quad": aligned.source_quad.tolist(),  # where the crop's pixels come from: paste-back uses this
            "ffhq_quad": quad.tolist(),  # the tool's quad from the landmarks (differs after a shrink)
            "output_size": options.size,
            "crop": crop_path.name,
        })
        crops.append(_record(crop_path, meta_path, item.path, index))
    _remove_stale(previous, crops)
    atomic.write_json(out_dir / ".done" / f"{job.stem}.json", {
        "version": MARKER_VERSION, "fingerprint": job.fingerprint, "source": str(item.path.resolve()),
        "settings": options.result_settings(), "crops": crops})
    return PhotoResult(item, "aligned", tuple(crops), redone=redone)


def _read_marker(marker: Path) -> dict | None:
    """The marker of an earlier run: None if there is none, {} if it is of an older format (redo)."""
    done = atomic.read_json_object(marker)
    return None if done is None else done if done.get("version") == MARKER_VERSION else {}


def _all_present(crops: list) -> bool:
    return all(isinstance(r, dict) and Path(str(r.get("aligned"))).is_file() and Path(str(r.get("meta"))).is_file()
               for r in crops)


def _remove_stale(previous: dict | None, kept: list[dict]) -> None:
    """Crops an earlier run made for this photo that the new run did not (e.g. now --largest): delete them,
    or `invert` would go on inverting faces that are no longer wanted."""
    keep = {r["aligned"] for r in kept} | {r["meta"] for r in kept}
    for record in (previous or {}).get("crops", []) if isinstance(previous, dict) else []:
        for key in ("aligned", "meta"):
            path = record.get(key) if isinstance(record, dict) else None
            if path and path not in keep:
                Path(path).unlink(missing_ok=True)


def _forget(previous: dict | None, marker: Path) -> None:
    """The photo can no longer be read: its old crops no longer stand for it."""
    _remove_stale(previous, [])
    marker.unlink(missing_ok=True)


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
