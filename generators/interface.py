"""What `generators/` offers the stages: one interface for every architecture that can render.

`LoadedCheckpoint.build_generator()` returns a StyleGAN2 (`generators/stylegan2.py`), StyleGAN3
(`generators/stylegan3.py`), StyleGAN v1 (`generators/stylegan.py`) or PGGAN (`generators/pggan.py`)
network; the stages (factorize previews, invert, edit, sample, run) use only what this protocol names,
so they work unchanged on all of them.
Codes are always 3-D, [N, num_ws, w_dim]: W+ for the style-based generators, and z as [N, 1, z_dim]
for PGGAN and BigGAN, whose codes are z. SeFa's weights (what factorisation reads) come from the
checkpoint's tensors, `generators/latent_layers.py`, for the same architectures.

Some renders depend on more than the code: BigGAN's on the class and truncation the code was sampled
with, StyleGAN3's on an optional rotation / translation of its input. Those settings are the *render
condition*, kept in each code's record (`RENDER_CONDITION_KEYS`) and handed back before rendering it
(`apply_render_condition`), so a stage never needs to know which generator it is driving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import numpy as np
import torch

# Fields of a code's record (`sample`'s JSON) that may change how that code renders.
RENDER_CONDITION_KEYS = ("class", "truncation_psi", "input_transform")


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


@dataclass(frozen=True)
class InputTransform:
    """A rotation (degrees, counter-clockwise) and translation (in half-image units) of the whole
    render, as NVIDIA's `gen_images.py --rotate --translate`. Only generators whose input is a
    continuous signal (StyleGAN3's Fourier features) can apply one; they offer
    `set_input_transform(translate, angle_degrees)`."""

    translate: tuple[float, float] = (0.0, 0.0)
    rotate: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.translate == (0.0, 0.0) and self.rotate == 0.0

    def as_json(self) -> dict[str, Any]:
        return {"translate": list(self.translate), "rotate": self.rotate}

    @classmethod
    def from_json(cls, value: Any) -> "InputTransform":
        """From a record's `input_transform`; a ValueError says what is wrong with a crafted one."""
        if not isinstance(value, dict):
            raise ValueError("input_transform must be {\"translate\": [x, y], \"rotate\": degrees}")
        translate, rotate = value.get("translate", [0.0, 0.0]), value.get("rotate", 0.0)
        numbers = list(translate) + [rotate] if isinstance(translate, (list, tuple)) and len(translate) == 2 else None
        if numbers is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e6 for v in numbers):
            raise ValueError(f"input_transform {value!r}: translate must be two numbers and rotate one")
        return cls((float(translate[0]), float(translate[1])), float(rotate))


def supports_input_transform(generator: Any) -> bool:
    return callable(getattr(generator, "set_input_transform", None))


def apply_input_transform(generator: Any, transform: InputTransform | None) -> None:
    """Set the transform for the following renders (identity for None). Generators without one accept
    only the identity: a ValueError otherwise."""
    transform = transform or InputTransform()
    if supports_input_transform(generator):
        generator.set_input_transform(transform.translate, transform.rotate)
    elif not transform.is_identity:
        raise ValueError("this generator cannot rotate or translate its renders (only StyleGAN3 can: its input is a "
                         "continuous signal)")


def render_condition_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The render condition stored in a code's record (the keys present of RENDER_CONDITION_KEYS)."""
    return {key: record[key] for key in RENDER_CONDITION_KEYS if key in record}


def apply_render_condition(generator: Any, condition: Mapping[str, Any]) -> None:
    """Hand a code's render condition to the generator before rendering it: the input transform (any
    generator; only StyleGAN3 takes a non-identity one), and whatever else the generator reads from it
    (BigGAN: class and truncation). A ValueError says what in the condition it cannot take."""
    transform = condition.get("input_transform")
    apply_input_transform(generator, None if transform is None else InputTransform.from_json(transform))
    take = getattr(generator, "set_render_condition", None)
    if callable(take):
        take(condition)


def draw_noise(generator: Any, seed: int) -> np.ndarray:
    """z for a seed: NVIDIA's `gen_images.py` convention (RandomState(seed).randn), or the generator's
    own distribution where it has one (BigGAN: a truncated normal)."""
    draw = getattr(generator, "draw_noise", None)
    return draw(seed) if callable(draw) else np.random.RandomState(seed).randn(generator.z_dim)


def truncates(generator: Any) -> bool:
    """Whether `sample_codes`' truncation changes anything (PGGAN's z has no mean to truncate towards)."""
    return bool(getattr(generator, "truncates", True))
