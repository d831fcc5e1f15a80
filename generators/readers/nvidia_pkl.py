"""NVIDIA `stylegan2-ada-pytorch` / `stylegan3` network pickles (`.pkl`), read with the restricted unpickler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from generators import safe_pickle

NETWORK_KEYS = ("G_ema", "G")


class NotANetworkPickle(ValueError):
    pass


def read_generator(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], str]:
    """Return (state dict in NVIDIA names, constructor kwargs, which network key was used).

    `G_ema` (the exponential moving average of the generator weights, the one NVIDIA samples from)
    is preferred over `G`.
    """
    with open(path, "rb") as handle:
        data = safe_pickle.load(handle)
    if not isinstance(data, dict):
        raise NotANetworkPickle(f"the pickle holds a {type(data).__name__}, expected a dict with 'G_ema'")
    for key in NETWORK_KEYS:
        network = data.get(key)
        if isinstance(network, safe_pickle.PickledModule):
            return network.named_tensors(), network.init_kwargs, key
    raise NotANetworkPickle(f"no generator network under {NETWORK_KEYS}; keys are {sorted(map(str, data))[:8]}")
