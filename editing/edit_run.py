"""The edit stage's driver: prepared once, fed codes in any number of chunks.

`edit` feeds it every code of a folder at once; `run` streams codes in as soon as they are inverted
and pastes each photo as soon as its faces are edited. Either way each face goes through the same
steps in the same order: the fingerprint check (done before? skipped), the render here (the one part
that needs the generator: CPU threads or the GPU), then `editing/face_outputs.py` in a worker process
while the next face renders, then the paste-back of whole photos in worker processes too. Outcomes
are recorded in input order, so counts, `failures.jsonl` and JSON lines are those of a one-process run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from common import atomic, images
from common.failures import FailureLog
from common.fingerprint import content_sha256, fingerprint
from common.identity import DRIFT_WARNING, SAME_PERSON, drifted
from common.process_pool import OrderedPool, Ready, WorkerDied
from common.progress import track
from common.safe_arrays import BadArray, load_npy
from common.tuned_weights import BadDelta, apply_delta, delta_of_code, read_delta
from editing.conditional import ConditionalMove
from editing.edit_spec import EditSpec
from editing.face_outputs import MARKER_NAME, FaceJob, face_record, planned_outputs, write_face_outputs
from editing.photo_composite import EditedFace, PasteSettings, PhotoGroup, group_faces, paste_group
from editing.sidecar import BadSidecar, Sidecar, read_sidecar
from generators.interface import apply_render_condition, render_condition_of


@dataclass(frozen=True)
class CodeItem:
    code: Path
    name: str
    meta: Path | None  # alignment sidecar (for paste-back)


@dataclass(frozen=True)
class PreparedEdit:
    """What every face is edited with, decided once: the generator, the edits and their moves, and the
    part of each face's fingerprint that all faces share."""

    generator: torch.nn.Module
    specs: tuple[EditSpec, ...]
    moves: dict[str, ConditionalMove]
    batch_size: int
    animate: str | None
    overwrite: bool
    paste_back: bool
    photos_dir: Path
    paste_settings: PasteSettings
    shared_print: dict


class BadCodeShape(ValueError):
    """A code that this generator cannot take."""


@dataclass
class _Face:
    """One code between its render and its recorded outcome."""

    item: CodeItem
    target: Path
    planned: list[Path]
    print: str
    sidecar: Sidecar | None = None
    skipped: bool = False
    previous: dict | None = None  # the earlier run's marker, read before this run deletes it
    delta_file: Path | None = None  # pivotal tuning's weights for this face, from `invert --tune`
    condition: dict | None = None  # what else than the code decides its render (`render_condition_of_code`)


class EditRun:
    def __init__(self, prepared: PreparedEdit, out_dir: Path, pool: OrderedPool, emit: Callable[[dict], None],
                 say: Callable[[str], None], group_names: dict[Path, str] | None = None) -> None:
        """`group_names`: the folder under PHOTOS of each photo, when the caller knows every photo of the
        run up front (`run`: the same names whether photos are pasted one by one or all at the end)."""
        self.prepared, self.out_dir, self.pool = prepared, Path(out_dir), pool
        self.emit, self.say, self.group_names = emit, say, group_names
        self.failures = FailureLog(out_dir, say, key="code")
        self.summary = {"edited": 0, "skipped": 0, "failed": 0, "redone": 0}
        self.records: list[tuple[CodeItem, dict]] = []
        self.pasted: dict[str, dict] = {}  # face name -> the record of its pasted photo
        self._faces = pool.queue(write_face_outputs)  # faces rendered here, being written by the workers
        self._done: list[tuple[CodeItem, EditedFace | None]] = []  # recorded while waiting for room, not yet collected
        self._pastes = pool.queue(paste_group)

    # --- faces ---------------------------------------------------------------------------------------------

    def edit(self, items: Sequence[CodeItem], progress: bool = True) -> list[EditedFace]:
        """Edit these codes and wait for them; returns the faces ready to be pasted back (with a sidecar)."""
        for item in track(items, "editing", unit="codes") if progress else items:
            self.submit([item])
        return [face for _, face in self.collect(block=True) if face is not None]

    def submit(self, items: Sequence[CodeItem]) -> None:
        """Plan and render these codes here; their images are written by the workers meanwhile. At most
        2 x workers renders wait in memory: beyond that, the oldest is waited for."""
        for item in items:
            face = self._plan(item)
            job: Ready | tuple = Ready(None)
            if face is not None and not face.skipped:
                try:
                    job = (FaceJob(item.code, face.target, tuple(face.planned), face.previous or {}, self.prepared.specs,
                                   self._render(face), self.prepared.animate, face.print),)
                except _Refused:
                    face = None
            self._faces.put(job, (item, face))
            while len(self._faces) > 2 * self.pool.workers:
                self._done.extend(self._record_taken(block=True, most=1))

    def collect(self, block: bool = False) -> list[tuple[CodeItem, EditedFace | None]]:
        """The codes finished since the last call, in order, each with its face ready for paste-back (None:
        failed, or nothing to paste: no sidecar, or no --paste-back)."""
        finished = self._done + self._record_taken(block)
        self._done = []
        return finished

    def _record_taken(self, block: bool, most: int | None = None) -> list[tuple[CodeItem, EditedFace | None]]:
        finished = []
        for (item, face), outcome in self._faces.take(block, most):
            finished.append((item, self._record(face, outcome) if face is not None else None))
        return finished

    def _plan(self, item: CodeItem) -> _Face | None:
        """The face's fingerprint and whether an earlier run already made exactly these outputs."""
        target = self.out_dir / item.name
        sidecar = None
        try:
            if self.prepared.paste_back and item.meta is not None:
                sidecar = read_sidecar(item.meta)
            delta_file = delta_of_code(item.code)
            tuned = content_sha256(delta_file) if delta_file is not None else None
            condition = render_condition_of_code(item.code)
            item_print = fingerprint(code=content_sha256(item.code), **self.prepared.shared_print,
                                     **({"tuned": tuned} if tuned else {}), **({"render_condition": condition} if condition else {}))
        except BadSidecar as exc:
            self._fail(item, "bad_sidecar", str(exc))
            return None
        except OSError as exc:
            self._fail(item, "unreadable", f"cannot read ({exc.strerror or exc})")
            return None
        if self.prepared.paste_back and sidecar is None:
            self.say(f"{item.code}: no alignment sidecar known, so no paste-back (invert the crops of `align`)")
        planned = planned_outputs(target, list(self.prepared.specs), self.prepared.animate)
        previous = atomic.read_json_object(target / MARKER_NAME) or {}
        done = not self.prepared.overwrite and previous.get("fingerprint") == item_print and all(p.is_file() for p in planned)
        if not done and previous:
            self.summary["redone"] += 1
        return _Face(item, target, planned, item_print, sidecar, skipped=done, previous=previous, delta_file=delta_file,
                     condition=condition)

    def _render(self, face: _Face) -> dict:
        """{(edit, strength): RGB uint8} of one face, with its own tuned weights when it has them."""
        item = face.item
        generator = self.prepared.generator
        try:
            if face.delta_file is not None:
                generator = apply_delta(generator, read_delta(face.delta_file, self.prepared.shared_print["generator"]))
        except (BadDelta, ValueError) as exc:
            raise self._refuse(item, "bad_tuning", str(exc))
        try:
            apply_render_condition(generator, face.condition or {})
        except ValueError as exc:
            raise self._refuse(item, "bad_code", f"{item.code.with_suffix('.json')}: {exc}")
        try:
            code = load_npy(item.code)
        except BadArray as exc:
            raise self._refuse(item, "bad_code", f"not a usable code: {exc}")
        if code.shape != (generator.num_ws, generator.w_dim):
            raise self._refuse(item, "bad_code", f"code of shape {list(code.shape)}, this generator takes "
                                                 f"[{generator.num_ws}, {generator.w_dim}]")
        (face.target / MARKER_NAME).unlink(missing_ok=True)  # from here on the face is not done until it is rewritten
        device = next(generator.parameters()).device
        ws = torch.from_numpy(code).float().to(device)[None]
        return render_edits(generator, ws, list(self.prepared.specs), self.prepared.moves, self.prepared.batch_size)

    def _refuse(self, item: CodeItem, kind: str, reason: str) -> "_Refused":
        self._fail(item, kind, reason)
        return _Refused()

    def _fail(self, item: CodeItem, kind: str, reason: str) -> None:
        self.summary["failed"] += 1
        self.failures.add(item.code, kind, reason)

    def _record(self, face: _Face, outcome) -> EditedFace | None:
        item = face.item
        if isinstance(outcome, WorkerDied):
            self._fail(item, "edit_failed", f"writing its images failed: {outcome}")
            return None
        if face.skipped:
            self.summary["skipped"] += 1
            previous = face.previous or {}
            identities = previous.get("identity") if isinstance(previous.get("identity"), dict) else {}
        else:
            identities = outcome
            self.summary["edited"] += 1
            far = sorted(name for name, value in identities.items() if drifted(value))
            if far:
                self.say(f"{item.name}: {len(far)} edit(s) {DRIFT_WARNING} (identity distance {SAME_PERSON} or more): "
                         + ", ".join(Path(name).stem for name in far))
        conditional = {name: move.summary() for name, move in self.prepared.moves.items() if move.kept}
        record = {**face_record(item.code, face.target, face.planned), "identity": identities,
                  **({"conditional": conditional} if conditional else {})}
        self.records.append((item, record))
        if not self.prepared.paste_back:
            self.emit(record)
        return EditedFace(item.name, face.sidecar, face.target, face.print) if face.sidecar is not None else None

    # --- photos and the end --------------------------------------------------------------------------------

    def paste(self, faces: Sequence[EditedFace], progress: bool = True) -> None:
        """Paste these faces back into their photos (every face of a photo together) and wait for them."""
        groups = self.submit_paste(faces)
        taken = self._pastes.take(block=True)
        for _ in track(groups, "pasting back", unit="photos") if progress else groups:
            self._record_paste(*next(taken))

    def submit_paste(self, faces: Sequence[EditedFace]) -> list[PhotoGroup]:
        """Queue the photos of these faces for paste-back in the workers (all faces of a photo together)."""
        groups = group_faces(list(faces), self.prepared.paste_settings.per_face, self.group_names)
        for group in groups:
            self._pastes.put((group, self.prepared.photos_dir / group.name, list(self.prepared.specs),
                              self.prepared.paste_settings), group)
        return groups

    def collect_pastes(self, block: bool = False) -> None:
        for group, result in self._pastes.take(block):
            self._record_paste(group, result)

    def _record_paste(self, group: PhotoGroup, result) -> None:
        if isinstance(result, WorkerDied):
            self.failures.add(group.source, "bad_photo", f"cannot paste back into this photo: {result}")
            return
        record, messages, problem = result
        for message in messages:
            self.say(message)
        if problem is not None:
            self.failures.add(group.source, "bad_photo", f"cannot paste back into this photo: {problem}")
            return
        for face in group.faces:
            self.pasted[face.name] = record

    def finish(self) -> dict:
        if self.summary["redone"]:
            self.say(f"{self.summary['redone']} input(s) redone: the code, generator, directions or edits changed")
        if self.prepared.paste_back:
            for item, record in self.records:
                photo = self.pasted.get(item.name)
                self.emit({**record, "photos": photo["pasted"] if photo else [], "untouched": bool(
                    photo and any(entry["face"] == item.name for entry in photo["untouched"]))})
        return self.summary


class _Refused(Exception):
    """A face that cannot be edited (recorded as a failure when raised)."""


def render_condition_of_code(code: Path) -> dict:
    """What else than the code decides its render, from the record beside it (`sample`'s JSON): the
    class and truncation of a BigGAN sample, StyleGAN3's input transform (`generators/interface.py`)."""
    info = code.with_suffix(".json")
    if not info.is_file():
        return {}
    try:
        return render_condition_of(atomic.read_json_object(info) or {})
    except (OSError, ValueError):
        return {}


@torch.no_grad()
def render_edits(generator, ws, specs: list[EditSpec], moves: dict[str, ConditionalMove], batch_size: int) -> dict:
    """{(edit name, strength): RGB uint8} plus {("", 0.0): the unedited reconstruction}. `moves`: each
    --edit's move per code entry (`editing/conditional.py`; the plain direction unless --keep)."""
    keys, codes = [("", 0.0)], [ws]
    for spec in specs:
        for strength in spec.strengths:
            keys.append((spec.name, strength))
            codes.append(spec.recipe.apply(ws, float(strength)) if spec.recipe is not None
                         else moves[spec.name].apply(ws, float(strength)))
    stacked = torch.cat(codes)
    out = []
    for start in range(0, len(stacked), batch_size):
        out.extend(images.tensor_to_uint8(generator.render(stacked[start : start + batch_size])))
    return dict(zip(keys, out))
