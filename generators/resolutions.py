"""The resolution ladder every progressive generator here is built on: 4x4 doubling to the output size."""

from __future__ import annotations

import math
from typing import Mapping


def block_resolutions(img_resolution: int) -> list[int]:
    """4, 8, ..., img_resolution: one synthesis block per resolution."""
    return [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]


def check_ladder(img_resolution: int, channels: Mapping[int, int], minimum: int) -> None:
    """A power of two in [minimum, 4096], with a channel count for every block (ValueError otherwise)."""
    log2 = math.log2(img_resolution) if img_resolution > 0 else 0.5
    if img_resolution < minimum or img_resolution > 4096 or log2 != int(log2):
        raise ValueError(f"resolution must be a power of two >= {minimum}, got {img_resolution}")
    missing = [r for r in block_resolutions(img_resolution) if r not in channels]
    if missing:
        raise ValueError(f"no channel count for resolutions {missing}")
