"""StyleGAN2 discriminator ('resnet' architecture) with NVIDIA `stylegan2-ada-pytorch` parameter names.

Only used as a judge: `train-encoder --data` adds the adversarial term softplus(-D(G(E(x)))) when the
checkpoint carries a discriminator, pushing reconstructions of real photos towards images the GAN
itself considers real (In-Domain GAN Inversion's encoder objective).
"""

from __future__ import annotations

import math
import re
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from generators import ops
from generators.stylegan2 import FullyConnectedLayer


class Conv2dLayer(nn.Module):
    """Equalised-learning-rate convolution, optional FIR-filtered 2x downsampling, bias and activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", down: int = 1, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.activation, self.down, self.padding, self.conv_clamp = activation, down, kernel_size // 2, conv_clamp
        self.register_buffer("resample_filter", ops.setup_filter([1, 3, 3, 1]))
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.down == 1:
            x = F.conv2d(x, w, padding=self.padding)
        else:
            # filter, then a strided convolution (NVIDIA conv2d_resample, down=2)
            taps = self.resample_filter.shape[-1]
            p0 = self.padding + (taps - self.down + 1) // 2
            p1 = self.padding + (taps - self.down) // 2
            if w.shape[-1] == 1:
                x = ops.upfirdn2d(x, self.resample_filter, down=self.down, padding=(p0, p1, p0, p1))
                x = F.conv2d(x, w)
            else:
                x = ops.upfirdn2d(x, self.resample_filter, padding=(p0, p1, p0, p1))
                x = F.conv2d(x, w, stride=self.down)
        act_gain = (ops.LRELU_GAIN if self.activation == "lrelu" else 1.0) * gain
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, self.bias, activation=self.activation, gain=act_gain, clamp=clamp)


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int, conv_clamp: float | None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.register_buffer("resample_filter", ops.setup_filter([1, 3, 3, 1]))
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 0:
            x = self.fromrgb(img)
        y = self.skip(x, gain=np.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=np.sqrt(0.5))
        return y + x


def minibatch_stddev(x: torch.Tensor, group_size: int | None = 4, num_channels: int = 1) -> torch.Tensor:
    """Append the per-group standard deviation of features as extra channels (a diversity cue).

    As NVIDIA's MinibatchStdLayer: groups of min(group_size, N) samples (the whole batch for None), and
    a batch that does not divide into such groups is an error, never a silent change of statistics."""
    n, c, h, w = x.shape
    g = n if group_size is None else min(group_size, n)
    if n % g:
        raise ValueError(f"a batch of {n} does not divide into minibatch-stddev groups of {g}; "
                         f"use a batch size that is a multiple of {g}")
    y = x.reshape(g, -1, num_channels, c // num_channels, h, w)
    y = (y - y.mean(dim=0)).square().mean(dim=0)
    y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4]).reshape(-1, num_channels, 1, 1)
    return torch.cat([x, y.repeat(g, 1, h, w)], dim=1)


class DiscriminatorEpilogue(nn.Module):
    def __init__(self, in_channels: int, conv_clamp: float | None, mbstd_group_size: int | None = 4,
                 mbstd_num_channels: int = 1) -> None:
        super().__init__()
        self.mbstd_group_size, self.mbstd_num_channels = mbstd_group_size, mbstd_num_channels
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * 4 * 4, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mbstd_num_channels > 0:
            x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_channels)
        x = self.conv(x)
        return self.out(self.fc(x.flatten(1)))


class Discriminator(nn.Module):
    """Image [N, C, R, R] in [-1, 1] -> realness logit [N, 1]."""

    def __init__(self, img_resolution: int, channels: dict[int, int], img_channels: int = 3, conv_clamp: float | None = None,
                 mbstd_group_size: int | None = 4, mbstd_num_channels: int = 1) -> None:
        super().__init__()
        self.img_resolution = img_resolution
        self.mbstd_group_size = mbstd_group_size
        self.block_resolutions = [2**i for i in range(int(math.log2(img_resolution)), 2, -1)]
        for res in self.block_resolutions:
            in_channels = channels[res] if res < img_resolution else 0
            setattr(self, f"b{res}", DiscriminatorBlock(in_channels, channels[res], channels[res // 2], img_channels, conv_clamp))
        self.b4 = DiscriminatorEpilogue(channels[4], conv_clamp, mbstd_group_size, mbstd_num_channels)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
        return self.b4(x)


def discriminator_from_state(state: Mapping[str, torch.Tensor], conv_clamp: float | None = None,
                             mbstd_group_size: int | None = 4) -> Discriminator:
    """Rebuild from an NVIDIA-named state dict (channels, resolution and the number of minibatch-stddev
    channels read off the shapes; the group size is not in the weights and comes from the pickle)."""
    if any(key.startswith("mapping.") for key in state):
        raise ValueError("conditional discriminators are not supported")
    convs = {int(m.group(1)): t for k, t in state.items() if (m := re.fullmatch(r"b(\d+)\.conv0\.weight", k))}
    if not convs or "b4.out.weight" not in state:
        raise ValueError("not a StyleGAN2 'resnet' discriminator (no b*.conv0 / b4.out weights)")
    resolution = max(convs)
    channels = {res: int(t.shape[0]) for res, t in convs.items()}
    channels[4] = int(state["b4.conv.weight"].shape[0])
    img_channels = int(state[f"b{resolution}.fromrgb.weight"].shape[1])
    mbstd_num_channels = int(state["b4.conv.weight"].shape[1]) - channels[4]
    discriminator = Discriminator(resolution, channels, img_channels, conv_clamp, mbstd_group_size, mbstd_num_channels)
    expected = discriminator.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("resample_filter")]
    if missing:
        raise ValueError(f"discriminator is missing {missing[:3]}")
    discriminator.load_state_dict({k: (state[k] if k in state else v).float() for k, v in expected.items()})
    return discriminator.eval().requires_grad_(False)
