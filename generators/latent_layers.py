"""The weights through which the latent code enters each generator: what SeFa factorises.

Each architecture reads its latent code through linear maps; for layer i, the map's weight A_i has
one row per output unit and one column per latent dimension. Rows are returned as float64 numpy
arrays of shape [out_units, latent_dim]:
- StyleGAN2: entry i is the style affine of the layer fed by W+ entry i (`style_layer_names`);
- StyleGAN3: the same, in W+ order: the input's affine (4 rows: rotation and translation), L0 ... L13, to-RGB;
- StyleGAN (v1, genforce): `synthesis.layer{i}.style.weight`, the AdaIN scale and shift rows;
- PGGAN (genforce): `layer0.weight` [out, z, 4, 4], the first layer, a dense map from z to 4x4 maps;
- BigGAN: the z columns of `gen_z` (entry 0) and of each block's batch-norm scale/offset linears.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from generators.checkpoint import LoadedCheckpoint
from generators.readers import biggan
from generators import stylegan3
from generators.stylegan2 import style_layer_names


@dataclass(frozen=True)
class LatentLayer:
    index: int
    name: str
    weight: np.ndarray  # [out_units, latent_dim], float64


def _as_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to(torch.float64).cpu().numpy()


def latent_layers(checkpoint: LoadedCheckpoint) -> list[LatentLayer]:
    state = checkpoint.state
    if checkpoint.architecture == "stylegan2":
        names = style_layer_names(checkpoint.stylegan2_config)
        return [LatentLayer(i, f"{name}.affine", _as_numpy(state[f"{name}.affine.weight"])) for i, name in enumerate(names)]
    if checkpoint.architecture == "stylegan3":
        names = stylegan3.style_layer_names(checkpoint.synthesis_config)
        return [LatentLayer(i, f"{name}.affine", _as_numpy(state[f"{name}.affine.weight"])) for i, name in enumerate(names)]
    if checkpoint.architecture == "stylegan":
        return [
            LatentLayer(i, f"synthesis.layer{i}.style", _as_numpy(state[f"synthesis.layer{i}.style.weight"]))
            for i in range(checkpoint.num_latent_layers)
        ]
    if checkpoint.architecture == "pggan":
        weight = state["layer0.weight"]  # [out, z, kh, kw]: row per (out channel, position)
        rows = weight.permute(0, 2, 3, 1).reshape(-1, weight.shape[1])
        return [LatentLayer(0, "layer0", _as_numpy(rows))]
    if checkpoint.architecture == "biggan":
        layout = biggan.read_layout(state)
        return [LatentLayer(i, name, _as_numpy(w)) for i, (name, w) in enumerate(biggan.z_facing_weights(state, layout))]
    raise ValueError(f"no latent layers known for architecture {checkpoint.architecture!r}")
