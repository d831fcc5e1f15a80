"""`--device auto|cpu|cuda` resolved once, with a clear error when CUDA is asked for and absent."""

from __future__ import annotations

import torch

from common.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is visible to PyTorch; use --device cpu or auto")
        return torch.device(name)
    raise UserError(f"--device {name!r}: expected one of {', '.join(DEVICE_CHOICES)}")
