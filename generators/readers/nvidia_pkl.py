"""NVIDIA `stylegan2-ada-pytorch` / `stylegan3` network pickles (`.pkl`), read with the restricted unpickler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from generators import safe_pickle

NETWORK_KEYS = ("G_ema", "G")


class NotANetworkPickle(ValueError):
    pass


def read_networks(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], str, dict[str, torch.Tensor] | None, dict[str, Any]]:
    """Return (generator state in NVIDIA names, its constructor kwargs, which key it came from,
    discriminator state or None, discriminator kwargs).

    `G_ema` (the exponential moving average of the generator weights, the one NVIDIA samples from)
    is preferred over `G`.
    """
    with open(path, "rb") as handle:
        data = safe_pickle.load(handle)
    if not isinstance(data, dict):
        raise NotANetworkPickle(f"the pickle holds a {type(data).__name__}, expected a dict with 'G_ema'")
    discriminator = data.get("D")
    d_state = discriminator.named_tensors() if isinstance(discriminator, safe_pickle.PickledModule) else None
    d_kwargs = discriminator.init_kwargs if isinstance(discriminator, safe_pickle.PickledModule) else {}
    for key in NETWORK_KEYS:
        network = data.get(key)
        if isinstance(network, safe_pickle.PickledModule):
            return network.named_tensors(), network.init_kwargs, key, d_state, d_kwargs
    raise NotANetworkPickle(f"no generator network under {NETWORK_KEYS}; keys are {sorted(map(str, data))[:8]}")
