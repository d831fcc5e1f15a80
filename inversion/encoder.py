"""The domain-guided encoder: image -> W+ code [num_ws, w_dim].

A residual CNN that halves the resolution per block down to 4x4, then one linear layer to all W+
entries. It predicts the offset from the generator's mean W, so an untrained encoder starts at the
mean face rather than at an arbitrary point. Width is chosen from the resolution: `base_channels` at
full resolution, doubling per block up to `max_channels`.

Following In-Domain GAN Inversion, it is trained to invert the generator (codes of generated images,
and reconstructions of real ones); its output then both starts the optimisation and, as E(G(w)),
regularises it so the code stays where the generator's training images map.

`load_encoder` also accepts In-Domain GAN Inversion's published encoder (`styleganinv_*_encoder.pth`,
`generators/idinvert_encoder.py`), the domain-guided encoder of the paper itself; both map images in
[-1, 1] to W+ codes, so the optimisation uses either the same way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from common import atomic
from common.errors import UserError
from common.regular_files import problem_with

ENCODER_FORMAT = "sefa-edit/encoder"


@dataclass(frozen=True)
class EncoderConfig:
    resolution: int
    num_ws: int
    w_dim: int
    base_channels: int = 32
    max_channels: int = 256

    @staticmethod
    def for_generator(resolution: int, num_ws: int, w_dim: int) -> "EncoderConfig":
        """Wider at low resolution (few blocks), thinner at high resolution (many pixels per layer)."""
        base = 32 if resolution <= 256 else 16
        top = 128 if resolution <= 64 else 256 if resolution <= 256 else 512
        return EncoderConfig(resolution, num_ws, w_dim, base_channels=base, max_channels=top)

    def channels(self) -> list[int]:
        """Channels at each level, from full resolution down to 4x4."""
        levels = int(math.log2(self.resolution)) - 1  # resolution, ..., 4
        return [min(self.base_channels * 2**i, self.max_channels) for i in range(levels)]


class ResidualDownBlock(nn.Module):
    """x -> (conv3x3 -> lrelu -> conv3x3 -> avgpool 2) + (avgpool 2 -> conv1x1), scaled by 1/sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv0(x), 0.2)
        y = F.avg_pool2d(F.leaky_relu(self.conv1(y), 0.2), 2)
        return (y + self.skip(F.avg_pool2d(x, 2))) * (1 / math.sqrt(2))


class Encoder(nn.Module):
    def __init__(self, config: EncoderConfig, w_avg: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        channels = config.channels()
        self.from_rgb = nn.Conv2d(3, channels[0], 3, padding=1)
        self.blocks = nn.ModuleList(ResidualDownBlock(channels[i], channels[i + 1]) for i in range(len(channels) - 1))
        self.to_ws = nn.Linear(channels[-1] * 4 * 4, config.num_ws * config.w_dim)
        nn.init.zeros_(self.to_ws.weight)  # start exactly at the mean W
        nn.init.zeros_(self.to_ws.bias)
        self.register_buffer("w_avg", torch.zeros(config.w_dim) if w_avg is None else w_avg.detach().clone().float())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, 3, R, R] in [-1, 1] (resized to R if needed) -> W+ codes [N, num_ws, w_dim]."""
        if images.shape[-1] != self.config.resolution:
            images = F.interpolate(images, size=(self.config.resolution,) * 2, mode="area")
        x = F.leaky_relu(self.from_rgb(images), 0.2)
        for block in self.blocks:
            x = block(x)
        offsets = self.to_ws(x.flatten(1)).reshape(-1, self.config.num_ws, self.config.w_dim)
        return self.w_avg + offsets


def save_encoder(path: Path, encoder: Encoder, generator_sha256: str, extra: dict[str, Any] | None = None) -> Path:
    payload = {
        "format": ENCODER_FORMAT,
        "config": asdict(encoder.config),
        "state": {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()},
        "generator_sha256": generator_sha256,
        **(extra or {}),
    }
    return atomic.write_with(Path(path), lambda handle: torch.save(payload, handle))


def _read_encoder_payload(path: Path) -> Any:
    """The file's contents (tensors and plain containers only), every stored tensor checked to fit its storage."""
    from generators.tensor_limits import CheckpointLimit, check_view_fits, check_zip_expansion, walk_tensors

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{path}: no such encoder file; train one with `sefa-edit train-encoder` or omit --encoder")
    problem = problem_with(path)
    if problem is not None:
        raise UserError(f"{path}: {problem}; pass the encoder checkpoint file itself")
    try:
        with open(path, "rb") as handle:
            check_zip_expansion(handle, path.stat().st_size, "the file")
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointLimit as exc:
        raise UserError(f"{path}: not a usable encoder: {exc}; do not use this file") from exc
    except Exception as exc:
        raise UserError(f"{path}: not a readable encoder checkpoint ({type(exc).__name__}); retrain or re-copy it") from exc
    try:
        for tensor in walk_tensors(payload):
            check_view_fits(tensor, "a stored tensor")
    except CheckpointLimit as exc:
        raise UserError(f"{path}: not a usable encoder: {exc}; do not use this file") from exc
    return payload


def _require_codes(path: Path, produces: tuple[int, int], num_ws: int, w_dim: int, advice: str) -> None:
    """The encoder's code shape must be the generator's."""
    if produces != (num_ws, w_dim):
        raise UserError(f"{path}: encoder outputs [{produces[0]}, {produces[1]}] codes but the generator takes "
                        f"[{num_ws}, {w_dim}]; {advice}")


def load_encoder_file(path: Path) -> dict[str, Any]:
    """One of our own encoder files (with its training state), for `train-encoder` to resume."""
    payload = _read_encoder_payload(path)
    if not isinstance(payload, dict) or payload.get("format") != ENCODER_FORMAT:
        raise UserError(f"{path}: not a sefa-edit encoder (expected a file written by `sefa-edit train-encoder`)")
    return payload


def _config_of(path: Path, payload: dict[str, Any]) -> EncoderConfig:
    """The encoder's declared architecture, checked before a network of that size is allocated."""
    from generators.tensor_limits import MAX_CHANNELS, MAX_LATENT, MAX_RESOLUTION, CheckpointLimit

    try:
        config = EncoderConfig(**payload["config"])
        numbers = (config.resolution, config.num_ws, config.w_dim, config.base_channels, config.max_channels)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in numbers):
            raise CheckpointLimit(f"declares a non-positive or non-integer size in {payload['config']}")
        if config.resolution > MAX_RESOLUTION or max(config.base_channels, config.max_channels) > MAX_CHANNELS \
                or config.w_dim > MAX_LATENT or config.num_ws > 64:
            raise CheckpointLimit(f"declares an absurd architecture {payload['config']}")
    except (TypeError, KeyError) as exc:
        raise UserError(f"{path}: not a sefa-edit encoder (its config is unreadable: {exc}); retrain it") from exc
    except CheckpointLimit as exc:
        raise UserError(f"{path}: not a usable encoder: {exc}; do not use this file") from exc
    return config


@dataclass(frozen=True)
class EncoderFile:
    """An encoder as read from its file, before it is matched to a generator."""

    network: nn.Module  # in eval mode
    format: str  # sefa-edit-encoder | idinvert-encoder | psp-pt
    codes: tuple[int, int]  # [num_ws, w_dim] it outputs
    input_resolution: int
    advice: str  # what to do when its codes do not fit a generator
    details: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        """What `models info` prints for an encoder."""
        return {"kind": "encoder", "format": self.format, "codes": list(self.codes), "num_ws": self.codes[0],
                "w_dim": self.codes[1], "input_resolution": self.input_resolution,
                "parameters": sum(p.numel() for p in self.network.parameters()), **self.details}


def load_encoder(path: Path, num_ws: int, w_dim: int, generator_sha256: str | None = None, force: bool = False) -> nn.Module:
    """Our encoder, IDInvert's or pSp/e4e's, checked against the generator's code shape; in eval mode."""
    found = read_encoder(path, generator_sha256, force)
    _require_codes(path, found.codes, num_ws, w_dim, found.advice)
    return found.network


def read_encoder(path: Path, generator_sha256: str | None = None, force: bool = False) -> EncoderFile:
    """Any encoder we read, built and described; `generator_sha256` refuses one of ours trained for
    another generator (unless `force`)."""
    from generators.readers import idinvert, psp

    payload = _read_encoder_payload(path)
    if isinstance(payload, dict) and psp.is_psp_checkpoint(payload):
        return _psp_encoder(Path(path), payload)
    if isinstance(payload, dict) and idinvert.is_encoder_state(payload):
        return _idinvert_encoder(Path(path), payload)
    if isinstance(payload, dict) and idinvert.is_generator_state(payload):
        raise UserError(f"{path}: an In-Domain GAN Inversion generator, not an encoder; pass it with -g and its "
                        f"styleganinv_*_encoder.pth with --encoder")
    if not isinstance(payload, dict) or payload.get("format") != ENCODER_FORMAT:
        raise UserError(f"{path}: not an encoder we know (expected a file written by `sefa-edit train-encoder`, an "
                        f"In-Domain GAN Inversion styleganinv_*_encoder.pth, or a pSp/e4e checkpoint)")
    config = _config_of(path, payload)
    if generator_sha256 and payload.get("generator_sha256") not in (None, generator_sha256) and not force:
        raise UserError(f"{path}: encoder was trained for another generator checkpoint (sha256 differs); retrain it or pass --force")
    encoder = Encoder(config)
    encoder.load_state_dict(payload["state"])
    trained_for = payload.get("generator_sha256")
    return EncoderFile(encoder.eval(), "sefa-edit-encoder", (config.num_ws, config.w_dim), config.resolution,
                       "train an encoder for this generator",
                       {"trained_for_generator_sha256": trained_for if isinstance(trained_for, str) else None,
                        "training_step": payload.get("step") if isinstance(payload.get("step"), int) else None})


def _idinvert_encoder(path: Path, state: dict) -> EncoderFile:
    from generators.idinvert_encoder import encoder_from_state
    from generators.state_layout import LayoutError
    from generators.tensor_limits import MAX_CHANNELS

    try:
        encoder = encoder_from_state(state)
    except (LayoutError, ValueError) as exc:
        raise UserError(f"{path}: not a usable In-Domain GAN Inversion encoder: {exc}") from exc
    if max(encoder.config.widths()) > MAX_CHANNELS:
        raise UserError(f"{path}: not a usable encoder: declares {max(encoder.config.widths())} channels")
    return EncoderFile(encoder, "idinvert-encoder", (encoder.num_ws, encoder.w_dim), encoder.config.resolution,
                       "use the encoder published with this generator", {"architecture": "In-Domain GAN Inversion StyleGANEncoderNet"})


def _psp_encoder(path: Path, payload: dict) -> EncoderFile:
    from generators.psp_encoder import INPUT_RESOLUTION, encoder_from_state
    from generators.readers import psp
    from generators.state_layout import LayoutError

    try:
        parts = psp.split(payload)
        if parts.latent_avg is None:
            raise LayoutError("no latent_avg: its codes are offsets from it")
        encoder = encoder_from_state(parts.encoder_state, parts.encoder_type, parts.latent_avg)
    except (LayoutError, ValueError) as exc:
        raise UserError(f"{path}: not a usable pSp/e4e encoder: {exc}") from exc
    return EncoderFile(encoder, "psp-pt", (encoder.num_ws, encoder.w_dim), INPUT_RESOLUTION,
                       "use it with the generator it was trained for", {"architecture": parts.name})
