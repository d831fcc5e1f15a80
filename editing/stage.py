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

from common.devices import resolve_device
from common.directions_file import LABELS_NAME, DirectionsFile, check_directions_for, load_directions
from common.errors import UserError
from common.fingerprint import content_sha256
from common.json_files import read_json_object
from common.layer_spec import parse_layer_spec
from common.naming import unique_stems
from common.output_folder import check_output_path, claimed_output_folder, is_inside
from common.photo_io import DEFAULT_MAX_PIXELS, check_max_pixels
from common.photo_output import DEFAULT_QUALITY, check_quality
from common.process_pool import OrderedPool
from common.regular_files import problem_with
from common.safe_arrays import BadArray, load_npy
from common.stdin_records import distinct_stdin_inputs
from editing.conditional import KeptDirection, conditional_move
from editing.edit_run import CodeItem, EditRun, PreparedEdit, render_condition_of_code
from editing.edit_spec import EditSpec, parse_edit
from editing.face_outputs import MARKER_NAME, MARKER_VERSION
from editing.paste_back import MASK_KINDS
from editing.photo_composite import MIN_FACE_SIZE, PasteSettings
from editing.recipe import check_recipe_for, load_recipe
from generators.checkpoint import load_checkpoint
from generators.precision import check_precision, fingerprint_part
from generators.latent_edit import code_entries

__all__ = ["CodeItem", "EditOptions", "MARKER_NAME", "list_codes", "prepare_edit", "render_condition_of_code", "run_edit"]
ANIMATIONS = ("gif", "mp4")
PHOTOS_NAME = "photos"  # OUT/photos: the pasted-back photos of `edit --paste-back`


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
    workers: int = 1  # processes writing images and pasting photos (the render stays in this process)
    precision: str = "fp32"  # render precision (generators/precision.py)

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
        if self.workers < 1:
            raise UserError(f"--workers {self.workers}: must be 1 or more")
        check_precision(self.precision)
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
    group_names: dict[Path, str] | None = None,
) -> dict:
    """`edit_texts` (with `directions_path`) and/or a recipe (`editing.recipe`): one row of outputs each.
    Faces are rendered here and written (images, grids, sweeps, identity, paste-back) on `options.workers`
    processes."""
    check_output_path(out_dir)
    prepared = prepare_edit(out_dir, generator_path, directions_path, edit_texts, options, device_name, say, recipe_path)
    items = list_codes(input_spec, stdin, exclude=out_dir)
    if not items:
        say("no codes arrived on stdin: the stage before produced none (its messages above say why)" if input_spec == "-"
            else f"{input_spec}: no codes (.npy) found; pass the output folder of `sefa-edit invert`")
    with claimed_output_folder(out_dir), OrderedPool(options.workers if len(items) > 1 else 1) as pool:
        run = EditRun(prepared, out_dir, pool, emit, say, group_names)
        faces = run.edit(items)
        if options.paste_back:
            run.paste(faces)
        return run.finish()


def prepare_edit(out_dir: Path, generator_path: Path, directions_path: Path | None, edit_texts: list[str],
                 options: EditOptions, device_name: str = "auto", say: Callable[[str], None] = lambda message: None,
                 recipe_path: Path | None = None) -> PreparedEdit:
    """Everything decided once for all faces: the generator, the edits, their moves, the shared fingerprint.
    Every mistake in them is said here, before any face is read."""
    if not edit_texts and recipe_path is None:
        raise UserError("no --edit or --recipe given; e.g. --edit 0=-3:3:7, --edit age=+2 or --recipe recipe.json")
    if edit_texts and directions_path is None:
        raise UserError("--edit needs the directions file: -d DIRS.npz (from `sefa-edit factorize`)")
    options.validate()
    device = resolve_device(device_name)  # before any file is read: a wrong --device is the cheapest mistake to report
    recipe = load_recipe(recipe_path) if recipe_path is not None else None
    directions = load_directions(directions_path) if directions_path is not None else None
    specs = [parse_edit(text, directions) for text in edit_texts] if directions is not None else []
    checkpoint = load_checkpoint(generator_path)
    if directions is not None:
        _check_directions(directions, Path(directions_path), checkpoint, generator_path, options.force, say)
        directions.for_code(checkpoint.num_latent_layers)
    generator = checkpoint.build_generator(device, options.precision)
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
    labels_file = Path(directions_path).parent / LABELS_NAME if directions_path is not None else None
    shared_print = {
        "version": MARKER_VERSION, "generator": checkpoint.sha256,
        "directions": content_sha256(directions_path) if directions_path is not None else None,
        "labels": content_sha256(labels_file) if labels_file is not None and labels_file.is_file() else None,
        "edits": edit_prints, "animate": options.animate, **fingerprint_part(options.precision),
    }
    photos_dir = options.photos_dir if options.photos_dir is not None else Path(out_dir) / PHOTOS_NAME
    return PreparedEdit(generator, tuple(specs), moves, options.batch_size, options.animate, options.overwrite,
                        options.paste_back, photos_dir, options.paste_settings(), shared_print)


def _check_directions(directions: DirectionsFile, directions_path: Path, checkpoint, generator_path: Path, force: bool,
                      say: Callable[[str], None] = lambda message: None) -> None:
    check_directions_for(directions, directions_path, checkpoint, generator_path, force)
    if directions.published and directions.trained_for:
        say(f"note: {Path(directions_path).name} was published for {directions.trained_for}; nothing in the file lets "
            f"sefa-edit check that {Path(generator_path).name} is that generator")
