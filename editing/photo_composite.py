"""Whole photos back: one picture per edit and strength with every face of the photo edited.

Each face goes through its own crop, mask and colour match (`paste_back.prepare_face`), and faces are
laid on the photo from the smallest to the largest: in a group photo the larger face is the nearer
one, so where two feathered masks overlap the nearer face is on top, as it is in the scene.
Faces whose aligned crop covers fewer than `min_face_size` photo pixels on a side are left as they
are and listed: at that size the generator's face would be pasted back as a blur of a 4x upscale, and
no edit is visible anyway. With `per_face` each face gets its own copies of the photo instead
(only that face edited), the old behaviour, for comparing faces one by one.

`PHOTOS/<photo>/.paste.json` records the fingerprint of what made the pictures (the photo's bytes,
each face's edit fingerprint, the settings), so a rerun redoes exactly the photos whose faces or
settings changed and deletes pictures that the new settings no longer make.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import atomic
from common.fingerprint import content_sha256, fingerprint
from common.images import read_rgb
from common.naming import unique_stems
from common.photo_io import DEFAULT_MAX_PIXELS, Photo, UnreadableImage, read_photo
from common.photo_output import output_suffix, write_like
from common.sweeps import fit_for_video, write_sweep
from editing.edit_spec import EditSpec, strength_text
from editing.paste_back import paste_face, prepare_face
from editing.sidecar import BadSidecar, Sidecar

MIN_FACE_SIZE = 64  # photo pixels on a side of the aligned crop square (the face itself is about 40% of it)
PASTE_MARKER = ".paste.json"
PASTE_VERSION = 1
RECONSTRUCTION_NAME = "reconstruction.png"  # the unedited render beside each face's edits: the colour match's anchor


@dataclass(frozen=True)
class EditedFace:
    name: str  # the face's output name (its folder of edits)
    sidecar: Sidecar
    folder: Path  # holds <edit>_<strength>.png and reconstruction.png
    fingerprint: str  # of the face's edits


@dataclass(frozen=True)
class PhotoGroup:
    name: str  # the output folder under PHOTOS
    source: Path
    faces: tuple[EditedFace, ...]


@dataclass(frozen=True)
class PasteSettings:
    mask: str = "face"
    quality: int = 95
    min_face_size: int = MIN_FACE_SIZE
    per_face: bool = False
    animate: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    def key(self) -> dict:
        return {"mask": self.mask, "quality": self.quality, "min_face_size": self.min_face_size,
                "per_face": self.per_face, "animate": self.animate}


def face_side(sidecar: Sidecar) -> float:
    """The aligned crop square's side, in photo pixels: how large the face is in the photo."""
    return float(np.linalg.norm(sidecar.quad[3] - sidecar.quad[0]))


def group_faces(faces: list[EditedFace], per_face: bool, names: dict[Path, str] | None = None) -> list[PhotoGroup]:
    """One group per photo (its faces in their order), or one per face with `per_face`. `names`: each
    photo's folder, when the caller named every photo of the run (else named from these faces' photos)."""
    if per_face:
        return [PhotoGroup(face.name, face.sidecar.source, (face,)) for face in faces]
    by_source: dict[Path, list[EditedFace]] = {}
    for face in faces:
        by_source.setdefault(Path(face.sidecar.source).resolve(), []).append(face)
    sources = sorted(by_source)
    folders = [names[source] for source in sources] if names is not None and all(s in names for s in sources) \
        else unique_stems([source.name for source in sources])
    return [PhotoGroup(name, source, tuple(by_source[source])) for name, source in zip(folders, sources)]


def photo_folder_names(sources: list[Path]) -> dict[Path, str]:
    """The folder under PHOTOS of each photo of a run, decided from all of them at once (as `group_faces`
    would from their faces), so a photo pasted early gets the name it would get at the end."""
    resolved = sorted({Path(source).resolve() for source in sources})
    return dict(zip(resolved, unique_stems([source.name for source in resolved])))


def planned_pictures(folder: Path, source: Path, specs: list[EditSpec], animate: str | None) -> list[Path]:
    suffix = output_suffix(source)
    paths = [folder / f"photo_{spec.slug}_{strength_text(s)}{suffix}" for spec in specs for s in spec.strengths]
    if animate:
        paths += [folder / f"photo_{spec.slug}.{animate}" for spec in specs]
    return paths


def paste_group(group: PhotoGroup, folder: Path, specs: list[EditSpec], settings: PasteSettings
                ) -> tuple[dict | None, list[str], str | None]:
    """(the photo's record, what to say, why it could not be pasted or None), in whichever process runs it."""
    messages: list[str] = []
    try:
        return _paste_group(group, folder, specs, settings, messages.append), messages, None
    except (UnreadableImage, BadSidecar, ValueError, OSError) as exc:  # reading; a failed write is OutputError
        return None, messages, str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)


def _paste_group(group: PhotoGroup, folder: Path, specs: list[EditSpec], settings: PasteSettings, say) -> dict:
    large = [face for face in group.faces if face_side(face.sidecar) >= settings.min_face_size]
    untouched = [{"face": face.name, "size": round(face_side(face.sidecar), 1)}
                 for face in group.faces if face not in large]
    if untouched:
        say(f"{group.source}: {len(untouched)} face(s) under {settings.min_face_size} px left untouched "
            f"({', '.join(item['face'] for item in untouched)}); --min-face-size sets the limit")
    planned = planned_pictures(folder, group.source, specs, settings.animate) if large else []
    group_print = fingerprint(version=PASTE_VERSION, photo=content_sha256(group.source), **settings.key(),
                              faces=[[face.name, face.fingerprint] for face in group.faces],
                              edits=[[spec.slug, list(spec.strengths)] for spec in specs])
    marker = folder / PASTE_MARKER
    previous = atomic.read_json_object(marker) or {}
    record = {"photo": str(Path(group.source).resolve()), "faces": [face.name for face in group.faces],
              "pasted": [str(p.resolve()) for p in planned], "untouched": untouched}
    if previous.get("fingerprint") == group_print and all(p.is_file() for p in planned):
        return record
    marker.unlink(missing_ok=True)
    if large:
        photo = read_photo(group.source, max_pixels=settings.max_pixels, keep_alpha=True)
        for face in large:
            if (photo.rgb.shape[1], photo.rgb.shape[0]) != face.sidecar.source_size:
                raise BadSidecar(f"the photo changed size since alignment ({face.name}); re-run align")
        _write_pictures(photo, large, folder, specs, settings)
    keep = {str(p.resolve()) for p in planned}
    for old in previous.get("outputs", []) if isinstance(previous.get("outputs"), list) else []:
        if isinstance(old, str) and old not in keep:
            Path(old).unlink(missing_ok=True)
    if planned or untouched:
        atomic.write_json(marker, {"version": PASTE_VERSION, "fingerprint": group_print, "outputs": sorted(keep),
                                   "photo": record["photo"], "faces": record["faces"], "untouched": untouched,
                                   "min_face_size": settings.min_face_size})
    return record


def _write_pictures(photo: Photo, faces: list[EditedFace], folder: Path, specs: list[EditSpec], settings: PasteSettings) -> None:
    """Prepare each face once (mask, colour offset), then compose and write each edit and strength."""
    ordered = sorted(faces, key=lambda face: face_side(face.sidecar))
    prepared = []
    for face in ordered:
        reconstruction = read_rgb(face.folder / RECONSTRUCTION_NAME)
        prepared.append((face, prepare_face(photo.rgb, face.sidecar.quad, face.sidecar.landmarks, reconstruction.shape[0],
                                            settings.mask, reconstruction)))
    suffix = output_suffix(photo.path)
    for spec in specs:
        frames = []
        for strength in spec.strengths:
            canvas = photo.rgb.copy()
            for face, ready in prepared:
                paste_face(canvas, read_rgb(face.folder / f"{spec.slug}_{strength_text(strength)}.png"), ready)
            write_like(folder / f"photo_{spec.slug}_{strength_text(strength)}{suffix}", canvas, photo, settings.quality)
            if settings.animate:
                frames.append(fit_for_video(canvas))
        if settings.animate:
            write_sweep(folder / f"photo_{spec.slug}.{settings.animate}", frames)
