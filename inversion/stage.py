"""`sefa-edit invert`: aligned crops -> W+ codes (`NAME.npy`), reconstructions, metrics.

Per crop: `OUT/<name>.npy` (float32 [num_ws, w_dim]), `OUT/<name>_rec.png`, `OUT/<name>.json` (what the
code came from: aligned crop, its sidecar for paste-back, generator sha256, metrics), one line in
`OUT/metrics.jsonl`, and one JSON line on stdout for `edit`. Finished crops are skipped on reruns.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch

from common import atomic, images
from common.devices import resolve_device
from common.errors import UserError
from common.photo_io import find_images
from common.progress import track
from common.stdin_records import stdin_records
from generators.checkpoint import load_checkpoint
from inversion.encoder import load_encoder
from inversion.optimize import InversionSettings, invert, psnr_from_mse
from inversion.perceptual import LPIPS, find_vgg_weights


@dataclass(frozen=True)
class CropItem:
    aligned: Path
    name: Path  # output stem relative to OUT
    meta: Path | None  # the alignment sidecar, when known


def list_crops(input_spec: str, stdin: Iterator[str] | None = None) -> list[CropItem]:
    """A folder of aligned crops (recursive), one crop, or `-` (align's JSON lines, or paths)."""
    items: list[CropItem] = []
    if input_spec == "-":
        for path, record in stdin_records(("aligned",), stdin):
            meta = record.get("meta")
            items.append(CropItem(path, Path(path.stem), Path(meta) if meta else _sidecar(path)))
        return _dedupe(items)
    root = Path(input_spec)
    if root.is_file():
        return [CropItem(root, Path(root.stem), _sidecar(root))]
    if not root.is_dir():
        raise UserError(f"{root}: no such file or folder; pass the output folder of `sefa-edit align`, a crop, or -")
    return [CropItem(p, p.relative_to(root).with_suffix(""), _sidecar(p)) for p in find_images(root)]


def _sidecar(crop: Path) -> Path | None:
    meta = crop.with_suffix(".json")
    return meta if meta.is_file() else None


def _dedupe(items: list[CropItem]) -> list[CropItem]:
    """Crops from different folders may share a stem: keep their names apart."""
    seen: dict[Path, int] = {}
    unique = []
    for item in items:
        count = seen.get(item.name, 0)
        seen[item.name] = count + 1
        unique.append(item if count == 0 else CropItem(item.aligned, Path(f"{item.name}-{count}"), item.meta))
    return unique


def load_target(path: Path, resolution: int) -> torch.Tensor:
    rgb = images.read_rgb(path)
    if rgb.shape[0] != resolution or rgb.shape[1] != resolution:
        interpolation = cv2.INTER_AREA if rgb.shape[0] > resolution else cv2.INTER_CUBIC
        rgb = cv2.resize(rgb, (resolution, resolution), interpolation=interpolation)
    return images.uint8_to_tensor(rgb)[0]


def _outputs(out_dir: Path, item: CropItem) -> tuple[Path, Path, Path]:
    base = out_dir / item.name
    return base.with_suffix(".npy"), base.parent / f"{base.name}_rec.png", base.with_suffix(".json")


def run_invert(
    input_spec: str,
    out_dir: Path,
    generator_path: Path,
    encoder_path: Path | None,
    settings: InversionSettings,
    perceptual: str = "lpips",
    vgg_path: Path | None = None,
    batch_size: int = 4,
    device_name: str = "auto",
    overwrite: bool = False,
    emit: Callable[[dict], None] = lambda record: None,
    say: Callable[[str], None] = lambda message: None,
    stdin: Iterator[str] | None = None,
    shared_dir: Path | None = None,
) -> dict:
    if perceptual not in ("lpips", "none"):
        raise UserError(f"--perceptual {perceptual!r}: expected lpips or none")
    if settings.steps < 0 or settings.lr <= 0 or batch_size < 1:
        raise UserError("--steps must be >= 0, --lr > 0 and --batch-size >= 1")
    device = resolve_device(device_name)
    items = list_crops(input_spec, stdin)
    checkpoint = load_checkpoint(generator_path)
    generator = checkpoint.build_generator(device)
    encoder = None
    if encoder_path is not None:
        encoder = load_encoder(encoder_path, generator.num_ws, generator.w_dim, checkpoint.sha256).to(device)
        encoder.requires_grad_(False)
    lpips_model = LPIPS(find_vgg_weights(vgg_path, shared_dir)).to(device) if perceptual == "lpips" else None
    out_dir.mkdir(parents=True, exist_ok=True)

    summary = {"inverted": 0, "skipped": 0, "failed": 0, "unreadable": 0}
    pending: list[CropItem] = []
    for item in items:
        code_path, rec_path, info_path = _outputs(out_dir, item)
        if not overwrite and code_path.is_file() and rec_path.is_file() and info_path.is_file():
            summary["skipped"] += 1
            emit(json.loads(info_path.read_text())["record"])
        else:
            pending.append(item)

    batches = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
    for batch in track(batches, "inverting"):
        targets, kept = [], []
        for item in batch:
            try:
                targets.append(load_target(item.aligned, generator.img_resolution))
                kept.append(item)
            except (ValueError, OSError) as exc:
                summary["unreadable"] += 1
                say(f"{item.aligned}: {exc}; skipped")
                atomic.append_jsonl(out_dir / "metrics.jsonl", {"aligned": str(item.aligned), "error": f"unreadable: {exc}"})
        if not kept:
            continue
        result = invert(generator, torch.stack(targets).to(device), encoder, lpips_model, settings)
        reconstructions = images.tensor_to_uint8(result.reconstructions)
        for index, item in enumerate(kept):
            code_path, rec_path, info_path = _outputs(out_dir, item)
            metrics = {
                "aligned": str(item.aligned),
                "mse": round(result.mse[index].item(), 6),
                "psnr": round(psnr_from_mse(result.mse[index]).item(), 3),
                "start_mse": round(result.start_mse[index].item(), 6),
                "lpips": round(result.lpips[index].item(), 5) if result.lpips is not None else None,
                "seconds": round(result.seconds / len(kept), 3),
                "steps": settings.steps,
                "encoder": encoder_path is not None,
            }
            if result.failure[index] is not None:
                summary["failed"] += 1
                say(f"{item.aligned}: inversion failed ({result.failure[index]}); no code written")
                atomic.append_jsonl(out_dir / "metrics.jsonl", {**metrics, "error": result.failure[index]})
                continue
            atomic.save_npy(code_path, result.ws[index].detach().cpu().numpy().astype(np.float32))
            images.save_rgb(rec_path, reconstructions[index])
            record = {"code": str(code_path), "reconstruction": str(rec_path), "aligned": str(item.aligned),
                      "meta": str(item.meta) if item.meta else None, "psnr": metrics["psnr"]}
            atomic.write_json(info_path, {"record": record, "metrics": metrics, "generator_sha256": checkpoint.sha256,
                                          "generator": str(Path(generator_path).resolve()), "time": time.time()})
            atomic.append_jsonl(out_dir / "metrics.jsonl", metrics)
            summary["inverted"] += 1
            emit(record)
    return summary
