"""NVIDIA `stylegan2-ada-pytorch` / `stylegan3` network pickles (`.pkl`), read with the restricted unpickler."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from generators import nvidia_defaults, safe_pickle

NETWORK_KEYS = ("G_ema", "G")


class NotANetworkPickle(ValueError):
    pass


@dataclass
class NetworkPickle:
    """What sefa-edit takes from a network pickle, with NVIDIA's class defaults filled in."""

    g_state: dict[str, torch.Tensor]  # NVIDIA names
    g_init_kwargs: dict[str, Any]  # as built: {"mapping_kwargs": ..., "synthesis_kwargs": ...} (defaults resolved)
    network_key: str  # G_ema or G
    source_file: str  # which NVIDIA file the generator class came from
    g_kwargs: dict[str, Any] = field(default_factory=dict)  # the generator's constructor kwargs as stored
    d_state: dict[str, torch.Tensor] | None = None
    d_settings: dict[str, Any] = field(default_factory=dict)  # conv_clamp, num_fp16_res, mbstd_group_size, ...


def read_networks(path: Path) -> NetworkPickle:
    """Read the generator (`G_ema`, the exponential moving average NVIDIA samples from, preferred over
    `G`) and the discriminator `D` if there is one."""
    with open(path, "rb") as handle:
        data = safe_pickle.load(handle)
    if not isinstance(data, dict):
        raise NotANetworkPickle(f"the pickle holds a {type(data).__name__}, expected a dict with 'G_ema'")
    for key in NETWORK_KEYS:
        network = data.get(key)
        if isinstance(network, safe_pickle.PickledModule):
            break
    else:
        raise NotANetworkPickle(f"no generator network under {NETWORK_KEYS}; keys are {sorted(map(str, data))[:8]}")
    kwargs = network.init_kwargs
    result = NetworkPickle(
        g_state=network.named_tensors(),
        g_init_kwargs={"mapping_kwargs": dict(kwargs.get("mapping_kwargs") or {}),
                       "synthesis_kwargs": nvidia_defaults.generator_synthesis_kwargs(network.source_file, kwargs)},
        network_key=key,
        source_file=network.source_file,
        g_kwargs=dict(kwargs),
    )
    discriminator = data.get("D")
    if isinstance(discriminator, safe_pickle.PickledModule):
        result.d_state = discriminator.named_tensors()
        result.d_settings = nvidia_defaults.discriminator_settings(discriminator.source_file, discriminator.init_kwargs)
    return result
