"""BigGAN-deep weights in the `pytorch-pretrained-biggan` layout (`pytorch_model.bin` state dict, with
its `config.json` beside it: the file says which blocks upsample and where the attention sits, which
the tensors alone cannot).

The generator's condition vector is cat(z, class embedding); the layers that read it are the first
linear layer `generator.gen_z` and the `scale`/`offset` linears of every conditional batch norm
(`generator.layers.{i}.bn_{j}`). They are spectrally normalised (`weight_orig` plus power-iteration
vectors); the spectral norm is one scalar per layer, which SeFa's row normalisation removes, so the
raw `weight_orig` is what is read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from common.regular_files import read_limited

MAX_CONFIG_BYTES = 64 * 1024

_BN_LINEAR = re.compile(r"^generator\.layers\.(\d+)\.bn_(\d+)\.(scale|offset)\.weight(_orig)?$")


@dataclass(frozen=True)
class BigGANLayout:
    z_dim: int
    embed_dim: int
    num_classes: int
    block_indices: tuple[int, ...]  # indices in generator.layers that are GenBlocks (self-attention skipped)
    resolution: int


def is_biggan_state(state: Mapping[str, torch.Tensor]) -> bool:
    return "embeddings.weight" in state and _gen_z_key(state) is not None


def _gen_z_key(state: Mapping[str, torch.Tensor]) -> str | None:
    for key in ("generator.gen_z.weight_orig", "generator.gen_z.weight"):
        if key in state:
            return key
    return None


def read_layout(state: Mapping[str, torch.Tensor]) -> BigGANLayout:
    embed_dim, num_classes = state["embeddings.weight"].shape
    condition_dim = state[_gen_z_key(state)].shape[1]
    z_dim = int(condition_dim - embed_dim)
    if z_dim <= 0:
        raise KeyError(f"gen_z takes {condition_dim} inputs, not more than the {embed_dim}-dim class embedding")
    blocks = sorted({int(m.group(1)) for key in state if (m := _BN_LINEAR.match(key))})
    if not blocks:
        raise KeyError("no conditional batch-norm layers (generator.layers.*.bn_*.scale)")
    # BigGAN-deep alternates plain and 2x-upsampling blocks from 4x4: resolution = 4 * 2^(blocks/2).
    return BigGANLayout(z_dim, int(embed_dim), int(num_classes), tuple(blocks), 4 * 2 ** (len(blocks) // 2))


def z_facing_weights(state: Mapping[str, torch.Tensor], layout: BigGANLayout) -> list[tuple[str, torch.Tensor]]:
    """[(name, weight[:, :z_dim])]: entry 0 is gen_z, entry k is all BN linears of the k-th GenBlock."""
    gen_z = _gen_z_key(state)
    groups = [(gen_z, state[gen_z][:, : layout.z_dim])]
    for block in layout.block_indices:
        parts = []
        for key in sorted(state):
            match = _BN_LINEAR.match(key)
            if match and int(match.group(1)) == block:
                parts.append(state[key][:, : layout.z_dim])
        groups.append((f"generator.layers.{block}.bn_*", torch.cat(parts, dim=0)))
    return groups


def config_path(weights: Path) -> Path | None:
    """The config beside the weights: `config.json` (a `from_pretrained` folder), or `<name>-config.json`
    for `<name>-pytorch_model.bin` (the published file names, as our download cache keeps them)."""
    weights = Path(weights)
    candidates = [weights.with_name("config.json")]
    if weights.name.endswith("-pytorch_model.bin"):
        candidates.insert(0, weights.with_name(weights.name[: -len("pytorch_model.bin")] + "config.json"))
    return next((path for path in candidates if path.is_file()), None)


def read_config(path: Path) -> dict[str, Any]:
    """The parsed config.json; a ValueError says why it is unusable."""
    try:
        data = json.loads(read_limited(path, MAX_CONFIG_BYTES).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} holds a {type(data).__name__}, not a config object")
    return data
