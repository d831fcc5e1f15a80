"""The interactive editor's work, without any web page: what `sefa-edit ui` calls on each click.

A session holds the generator, encoder and directions once, and for each face the user opens: its W+
code (from the same `align` and `invert` stages as `run`, into the same OUT, so a photo is never
aligned or inverted twice), the photo scaled for the screen, and the face's paste-back preparation
(mask, box, colour offset). A slider release then costs one generator forward of the face crop at
generator resolution and one warp into the face's box of the cached screen photo: nothing else of
the photo is touched. The full-resolution photo is made only for a download.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from alignment.stage import NO_FACE, AlignOptions, run_align
from common import atomic, images
from common.demo_models import is_demo_generator
from common.devices import resolve_device
from common.directions_file import (
    LABELS_NAME, DirectionLabel, check_directions_for, labels_to_json, load_directions, load_labels,
)
from common.errors import UserError
from common.fingerprint import content_sha256
from common.json_files import read_json, read_json_object
from common.layer_spec import format_layer_spec, parse_layer_spec
from common.photo_io import UnreadableImage, read_photo
from common.photo_output import output_suffix, write_like
from common.safe_arrays import load_npy
from common.validate import require_label_name
from editing.conditional import KeptDirection, conditional_move
from editing.paste_back import PreparedFace, paste_face, prepare_face
from editing.photo_composite import face_side
from editing.recipe import Recipe, RecipeMove, slug
from editing.sidecar import Sidecar, read_sidecar
from generators.checkpoint import load_checkpoint
from generators.precision import check_precision
from generators.interface import (
    InputTransform, apply_input_transform, apply_render_condition, draw_noise, supports_input_transform, truncates,
)
from generators.latent_edit import move_along
from inversion.optimize import InversionSettings
from inversion.perceptual import choose_perceptual
from inversion.pivotal_tuning import TuningSettings
from inversion.stage import require_invertible, run_invert
from inversion.worker import Tuning
from common.tuned_weights import apply_delta, delta_of_code, read_delta
from pipeline.run import ensure_directions

SCREEN_SIDE = 1024  # the photo shown in the page is at most this many pixels on a side
LAYER_PRESETS = {"directions' layers": None, "0-1 (pose, face shape)": "0-1", "2-5 (features, expression)": "2-5",
                 "6- (colour, texture)": "6-"}
CUSTOM = "custom"


MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # a 100 MP JPEG is ~30 MB; the page refuses bigger uploads before sending them


def upload_too_large(name: str, size: int | None) -> str:
    """The one line for an upload over the limit, wherever it is caught (the page, the server, the session)."""
    what = f"{name}: {size / 2**20:.0f} MB is" if size else "the upload is"
    return (f"{what} over the {MAX_UPLOAD_BYTES // 2**20} MB upload limit of `sefa-edit ui`; scale the photo down, "
            f"or edit it with `sefa-edit run PHOTOS OUT`")


@dataclass(frozen=True)
class Move:
    """One slider: `strength` along direction `direction` on `layers`, with the directions of `keep`
    kept out of it (InterFaceGAN's conditional manipulation, `edit --keep`)."""

    direction: int
    strength: float
    layers: tuple[int, ...]
    keep: tuple[int, ...] = ()


DETECTORS = {"hog": "hog (fast)", "cnn": "cnn (slower; finds small and turned faces)"}


@dataclass(frozen=True)
class Face:
    name: str  # the crop's stem: OUT/aligned/<name>.png, OUT/codes/<name>.npy (carries a hash of an upload)
    crop: Path
    sidecar_path: Path
    source: Path
    photo_name: str = ""  # the photo's own name, as the user knows it (an upload's file name)
    number: int = 1  # the face's number in its photo (largest first), as the page shows it
    of: int = 1  # how many faces the photo has

    @property
    def label(self) -> str:
        """What the page calls the face: 'kit_with_rose.jpg, face 2 of 3', never the internal name."""
        photo = self.photo_name or self.source.name
        return photo if self.of == 1 else f"{photo}, face {self.number} of {self.of}"

    @property
    def file_stem(self) -> str:
        """Downloads are named after the photo and the face, not the internal name."""
        stem = slug(Path(self.photo_name or self.source.name).stem)
        return stem if self.of == 1 else f"{stem}_face{self.number}"


def face_box(sidecar: Sidecar) -> tuple[float, float, float, float]:
    """The face in the photo (x0, y0, x1, y1): its landmarks' bounds, a little wider; without landmarks,
    the middle of the aligned square (which also holds hair and background)."""
    if sidecar.landmarks is not None and len(sidecar.landmarks):
        (x0, y0), (x1, y1) = sidecar.landmarks.min(axis=0), sidecar.landmarks.max(axis=0)
        pad_x, pad_y = 0.1 * (x1 - x0), 0.15 * (y1 - y0)
        return float(x0 - pad_x), float(y0 - 2 * pad_y), float(x1 + pad_x), float(y1 + pad_y)
    centre, half = sidecar.quad.mean(axis=0), face_side(sidecar) / 4
    return float(centre[0] - half), float(centre[1] - half), float(centre[0] + half), float(centre[1] + half)


def no_face_message(name: str, detector: str) -> str:
    """Said in the page when no face was found, in the page's words (it has a detector choice, not flags)."""
    if detector == "hog":
        return (f"{name}: no face found by the fast detector; choose \"{DETECTORS['cnn']}\" under \"face detector\" "
                f"to look again")
    return f"{name}: no face found, even by the cnn detector; try a photo where a face is clearly visible"


@dataclass
class OpenFace:
    """A face ready for sliders: its code, the photo at screen size and the face prepared there."""

    face: Face
    code: torch.Tensor  # [1, num_ws, w_dim]
    sidecar: Sidecar
    screen_photo: np.ndarray
    screen_face: PreparedFace
    reconstruction: np.ndarray
    inversion: dict = field(default_factory=dict)
    generator: torch.nn.Module | None = None  # the face's own tuned generator (pivotal tuning), None: the session's


class EditorSession:
    def __init__(self, out: Path, generator_path: Path, encoder_path: Path | None = None, directions_path: Path | None = None,
                 device: str = "auto", num_directions: int = 10, layers: str = "all", generator_label: str | None = None,
                 shared_dir: Path | None = None, precision: str = "fp32") -> None:
        self.out = Path(out)
        self.precision = check_precision(precision)
        self.generator_path, self.encoder_path = Path(generator_path), encoder_path
        self.device_name, self.shared_dir = device, shared_dir
        self.device = resolve_device(device)  # before the generator is read
        self.checkpoint = load_checkpoint(self.generator_path)
        if not self.checkpoint.can_render:
            raise UserError(f"{generator_path}: the editor renders, and this checkpoint cannot "
                            f"({'; '.join(self.checkpoint.notes) or self.checkpoint.architecture})")
        # A generator without W+ (PGGAN, BigGAN) has no photo to invert: the page offers its samples only.
        self.edits_photos = self.checkpoint.latent_space == "W+"
        if self.edits_photos:
            require_invertible(self.checkpoint, self.generator_path)
        self.generator = self.checkpoint.build_generator(self.device, precision)
        self.generator_label = generator_label or str(generator_path)
        self.demo = is_demo_generator(self.generator_path)
        if directions_path is None:
            layers_text = format_layer_spec(parse_layer_spec(layers, self.checkpoint.num_latent_layers))
            directions_path = ensure_directions(self.out, self.generator_path, self.checkpoint.sha256, layers_text,
                                                num_directions, device=device)
        self.directions_path = Path(directions_path)
        self.directions = load_directions(self.directions_path)
        check_directions_for(self.directions, self.directions_path, self.checkpoint, self.generator_path)
        self.directions.for_code(self.checkpoint.num_latent_layers)
        self.lock = threading.Lock()  # one forward at a time: the page may send several releases at once
        self.sample_condition: dict = {}  # the class and truncation of the last sample drawn
        self.known_faces: dict[str, Face] = {}  # every face found so far, by name
        self.open_faces: dict[str, OpenFace] = {}

    # --- directions and labels ------------------------------------------------------------------------------

    @property
    def num_directions(self) -> int:
        return len(self.directions.directions)

    @property
    def num_ws(self) -> int:
        return self.generator.num_ws

    def direction_names(self) -> list[str]:
        """'3: age (-)' where a label names the direction, else '3'."""
        names = [str(k) for k in range(self.num_directions)]
        for label, entry in self.directions.labels.items():
            names[entry.index] += f": {label}" + (" (-)" if entry.sign < 0 else "")
        return names

    def layers_for(self, preset: str, custom: str = "") -> tuple[int, ...]:
        """A slider's layer choice as W+ entries."""
        if preset == CUSTOM:
            return tuple(parse_layer_spec(custom or "all", self.num_ws))
        spec = LAYER_PRESETS.get(preset)
        if spec is None:
            return tuple(self.directions.layers)
        return tuple(parse_layer_spec(spec, self.num_ws))

    def save_label(self, direction: int, name: str, sign: int = 1, layers: tuple[int, ...] | None = None) -> Path:
        """Name a direction in labels.json beside the directions (kept labels of other directions)."""
        name = name.strip()
        require_label_name(name, "label")
        if not 0 <= direction < self.num_directions:
            raise UserError(f"direction {direction} does not exist (0..{self.num_directions - 1})")
        path = self.directions_path.parent / LABELS_NAME
        labels = load_labels(path, self.num_directions) if path.is_file() else {}
        labels = {key: value for key, value in labels.items() if key != name}
        labels[name] = DirectionLabel(index=direction, sign=1 if sign >= 0 else -1, layers=list(layers) if layers else None)
        atomic.write_json(path, labels_to_json(labels))
        self.directions.labels = labels
        return path

    # --- photos and faces -----------------------------------------------------------------------------------

    def import_photo(self, path: Path) -> Path:
        """Copy an upload into OUT/uploads (the browser's temporary file goes away; the sidecars must not
        point at it), named by its content so the same photo uploaded twice is the same file."""
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > MAX_UPLOAD_BYTES:
                raise UserError(upload_too_large(path.name, size))
            digest = content_sha256(path)[:10]
        except OSError as exc:
            raise UserError(f"{path.name}: cannot read the upload ({exc.strerror or exc})") from None
        target = self.out / "uploads" / f"{slug(path.stem)}_{digest}{path.suffix.lower()}"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        return target

    def find_faces(self, photo: Path, size: int = 256, shown_as: str | None = None, detector: str = "hog") -> list[Face]:
        """Align the photo into OUT/aligned (skipped when done before) and return its faces, largest first,
        numbered in that order. `shown_as`: the name the user knows the photo by (an upload's own name)."""
        self._require_photos()
        if detector not in DETECTORS:
            raise UserError(f"face detector {detector!r}: expected one of {', '.join(DETECTORS)}")
        name = shown_as or Path(photo).name
        try:
            read_photo(photo)  # the CLI's words for an unreadable file, before the aligner
        except UnreadableImage as exc:
            raise UserError(f"{name}: {str(exc).replace(str(photo), name)}") from None
        records: list[dict] = []
        messages: list[str] = []
        run_align(str(photo), self.out / "aligned", AlignOptions(size=size, detector=detector), emit=records.append,
                  say=messages.append)
        found = [(Path(r["aligned"]), Path(r["meta"]), Path(r["source"])) for r in records]
        if not found:
            reason = messages[0].split(": ", 1)[-1] if messages else NO_FACE
            if NO_FACE in reason:
                raise UserError(no_face_message(name, detector))
            raise UserError(f"{name}: {reason}; try a photo where a face is clearly visible")
        found.sort(key=lambda item: -face_side(read_sidecar(item[1])))
        faces = [Face(crop.stem, crop, meta, source, name, number, len(found))
                 for number, (crop, meta, source) in enumerate(found, 1)]
        self.known_faces.update((face.name, face) for face in faces)
        return faces

    def faces_overview(self, faces: list[Face]) -> np.ndarray:
        """The photo at screen size with a numbered box on each face: what the user clicks to pick one."""
        photo = read_photo(faces[0].source).rgb
        scale = min(1.0, SCREEN_SIDE / max(photo.shape[:2]))
        canvas = photo if scale == 1.0 else cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)),
                                                        interpolation=cv2.INTER_AREA)
        canvas = np.array(canvas, copy=True, order="C")  # drawn on: never the (read-only) photo itself
        thick = max(2, round(max(canvas.shape[:2]) / 300))
        for face in faces:
            x0, y0, x1, y1 = (round(v * scale) for v in face_box(read_sidecar(face.sidecar_path)))
            cv2.rectangle(canvas, (x0, y0), (x1, y1), (255, 212, 0), thick)
            text, font_scale = str(face.number), max(0.6, (x1 - x0) / 90)
            (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
            top = max(h + 2 * thick, y0)
            cv2.rectangle(canvas, (x0, top - h - 2 * thick), (x0 + w + 2 * thick, top), (255, 212, 0), -1)
            cv2.putText(canvas, text, (x0 + thick, top - thick), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thick)
        return canvas

    def face_at(self, faces: list[Face], x: float, y: float, width: int) -> Face | None:
        """The face whose box holds the click at (x, y) on the overview `width` pixels wide (the smallest
        box when boxes overlap), or None when the click is on no face."""
        photo_width = read_sidecar(faces[0].sidecar_path).source_size[0]
        x, y = x * photo_width / width, y * photo_width / width
        hits = []
        for face in faces:
            x0, y0, x1, y1 = face_box(read_sidecar(face.sidecar_path))
            if x0 <= x <= x1 and y0 <= y <= y1:
                hits.append(((x1 - x0) * (y1 - y0), face.number, face))
        return min(hits, key=lambda hit: hit[:2])[2] if hits else None

    def photos_in_out(self) -> list[Path]:
        """Photos that an earlier `run` or this editor aligned into OUT."""
        sources = set()
        for meta in (self.out / "aligned").rglob("*.json") if (self.out / "aligned").is_dir() else []:
            try:
                record = read_json(meta)
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and isinstance(record.get("source"), str) and Path(record["source"]).is_file():
                sources.add(Path(record["source"]))
        return sorted(sources)

    def open_face(self, face: Face, steps: int = 100, use_encoder: bool = True, tune_steps: int = 0) -> OpenFace:
        """Invert the face (OUT/codes; skipped when the same settings did it before), tune the generator
        around its code when `tune_steps` > 0 (pivotal tuning, as `invert --tune`), and prepare it for sliders:
        every render of a tuned face uses its own tuned weights."""
        self._require_photos()
        settings = InversionSettings(steps=steps, precision=self.precision)
        perceptual, _ = choose_perceptual("auto", None, self.shared_dir)  # the page shows which in its status line
        encoder = self.encoder_path if use_encoder else None
        tuning = Tuning(TuningSettings(steps=tune_steps), per="face") if tune_steps > 0 else None  # the face picked
        summary = run_invert(str(face.crop), self.out / "codes", self.generator_path, encoder, settings, perceptual,
                             None, 1, self.device_name, shared_dir=self.shared_dir, tuning=tuning)
        if summary["failed"] or summary["unreadable"]:
            raise UserError(f"{face.name}: the inversion failed (see {self.out / 'codes' / 'failures.jsonl'})")
        try:
            code = load_npy(self.out / "codes" / f"{face.name}.npy")
            info = read_json_object(self.out / "codes" / f"{face.name}.json")
        except (OSError, ValueError) as exc:
            raise UserError(f"{face.name}: its code in {self.out / 'codes'} cannot be read ({exc}); invert it again") from None
        sidecar = read_sidecar(face.sidecar_path)
        photo = read_photo(sidecar.source).rgb
        scale = min(1.0, SCREEN_SIDE / max(photo.shape[:2]))
        screen = photo if scale == 1.0 else cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)),
                                                        interpolation=cv2.INTER_AREA)
        ws = torch.from_numpy(code).float().to(self.device)[None]
        delta_file = delta_of_code(self.out / "codes" / f"{face.name}.npy")
        own = apply_delta(self.generator, read_delta(delta_file, self.checkpoint.sha256)) if tuning and delta_file else None
        reconstruction = self._render(ws, own)
        quad = (sidecar.quad + 0.5) * scale - 0.5  # pixel centres stay pixel centres
        landmarks = (sidecar.landmarks + 0.5) * scale - 0.5 if sidecar.landmarks is not None else None
        prepared = prepare_face(screen, quad, landmarks, reconstruction.shape[0], "face", reconstruction)
        opened = OpenFace(face, ws, sidecar, screen, prepared, reconstruction, info.get("metrics", {}), own)
        self.open_faces[face.name] = opened
        return opened

    # --- rendering ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _render(self, ws: torch.Tensor, generator: torch.nn.Module | None = None) -> np.ndarray:
        with self.lock:
            return images.tensor_to_uint8((generator or self.generator).render(ws))[0]

    def move_vector(self, move: Move) -> np.ndarray:
        """What strength 1 of this slider adds on each of its layers: the direction, or with `keep` its
        part orthogonal to the kept directions (`editing/conditional.py`), at the direction's length."""
        vector = self.directions.vector(move.direction)
        kept = [KeptDirection(self.direction_names()[k], self.directions.vector(k), tuple(move.layers))
                for k in move.keep if k != move.direction]
        if not kept or not move.layers:
            return vector.astype(np.float32)
        return conditional_move(str(move.direction), vector, move.layers[:1], kept).vectors[move.layers[0]]

    def moved(self, ws: torch.Tensor, moves: list[Move]) -> torch.Tensor:
        """ws with every slider's move added (they combine: each adds strength * n on its layers)."""
        for move in moves:
            if move.strength != 0:
                direction = torch.as_tensor(self.move_vector(move), dtype=torch.float32, device=ws.device)
                ws = move_along(ws, direction, move.layers, move.strength)
        return ws

    def edit_face(self, opened: OpenFace, moves: list[Move], paste: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """(edited crop, the screen photo with it pasted back or None): what a slider release shows."""
        crop = self._render(self.moved(opened.code, moves), opened.generator)
        if not paste:
            return crop, None
        screen = opened.screen_photo.copy()
        paste_face(screen, crop, opened.screen_face)
        return crop, screen

    def full_photo(self, opened: OpenFace, moves: list[Move], fmt: str = "source", quality: int = 95) -> Path:
        """The edited photo at full resolution, written to OUT/ui/ for download (PNG, JPEG or like the source)."""
        crop = self._render(self.moved(opened.code, moves), opened.generator)
        photo = read_photo(opened.sidecar.source, keep_alpha=True)
        face = prepare_face(photo.rgb, opened.sidecar.quad, opened.sidecar.landmarks, crop.shape[0], "face", opened.reconstruction)
        canvas = photo.rgb.copy()
        paste_face(canvas, crop, face)
        suffix = {"png": ".png", "jpeg": ".jpg"}.get(fmt, output_suffix(opened.sidecar.source))
        key = hashlib.sha1(repr([opened.face.name, *[(m.direction, m.strength, m.layers, m.keep) for m in moves]]).encode()).hexdigest()[:10]
        return write_like(self.out / "ui" / f"{opened.face.file_stem}_edited_{key}{suffix}", canvas, photo, quality)

    # --- explore --------------------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """Class labels of a conditional generator (0: unconditional), for the Explore tab's class field."""
        return self.generator.num_classes

    def _require_photos(self) -> None:
        if not self.edits_photos:
            raise UserError(f"{self.generator_path.name}: a {self.checkpoint.architecture} generator has no W+ codes to "
                            f"invert a photo into; explore its samples instead")

    def sample(self, seed: int, truncation: float = 0.7, class_index: int | None = None) -> torch.Tensor:
        """The code of random sample `seed` (as `sefa-edit sample` draws it), of class `class_index` for a
        conditional generator (None: the all-zero label). Its render condition (class and truncation, which
        BigGAN renders with) is kept for `render_sample`."""
        z = torch.from_numpy(draw_noise(self.generator, int(seed))[None]).float().to(self.device)
        if not truncates(self.generator):
            truncation = 1.0
        try:
            with torch.no_grad(), self.lock:
                codes = self.generator.sample_codes(z, truncation, class_index=class_index)
        except ValueError as exc:  # the generator's own check of class and truncation (generators/interface.py)
            raise UserError(f"class {class_index}, truncation {truncation}: {exc}") from None
        self.sample_condition = {"class": class_index, "truncation_psi": truncation}
        return codes

    @property
    def can_transform(self) -> bool:
        """Whether samples can be rotated and translated (StyleGAN3's continuous input)."""
        return supports_input_transform(self.generator)

    def render_sample(self, ws: torch.Tensor, moves: list[Move], transform: InputTransform | None = None) -> np.ndarray:
        """A sample moved by the sliders, seen through `transform` (rotation / translation, StyleGAN3)
        for this render only: photo edits always render untransformed."""
        ws = self.moved(ws, moves)
        condition = {**self.sample_condition, "input_transform": transform.as_json() if transform else None}
        with self.lock:
            try:
                apply_render_condition(self.generator, condition)
            except ValueError as exc:
                raise UserError(str(exc)) from None
            try:
                return images.tensor_to_uint8(self.generator.render(ws))[0]
            finally:
                apply_input_transform(self.generator, None)

    # --- recipes --------------------------------------------------------------------------------------------

    def recipe(self, moves: list[Move], name: str = "recipe") -> Recipe:
        used = [move for move in moves if move.strength != 0]
        if not used:
            raise UserError("every slider is at 0: move at least one before saving a recipe")
        labels = {entry.index: label for label, entry in self.directions.labels.items()}
        vectors = [self.move_vector(m).astype(np.float64) for m in used]  # recipes hold unit vectors: a length other
        lengths = [float(np.linalg.norm(v)) for v in vectors]  # than 1 (GANSpace's standard deviations) goes into the strength
        lengths = [1.0 if abs(length - 1.0) < 1e-5 else length for length in lengths]
        return Recipe(slug(name), tuple(RecipeMove(m.direction, float(m.strength) * length, tuple(m.layers),
                                                   (vector / length).astype(np.float32),
                                                   labels.get(m.direction))
                                        for m, vector, length in zip(used, vectors, lengths)),
                      self.checkpoint.sha256, content_sha256(self.directions_path), "W+", self.num_ws)

    def write_recipe(self, moves: list[Move], name: str = "recipe") -> Path:
        recipe = self.recipe(moves, name)
        return atomic.write_json(self.out / "ui" / f"{recipe.name}.recipe.json", recipe.to_json())
