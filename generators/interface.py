"""What `generators/` offers the stages: one interface for every architecture that can render.

`LoadedCheckpoint.build_generator()` returns a StyleGAN2 (`generators/stylegan2.py`), StyleGAN v1
(`generators/stylegan.py`) or PGGAN (`generators/pggan.py`) network; the stages (factorize previews,
invert, edit, sample, run) use only what this protocol names, so they work unchanged on all three.
Codes are always 3-D, [N, num_ws, w_dim]: W+ for the style-based generators, and z as [N, 1, z_dim]
for PGGAN, whose only latent-facing layer is the first one. SeFa's weights (what factorisation reads)
come from the checkpoint's tensors, `generators/latent_layers.py`, for the same architectures.
"""

from __future__ import annotations

from typing import Protocol

import torch


class LatentGenerator(Protocol):
    latent_kind: str  # "W+" (codes per style layer) or "Z" (the input noise itself)
    invertible: bool  # whether photos can be inverted into its codes (False for PGGAN: no W+)
    has_shared_w: bool  # whether one w drives all layers, so `invert --space w` is the generator's own W
    default_truncation_cutoff: int | None  # layers truncated when sampling; None: all
    z_dim: int
    w_dim: int  # width of one code entry
    num_ws: int  # code entries (W+ layers; 1 for PGGAN)
    img_resolution: int
    num_classes: int  # class labels a conditional generator takes (NVIDIA's c_dim); 0: unconditional

    def sample_codes(self, z: torch.Tensor, truncation_psi: float = 1.0,
                     truncation_cutoff: int | None = None, class_index: int | None = None) -> torch.Tensor:
        """z [N, z_dim] -> codes [N, num_ws, w_dim], truncated towards the mean on the first cutoff entries.
        `class_index` picks a conditional generator's class (one-hot label); None gives it the all-zero
        label (no class), and is the only value an unconditional one takes."""
        ...

    def render(self, codes: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """codes [N, num_ws, w_dim] -> images [N, C, R, R], about [-1, 1]; differentiable (inversion)."""
        ...

    def mean_code(self) -> torch.Tensor:
        """[num_ws, w_dim]: where an optimisation without an encoder starts (the mean W for style GANs)."""
        ...
