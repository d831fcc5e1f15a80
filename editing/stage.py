"""`sefa-edit edit`: codes (W+, or PGGAN's z from `sample`) + directions -> edited images, a grid per input, sweeps, pasted-back photos.

For each code, each `--edit` and each strength: w' = w + strength * sign * n on the chosen layers,
rendered by the generator. Per input `OUT/<name>/`: `<edit>_<strength>.png`, `reconstruction.png`
(the unedited render), `grid.png` (rows = edits, columns = strengths, the reconstruction in the 0
column), and optional `<edit>.gif` / `.mp4` sweeps. With `--paste-back`, `PHOTOS/<photo>/` (default
`OUT/photos`) gets the whole original photo per edit and strength with every face of it edited
(`editing.photo_composite`; `--per-face` for one copy per face). `OUT/<name>/.edit.json` records the
fingerprint of what made a face's images (code, generator, directions, edits), so a rerun skips exactly
the inputs whose fingerprint is unchanged and redoes the others. Inputs that cannot be used are listed
in `OUT/failures.jsonl`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from common import atomic, images
from common.devices import resolve_device
from common.directions_file import LABELS_NAME, DirectionsFile, check_directions_for, load_directions
from common.errors import UserError
from common.failures import FailureLog
from common.fingerprint import content_sha256, fingerprint
from common.tuned_weights import BadDelta, apply_delta, delta_of_code, read_delta
from common.identity import enabled as identity_enabled
from common.identity import DRIFT_WARNING, NO_FACE_IN_PHOTO, SAME_PERSON, descriptor, drifted, identity_distance
from common.json_files import read_json_object
from common.layer_spec import parse_layer_spec
from common.naming import unique_stems
from common.output_folder import check_output_path, claimed_output_folder, is_inside
from common.photo_io import DEFAULT_MAX_PIXELS, check_max_pixels
from common.photo_output import DEFAULT_QUALITY, check_quality
from common.progress import track
from common.regular_files import problem_with
from common.safe_arrays import BadArray, load_npy
from common.stdin_records import distinct_stdin_inputs
from common.sweeps import write_sweep
from editing.conditional import ConditionalMove, KeptDirection, conditional_move
from editing.edit_spec import EditSpec, parse_edit, strength_text
from editing.paste_back import MASK_KINDS
from editing.photo_composite import MIN_FACE_SIZE, RECONSTRUCTION_NAME, EditedFace, PasteSettings, paste_photos
from editing.recipe import check_recipe_for, load_recipe
from editing.sidecar import BadSidecar, Sidecar, read_sidecar
from generators.checkpoint import load_checkpoint
from generators.interface import apply_render_condition, render_condition_of
from generators.latent_edit import code_entries

MARKER_NAME = ".edit.json"
MARKER_VERSION = 3
ANIMATIONS = ("gif", "mp4")
PHOTOS_NAME = "photos"  # OUT/photos: the pasted-back photos of `edit --paste-back`


@dataclass(frozen=True)
class CodeItem:
    code: Path
    name: str
    meta: Path | None  # alignment sidecar (for paste-back)


@dataclass(frozen=True)
class EditOptions:
    layers: str | None = None  # override for every edit
    paste_back: bool = False
    mask: str = "face"
    animate: str | None = None  # gif | mp4
    force: bool = False
    overwrite: bool = False
    batch_size: int = 8
    keep: tuple[str, ...] = ()  # conditional edits: directions (labels, indices, .npy files) whose effect is kept out
    photos_dir: Path | None = None  # where pasted-back photos go (default: OUT/photos)
    max_pixels: int = DEFAULT_MAX_PIXELS
    quality: int = DEFAULT_QUALITY  # of pasted-back JPEGs
    min_face_size: int = MIN_FACE_SIZE  # photo pixels; smaller faces are left untouched in pasted photos
    per_face: bool = False  # one pasted photo per face instead of one per photo with every face edited

    def paste_settings(self) -> PasteSettings:
        return PasteSettings(mask=self.mask, quality=self.quality, min_face_size=self.min_face_size, per_face=self.per_face,
                             animate=self.animate, max_pixels=self.max_pixels)

    def validate(self) -> None:
        if self.mask not in MASK_KINDS:
            raise UserError(f"--mask {self.mask!r}: expected one of {', '.join(MASK_KINDS)}")
        if self.animate not in (None, *ANIMATIONS):
            raise UserError(f"--animate {self.animate!r}: expected gif or mp4")
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: must be 1 or more")
        check_quality(self.quality)
        check_max_pixels(self.max_pixels)
        if self.min_face_size < 0:
            raise UserError(f"--min-face-size {self.min_face_size}: must be 0 (paste every face) or more pixels")


def list_codes(input_spec: str, stdin: Iterator[str] | None = None, exclude: Path | None = None) -> list[CodeItem]:
    """A folder of codes from `invert` (recursive; `exclude`, the OUT folder, left out), one .npy, or `-`
    (invert's JSON lines). Every code gets its own output name, however the stems clash."""
    if input_spec == "-":
        inputs = distinct_stdin_inputs(("code",), lambda path, record: Path(record["meta"])
                                       if isinstance(record.get("meta"), str) and record["meta"] else _meta_of(path), stdin)
        return [CodeItem(path, name, meta) for path, name, meta in inputs]
    root = Path(input_spec)
    if root.is_file():
        return [CodeItem(root, root.stem, _meta_of(root))]
    if not root.is_dir():
        problem = problem_with(root) if root.exists() or root.is_symlink() else "no such file or folder"
        raise UserError(f"{root}: {problem}; pass the output folder of `sefa-edit invert`, a .npy code, or -")
    codes = sorted(p for p in root.rglob("*.npy")
                   if not any(part.startswith(".") for part in p.relative_to(root).parts)
                   and not (exclude is not None and is_inside(p, exclude)))
    names = unique_stems([p.relative_to(root).as_posix() for p in codes])
    return [CodeItem(p, name, _meta_of(p)) for p, name in zip(codes, names)]


def render_condition_of_code(code: Path) -> dict:
    """What else than the code decides its render, from the record beside it (`sample`'s JSON): the
    class and truncation of a BigGAN sample, StyleGAN3's input transform (`generators/interface.py`)."""
    info = code.with_suffix(".json")
    if not info.is_file():
        return {}
    try:
        return render_condition_of(read_json_object(info))
    except (OSError, ValueError):
        return {}


def _meta_of(code: Path) -> Path | None:
    """The alignment sidecar recorded by `invert` beside the code."""
    info = code.with_suffix(".json")
    if not info.is_file():
        return None
    try:
        record = read_json_object(info).get("record")
    except (OSError, ValueError):  # unreadable, not JSON, crafted: no sidecar known, the code itself still edits
        return None
    meta = record.get("meta") if isinstance(record, dict) else None
    return Path(meta) if isinstance(meta, str) and meta else None


def resolve_kept(refs: tuple[str, ...], directions: DirectionsFile, num_ws: int) -> list[KeptDirection]:
    """--keep's directions: an index or a label of the directions file (on its layers, or the label's), or
    a .npy file holding one direction [dim] or [1, dim] (an InterFaceGAN boundary), on the directions' layers."""
    kept = []
    for ref in refs:
        if ref.isdigit() or ref in directions.labels:
            spec = parse_edit(f"{ref}=0", directions)
            vector = directions.directions[spec.index] * spec.sign
            layers = spec.layers if spec.layers is not None else directions.layers
        elif ref.endswith(".npy") and Path(ref).is_file():
            try:
                vector = load_npy(Path(ref)).astype(np.float64).reshape(-1)
            except (BadArray, ValueError) as exc:
                raise UserError(f"--keep {ref}: not a direction file ({exc})") from None
            if vector.shape != (directions.directions.shape[1],) or not np.isfinite(vector).all() or not vector.any():
                raise UserError(f"--keep {ref}: expected one finite direction of {directions.directions.shape[1]} numbers, "
                                f"got {vector.size}")
            vector, layers = vector / np.linalg.norm(vector), directions.layers
        else:
            known = ", ".join(sorted(directions.labels)) or "no labels"
            raise UserError(f"--keep {ref}: not a direction index (0..{len(directions.directions) - 1}), a label ({known}) "
                            f"or a .npy direction file")
        kept.append(KeptDirection(ref, np.asarray(vector, np.float64), tuple(code_entries(list(layers), num_ws))))
    return kept


def resolve_layers(spec: EditSpec, directions: DirectionsFile, override: str | None, num_ws: int) -> list[int]:
    if override is not None:
        return parse_layer_spec(override, num_ws)
    layers = list(spec.layers) if spec.layers is not None else directions.layers
    if num_ws == 1:
        return code_entries(layers, num_ws)
    bad = [i for i in layers if not 0 <= i < num_ws]
    if bad:
        raise UserError(f"--edit {spec.name}: layers {bad} do not exist in this generator (0..{num_ws - 1})")
    return layers


def run_edit(
    input_spec: str,
    out_dir: Path,
    generator_path: Path,
    directions_path: Path | None,
    edit_texts: list[str],
    options: EditOptions = EditOptions(),
    device_name: str = "auto",
    emit: Callable[[dict], None] = lambda record: None,
    say: Callable[[str], None] = lambda message: None,
    stdin: Iterator[str] | None = None,
    recipe_path: Path | None = None,
) -> dict:
    """`edit_texts` (with `directions_path`) and/or a recipe (`editing.recipe`): one row of outputs each."""
    if not edit_texts and recipe_path is None:
        raise UserError("no --edit or --recipe given; e.g. --edit 0=-3:3:7, --edit age=+2 or --recipe recipe.json")
    if edit_texts and directions_path is None:
        raise UserError("--edit needs the directions file: -d DIRS.npz (from `sefa-edit factorize`)")
    options.validate()
    check_output_path(out_dir)
    device = resolve_device(device_name)  # before any file is read: a wrong --device is the cheapest mistake to report
    recipe = load_recipe(recipe_path) if recipe_path is not None else None
    directions = load_directions(directions_path) if directions_path is not None else None
    specs = [parse_edit(text, directions) for text in edit_texts] if directions is not None else []
    checkpoint = load_checkpoint(generator_path)
    if directions is not None:
        _check_directions(directions, Path(directions_path), checkpoint, generator_path, options.force, say)
        directions.for_code(checkpoint.num_latent_layers)
    generator = checkpoint.build_generator(device)
    layers = {spec.name: resolve_layers(spec, directions, options.layers, generator.num_ws) for spec in specs}
    if options.keep and directions is None:
        raise UserError("--keep names directions of the directions file: pass -d DIRS.npz")
    kept = resolve_kept(options.keep, directions, generator.num_ws) if options.keep else []
    moves = {spec.name: conditional_move(spec.name, directions.vector(spec.index) * spec.sign, layers[spec.name], kept)
             for spec in specs}
    for spec in specs:
        if kept:
            say(f"--edit {spec.name}: keeping {', '.join(k.name for k in kept)} out of it; "
                f"{moves[spec.name].summary()['remaining']:.0%} of the direction is left")
    edit_prints = [[spec.name, spec.index, spec.sign, list(spec.strengths), layers[spec.name]] for spec in specs]
    if kept:
        edit_prints.append(["keep", [[k.name, k.vector.tolist(), list(k.layers)] for k in kept]])
    if recipe is not None:
        check_recipe_for(recipe, str(recipe_path), checkpoint.sha256, generator.num_ws, generator.w_dim, options.force)
        if any(spec.slug == recipe.name for spec in specs):
            raise UserError(f"{recipe_path}: the recipe's name {recipe.name!r} is also an --edit; rename one of them")
        specs.append(EditSpec(recipe.name, -1, 1, (1.0,), None, recipe=recipe))
        layers[recipe.name] = []
        edit_prints.append([recipe.name, "recipe", recipe.fingerprint()])
    items = list_codes(input_spec, stdin, exclude=out_dir)
    if not items:
        say("no codes arrived on stdin: the stage before produced none (its messages above say why)" if input_spec == "-"
            else f"{input_spec}: no codes (.npy) found; pass the output folder of `sefa-edit invert`")
    labels_file = Path(directions_path).parent / LABELS_NAME if directions_path is not None else None
    shared_print = {
        "version": MARKER_VERSION, "generator": checkpoint.sha256,
        "directions": content_sha256(directions_path) if directions_path is not None else None,
        "labels": content_sha256(labels_file) if labels_file is not None and labels_file.is_file() else None,
        "edits": edit_prints, "animate": options.animate,
    }
    with claimed_output_folder(out_dir):
        return _edit_all(items, out_dir, generator, directions, specs, moves, options, shared_print, emit, say)


def _check_directions(directions: DirectionsFile, directions_path: Path, checkpoint, generator_path: Path, force: bool,
                      say: Callable[[str], None] = lambda message: None) -> None:
    check_directions_for(directions, directions_path, checkpoint, generator_path, force)
    if directions.published and directions.trained_for:
        say(f"note: {Path(directions_path).name} was published for {directions.trained_for}; nothing in the file lets "
            f"sefa-edit check that {Path(generator_path).name} is that generator")


def _edit_all(items: list[CodeItem], out_dir: Path, generator, directions: DirectionsFile, specs: list[EditSpec], moves: dict,
              options: EditOptions, shared_print: dict, emit, say) -> dict:
    device = next(generator.parameters()).device
    failures = FailureLog(out_dir, say, key="code")
    summary = {"edited": 0, "skipped": 0, "failed": 0, "redone": 0}
    records: list[tuple[CodeItem, dict]] = []
    faces_to_paste: list[EditedFace] = []

    for item in track(items, "editing", unit="codes"):
        target = out_dir / item.name
        sidecar: Sidecar | None = None
        try:
            if options.paste_back and item.meta is not None:
                sidecar = read_sidecar(item.meta)
            delta_file = delta_of_code(item.code)  # pivotal tuning's weights for this face, from `invert --tune`
            tuned = content_sha256(delta_file) if delta_file is not None else None
            condition = render_condition_of_code(item.code)
            item_print = fingerprint(code=content_sha256(item.code), **shared_print, **({"tuned": tuned} if tuned else {}),
                                     **({"render_condition": condition} if condition else {}))
        except BadSidecar as exc:
            summary["failed"] += 1
            failures.add(item.code, "bad_sidecar", str(exc))
            continue
        except OSError as exc:
            summary["failed"] += 1
            failures.add(item.code, "unreadable", f"cannot read ({exc.strerror or exc})")
            continue
        if options.paste_back and sidecar is None:
            say(f"{item.code}: no alignment sidecar known, so no paste-back (invert the crops of `align`)")
        planned = _planned_outputs(target, specs, options)
        previous = atomic.read_json_object(target / MARKER_NAME) or {}
        done = not options.overwrite and previous.get("fingerprint") == item_print and all(p.is_file() for p in planned)
        identities = previous.get("identity") if isinstance(previous.get("identity"), dict) else {}
        if done:
            summary["skipped"] += 1
        else:
            if previous:
                summary["redone"] += 1
            try:
                try:
                    face_generator = apply_delta(generator, read_delta(delta_file, shared_print["generator"])) if tuned else generator
                except (BadDelta, ValueError) as exc:
                    summary["failed"] += 1
                    failures.add(item.code, "bad_tuning", str(exc))
                    continue
                try:
                    apply_render_condition(face_generator, condition)
                except ValueError as exc:
                    summary["failed"] += 1
                    failures.add(item.code, "bad_code", f"{item.code.with_suffix('.json')}: {exc}")
                    continue
                identities = _edit_one(item, target, planned, previous, face_generator, directions, specs, moves, options, device,
                                       item_print)
                del face_generator  # one tuned generator at a time, however many faces
            except BadArray as exc:
                summary["failed"] += 1
                failures.add(item.code, "bad_code", f"not a usable code: {exc}")
                continue
            except BadCodeShape as exc:
                summary["failed"] += 1
                failures.add(item.code, "bad_code", str(exc))
                continue
            summary["edited"] += 1
            far = sorted(name for name, value in identities.items() if drifted(value))
            if far:
                say(f"{item.name}: {len(far)} edit(s) {DRIFT_WARNING} (identity distance {SAME_PERSON} or more): "
                    + ", ".join(Path(name).stem for name in far))
        if sidecar is not None:
            faces_to_paste.append(EditedFace(item.name, sidecar, target, item_print))
        conditional = {name: move.summary() for name, move in moves.items() if move.kept}
        records.append((item, {**_record(item, target, planned), "identity": identities,
                               **({"conditional": conditional} if conditional else {})}))
        if not options.paste_back:
            emit(records[-1][1])
    if summary["redone"]:
        say(f"{summary['redone']} input(s) redone: the code, generator, directions or edits changed")
    if options.paste_back:
        photos_dir = options.photos_dir if options.photos_dir is not None else out_dir / PHOTOS_NAME
        pasted = paste_photos(faces_to_paste, photos_dir, specs, options.paste_settings(), failures, say)
        for item, record in records:
            photo = pasted.get(item.name)
            emit({**record, "photos": photo["pasted"] if photo else [], "untouched": bool(
                photo and any(entry["face"] == item.name for entry in photo["untouched"]))})
    return summary


class BadCodeShape(ValueError):
    """A code that this generator cannot take."""


def person_of(code: Path) -> tuple[bool, np.ndarray | None]:
    """(whether the code comes from a photo, the descriptor of the person in its crop): the descriptor
    `invert` stored beside the code, else one computed from the aligned crop its record names. A sample's
    code comes from no photo: (False, None); a photo crop without a detectable face: (True, None)."""
    info = atomic.read_json_object(Path(code).with_suffix(".json")) or {}
    stored = info.get("photo_descriptor")
    if isinstance(stored, list) and len(stored) == 128 and all(isinstance(v, (int, float)) for v in stored):
        return True, np.asarray(stored, dtype=np.float64)
    if "photo_descriptor" in info and stored is None:  # `invert` looked and found no face in the crop: not again
        return True, None
    record = info.get("record") if isinstance(info.get("record"), dict) else {}
    aligned = record.get("aligned")
    if isinstance(aligned, str) and Path(aligned).is_file():  # a code inverted before descriptors were stored
        try:
            return True, descriptor(images.read_rgb(Path(aligned)))
        except (OSError, ValueError):
            return True, None
    return False, None


def _identities(item: CodeItem, specs: list[EditSpec], rendered: dict) -> dict[str, float | str]:
    """{image file name: identity distance to the photo's person (under 0.6: the same person), or why there
    is none}, for the reconstruction and every edit; empty for codes that come from no photo (samples)."""
    if not identity_enabled():
        return {}
    from_photo, person = person_of(item.code)
    if not from_photo:
        return {}
    named = {RECONSTRUCTION_NAME: rendered[("", 0.0)]}
    named.update({f"{spec.slug}_{strength_text(s)}.png": rendered[(spec.name, s)] for spec in specs for s in spec.strengths})
    return {name: identity_distance(None, image, person) if person is not None else NO_FACE_IN_PHOTO
            for name, image in named.items()}


def _edit_one(item: CodeItem, target: Path, planned: list[Path], previous: dict, generator, directions: DirectionsFile,
              specs: list[EditSpec], moves: dict, options: EditOptions, device, item_print: str) -> dict[str, float | str]:
    """Render and write one input's edits, grid and sweeps; its marker last, so a crash leaves it undone.
    Returns the identity distance of each edited image (see `_identities`)."""
    code = load_npy(item.code)
    if code.shape != (generator.num_ws, generator.w_dim):
        raise BadCodeShape(f"code of shape {list(code.shape)}, this generator takes [{generator.num_ws}, {generator.w_dim}]")
    (target / MARKER_NAME).unlink(missing_ok=True)  # from here on the item is not done until it is rewritten
    ws = torch.from_numpy(code).float().to(device)[None]
    rendered = _render_edits(generator, ws, specs, moves, options.batch_size)
    for spec in specs:
        for strength in spec.strengths:
            images.save_rgb(target / f"{spec.slug}_{strength_text(strength)}.png", rendered[(spec.name, strength)])
    images.save_rgb(target / RECONSTRUCTION_NAME, rendered[("", 0.0)])
    images.save_rgb(target / "grid.png", _grid(specs, rendered))
    if options.animate:
        for spec in specs:
            write_sweep(target / f"{spec.slug}.{options.animate}", [rendered[(spec.name, s)] for s in spec.strengths])
    identities = _identities(item, specs, rendered)
    _remove_stale(previous, planned)
    atomic.write_json(target / MARKER_NAME, {"version": MARKER_VERSION, "fingerprint": item_print,
                                             "outputs": [str(p.resolve()) for p in planned], "identity": identities})
    return identities


def _remove_stale(previous: dict, planned: list[Path]) -> None:
    """Outputs of an earlier run that this run does not make (other strengths, no sweep now): delete them,
    so a folder never mixes results of two settings."""
    keep = {str(p.resolve()) for p in planned}
    for old in previous.get("outputs", []) if isinstance(previous.get("outputs"), list) else []:
        if isinstance(old, str) and old not in keep:
            Path(old).unlink(missing_ok=True)


@torch.no_grad()
def _render_edits(generator, ws, specs: list[EditSpec], moves: dict[str, ConditionalMove], batch_size: int) -> dict:
    """{(edit name, strength): RGB uint8} plus {("", 0.0): the unedited reconstruction}. `moves`: each
    --edit's move per code entry (`editing/conditional.py`; the plain direction unless --keep)."""
    keys, codes = [("", 0.0)], [ws]
    for spec in specs:
        if spec.recipe is not None:
            for strength in spec.strengths:
                keys.append((spec.name, strength))
                codes.append(spec.recipe.apply(ws, float(strength)))
            continue
        for strength in spec.strengths:
            keys.append((spec.name, strength))
            codes.append(moves[spec.name].apply(ws, float(strength)))
    stacked = torch.cat(codes)
    out = []
    for start in range(0, len(stacked), batch_size):
        out.extend(images.tensor_to_uint8(generator.render(stacked[start : start + batch_size])))
    return dict(zip(keys, out))


def _grid(specs: list[EditSpec], rendered: dict) -> np.ndarray:
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


def _planned_outputs(target: Path, specs: list[EditSpec], options: EditOptions) -> list[Path]:
    paths = [target / "grid.png", target / RECONSTRUCTION_NAME]
    for spec in specs:
        paths += [target / f"{spec.slug}_{strength_text(s)}.png" for s in spec.strengths]
        if options.animate:
            paths.append(target / f"{spec.slug}.{options.animate}")
    return paths


def _record(item: CodeItem, target: Path, outputs: list[Path]) -> dict:
    return {
        "code": str(Path(item.code).resolve()),
        "grid": str((target / "grid.png").resolve()),
        "images": [str(p.resolve()) for p in outputs if p.suffix == ".png" and p.name not in ("grid.png", RECONSTRUCTION_NAME)],
        "photos": [],
        "animations": [str(p.resolve()) for p in outputs if p.suffix in (".gif", ".mp4")],
    }
