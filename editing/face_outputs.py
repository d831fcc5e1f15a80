"""One face's edit outputs written from its renders: the images, the grid, the sweeps, the identity
distances and, last, the marker that says the face is done.

This is the part of `edit` that does not need the generator, so it runs in worker processes
(`common/process_pool.py`) while the driver renders the next face: PNG and video encoding and dlib's
face descriptor are CPU work that would otherwise leave the cores idle between renders. It imports
neither torch nor the generators, so a worker starts in about a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import atomic, images
from common.identity import NO_FACE_IN_PHOTO, descriptor, identity_distance, stored_descriptor
from common.identity import enabled as identity_enabled
from common.sweeps import write_sweep
from editing.edit_spec import EditSpec, strength_text
from editing.photo_composite import RECONSTRUCTION_NAME

MARKER_NAME = ".edit.json"
MARKER_VERSION = 3


@dataclass(frozen=True)
class FaceJob:
    """Everything a worker needs to write one face: its renders and where they go."""

    code: Path  # the face's code (its record says which photo crop the identity is measured against)
    target: Path
    planned: tuple[Path, ...]
    previous: dict  # the earlier run's marker (its outputs that this run does not make are deleted)
    specs: tuple[EditSpec, ...]
    rendered: dict  # {(edit name, strength): RGB uint8}, ("", 0.0): the reconstruction
    animate: str | None
    fingerprint: str


def write_face_outputs(job: FaceJob) -> dict[str, float | str]:
    """Write one face's images, grid and sweeps, then its marker (a crash before it leaves the face undone).
    Returns the identity distance of each image (see `identities`)."""
    target, rendered, specs = job.target, job.rendered, list(job.specs)
    for spec in specs:
        for strength in spec.strengths:
            images.save_rgb(target / f"{spec.slug}_{strength_text(strength)}.png", rendered[(spec.name, strength)])
    images.save_rgb(target / RECONSTRUCTION_NAME, rendered[("", 0.0)])
    images.save_rgb(target / "grid.png", grid(specs, rendered))
    if job.animate:
        for spec in specs:
            write_sweep(target / f"{spec.slug}.{job.animate}", [rendered[(spec.name, s)] for s in spec.strengths])
    distances = identities(job.code, specs, rendered)
    remove_stale(job.previous, list(job.planned))
    atomic.write_json(target / MARKER_NAME, {"version": MARKER_VERSION, "fingerprint": job.fingerprint,
                                             "outputs": [str(p.resolve()) for p in job.planned], "identity": distances})
    return distances


def person_of(code: Path) -> tuple[bool, np.ndarray | None]:
    """(whether the code comes from a photo, the descriptor of the person in its crop): the descriptor
    `invert` stored beside the code, else one computed from the aligned crop its record names. A sample's
    code comes from no photo: (False, None); a photo crop without a detectable face: (True, None)."""
    info = atomic.read_json_object(Path(code).with_suffix(".json")) or {}
    stored = stored_descriptor(info)
    if stored is not None:
        return True, stored
    if "photo_descriptor" in info and info["photo_descriptor"] is None:  # `invert` looked and found no face in the crop: not again
        return True, None
    record = info.get("record") if isinstance(info.get("record"), dict) else {}
    aligned = record.get("aligned")
    if isinstance(aligned, str) and Path(aligned).is_file():  # a code inverted before descriptors were stored
        try:
            return True, descriptor(images.read_rgb(Path(aligned)))
        except (OSError, ValueError):
            return True, None
    return False, None


def identities(code: Path, specs: list[EditSpec], rendered: dict) -> dict[str, float | str]:
    """{image file name: identity distance to the photo's person (under 0.6: the same person), or why there
    is none}, for the reconstruction and every edit; empty for codes that come from no photo (samples)."""
    if not identity_enabled():
        return {}
    from_photo, person = person_of(code)
    if not from_photo:
        return {}
    named = {RECONSTRUCTION_NAME: rendered[("", 0.0)]}
    named.update({f"{spec.slug}_{strength_text(s)}.png": rendered[(spec.name, s)] for spec in specs for s in spec.strengths})
    return {name: identity_distance(None, image, person) if person is not None else NO_FACE_IN_PHOTO
            for name, image in named.items()}


def remove_stale(previous: dict, planned: list[Path]) -> None:
    """Outputs of an earlier run that this run does not make (other strengths, no sweep now): delete them,
    so a folder never mixes results of two settings."""
    keep = {str(p.resolve()) for p in planned}
    for old in previous.get("outputs", []) if isinstance(previous.get("outputs"), list) else []:
        if isinstance(old, str) and old not in keep:
            Path(old).unlink(missing_ok=True)


def grid(specs: list[EditSpec], rendered: dict) -> np.ndarray:
    """Rows = edits, columns = all strengths used (0 included: the reconstruction)."""
    columns = sorted({0.0, *(s for spec in specs for s in spec.strengths)})
    blank = np.full_like(rendered[("", 0.0)], 255)
    rows = []
    for spec in specs:
        row = []
        for strength in columns:
            if strength == 0.0:
                row.append(rendered[("", 0.0)])
            else:
                row.append(rendered.get((spec.name, strength), blank))
        rows.append(row)
    cell = rendered[("", 0.0)].shape[0]
    return images.label_grid(images.make_grid(rows), cell, 4, [f"{s:+.2g}" for s in columns], [spec.name for spec in specs])


def planned_outputs(target: Path, specs: list[EditSpec], animate: str | None) -> list[Path]:
    paths = [target / "grid.png", target / RECONSTRUCTION_NAME]
    for spec in specs:
        paths += [target / f"{spec.slug}_{strength_text(s)}.png" for s in spec.strengths]
        if animate:
            paths.append(target / f"{spec.slug}.{animate}")
    return paths


def face_record(code: Path, target: Path, outputs: list[Path]) -> dict:
    return {
        "code": str(Path(code).resolve()),
        "grid": str((target / "grid.png").resolve()),
        "images": [str(p.resolve()) for p in outputs if p.suffix == ".png" and p.name not in ("grid.png", RECONSTRUCTION_NAME)],
        "photos": [],
        "animations": [str(p.resolve()) for p in outputs if p.suffix in (".gif", ".mp4")],
    }
