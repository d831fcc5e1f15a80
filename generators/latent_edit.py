"""Moving W+ codes along a direction on chosen layers: the one edit operation SeFa defines."""

from __future__ import annotations

from typing import Sequence

import torch


def move_along(ws: torch.Tensor, direction: torch.Tensor, layers: Sequence[int], strength: float) -> torch.Tensor:
    """Return ws with `strength * direction` added to the W+ entries in `layers` (others untouched).

    ws: [N, num_ws, w_dim]; direction: [w_dim] (unit norm from SeFa). Because each affine is linear,
    the style input of a selected layer changes by exactly strength * A n.
    """
    if ws.ndim != 3:
        raise ValueError(f"expected W+ codes [N, num_ws, w_dim], got {list(ws.shape)}")
    moved = ws.clone()
    index = torch.as_tensor(code_entries(layers, ws.shape[1]), dtype=torch.long, device=ws.device)
    moved[:, index] += strength * direction.to(ws)
    return moved


def code_entries(layers: Sequence[int], num_ws: int) -> list[int]:
    """The code entries an edit on factorised `layers` moves. A one-entry code (PGGAN's, BigGAN's z) is
    read by every layer at once: there the layers only chose which weights SeFa factorised (BigGAN: gen_z
    and the batch norms of chosen blocks), and the edit moves z itself."""
    return [0] if num_ws == 1 else list(layers)
