"""In-Domain GAN Inversion's domain-guided encoder (`StyleGANEncoderNet`, Zhu et al., ECCV 2020).

The one published in-domain encoder for faces (`styleganinv_ffhq256_encoder.pth`), with its own
parameter names so the published state dict loads as is. Images [N, 3, R, R] in [-1, 1], RGB:

    block0:        x = lrelu(BN(conv3x3(x)))                                   at R
    block1..B-2:   x = avgpool2(x);  y = lrelu(BN(conv1x1(x))) if widths differ else x
                   x = lrelu(BN(conv3x3(x) + b1));  x = lrelu(BN(conv3x3(x) + b2));  x = x + y
    block B-1:     x = BN(flatten_CHW(x) W^T / sqrt(in))                       -> [N, num_ws * w_dim]

with B = log2(R) blocks, widths doubling from `channels_base` up to `channels_max`, every BatchNorm in
inference mode (running statistics, eps 1e-5), and the output read row-major as W+ [N, num_ws, w_dim].
The published model has no weight scaling on its convolutions (`use_wscale=False`): the reference
divides by the scale and multiplies by it again, which is the identity, so the weights are used as
stored. The last layer alone is scaled (1 / sqrt(fan_in)).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from generators.batch_norm import InferenceBatchNorm
from generators.state_layout import LayoutError, load_checked, need

LRELU_SLOPE = 0.2
BN_EPS = 1e-5


@dataclass(frozen=True)
class IDInvertEncoderConfig:
    resolution: int
    w_dim: int = 512
    channels_base: int = 64
    channels_max: int = 1024
    img_channels: int = 3

    @property
    def num_blocks(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def num_ws(self) -> int:
        """The generator's W+ entries at this resolution: 2 per resolution from 4 px."""
        return 2 * (self.num_blocks - 1)

    def widths(self) -> list[int]:
        """Output channels of blocks 0 .. B-2."""
        widths, width = [], self.channels_base
        for _ in range(self.num_blocks - 1):
            widths.append(width)
            width = min(width * 2, self.channels_max)
        return widths


class BatchNorm(nn.Module):
    """BatchNorm2d in a wrapper, as the reference nests it (`bn.bn.running_mean`); used in inference mode."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = InferenceBatchNorm(channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x)


class Bias(nn.Module):
    """A per-channel bias (the reference's `WScaleLayer`, whose scale cancels; see the module docstring)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros([channels]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias.reshape(1, -1, 1, 1)


class FirstBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = BatchNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.bn(self.conv(x)), LRELU_SLOPE)


class ResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.projects = in_channels != out_channels
        if self.projects:
            self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
            self.bn = BatchNorm(out_channels)
        hidden = min(in_channels, out_channels)
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False)
        self.wscale1 = Bias(hidden)
        self.bn1 = BatchNorm(hidden)
        self.conv2 = nn.Conv2d(hidden, out_channels, 3, padding=1, bias=False)
        self.wscale2 = Bias(out_channels)
        self.bn2 = BatchNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = F.leaky_relu(self.bn(self.conv(x)), LRELU_SLOPE) if self.projects else x
        x = F.leaky_relu(self.bn1(self.wscale1(self.conv1(x))), LRELU_SLOPE)
        x = F.leaky_relu(self.bn2(self.wscale2(self.conv2(x))), LRELU_SLOPE)
        return x + shortcut


class LastBlock(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features, bias=False)
        self.bn = BatchNorm(out_features)
        self.weight_gain = 1 / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x.reshape(x.shape[0], -1)) * self.weight_gain  # reshape: NCHW, C-major, as the reference
        return self.bn(x[:, :, None, None])[:, :, 0, 0]


class IDInvertEncoder(nn.Module):
    """Image -> W+ code; `forward` resizes other sizes to the encoder's resolution (bilinear, antialiased)."""

    def __init__(self, config: IDInvertEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.resolution, self.num_ws, self.w_dim = config.resolution, config.num_ws, config.w_dim
        widths = config.widths()
        self.block0 = FirstBlock(config.img_channels, widths[0])
        for index in range(1, config.num_blocks - 1):
            setattr(self, f"block{index}", ResBlock(widths[index - 1], widths[index]))
        last = config.num_blocks - 1
        setattr(self, f"block{last}", LastBlock(widths[-1] * 16, config.num_ws * config.w_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = F.interpolate(x, size=(self.resolution,) * 2, mode="bilinear", align_corners=False, antialias=True)
        for index in range(self.config.num_blocks):
            if 0 < index < self.config.num_blocks - 1:
                x = F.avg_pool2d(x, 2)
            x = getattr(self, f"block{index}")(x)
        return x.reshape(-1, self.num_ws, self.w_dim)


_BLOCK_CONV = re.compile(r"^block(\d+)\.")


def encoder_config(state: Mapping[str, torch.Tensor]) -> IDInvertEncoderConfig:
    """Resolution, W+ width and channel widths, read off the published tensors."""
    blocks = sorted({int(m.group(1)) for key in state if (m := _BLOCK_CONV.match(key))})
    if len(blocks) < 3 or blocks != list(range(len(blocks))):
        raise LayoutError(f"encoder blocks should be block0..blockN, found {blocks[:10]}")
    resolution = 1 << len(blocks)
    last = need(state, f"block{blocks[-1]}.fc.weight", 2)
    num_ws = 2 * (len(blocks) - 1)
    if int(last.shape[0]) % num_ws:
        raise LayoutError(f"key block{blocks[-1]}.fc.weight outputs {last.shape[0]} values, not a multiple of {num_ws} W+ entries")
    base = int(need(state, "block0.conv.weight", 4).shape[0])
    widths = [base] + [int(need(state, f"block{i}.conv2.weight", 4).shape[0]) for i in blocks[1:-1]]
    config = IDInvertEncoderConfig(resolution, w_dim=int(last.shape[0]) // num_ws, channels_base=base,
                                   channels_max=max(widths), img_channels=int(need(state, "block0.conv.weight", 4).shape[1]))
    if config.widths() != widths:
        raise LayoutError(f"encoder widths {widths} do not double from {base} up to a maximum")
    return config


def encoder_from_state(state: Mapping[str, torch.Tensor]) -> IDInvertEncoder:
    """Build the encoder for a published state dict, checking every key and shape (one-line errors)."""
    return load_checked(IDInvertEncoder(encoder_config(state)), state).eval()
