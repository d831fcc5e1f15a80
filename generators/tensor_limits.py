"""Sanity limits on what a checkpoint declares, checked before anything is allocated for it.

A checkpoint is untrusted input. Its bytes are small, but what it declares can be huge: a stride-0
view stored in a few bytes may claim a [6000, 512, 3, 3] weight, a zip entry may inflate a
thousandfold, and channel counts read off the shapes size the network we then allocate. Each check
here runs before that allocation and fails with one line saying the file is not a usable checkpoint
(never "download it again": a crafted file stays crafted).
"""

from __future__ import annotations

import zipfile
from typing import Any, BinaryIO, Iterable, Mapping

import torch

MAX_CHANNELS = 4096  # StyleGAN2 configs use at most 512 (1024 in a few variants)
MAX_LATENT = 4096  # z_dim / w_dim (512 in every published model)
MAX_RESOLUTION = 4096
MAX_MAPPING_LAYERS = 64
MAX_ZIP_EXPANSION = 4  # torch.save stores entries uncompressed: their total is about the file size
ZIP_SLACK_BYTES = 16 << 20


class CheckpointLimit(ValueError):
    """What the checkpoint declares is impossible or absurd for a real generator."""


def check_view_fits(tensor: torch.Tensor, what: str) -> None:
    """A tensor must not address more elements than its storage holds (no stride-0 or overlapping views)."""
    needed = tensor.numel() * tensor.element_size()
    held = tensor.untyped_storage().nbytes()
    if needed > held:
        raise CheckpointLimit(f"{what} of shape {list(tensor.shape)} needs {needed:,} bytes but only {held:,} are stored "
                              f"(a crafted or damaged checkpoint)")


def walk_tensors(value: Any, depth: int = 0) -> Iterable[torch.Tensor]:
    """Every tensor inside nested dicts / lists / tuples (as `torch.load` returns them)."""
    if depth > 16:
        return
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from walk_tensors(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from walk_tensors(item, depth + 1)


def check_zip_expansion(handle: BinaryIO, file_size: int, what: str) -> None:
    """Refuse a zip (a `.pt`, or a tensor inside an NVIDIA pickle) whose entries expand far beyond the
    file: `torch.save` never compresses, so only a crafted file does that."""
    try:
        with zipfile.ZipFile(handle) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        return  # not a zip: torch.load gives its own error
    if expanded > MAX_ZIP_EXPANSION * file_size + ZIP_SLACK_BYTES:
        raise CheckpointLimit(f"{what} expands from {file_size:,} to {expanded:,} bytes, which torch.save never does "
                              f"(a crafted or damaged checkpoint)")


def check_generator_shape(channels: Mapping[int, int], z_dim: int, w_dim: int, resolution: int, mapping_layers: int) -> None:
    """The architecture read off the tensors, checked before a network of that size is built."""
    if resolution > MAX_RESOLUTION:
        raise CheckpointLimit(f"declares a {resolution} px generator (at most {MAX_RESOLUTION})")
    widest = max(channels.values(), default=0)
    if widest > MAX_CHANNELS:
        at = next(res for res, count in channels.items() if count == widest)
        raise CheckpointLimit(f"declares {widest} channels at {at} px (at most {MAX_CHANNELS}): not a real generator")
    if not 0 < w_dim <= MAX_LATENT or not 0 <= z_dim <= MAX_LATENT:
        raise CheckpointLimit(f"declares z_dim {z_dim} / w_dim {w_dim} (at most {MAX_LATENT}): not a real generator")
    if mapping_layers > MAX_MAPPING_LAYERS:
        raise CheckpointLimit(f"declares {mapping_layers} mapping layers (at most {MAX_MAPPING_LAYERS})")
