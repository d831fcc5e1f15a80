"""Direction previews: for each direction, sample images moved from -distance to +distance.

Like the visualisation of the SeFa repository: rows are random samples (truncated, psi 0.7 on the
first 8 layers, so faces stay typical), columns are strengths, the middle column is the unedited sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from common import images
from common.progress import track
from generators.latent_edit import move_along
from generators.interface import LatentGenerator, apply_render_condition, draw_noise, truncates


@dataclass(frozen=True)
class PreviewSettings:
    num_samples: int = 5
    distance: float = 3.0
    steps: int = 7
    seed: int = 0
    truncation_psi: float = 0.7
    truncation_cutoff: int = 8
    cell_size: int = 192
    batch_size: int = 8


# What `run` renders when --preview is not given: enough to see what each direction does (2 samples, 5
# strengths, small cells), cheap enough to be the default; --preview renders the full grids.
SMALL_PREVIEW = PreviewSettings(num_samples=2, steps=5, cell_size=128)


def strengths(settings: PreviewSettings) -> np.ndarray:
    return np.linspace(-settings.distance, settings.distance, settings.steps)


@torch.no_grad()
def sample_codes(generator: LatentGenerator, settings: PreviewSettings, device: torch.device) -> torch.Tensor:
    """Row s is `sefa-edit sample`'s sample seed + s at the preview's truncation (BigGAN also renders at
    that truncation; a conditional generator gets the all-zero label)."""
    seeds = range(settings.seed, settings.seed + settings.num_samples)
    z = torch.from_numpy(np.stack([draw_noise(generator, s) for s in seeds])).float().to(device)
    psi = settings.truncation_psi if truncates(generator) else 1.0
    apply_render_condition(generator, {"truncation_psi": psi})
    return generator.sample_codes(z, truncation_psi=psi, truncation_cutoff=settings.truncation_cutoff)


@torch.no_grad()
def render(generator: LatentGenerator, ws: torch.Tensor, batch_size: int, cell_size: int) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for start in range(0, len(ws), batch_size):
        for image in images.tensor_to_uint8(generator.render(ws[start : start + batch_size])):
            if image.shape[0] != cell_size:
                image = cv2.resize(image, (cell_size, cell_size), interpolation=cv2.INTER_AREA)
            out.append(image)
    return out


def write_previews(
    generator: LatentGenerator,
    directions: np.ndarray,
    layers: list[int],
    out_dir: Path,
    settings: PreviewSettings,
    device: torch.device,
) -> list[Path]:
    """One grid PNG per direction (rows = samples, columns = strengths); returns their paths."""
    codes = sample_codes(generator, settings, device)
    alphas = strengths(settings)
    paths = []
    for k in track(range(len(directions)), "previews", unit="directions"):
        direction = torch.as_tensor(directions[k], dtype=torch.float32, device=device)
        moved = torch.cat([move_along(codes, direction, layers, float(a)).unsqueeze(1) for a in alphas], dim=1)
        flat = moved.reshape(-1, *codes.shape[1:])  # sample-major: sample s, strength j at s*steps + j
        cells = render(generator, flat, settings.batch_size, settings.cell_size)
        rows = [cells[s * len(alphas) : (s + 1) * len(alphas)] for s in range(settings.num_samples)]
        grid = images.label_grid(images.make_grid(rows), settings.cell_size, 4, [f"{a:+.2g}" for a in alphas])
        paths.append(images.save_rgb(out_dir / f"direction_{k:02d}.png", grid))
    return paths
