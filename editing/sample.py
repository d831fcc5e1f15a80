"""`sefa-edit sample`: random codes and their images, for editing samples instead of photos.

This is how SeFa itself is used (its `sefa.py` and interface edit random samples), and the only way to
edit with a PGGAN, which has no W+ to invert photos into. Sample k uses seed `seed + k` and
z = RandomState(seed + k).randn(z_dim) (NVIDIA's `gen_images.py` convention, so `-n 8` and `-n 16` with
one seed share their first 8 samples; BigGAN draws its truncated normal from the same RandomState). The
record keeps the render condition (class, truncation, StyleGAN3's input transform) for `edit`. Per sample `OUT/seed<NNNN>.npy` (the code [num_ws, w_dim]: W+ for
StyleGAN / StyleGAN2, z as [1, z_dim] for PGGAN), `OUT/seed<NNNN>.png` (its image) and
`OUT/seed<NNNN>.json` (the record `edit` reads), so `sefa-edit edit OUT ...` edits them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from common import atomic, images
from common.devices import resolve_device
from common.errors import UserError
from common.output_folder import check_output_path, claimed_output_folder
from common.progress import track
from common.validate import require_finite
from generators.checkpoint import load_checkpoint
from generators.precision import check_precision
from generators.interface import InputTransform, apply_render_condition, draw_noise, supports_input_transform, truncates

MAX_SAMPLES = 100_000


@dataclass(frozen=True)
class SampleSettings:
    count: int = 8
    seed: int = 0
    truncation_psi: float | None = None  # None: no truncation
    truncation_cutoff: int | None = None  # None: the generator's own default (8 for StyleGAN v1, all for StyleGAN2)
    batch_size: int = 8
    class_index: int | None = None  # a conditional generator's class; None: the all-zero label, with a warning
    transform: InputTransform = InputTransform()  # StyleGAN3's input rotation / translation (gen_images.py)
    precision: str = "fp32"  # render precision (generators/precision.py)

    def validate(self) -> None:
        if not 1 <= self.count <= MAX_SAMPLES:
            raise UserError(f"-n {self.count}: must be between 1 and {MAX_SAMPLES}")
        if self.seed < 0 or self.seed + self.count > 2**32:
            raise UserError(f"--seed {self.seed}: seeds must lie in 0 .. 2^32 - 1")
        if self.truncation_psi is not None:
            require_finite("--truncation", self.truncation_psi)
        if self.truncation_cutoff is not None and self.truncation_cutoff < 0:
            raise UserError(f"--truncation-cutoff {self.truncation_cutoff}: must be 0 or more")
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: must be 1 or more")
        if self.class_index is not None and self.class_index < 0:
            raise UserError(f"--class {self.class_index}: must be 0 or more")
        require_finite("--rotate", self.transform.rotate)
        check_precision(self.precision)
        for value in self.transform.translate:
            require_finite("--translate", value)


def parse_translate(text: str) -> tuple[float, float]:
    """'X,Y' -> (X, Y), in half-image units as NVIDIA's gen_images.py takes them."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise UserError(f"--translate {text!r}: expected two numbers X,Y (e.g. 0.1,-0.05, in half-image units)") from None


def check_class(generator, class_index: int | None, source: str, say: Callable[[str], None]) -> None:
    """--class must name one of a conditional generator's classes; an unconditional one takes none. A
    conditional generator sampled without one gets the all-zero label, and the user is told."""
    classes = generator.num_classes
    if class_index is not None and classes == 0:
        raise UserError(f"--class {class_index}: {source} is unconditional (it takes no class label); drop --class")
    if class_index is not None and class_index >= classes:
        raise UserError(f"--class {class_index}: {source} has {classes} classes, 0..{classes - 1}")
    if class_index is None and classes > 0:
        say(f"warning: {source} is conditional ({classes} classes) and no --class was given: sampling with the "
            f"all-zero label, which is no class it was trained on; pass --class K (0..{classes - 1})")


def run_sample(generator_path: Path, out_dir: Path, settings: SampleSettings, device_name: str = "auto",
               emit: Callable[[dict], None] = lambda record: None, say: Callable[[str], None] = lambda message: None) -> int:
    """Write the samples; returns how many."""
    settings.validate()
    check_output_path(out_dir)
    checkpoint = load_checkpoint(generator_path)
    if not checkpoint.can_render:
        raise UserError(f"{generator_path}: cannot render {checkpoint.architecture} images "
                        f"({'; '.join(checkpoint.notes) or 'no synthesis network'})")
    device = resolve_device(device_name)
    generator = checkpoint.build_generator(device, settings.precision)
    if not truncates(generator) and settings.truncation_psi not in (None, 1.0):
        raise UserError(f"--truncation {settings.truncation_psi}: a {checkpoint.architecture} generator has no mapping network "
                        f"to truncate; drop --truncation")
    psi = 1.0 if settings.truncation_psi is None else settings.truncation_psi
    cutoff = settings.truncation_cutoff if settings.truncation_cutoff is not None else generator.default_truncation_cutoff
    if cutoff is not None and cutoff > generator.num_ws:
        raise UserError(f"--truncation-cutoff {cutoff}: this generator has {generator.num_ws} code entries")
    check_class(generator, settings.class_index, str(generator_path), say)
    if not settings.transform.is_identity and not supports_input_transform(generator):
        raise UserError(f"--translate/--rotate: {generator_path}: this generator cannot rotate or translate its renders "
                        f"(only StyleGAN3 can: its input is a continuous signal); drop them")
    transform = None if settings.transform.is_identity else settings.transform.as_json()
    condition = {"class": settings.class_index, "truncation_psi": psi, "input_transform": transform}
    try:
        apply_render_condition(generator, condition)
    except ValueError as exc:
        raise UserError(f"{generator_path}: {exc}") from exc
    seeds = list(range(settings.seed, settings.seed + settings.count))
    with claimed_output_folder(out_dir):
        batches = [seeds[i : i + settings.batch_size] for i in range(0, len(seeds), settings.batch_size)]
        for batch in track(batches, "sampling", weight=len, unit="images"):
            z = torch.from_numpy(np.stack([draw_noise(generator, s) for s in batch])).float().to(device)
            with torch.no_grad():
                codes = generator.sample_codes(z, truncation_psi=psi, truncation_cutoff=cutoff, class_index=settings.class_index)
                pictures = images.tensor_to_uint8(generator.render(codes))
            for seed, code, picture in zip(batch, codes.cpu().numpy(), pictures):
                stem = out_dir / f"seed{seed:04d}"
                atomic.save_npy(stem.with_suffix(".npy"), code.astype(np.float32))
                images.save_rgb(stem.with_suffix(".png"), picture)
                record = {"code": str(stem.with_suffix(".npy").resolve()), "reconstruction": str(stem.with_suffix(".png").resolve()),
                          "aligned": None, "meta": None, "seed": seed}
                atomic.write_json(stem.with_suffix(".json"), {
                    "record": record, "generator_sha256": checkpoint.sha256, "generator": str(Path(generator_path).resolve()),
                    "truncation_psi": psi, "truncation_cutoff": cutoff, "latent_space": checkpoint.latent_space,
                    "class": settings.class_index, **({"input_transform": transform} if transform else {}),
                })
                emit(record)
    return len(seeds)
