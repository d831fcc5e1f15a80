"""`sefa-edit invert`: aligned crops -> W+ codes (`NAME.npy`), reconstructions, metrics.

Per crop: `OUT/<name>.npy` (float32 [num_ws, w_dim]), `OUT/<name>_rec.png`, `OUT/<name>.json` (what the
code came from: aligned crop, its sidecar for paste-back, generator sha256, metrics, and the fingerprint
of everything that made the code), one line in `OUT/metrics.jsonl`, and one JSON line on stdout for
`edit`. Crops that cannot be used are listed in `OUT/failures.jsonl`. A rerun skips the crops whose
fingerprint is unchanged and redoes the others (another generator, encoder, crop or setting).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch

from common import atomic, images
from common.devices import resolve_device
from common.errors import UserError
from common.failures import FailureLog
from common.fingerprint import content_sha256, fingerprint
from common.naming import unique_stems
from common.output_folder import check_output_path, claimed_output_folder
from common.photo_io import find_images
from common.progress import track
from common.stdin_records import distinct_stdin_inputs
from generators.checkpoint import load_checkpoint
from inversion.encoder import load_encoder
from inversion.memory import HalvingRunner, OutOfMemory
from inversion.optimize import InversionResult, InversionSettings, invert, psnr_from_mse
from inversion.perceptual import LPIPS, find_vgg_weights

INFO_VERSION = 3  # 3: the encoder-only reconstruction is kept beside the optimised one


@dataclass(frozen=True)
class CropItem:
    aligned: Path
    name: Path  # output stem relative to OUT
    meta: Path | None  # the alignment sidecar, when known


def list_crops(input_spec: str, stdin: Iterator[str] | None = None, exclude: Path | None = None) -> list[CropItem]:
    """A folder of aligned crops (recursive; `exclude`, the OUT folder, left out), one crop, or `-`
    (align's JSON lines, or paths). Every crop gets its own output name, however the stems clash."""
    if input_spec == "-":
        inputs = distinct_stdin_inputs(("aligned",), lambda path, record: Path(record["meta"]) if record.get("meta")
                                       else _sidecar(path), stdin)
        return [CropItem(path, Path(name), meta) for path, name, meta in inputs]
    root = Path(input_spec)
    if root.is_file():
        return [CropItem(root, Path(root.stem), _sidecar(root))]
    if not root.is_dir():
        raise UserError(f"{root}: no such file or folder; pass the output folder of `sefa-edit align`, a crop, or -")
    crops = find_images(root, exclude=exclude)
    names = unique_stems([p.relative_to(root).as_posix() for p in crops])
    return [CropItem(p, Path(name), _sidecar(p)) for p, name in zip(crops, names)]


def _sidecar(crop: Path) -> Path | None:
    meta = crop.with_suffix(".json")
    return meta if meta.is_file() else None


def load_target(path: Path, resolution: int) -> torch.Tensor:
    if not Path(path).is_file():
        raise ValueError("not a regular file")
    rgb = images.read_rgb(path)
    if rgb.shape[0] != resolution or rgb.shape[1] != resolution:
        interpolation = cv2.INTER_AREA if rgb.shape[0] > resolution else cv2.INTER_CUBIC
        rgb = cv2.resize(rgb, (resolution, resolution), interpolation=interpolation)
    return images.uint8_to_tensor(rgb)[0]


def _outputs(out_dir: Path, item: CropItem) -> tuple[Path, Path, Path]:
    base = out_dir / item.name
    return base.with_suffix(".npy"), base.parent / f"{base.name}_rec.png", base.with_suffix(".json")


def merge_results(parts: list[InversionResult]) -> InversionResult:
    """One result from the results of a split batch, in order."""
    if len(parts) == 1:
        return parts[0]

    def cat(name: str) -> torch.Tensor | None:
        values = [getattr(part, name) for part in parts]
        return None if values[0] is None else torch.cat(values)

    tensors = ("ws", "reconstructions", "start_reconstructions", "start_mse", "start_lpips", "mse", "lpips")
    return InversionResult(**{name: cat(name) for name in tensors},
                           failure=[entry for part in parts for entry in part.failure],
                           seconds=sum(part.seconds for part in parts))


def auto_batch_size(device: torch.device) -> int:
    """On a CPU a batch is no faster per image than one crop, and one crop at a time means a kill loses
    at most one crop's work; a GPU is better used with several crops at once."""
    return 4 if device.type == "cuda" else 1


def run_invert(
    input_spec: str,
    out_dir: Path,
    generator_path: Path,
    encoder_path: Path | None,
    settings: InversionSettings,
    perceptual: str = "lpips",
    vgg_path: Path | None = None,
    batch_size: int | None = None,
    device_name: str = "auto",
    overwrite: bool = False,
    emit: Callable[[dict], None] = lambda record: None,
    say: Callable[[str], None] = lambda message: None,
    stdin: Iterator[str] | None = None,
    shared_dir: Path | None = None,
) -> dict:
    """Invert every crop; `batch_size` None picks one for the device (see `auto_batch_size`)."""
    if perceptual not in ("lpips", "none"):
        raise UserError(f"--perceptual {perceptual!r}: expected lpips or none")
    settings.validate()
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be 1 or more, or auto")
    check_output_path(out_dir)
    device = resolve_device(device_name)
    items = list_crops(input_spec, stdin, exclude=out_dir)
    with claimed_output_folder(out_dir):
        return _invert_all(items, out_dir, generator_path, encoder_path, settings, perceptual, vgg_path,
                           batch_size or auto_batch_size(device), device, overwrite, emit, say, shared_dir)


def require_invertible(checkpoint, generator_path: Path, space: str = "w+") -> None:
    """PGGAN has only z: no per-layer code to invert a photo into; IDInvert's generator has no shared W."""
    if checkpoint.latent_space != "W+":
        raise UserError(f"{generator_path}: a {checkpoint.architecture} generator has no W+ space to invert photos into "
                        f"(its only code is z); use a StyleGAN or StyleGAN2 generator, or `sefa-edit sample` to edit "
                        f"random samples of this one")
    config = checkpoint.synthesis_config
    if space == "w" and config is not None and not getattr(config, "repeat_w", True):
        raise UserError(f"{generator_path}: --space w needs one w shared by all layers, but this generator's mapping "
                        f"outputs every W+ entry separately (repeat_w=False); use --space w+")


def _invert_all(items, out_dir, generator_path, encoder_path, settings, perceptual, vgg_path, batch_size, device,
                overwrite, emit, say, shared_dir) -> dict:
    checkpoint = load_checkpoint(generator_path)
    require_invertible(checkpoint, generator_path, settings.space)
    generator = checkpoint.build_generator(device)
    encoder = None
    if encoder_path is not None:
        encoder = load_encoder(encoder_path, generator.num_ws, generator.w_dim, checkpoint.sha256).to(device)
        encoder.requires_grad_(False)
    vgg_file = find_vgg_weights(vgg_path, shared_dir) if perceptual == "lpips" else None
    lpips_model = LPIPS(vgg_file).to(device) if vgg_file is not None else None
    # Everything that changes a code, except the crop itself (added per item). The VGG file is 528 MB:
    # its name and size identify it well enough without hashing it on every run.
    common_settings = {
        "version": INFO_VERSION, "generator": checkpoint.sha256,
        "encoder": content_sha256(encoder_path) if encoder_path is not None else None,
        "perceptual": perceptual, "vgg": [vgg_file.name, vgg_file.stat().st_size] if vgg_file is not None else None,
        **asdict(settings),
    }
    failures = FailureLog(out_dir, say, key="aligned")
    summary = {"inverted": 0, "skipped": 0, "failed": 0, "unreadable": 0, "redone": 0}
    pending: list[tuple[CropItem, str]] = []
    for item in items:
        code_path, rec_path, info_path = _outputs(out_dir, item)
        try:
            crop_print = fingerprint(crop=content_sha256(item.aligned), **common_settings)
        except OSError as exc:
            summary["unreadable"] += 1
            failures.add(item.aligned, "unreadable", f"cannot read ({exc.strerror or exc})")
            continue
        info = atomic.read_json_object(info_path)
        if not overwrite and info is not None and info.get("fingerprint") == crop_print and code_path.is_file() \
                and rec_path.is_file():
            summary["skipped"] += 1
            emit(info["record"])
            continue
        if info is not None:
            summary["redone"] += 1
        pending.append((item, crop_print))
    if summary["redone"]:
        say(f"{summary['redone']} crop(s) redone: the crop, generator, encoder or settings changed since they were inverted")

    def invert_batch(batch_targets):
        return [invert(generator, torch.stack(list(batch_targets)).to(device), encoder, lpips_model, settings)]

    run_batch = HalvingRunner(invert_batch, say)
    batches = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
    for batch in track(batches, "inverting", weight=len, unit="crops"):
        targets, kept = [], []
        for item, crop_print in batch:
            try:
                targets.append(load_target(item.aligned, generator.img_resolution))
                kept.append((item, crop_print))
            except (ValueError, OSError) as exc:
                summary["unreadable"] += 1
                failures.add(item.aligned, "unreadable", str(exc))
        if not kept:
            continue
        try:
            result = merge_results(run_batch(targets))
        except OutOfMemory as exc:
            for item, _ in kept:
                summary["failed"] += 1
                failures.add(item.aligned, "out_of_memory", str(exc))
            continue
        reconstructions = images.tensor_to_uint8(result.reconstructions)
        encoder_only = images.tensor_to_uint8(result.start_reconstructions) if encoder is not None else None
        for index, (item, crop_print) in enumerate(kept):
            code_path, rec_path, info_path = _outputs(out_dir, item)
            if result.failure[index] is not None:
                summary["failed"] += 1
                failures.add(item.aligned, "inversion_failed", f"inversion failed ({result.failure[index]}); no code written")
                continue
            metrics = {
                "aligned": str(Path(item.aligned).resolve()),
                "mse": round(result.mse[index].item(), 6),
                "psnr": round(psnr_from_mse(result.mse[index]).item(), 3),
                "start_mse": round(result.start_mse[index].item(), 6),
                "start_psnr": round(psnr_from_mse(result.start_mse[index]).item(), 3),
                "start_lpips": round(result.start_lpips[index].item(), 5) if result.start_lpips is not None else None,
                "lpips": round(result.lpips[index].item(), 5) if result.lpips is not None else None,
                "seconds": round(result.seconds / len(kept), 3),
                "steps": settings.steps,
                "encoder": encoder_path is not None,
            }
            atomic.save_npy(code_path, result.ws[index].detach().cpu().numpy().astype(np.float32))
            images.save_rgb(rec_path, reconstructions[index])
            encoder_path_png = rec_path.with_name(rec_path.name.replace("_rec.png", "_encoder.png"))
            if encoder_only is not None:
                images.save_rgb(encoder_path_png, encoder_only[index])
            else:
                encoder_path_png.unlink(missing_ok=True)
            record = {"code": str(code_path.resolve()), "reconstruction": str(rec_path.resolve()),
                      "encoder_reconstruction": str(encoder_path_png.resolve()) if encoder_only is not None else None,
                      "aligned": metrics["aligned"], "meta": str(Path(item.meta).resolve()) if item.meta else None,
                      "psnr": metrics["psnr"]}
            atomic.write_json(info_path, {"record": record, "metrics": metrics, "fingerprint": crop_print,
                                          "generator_sha256": checkpoint.sha256, "generator": str(Path(generator_path).resolve()),
                                          "time": time.time()})
            atomic.append_jsonl(out_dir / "metrics.jsonl", metrics)
            summary["inverted"] += 1
            emit(record)
    return summary
