"""`sefa-edit edit`: W+ codes + directions -> edited images, a grid per input, sweeps, pasted-back photos.

For each code, each `--edit` and each strength: w' = w + strength * sign * n on the chosen layers,
rendered by the generator. Per input `OUT/<name>/`: `<edit>_<strength>.png`, `grid.png` (rows = edits,
columns = strengths, the unedited reconstruction in the 0 column), optional `<edit>.gif` / `.mp4`
sweeps, and with `--paste-back` `photo_<edit>_<strength>.jpg`: the whole original photo with the
edited face. Inputs whose outputs all exist are skipped on reruns.
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
from common.directions_file import DirectionsFile, load_directions
from common.errors import UserError
from common.layer_spec import parse_layer_spec
from common.photo_io import UnreadableImage, read_photo
from common.progress import track
from common.stdin_records import stdin_records
from editing.edit_spec import EditSpec, parse_edit
from editing.paste_back import MASK_KINDS, paste_back
from generators.checkpoint import load_checkpoint
from generators.latent_edit import move_along


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


def list_codes(input_spec: str, stdin: Iterator[str] | None = None) -> list[CodeItem]:
    """A folder of codes from `invert` (recursive), one .npy, or `-` (invert's JSON lines)."""
    if input_spec == "-":
        return [
            CodeItem(path, path.stem, Path(record["meta"]) if record.get("meta") else _meta_of(path))
            for path, record in stdin_records(("code",), stdin)
        ]
    root = Path(input_spec)
    if root.is_file():
        return [CodeItem(root, root.stem, _meta_of(root))]
    if not root.is_dir():
        raise UserError(f"{root}: no such file or folder; pass the output folder of `sefa-edit invert`, a .npy code, or -")
    codes = sorted(p for p in root.rglob("*.npy") if not any(part.startswith(".") for part in p.relative_to(root).parts))
    return [CodeItem(p, p.relative_to(root).with_suffix("").as_posix(), _meta_of(p)) for p in codes]


def _meta_of(code: Path) -> Path | None:
    """The alignment sidecar recorded by `invert` beside the code."""
    info = code.with_suffix(".json")
    if info.is_file():
        try:
            meta = json.loads(info.read_text()).get("record", {}).get("meta")
            return Path(meta) if meta else None
        except (OSError, json.JSONDecodeError):
            return None
    return None


def _strength_text(value: float) -> str:
    return f"{value:+.2f}".replace(".", "p")


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
    if options.mask not in MASK_KINDS:
        raise UserError(f"--mask {options.mask!r}: expected one of {', '.join(MASK_KINDS)}")
    if options.animate not in (None, "gif", "mp4"):
        raise UserError(f"--animate {options.animate!r}: expected gif or mp4")
    directions = load_directions(directions_path)
    checkpoint = load_checkpoint(generator_path)
    if directions.checkpoint_sha256 != checkpoint.sha256 and not options.force:
        raise UserError(
            f"{directions_path}: directions were computed for another generator (sha256 {directions.checkpoint_sha256[:12]}..., "
            f"{generator_path} is {checkpoint.sha256[:12]}...); run factorize on this generator, or pass --force"
        )
    if directions.latent_space != "W+":
        raise UserError(f"{directions_path}: {directions.latent_space}-space directions cannot edit W+ codes")
    device = resolve_device(device_name)
    generator = checkpoint.build_generator(device)
    specs = [parse_edit(text, directions) for text in edit_texts]
    layers = {spec.name: resolve_layers(spec, directions, options.layers, generator.num_ws) for spec in specs}
    items = list_codes(input_spec, stdin)
    summary = {"edited": 0, "skipped": 0, "failed": 0}

    for item in track(items, "editing"):
        target = out_dir / item.name
        photos_target = options.photos_dir / item.name if options.photos_dir is not None else target
        planned = _planned_outputs(target, photos_target, specs, options, can_paste=item.meta is not None and item.meta.is_file())
        if not options.overwrite and all(p.is_file() for p in planned):
            summary["skipped"] += 1
            emit(_record(item, target, planned))
            continue
        try:
            code = np.load(item.code, allow_pickle=False)
        except (OSError, ValueError) as exc:
            summary["failed"] += 1
            say(f"{item.code}: not a readable code ({exc}); skipped")
            continue
        if code.shape != (generator.num_ws, generator.w_dim):
            summary["failed"] += 1
            say(f"{item.code}: code of shape {list(code.shape)}, this generator takes [{generator.num_ws}, {generator.w_dim}]; skipped")
            continue
        ws = torch.from_numpy(code).float().to(device)[None]
        rendered = _render_edits(generator, ws, specs, directions, layers, options.batch_size)
        for spec in specs:
            for strength in spec.strengths:
                images.save_rgb(target / f"{spec.slug}_{_strength_text(strength)}.png", rendered[(spec.name, strength)])
        images.save_rgb(target / "grid.png", _grid(specs, rendered))
        if options.animate:
            for spec in specs:
                _write_sweep(target / f"{spec.slug}.{options.animate}", [rendered[(spec.name, s)] for s in spec.strengths])
        if options.paste_back:
            _paste_all(item, photos_target, specs, rendered, options.mask, say)
        summary["edited"] += 1
        emit(_record(item, target, [p for p in planned if p.is_file()]))
    return summary


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
        out.extend(images.tensor_to_uint8(generator.synthesis(stacked[start : start + batch_size])))
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
    """A back-and-forth sweep along one direction, as an animated GIF or an MP4."""
    sequence = frames + frames[-2:0:-1]
    if path.suffix == ".gif":
        from PIL import Image

        pictures = [Image.fromarray(frame) for frame in sequence]

        def write(handle) -> None:
            pictures[0].save(handle, format="GIF", save_all=True, append_images=pictures[1:], duration=120, loop=0)

        atomic.write_with(path, write)
        return
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), 8, (width, height))
    if not writer.isOpened():
        raise UserError(f"{path}: OpenCV cannot write MP4 here; use --animate gif")
    for frame in sequence:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    tmp.replace(path)


def _paste_all(item: CodeItem, target: Path, specs: list[EditSpec], rendered: dict, mask: str, say) -> None:
    if item.meta is None or not item.meta.is_file():
        say(f"{item.code}: no alignment sidecar known, so no paste-back (invert the crops of `align`)")
        return
    meta = json.loads(item.meta.read_text())
    try:
        photo = read_photo(Path(meta["source"])).rgb
    except (UnreadableImage, OSError) as exc:
        say(f"{meta['source']}: cannot read the original photo for paste-back ({exc}); skipped")
        return
    if [photo.shape[1], photo.shape[0]] != meta["source_size"]:
        say(f"{meta['source']}: the photo changed size since alignment; paste-back skipped (re-run align)")
        return
    quad, landmarks = np.asarray(meta["quad"]), np.asarray(meta["landmarks"])
    for spec in specs:
        for strength in spec.strengths:
            pasted, _ = paste_back(photo, rendered[(spec.name, strength)], quad, landmarks, mask)
            images.save_rgb(target / f"photo_{spec.slug}_{_strength_text(strength)}.jpg", pasted)


def _planned_outputs(target: Path, photos_target: Path, specs: list[EditSpec], options: EditOptions, can_paste: bool) -> list[Path]:
    paths = [target / "grid.png"]
    for spec in specs:
        paths += [target / f"{spec.slug}_{_strength_text(s)}.png" for s in spec.strengths]
        if options.animate:
            paths.append(target / f"{spec.slug}.{options.animate}")
        if options.paste_back and can_paste:
            paths += [photos_target / f"photo_{spec.slug}_{_strength_text(s)}.jpg" for s in spec.strengths]
    return paths


def _record(item: CodeItem, target: Path, outputs: list[Path]) -> dict:
    return {
        "code": str(item.code),
        "grid": str(target / "grid.png"),
        "images": [str(p) for p in outputs if p.suffix == ".png" and p.name != "grid.png"],
        "photos": [str(p) for p in outputs if p.name.startswith("photo_")],
        "animations": [str(p) for p in outputs if p.suffix in (".gif", ".mp4")],
    }
