"""rosinality `stylegan2-pytorch` checkpoints (`.pt`): key renaming onto NVIDIA's StyleGAN2 names.

Their `Generator` stores: `style.{1..8}` (mapping, after a PixelNorm at `style.0`), `input.input`
(the 4x4 constant), `conv1` / `to_rgb1` (4x4 block), `convs.{2k}` / `convs.{2k+1}` (up-conv and conv of
block k), `to_rgbs.{k}`, and `noises.noise_{i}`. Modulated convs keep their weight as
[1, out, in, k, k] with the affine under `.conv.modulation`, the noise gain as `.noise.weight` [1],
and the activation bias as `.activate.bias`. The up-conv kernels are already in NVIDIA's orientation
(rosinality's converter flips them), so no flip here.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

_IGNORED = re.compile(r"^(convs\.\d+\.conv\.blur\.kernel|to_rgbs\.\d+\.upsample\.kernel)$")


def is_rosinality_state(state: Mapping[str, torch.Tensor]) -> bool:
    return "input.input" in state and "style.1.weight" in state


def to_nvidia_state(
    state: Mapping[str, torch.Tensor], latent_avg: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in state:
            raise KeyError(key)
        used.add(key)
        return state[key]

    num_mapping = sum(1 for key in state if re.fullmatch(r"style\.\d+\.weight", key))
    for k in range(1, num_mapping + 1):
        out[f"mapping.fc{k - 1}.weight"] = take(f"style.{k}.weight")
        out[f"mapping.fc{k - 1}.bias"] = take(f"style.{k}.bias")
    if latent_avg is not None:
        out["mapping.w_avg"] = latent_avg.reshape(-1)

    def styled_conv(src: str, dst: str, noise_key: str) -> None:
        out[f"{dst}.weight"] = take(f"{src}.conv.weight")[0]
        out[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        out[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        out[f"{dst}.noise_strength"] = take(f"{src}.noise.weight").reshape([])
        out[f"{dst}.bias"] = take(f"{src}.activate.bias").reshape(-1)
        out[f"{dst}.noise_const"] = take(noise_key)[0, 0]

    def to_rgb(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = take(f"{src}.conv.weight")[0]
        out[f"{dst}.affine.weight"] = take(f"{src}.conv.modulation.weight")
        out[f"{dst}.affine.bias"] = take(f"{src}.conv.modulation.bias")
        out[f"{dst}.bias"] = take(f"{src}.bias").reshape(-1)

    out["synthesis.b4.const"] = take("input.input")[0]
    styled_conv("conv1", "synthesis.b4.conv1", "noises.noise_0")
    to_rgb("to_rgb1", "synthesis.b4.torgb")
    num_blocks = sum(1 for key in state if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", key))
    for k in range(num_blocks):
        res = 8 << k
        styled_conv(f"convs.{2 * k}", f"synthesis.b{res}.conv0", f"noises.noise_{2 * k + 1}")
        styled_conv(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", f"noises.noise_{2 * k + 2}")
        to_rgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb")

    leftover = [key for key in state if key not in used and not _IGNORED.match(key)]
    if leftover:
        raise KeyError(f"unrecognised tensors {leftover[:3]}")
    return out
