"""`sefa-edit edit`: codes (W+, or PGGAN's z from `sample`) + directions -> edited images, a grid per input, sweeps, pasted-back photos.

For each code, each `--edit` and each strength: w' = w + strength * sign * n on the chosen layers,
rendered by the generator. Per input `OUT/<name>/`: `<edit>_<strength>.png`, `grid.png` (rows = edits,
columns = strengths, the unedited reconstruction in the 0 column), optional `<edit>.gif` / `.mp4`
sweeps, and with `--paste-back` `photo_<edit>_<strength>.jpg`: the whole original photo with the
edited face. `OUT/<name>/.edit.json` records the fingerprint of what made them (code, generator,
directions, edits, paste-back settings, sidecar and photo), so a rerun skips exactly the inputs whose
fingerprint is unchanged and redoes the others. Inputs that cannot be used are listed in
`OUT/failures.jsonl`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch

from common import atomic, images
from common.devices import resolve_device
from common.directions_file import LABELS_NAME, DirectionsFile, load_directions
from common.errors import UserError
from common.failures import FailureLog
from common.fingerprint import content_sha256, fingerprint
from common.layer_spec import parse_layer_spec
from common.naming import unique_stems
from common.output_folder import check_output_path, claimed_output_folder, is_inside
from common.photo_io import DEFAULT_MAX_PIXELS, UnreadableImage, read_photo
from common.progress import track
from common.safe_arrays import BadArray, load_npy
from common.stdin_records import distinct_stdin_inputs
from editing.edit_spec import EditSpec, parse_edit, strength_text
from editing.paste_back import MASK_KINDS, paste_back
from editing.sidecar import BadSidecar, Sidecar, read_sidecar
from generators.checkpoint import load_checkpoint
from generators.latent_edit import move_along

MARKER_NAME = ".edit.json"
MARKER_VERSION = 2
ANIMATIONS = ("gif", "mp4")


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
    photos_dir: Path | None = None  # where pasted-back photos go (default: beside the edits of each input)
    max_pixels: int = DEFAULT_MAX_PIXELS

    def validate(self) -> None:
        if self.mask not in MASK_KINDS:
            raise UserError(f"--mask {self.mask!r}: expected one of {', '.join(MASK_KINDS)}")
        if self.animate not in (None, *ANIMATIONS):
            raise UserError(f"--animate {self.animate!r}: expected gif or mp4")
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: must be 1 or more")


def list_codes(input_spec: str, stdin: Iterator[str] | None = None, exclude: Path | None = None) -> list[CodeItem]:
    """A folder of codes from `invert` (recursive; `exclude`, the OUT folder, left out), one .npy, or `-`
    (invert's JSON lines). Every code gets its own output name, however the stems clash."""
    if input_spec == "-":
        inputs = distinct_stdin_inputs(("code",), lambda path, record: Path(record["meta"]) if record.get("meta")
                                       else _meta_of(path), stdin)
        return [CodeItem(path, name, meta) for path, name, meta in inputs]
    root = Path(input_spec)
    if root.is_file():
        return [CodeItem(root, root.stem, _meta_of(root))]
    if not root.is_dir():
        raise UserError(f"{root}: no such file or folder; pass the output folder of `sefa-edit invert`, a .npy code, or -")
    codes = sorted(p for p in root.rglob("*.npy")
                   if not any(part.startswith(".") for part in p.relative_to(root).parts)
                   and not (exclude is not None and is_inside(p, exclude)))
    names = unique_stems([p.relative_to(root).as_posix() for p in codes])
    return [CodeItem(p, name, _meta_of(p)) for p, name in zip(codes, names)]


def _meta_of(code: Path) -> Path | None:
    """The alignment sidecar recorded by `invert` beside the code."""
    info = code.with_suffix(".json")
    if info.is_file():
        try:
            meta = json.loads(info.read_text()).get("record", {}).get("meta")
            return Path(meta) if isinstance(meta, str) and meta else None
        except (OSError, ValueError, AttributeError):
            return None
    return None


def resolve_layers(spec: EditSpec, directions: DirectionsFile, override: str | None, num_ws: int) -> list[int]:
    if override is not None:
        return parse_layer_spec(override, num_ws)
    layers = list(spec.layers) if spec.layers is not None else directions.layers
    bad = [i for i in layers if not 0 <= i < num_ws]
    if bad:
        raise UserError(f"--edit {spec.name}: layers {bad} do not exist in this generator (0..{num_ws - 1})")
    return layers


def run_edit(
    input_spec: str,
    out_dir: Path,
    generator_path: Path,
    directions_path: Path,
    edit_texts: list[str],
    options: EditOptions = EditOptions(),
    device_name: str = "auto",
    emit: Callable[[dict], None] = lambda record: None,
    say: Callable[[str], None] = lambda message: None,
    stdin: Iterator[str] | None = None,
) -> dict:
    if not edit_texts:
        raise UserError("no --edit given; e.g. --edit 0=-3:3:7 or --edit age=+2")
    options.validate()
    check_output_path(out_dir)
    directions = load_directions(directions_path)
    specs = [parse_edit(text, directions) for text in edit_texts]
    checkpoint = load_checkpoint(generator_path)
    if directions.checkpoint_sha256 != checkpoint.sha256 and not options.force:
        raise UserError(
            f"{directions_path}: directions were computed for another generator (sha256 {directions.checkpoint_sha256[:12]}..., "
            f"{generator_path} is {checkpoint.sha256[:12]}...); run factorize on this generator, or pass --force"
        )
    if directions.latent_space != checkpoint.latent_space:
        raise UserError(f"{directions_path}: {directions.latent_space}-space directions cannot edit the "
                        f"{checkpoint.latent_space} codes of {generator_path}; factorize this generator")
    if directions.directions.shape[1] != checkpoint.latent_dim:
        raise UserError(f"{directions_path}: directions are {directions.directions.shape[1]}-dimensional but {generator_path} "
                        f"has {checkpoint.latent_dim}-dimensional W codes; factorize this generator")
    device = resolve_device(device_name)
    generator = checkpoint.build_generator(device)
    layers = {spec.name: resolve_layers(spec, directions, options.layers, generator.num_ws) for spec in specs}
    items = list_codes(input_spec, stdin, exclude=out_dir)
    labels_file = Path(directions_path).parent / LABELS_NAME
    shared_print = {
        "version": MARKER_VERSION, "generator": checkpoint.sha256, "directions": content_sha256(directions_path),
        "labels": content_sha256(labels_file) if labels_file.is_file() else None,
        "edits": [[spec.name, spec.index, spec.sign, list(spec.strengths), layers[spec.name]] for spec in specs],
        "paste_back": options.paste_back, "mask": options.mask, "animate": options.animate,
    }
    with claimed_output_folder(out_dir):
        return _edit_all(items, out_dir, generator, directions, specs, layers, options, shared_print, emit, say)


def _edit_all(items: list[CodeItem], out_dir: Path, generator, directions: DirectionsFile, specs: list[EditSpec], layers: dict,
              options: EditOptions, shared_print: dict, emit, say) -> dict:
    device = next(generator.parameters()).device
    failures = FailureLog(out_dir, say, key="code")
    summary = {"edited": 0, "skipped": 0, "failed": 0, "redone": 0}

    for item in track(items, "editing"):
        target = out_dir / item.name
        photos_target = options.photos_dir / item.name if options.photos_dir is not None else target
        sidecar: Sidecar | None = None
        try:
            if options.paste_back and item.meta is not None:
                sidecar = read_sidecar(item.meta)
            item_print = fingerprint(
                code=content_sha256(item.code), **shared_print,
                sidecar=content_sha256(item.meta) if sidecar is not None else None,
                photo=content_sha256(sidecar.source) if sidecar is not None else None,
            )
        except BadSidecar as exc:
            summary["failed"] += 1
            failures.add(item.code, "bad_sidecar", str(exc))
            continue
        except OSError as exc:
            summary["failed"] += 1
            failures.add(item.code, "unreadable", f"cannot read ({exc.strerror or exc})")
            continue
        planned = _planned_outputs(target, photos_target, specs, options, can_paste=sidecar is not None)
        previous = atomic.read_json_object(target / MARKER_NAME) or {}
        if not options.overwrite and previous.get("fingerprint") == item_print and all(p.is_file() for p in planned):
            summary["skipped"] += 1
            emit(_record(item, target, planned))
            continue
        if previous:
            summary["redone"] += 1
        try:
            code = load_npy(item.code)
        except BadArray as exc:
            summary["failed"] += 1
            failures.add(item.code, "bad_code", f"not a usable code: {exc}")
            continue
        if code.shape != (generator.num_ws, generator.w_dim):
            summary["failed"] += 1
            failures.add(item.code, "bad_code", f"code of shape {list(code.shape)}, this generator takes "
                                                f"[{generator.num_ws}, {generator.w_dim}]")
            continue
        photo = None
        if options.paste_back and sidecar is not None:
            try:
                photo = _photo_for(sidecar, options.max_pixels)
            except (UnreadableImage, BadSidecar) as exc:
                summary["failed"] += 1
                failures.add(item.code, "bad_photo", str(exc))
                continue
        elif options.paste_back:
            say(f"{item.code}: no alignment sidecar known, so no paste-back (invert the crops of `align`)")
        (target / MARKER_NAME).unlink(missing_ok=True)  # from here on the item is not done until it is rewritten
        ws = torch.from_numpy(code).float().to(device)[None]
        rendered = _render_edits(generator, ws, specs, directions, layers, options.batch_size)
        for spec in specs:
            for strength in spec.strengths:
                images.save_rgb(target / f"{spec.slug}_{strength_text(strength)}.png", rendered[(spec.name, strength)])
        images.save_rgb(target / "grid.png", _grid(specs, rendered))
        if options.animate:
            for spec in specs:
                _write_sweep(target / f"{spec.slug}.{options.animate}", [rendered[(spec.name, s)] for s in spec.strengths])
        if photo is not None:
            _paste_all(photo, sidecar, photos_target, specs, rendered, options.mask)
        _remove_stale(previous, planned)
        atomic.write_json(target / MARKER_NAME, {"version": MARKER_VERSION, "fingerprint": item_print,
                                                 "outputs": [str(p.resolve()) for p in planned]})
        summary["edited"] += 1
        emit(_record(item, target, planned))
    if summary["redone"]:
        say(f"{summary['redone']} input(s) redone: the code, generator, directions, edits or paste-back inputs changed")
    return summary


def _remove_stale(previous: dict, planned: list[Path]) -> None:
    """Outputs of an earlier run that this run does not make (other strengths, no sweep now): delete them,
    so a folder never mixes results of two settings."""
    keep = {str(p.resolve()) for p in planned}
    for old in previous.get("outputs", []) if isinstance(previous.get("outputs"), list) else []:
        if isinstance(old, str) and old not in keep:
            Path(old).unlink(missing_ok=True)


def _photo_for(sidecar: Sidecar, max_pixels: int) -> np.ndarray:
    photo = read_photo(sidecar.source, max_pixels=max_pixels).rgb
    if (photo.shape[1], photo.shape[0]) != sidecar.source_size:
        raise BadSidecar(f"the photo {sidecar.source} changed size since alignment; re-run align")
    return photo


@torch.no_grad()
def _render_edits(generator, ws, specs: list[EditSpec], directions: DirectionsFile, layers: dict, batch_size: int) -> dict:
    """{(edit name, strength): RGB uint8} plus {("", 0.0): the unedited reconstruction}."""
    keys, codes = [("", 0.0)], [ws]
    for spec in specs:
        direction = torch.as_tensor(directions.directions[spec.index] * spec.sign, dtype=torch.float32, device=ws.device)
        for strength in spec.strengths:
            keys.append((spec.name, strength))
            codes.append(move_along(ws, direction, layers[spec.name], float(strength)))
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


def _write_sweep(path: Path, frames: list[np.ndarray]) -> None:
    """A back-and-forth sweep along one direction, as an animated GIF or an MP4, written atomically."""
    sequence = frames + frames[-2:0:-1]
    if path.suffix == ".gif":
        from PIL import Image

        pictures = [Image.fromarray(frame) for frame in sequence]

        def write(handle) -> None:
            pictures[0].save(handle, format="GIF", save_all=True, append_images=pictures[1:], duration=120, loop=0)

        atomic.write_with(path, write)
        return
    height, width = frames[0].shape[:2]

    def produce(tmp: Path) -> None:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), 8, (width, height))
        if not writer.isOpened():
            raise UserError(f"{path}: OpenCV cannot write MP4 here; use --animate gif")
        for frame in sequence:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()

    def verify(tmp: Path) -> None:
        """OpenCV's writer reports no error when the disk fills up: read the file back and count its frames."""
        capture = cv2.VideoCapture(str(tmp))
        frames_read = 0
        while capture.isOpened():
            ok, _ = capture.read()
            if not ok:
                break
            frames_read += 1
        capture.release()
        if frames_read != len(sequence):
            raise OSError(f"the video holds {frames_read} of its {len(sequence)} frames (incomplete write)")

    atomic.write_by_name(path, produce, verify)


def _paste_all(photo: np.ndarray, sidecar: Sidecar, target: Path, specs: list[EditSpec], rendered: dict, mask: str) -> None:
    for spec in specs:
        for strength in spec.strengths:
            pasted, _ = paste_back(photo, rendered[(spec.name, strength)], sidecar.quad, sidecar.landmarks, mask)
            images.save_rgb(target / f"photo_{spec.slug}_{strength_text(strength)}.jpg", pasted)


def _planned_outputs(target: Path, photos_target: Path, specs: list[EditSpec], options: EditOptions, can_paste: bool) -> list[Path]:
    paths = [target / "grid.png"]
    for spec in specs:
        paths += [target / f"{spec.slug}_{strength_text(s)}.png" for s in spec.strengths]
        if options.animate:
            paths.append(target / f"{spec.slug}.{options.animate}")
        if options.paste_back and can_paste:
            paths += [photos_target / f"photo_{spec.slug}_{strength_text(s)}.jpg" for s in spec.strengths]
    return paths


def _record(item: CodeItem, target: Path, outputs: list[Path]) -> dict:
    return {
        "code": str(Path(item.code).resolve()),
        "grid": str((target / "grid.png").resolve()),
        "images": [str(p.resolve()) for p in outputs if p.suffix == ".png" and p.name != "grid.png"],
        "photos": [str(p.resolve()) for p in outputs if p.name.startswith("photo_")],
        "animations": [str(p.resolve()) for p in outputs if p.suffix in (".gif", ".mp4")],
    }
