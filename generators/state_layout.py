"""Checking a state dict against the exact key layout a network expects, with one-line errors.

Published checkpoints are loaded strictly by their reference code (`load_state_dict(strict=True)`):
a file that lacks a key, has one of another shape, or carries extra keys is not the network it claims
to be. These helpers say which key is wrong, so the user's error names it.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch


class LayoutError(ValueError):
    """The tensors are not in the layout expected; the message names the first offending key."""


def need(state: Mapping[str, torch.Tensor], key: str, ndim: int | None = None) -> torch.Tensor:
    """The tensor under `key`, for reading the architecture off the shapes; a LayoutError when absent."""
    tensor = state.get(key)
    if not isinstance(tensor, torch.Tensor):
        raise LayoutError(f"missing key {key}")
    if ndim is not None and tensor.ndim != ndim:
        raise LayoutError(f"key {key} has shape {list(tensor.shape)}, expected {ndim} dimensions")
    return tensor


def check_layout(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, tuple[int, ...]],
    optional: Iterable[str] = (),
    ignored: Iterable[str] = (),
) -> None:
    """Every expected key present with its shape (optional ones may be absent); no unknown keys.

    `ignored` keys may be present with any value (e.g. IDInvert's `truncation.truncation`, which its
    loader overwrites)."""
    optional, ignored = set(optional), set(ignored)
    for key, shape in expected.items():
        tensor = state.get(key)
        if tensor is None:
            if key in optional:
                continue
            raise LayoutError(f"missing key {key} (expected shape {list(shape)})")
        if not isinstance(tensor, torch.Tensor):
            raise LayoutError(f"key {key} holds a {type(tensor).__name__}, expected a tensor")
        if tuple(tensor.shape) != tuple(shape):
            raise LayoutError(f"key {key} has shape {list(tensor.shape)}, expected {list(shape)}")
    unknown = [key for key in state if key not in expected and key not in ignored]
    if unknown:
        raise LayoutError(f"unexpected key {unknown[0]}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))


def shapes_of(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """The state-dict layout of one of our networks: name -> shape."""
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def load_checked(module: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """Copy `state` into `module` after checking its layout exactly (float tensors cast to float32).

    BatchNorm `num_batches_tracked` counters may be absent (torch fills them for files saved without
    metadata; they do not affect inference) and are then zero."""
    expected = shapes_of(module)
    counters = [key for key in expected if key.endswith("num_batches_tracked")]
    check_layout(state, expected, optional=counters)
    values = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    for key in counters:
        values.setdefault(key, torch.zeros([], dtype=torch.long))
    module.load_state_dict(values)
    return module
