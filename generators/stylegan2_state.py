"""From a StyleGAN2 state dict in NVIDIA naming to a configured, loaded `Generator`.

All three StyleGAN2 checkpoint formats are renamed onto NVIDIA's keys first; this module then reads
the architecture off the tensor shapes (resolution, channels per block, mapping depth, latent sizes)
so that any resolution and channel configuration loads without being told.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from generators.stylegan2 import Generator, StyleGAN2Config

_BLOCK_CONV1 = re.compile(r"^synthesis\.b(\d+)\.conv1\.weight$")
_MAPPING_FC = re.compile(r"^mapping\.fc(\d+)\.weight$")

# Buffers the network can recreate itself (fixed FIR filters); checkpoints may omit them.
_RECREATABLE_SUFFIXES = ("resample_filter",)


class StateMismatch(ValueError):
    """The tensors do not describe one consistent StyleGAN2 network."""


def infer_config(state: Mapping[str, torch.Tensor], init_kwargs: Mapping[str, Any] | None = None) -> StyleGAN2Config:
    init_kwargs = dict(init_kwargs or {})
    synthesis_kwargs = dict(init_kwargs.get("synthesis_kwargs") or {})
    mapping_kwargs = dict(init_kwargs.get("mapping_kwargs") or {})

    channels: dict[int, int] = {}
    for key, tensor in state.items():
        match = _BLOCK_CONV1.match(key)
        if match:
            channels[int(match.group(1))] = int(tensor.shape[0])
    if not channels or 4 not in channels:
        raise StateMismatch("no synthesis.b4.conv1.weight: not a StyleGAN2 synthesis network")
    resolution = max(channels)

    fc_indices = sorted(int(m.group(1)) for key in state if (m := _MAPPING_FC.match(key)))
    if not fc_indices or fc_indices != list(range(len(fc_indices))):
        raise StateMismatch(f"mapping layers should be fc0..fcN, found indices {fc_indices}")
    w_dim = int(state[f"mapping.fc{fc_indices[-1]}.weight"].shape[0])
    c_dim = int(state["mapping.embed.weight"].shape[1]) if "mapping.embed.weight" in state else 0
    embed_features = int(state["mapping.embed.weight"].shape[0]) if c_dim else 0
    z_dim = int(state["mapping.fc0.weight"].shape[1]) - embed_features

    if any(key.startswith("synthesis.b8.skip.") for key in state):
        architecture = "resnet"
    elif "synthesis.b4.torgb.weight" in state and resolution > 4:
        architecture = "skip"
    else:
        architecture = "orig"
    torgb_key = f"synthesis.b{resolution}.torgb.weight"
    if torgb_key not in state:
        raise StateMismatch(f"missing {torgb_key}")

    conv_clamp = synthesis_kwargs.get("conv_clamp", None)
    return StyleGAN2Config(
        img_resolution=resolution,
        channels=channels,
        z_dim=z_dim,
        w_dim=w_dim,
        c_dim=c_dim,
        img_channels=int(state[torgb_key].shape[0]),
        mapping_layers=len(fc_indices),
        mapping_lr_multiplier=float(mapping_kwargs.get("lr_multiplier", 0.01)),
        architecture=architecture,
        conv_clamp=float(conv_clamp) if conv_clamp is not None else None,
        num_fp16_res=int(synthesis_kwargs.get("num_fp16_res") or 0),
    )


def load_into_generator(config: StyleGAN2Config, state: Mapping[str, torch.Tensor]) -> Generator:
    """Build the network for `config` and copy every tensor in, checking names and shapes both ways."""
    generator = Generator(config)
    expected = generator.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(_RECREATABLE_SUFFIXES)]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {list(state[k].shape)} (expected {list(expected[k].shape)})"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors, e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors, e.g. {unexpected[:3]}")
    if wrong_shape:
        problems.append(f"wrong shapes: {wrong_shape[:3]}")
    if problems:
        raise StateMismatch("; ".join(problems))
    merged = {k: (state[k] if k in state else v) for k, v in expected.items()}
    generator.load_state_dict({k: v.float() for k, v in merged.items()})
    return generator.eval().requires_grad_(False)
