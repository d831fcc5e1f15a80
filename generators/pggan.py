"""Progressive GAN generator (Karras et al., ICLR 2018), with genforce's parameter names.

The network of SeFa's 30 PGGAN models (genforce/sefa `models/pggan_generator.py`). There is no mapping
network and no style: z enters once, through the first layer, which SeFa therefore factorises; edits
move z itself. The math, block by block:

    layer 0:   x = lrelu(conv4x4(pixel_norm(z) as a 1x1 map, padding 3) + b)       -> 4x4
    then:      x = lrelu(conv3x3(pixel_norm(x)) + b)                               (same resolution)
               x = lrelu(conv3x3(nearest_2x(pixel_norm(x))) + b)                   (next resolution)
    to-RGB:    image = conv1x1(pixel_norm(x)) + b of the last block (lod 0), optional tanh.

Weights are stored at unit variance and scaled at run time by gain / sqrt(fan_in) (gain sqrt(2),
1 for to-RGB). The transposed-convolution variant of the upsampling layers (`fused_scale`) is not
used by any model of the zoo and is not supported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from generators.resolutions import block_resolutions, check_ladder
from generators import ops
from generators.stylegan import LRELU_SLOPE


@dataclass(frozen=True)
class PGGANConfig:
    img_resolution: int
    channels: dict[int, int]
    z_dim: int = 512
    final_tanh: bool = False
    img_channels: int = 3

    def __post_init__(self) -> None:
        check_ladder(self.img_resolution, self.channels, minimum=8)

    @property
    def block_resolutions(self) -> list[int]:
        return block_resolutions(self.img_resolution)


class ConvLayer(nn.Module):
    """pixel norm -> (nearest 2x up) -> conv k x k with equalised learning rate -> bias -> (lrelu)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int, up: bool = False,
                 gain: float = math.sqrt(2), activation: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding, self.up, self.activation = padding, up, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = ops.normalize_2nd_moment(x)  # pixel norm
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        return F.leaky_relu(x, LRELU_SLOPE) if self.activation else x


class Generator(nn.Module):
    """z [N, z_dim] -> images. Codes, for the common generator interface, are z as [N, 1, z_dim]."""

    latent_kind = "Z"
    invertible = False  # no W+: photos cannot be inverted into it usefully (see `invert`'s refusal)
    default_truncation_cutoff = None
    has_shared_w = False

    def __init__(self, config: PGGANConfig) -> None:
        super().__init__()
        self.config = config
        self.z_dim = self.w_dim = config.z_dim
        self.num_ws = 1
        self.img_resolution, self.img_channels = config.img_resolution, config.img_channels
        self.register_buffer("lod", torch.zeros([]))
        for block, res in enumerate(config.block_resolutions):
            nf = config.channels[res]
            if res == 4:
                first = ConvLayer(config.z_dim, nf, kernel_size=4, padding=3)
            else:
                first = ConvLayer(config.channels[res // 2], nf, kernel_size=3, padding=1, up=True)
            setattr(self, f"layer{2 * block}", first)
            setattr(self, f"layer{2 * block + 1}", ConvLayer(nf, nf, kernel_size=3, padding=1))
            setattr(self, f"output{block}", ConvLayer(nf, config.img_channels, 1, 0, gain=1.0, activation=False))
        self.num_blocks = len(config.block_resolutions)

    num_classes = 0

    truncates = False  # no mapping network, no mean code: `sample --truncation` is refused

    def sample_codes(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                     class_index: int | None = None) -> torch.Tensor:
        """PGGAN has no truncation: the code is z itself (`sample` says so when --truncation is given)."""
        if class_index is not None:
            raise ValueError("this generator is unconditional: it takes no class")
        return z.reshape(-1, 1, self.z_dim)

    def render(self, codes: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        if codes.ndim != 3 or codes.shape[1:] != (1, self.z_dim):
            raise ValueError(f"expected z codes of shape [N, 1, {self.z_dim}], got {list(codes.shape)}")
        x = ops.normalize_2nd_moment(codes[:, 0]).reshape(codes.shape[0], self.z_dim, 1, 1)
        for i in range(2 * self.num_blocks):
            x = getattr(self, f"layer{i}")(x)
        image = getattr(self, f"output{self.num_blocks - 1}")(x)
        return torch.tanh(image) if self.config.final_tanh else image

    def mean_code(self) -> torch.Tensor:
        return torch.zeros([1, self.z_dim], device=self.lod.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.render(self.sample_codes(z))
