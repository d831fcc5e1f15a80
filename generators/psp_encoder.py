"""The pSp and e4e encoders (Richardson et al., CVPR 2021; Tov et al., SIGGRAPH 2021) for StyleGAN2.

Both published face encoders (`psp_ffhq_encode.pt`, `e4e_ffhq_encode.pt`) share one network layout, so
the state dict alone cannot tell them apart; the checkpoint's `opts['encoder_type']` does. Images are
RGB [N, 3, 256, 256] in [-1, 1]:

    backbone (ResNet-IR-SE-50):  x = PReLU(BN(conv3x3(x)))                       64 ch at 256
        24 units in 4 stages (3, 4, 14, 3 units; 64, 128, 256, 512 ch), each stage's first unit
        with stride 2:  unit(x) = shortcut(x) + SE(BN(conv3x3_s(PReLU(conv3x3(BN(x))))))
        shortcut: maxpool(1, s) (subsampling) if widths agree, else BN(conv1x1_s(x));
        SE: x * sigmoid(conv1x1(relu(conv1x1(avgpool(x)))))   (channel reduction 16)
        features c1 = unit 6 (128 ch, 64 px), c2 = unit 20 (256 ch, 32 px), c3 = unit 23 (512 ch, 16 px)
    feature pyramid:  p2 = up(c3) + conv1x1(c2),  p1 = up(p2) + conv1x1(c1)    (bilinear, corners aligned)
    map to styles, one block per W+ entry (entries 0-2 read c3, 3-6 read p2, 7- read p1):
        style(f) = EqualLinear(flatten(lrelu_0.01(conv3x3_s2(... f ...))))   down to 1x1
    pSp  (GradualStyleEncoder):  w_i = style_i(f_i)
    e4e  (Encoder4Editing):      w_i = style_0(c3) + style_i(f_i) for i >= 1     (one w plus per-layer deltas)
    both:                        codes = w + latent_avg                         (`start_from_latent_avg`)

Published checkpoints are `{'state_dict': {'encoder.*', 'decoder.*'}, 'latent_avg', 'opts'}`; the
decoder is a rosinality StyleGAN2 (read by `generators/readers/rosinality.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from generators.batch_norm import InferenceBatchNorm as BatchNorm
from generators.state_layout import LayoutError, load_checked
from generators.stylegan import DenseLayer

ENCODER_TYPES = ("Encoder4Editing", "GradualStyleEncoder")
INPUT_RESOLUTION = 256
STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))  # (in, out, units) of IR-SE-50
FEATURE_UNITS = (6, 20, 23)  # c1, c2, c3
COARSE, MIDDLE = 3, 7  # first W+ entries read from p2 and from p1


@dataclass(frozen=True)
class PSPEncoderConfig:
    encoder_type: str  # Encoder4Editing | GradualStyleEncoder
    num_ws: int  # = 2 log2(generator resolution) - 2
    w_dim: int = 512
    img_channels: int = 3

    def __post_init__(self) -> None:
        if self.encoder_type not in ENCODER_TYPES:
            raise ValueError(f"encoder type {self.encoder_type!r}: expected one of {', '.join(ENCODER_TYPES)}")


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=[2, 3], keepdim=True)))))
        return x * gate


class IRSEUnit(nn.Module):
    """One improved-residual unit with squeeze-excitation. `res_layer` and `shortcut_layer` keep the
    reference's `Sequential` indices (0..5 and 0..1) so the published keys load as they are."""

    def __init__(self, in_channels: int, depth: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.projects = in_channels != depth
        if self.projects:  # registered first, as in the reference: the published key order
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False), BatchNorm(depth))
        self.res_layer = nn.Sequential(
            BatchNorm(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            BatchNorm(depth),
            SqueezeExcite(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut_layer(x) if self.projects else x[:, :, :: self.stride, :: self.stride]
        return self.res_layer(x) + shortcut


class StyleHead(nn.Module):
    """Strided 3x3 convs (leaky ReLU, slope 0.01) from `spatial` px down to 1x1, then an equalised linear."""

    def __init__(self, channels: int, spatial: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.LeakyReLU(0.01)]
        self.convs = nn.Sequential(*layers)
        # rosinality's EqualLinear: y = x (W / sqrt(in))^T + b
        self.linear = DenseLayer(channels, channels, gain=1.0, lr_multiplier=1.0, activation=False)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).reshape(-1, self.channels))


class PSPEncoderNet(nn.Module):
    """Backbone, feature pyramid and style heads; returns codes relative to `latent_avg` (no offset)."""

    def __init__(self, config: PSPEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.input_layer = nn.Sequential(nn.Conv2d(config.img_channels, 64, 3, 1, 1, bias=False), BatchNorm(64), nn.PReLU(64))
        units = []
        for in_channels, depth, count in STAGES:
            units.append(IRSEUnit(in_channels, depth, 2))
            units += [IRSEUnit(depth, depth, 1) for _ in range(count - 1)]
        self.body = nn.Sequential(*units)
        self.styles = nn.ModuleList(
            StyleHead(512, 16 if i < COARSE else 32 if i < MIDDLE else 64) for i in range(config.num_ws)
        )
        self.latlayer1 = nn.Conv2d(256, 512, 1)
        self.latlayer2 = nn.Conv2d(128, 512, 1)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.input_layer(x)
        taken = []
        for index, unit in enumerate(self.body):
            x = unit(x)
            if index in FEATURE_UNITS:
                taken.append(x)
        return taken[0], taken[1], taken[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2, c3 = self.features(x)
        p2 = _upsample_add(c3, self.latlayer1(c2))
        p1 = _upsample_add(p2, self.latlayer2(c1))
        sources = [c3 if i < COARSE else p2 if i < MIDDLE else p1 for i in range(self.config.num_ws)]
        if self.config.encoder_type == "GradualStyleEncoder":
            return torch.stack([style(source) for style, source in zip(self.styles, sources)], dim=1)
        w0 = self.styles[0](c3)
        deltas = [torch.zeros_like(w0)] + [self.styles[i](sources[i]) for i in range(1, self.config.num_ws)]
        return w0.unsqueeze(1) + torch.stack(deltas, dim=1)


def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


class PSPEncoder(nn.Module):
    """Image -> W+ code: the network's output plus `latent_avg`. Other input sizes are brought to 256 px
    as pSp does with the generator's output (average pooling), or bilinearly when not a multiple."""

    def __init__(self, config: PSPEncoderConfig, latent_avg: torch.Tensor) -> None:
        super().__init__()
        self.net = PSPEncoderNet(config)
        self.config = config
        self.resolution, self.num_ws, self.w_dim = INPUT_RESOLUTION, config.num_ws, config.w_dim
        self.register_buffer("latent_avg", latent_avg.detach().clone().float().reshape(-1, config.w_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = images.shape[-1]
        if size != INPUT_RESOLUTION:
            if size > INPUT_RESOLUTION and size % INPUT_RESOLUTION == 0:
                images = F.adaptive_avg_pool2d(images, INPUT_RESOLUTION)
            else:
                images = F.interpolate(images, size=(INPUT_RESOLUTION,) * 2, mode="bilinear", align_corners=False, antialias=True)
        return self.net(images) + self.latent_avg


def encoder_from_state(state: Mapping[str, torch.Tensor], encoder_type: str, latent_avg: torch.Tensor) -> PSPEncoder:
    """Build and load from the `encoder.*` tensors (prefix removed), every key and shape checked."""
    num_ws = len({key.split(".")[1] for key in state if key.startswith("styles.")})
    if num_ws < 2:
        raise LayoutError("no styles.<i> heads: not a pSp/e4e encoder")
    config = PSPEncoderConfig(encoder_type, num_ws)
    if latent_avg.numel() not in (config.w_dim, config.w_dim * num_ws):
        raise LayoutError(f"latent_avg has shape {list(latent_avg.shape)}, expected [{config.w_dim}] or [{num_ws}, {config.w_dim}]")
    encoder = PSPEncoder(config, latent_avg)
    load_checked(encoder.net, state)
    return encoder.eval()
