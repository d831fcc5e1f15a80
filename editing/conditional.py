"""Conditional edits (InterFaceGAN's conditional manipulation, Shen et al., CVPR 2020): move along the
part of a direction that is orthogonal to directions the user wants kept, so its side effects along
them go away (`--edit smile=+2 --keep yaw,age`).

The code space is W+, and each direction acts on chosen layers, so the projection is made layer by
layer: on a layer the edit moves, the direction loses its components along the kept directions that
also act on that layer (Gram-Schmidt over those, i.e. n - Q Q^T n). The result is rescaled to the
plain direction's length (unit for SeFa and InterFaceGAN, one standard deviation for GANSpace), as
InterFaceGAN does, so a strength means as much as before; how much of the direction was
left (|n - Q Q^T n|, the cosine between the plain and the conditional direction) is reported. When the
kept directions are already orthogonal to it, nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from common.errors import UserError

TOO_LITTLE_LEFT = 1e-6  # a direction inside the span of the kept ones has nothing left to move along


@dataclass(frozen=True)
class KeptDirection:
    name: str  # as the user wrote it
    vector: np.ndarray  # [dim], signed as its label says
    layers: tuple[int, ...]  # the code entries it acts on


@dataclass(frozen=True)
class ConditionalMove:
    """Per code entry the (unit) vector to add times the strength, and the share of the plain direction
    that was left on it."""

    vectors: dict[int, np.ndarray]
    remaining: dict[int, float]
    kept: tuple[str, ...]

    def apply(self, ws: torch.Tensor, strength: float) -> torch.Tensor:
        moved = ws.clone()
        for layer, vector in self.vectors.items():
            moved[:, layer] += strength * torch.as_tensor(vector, dtype=ws.dtype, device=ws.device)
        return moved

    def summary(self) -> dict:
        values = list(self.remaining.values())
        return {"kept": list(self.kept), "remaining": round(float(np.mean(values)), 4) if values else 1.0,
                "remaining_per_layer": {str(k): round(v, 4) for k, v in sorted(self.remaining.items())}}


def orthogonal_part(direction: np.ndarray, kept: Sequence[np.ndarray]) -> np.ndarray:
    """direction minus its projection onto the span of `kept` (not rescaled)."""
    direction = np.asarray(direction, dtype=np.float64)
    if not kept:
        return direction.copy()
    basis, _ = np.linalg.qr(np.stack([np.asarray(v, dtype=np.float64) for v in kept], axis=1))
    return direction - basis @ (basis.T @ direction)


def conditional_move(name: str, direction: np.ndarray, layers: Sequence[int], kept: Sequence[KeptDirection]) -> ConditionalMove:
    """The conditional form of moving `direction` (what strength 1 adds) on `layers`, keeping every
    direction of `kept`."""
    if not kept:  # the plain move, on the very vector stored
        vector = np.asarray(direction, dtype=np.float32)
        return ConditionalMove({layer: vector for layer in layers}, {layer: 1.0 for layer in layers}, ())
    length = float(np.linalg.norm(direction))
    unit = np.asarray(direction, dtype=np.float64) / length
    vectors, remaining = {}, {}
    for layer in layers:
        here = [k.vector for k in kept if layer in k.layers]
        part = orthogonal_part(unit, here)
        left = float(np.linalg.norm(part))
        if left < TOO_LITTLE_LEFT:
            raise UserError(f"--edit {name}: on layer {layer} it lies entirely within the kept directions "
                            f"({', '.join(k.name for k in kept)}); keep fewer")
        vectors[layer], remaining[layer] = (part * (length / left)).astype(np.float32), left
    return ConditionalMove(vectors, remaining, tuple(k.name for k in kept))
