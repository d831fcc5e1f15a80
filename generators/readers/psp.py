"""pSp and e4e checkpoints (eladrich/pixel2style2pixel, omertov/encoder4editing): encoder + generator in one file.

The published `psp_ffhq_encode.pt` / `e4e_ffhq_encode.pt` hold `{'state_dict': {'encoder.*': ..., 'decoder.*': ...},
'latent_avg': [512] or [18, 512], 'opts': {...}}`. `decoder.*` is a rosinality StyleGAN2 generator, `encoder.*`
the network of `generators/psp_encoder.py`, whose kind (pSp's GradualStyleEncoder or e4e's
Encoder4Editing) only `opts['encoder_type']` tells, since both have the same tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from generators.psp_encoder import ENCODER_TYPES
from generators.state_layout import LayoutError

NAMES = {"Encoder4Editing": "e4e", "GradualStyleEncoder": "pSp"}


@dataclass(frozen=True)
class PSPCheckpoint:
    encoder_state: dict[str, torch.Tensor]
    decoder_state: dict[str, torch.Tensor]
    latent_avg: torch.Tensor | None
    encoder_type: str
    opts: Mapping[str, Any]

    @property
    def name(self) -> str:
        return NAMES[self.encoder_type]


def is_psp_checkpoint(data: Mapping[str, Any]) -> bool:
    state = data.get("state_dict")
    return isinstance(state, Mapping) and any(str(k).startswith("encoder.styles.") for k in state)


def split(data: Mapping[str, Any]) -> PSPCheckpoint:
    state = data["state_dict"]
    opts = data.get("opts") if isinstance(data.get("opts"), Mapping) else vars(data["opts"]) if hasattr(data.get("opts"), "__dict__") else {}
    encoder_type = opts.get("encoder_type")
    if encoder_type not in ENCODER_TYPES:
        raise LayoutError(f"opts['encoder_type'] is {encoder_type!r}; expected {' or '.join(ENCODER_TYPES)} (pSp and e4e "
                          f"encoders have the same tensors, only this setting tells them apart)")
    if opts.get("start_from_latent_avg") is False:
        raise LayoutError("opts['start_from_latent_avg'] is False: encoders that predict absolute codes are not supported")
    latent_avg = data.get("latent_avg")
    encoder = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    decoder = {k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}
    if not decoder:
        raise LayoutError("no decoder.* tensors: the file holds no generator")
    return PSPCheckpoint(encoder, decoder, latent_avg if isinstance(latent_avg, torch.Tensor) else None, encoder_type, opts)
