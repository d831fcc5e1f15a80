"""StyleGAN (v1; Karras et al., CVPR 2019) generator, with genforce's parameter names.

This is the network of SeFa's model zoo (genforce/sefa `models/stylegan_generator.py`) and of In-Domain
GAN Inversion's `styleganinv` models (genforce/idinvert_pytorch); the IDInvert reader renames that
layout onto these names (`generators/readers/idinvert.py`). The math of every layer is written out:

    mapping:   w = lrelu(... lrelu(pixel_norm(z) W_0^T g_0 + b_0 lr) ...)   (lr multiplier 0.01)
               with `repeat_w` one w is shared by every layer, otherwise the last layer outputs all
               W+ entries at once ([N, num_layers * w_dim], IDInvert's encoder-friendly variant);
    truncation: wp_i = w_avg + psi * (wp_i - w_avg) for layers i < cutoff;
    a layer:   x = [const | (nearest 2x up ->) conv3x3 | fused transposed conv] (-> blur [1,2,1]^2 on up)
               x = instance_norm(lrelu(x + noise * s + b))
               x = x * (1 + style_scale(w_i)) + style_shift(w_i)          (AdaIN)
    to-RGB:    only the last block's 1x1 conv is used at full level of detail (lod 0); optional tanh.

Weights are stored at unit variance and scaled at run time (equalised learning rate): convs by
sqrt(2 / fan_in), styles by 1 / sqrt(w_dim), to-RGB by 1 / sqrt(in_channels). The leaky ReLU has
no gain (unlike StyleGAN2's): the sqrt(2) lives in the weight scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from generators import ops
from generators.resolutions import block_resolutions, check_ladder

LRELU_SLOPE = 0.2
FUSED_MIN_RESOLUTION = 128  # genforce's fused_scale='auto': transposed conv from 128 px up


@dataclass(frozen=True)
class StyleGANConfig:
    """Everything needed to rebuild the network; readers fill it from the checkpoint's tensor shapes."""

    img_resolution: int
    channels: dict[int, int]  # feature maps per resolution, 4 .. img_resolution
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_hidden: int = 512
    mapping_lr_multiplier: float = 0.01
    repeat_w: bool = True  # False: the mapping outputs every W+ entry (IDInvert)
    final_tanh: bool = False  # IDInvert squashes images into [-1, 1]; SeFa's zoo does not
    fused_resolutions: tuple[int, ...] = ()  # up layers computed as one transposed convolution
    img_channels: int = 3

    def __post_init__(self) -> None:
        check_ladder(self.img_resolution, self.channels, minimum=8)

    @property
    def block_resolutions(self) -> list[int]:
        return block_resolutions(self.img_resolution)

    @property
    def num_ws(self) -> int:
        """Two style inputs per resolution (the up/const layer and the 3x3 conv)."""
        return 2 * len(self.block_resolutions)

    @property
    def mapping_out(self) -> int:
        return self.w_dim if self.repeat_w else self.w_dim * self.num_ws


def default_fused_resolutions(resolution: int) -> tuple[int, ...]:
    """genforce's `fused_scale='auto'`: the up layers at 128 px and above are transposed convolutions."""
    return tuple(2**r for r in range(3, int(math.log2(resolution)) + 1) if 2**r >= FUSED_MIN_RESOLUTION)


def instance_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    x = x - x.mean(dim=[2, 3], keepdim=True)
    return x / torch.sqrt(x.square().mean(dim=[2, 3], keepdim=True) + eps)


class DenseLayer(nn.Module):
    """y = x (W * gain * lr / sqrt(in))^T + b * lr, then an optional leaky ReLU."""

    def __init__(self, in_features: int, out_features: int, gain: float, lr_multiplier: float, activation: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.zeros([out_features]))
        self.weight_gain = gain / math.sqrt(in_features) * lr_multiplier
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return F.leaky_relu(x, LRELU_SLOPE) if self.activation else x


class MappingNetwork(nn.Module):
    """z -> pixel norm -> `mapping_layers` dense layers -> w ([N, w_dim], or [N, num_ws * w_dim])."""

    def __init__(self, config: StyleGANConfig) -> None:
        super().__init__()
        self.num_layers = config.mapping_layers
        widths = [config.z_dim] + [config.mapping_hidden] * (config.mapping_layers - 1) + [config.mapping_out]
        for i in range(config.mapping_layers):
            setattr(self, f"dense{i}", DenseLayer(widths[i], widths[i + 1], math.sqrt(2), config.mapping_lr_multiplier, True))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = ops.normalize_2nd_moment(z)  # pixel norm
        for i in range(self.num_layers):
            x = getattr(self, f"dense{i}")(x)
        return x


class Truncation(nn.Module):
    """Spreads w over the layers and pulls the first `cutoff` entries towards the mean: the truncation trick."""

    def __init__(self, config: StyleGANConfig) -> None:
        super().__init__()
        self.num_ws, self.w_dim, self.repeat_w = config.num_ws, config.w_dim, config.repeat_w
        self.register_buffer("w_avg", torch.zeros([config.w_dim]))

    def forward(self, w: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
        if self.repeat_w:
            wp = w.reshape(-1, 1, self.w_dim).repeat(1, self.num_ws, 1)
        else:
            wp = w.reshape(-1, self.num_ws, self.w_dim)
        if psi != 1:
            cutoff = self.num_ws if cutoff is None else cutoff
            coefs = torch.ones([1, self.num_ws, 1], dtype=wp.dtype, device=wp.device)
            coefs[:, :cutoff] = psi
            w_avg = self.w_avg.reshape(1, 1, -1)
            wp = w_avg + (wp - w_avg) * coefs
        return wp


class NoiseInput(nn.Module):
    """Per-pixel noise, one map per layer (stored, for reproducible images), times a per-channel strength."""

    def __init__(self, resolution: int, channels: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.register_buffer("noise", torch.randn([1, 1, resolution, resolution]))
        self.weight = nn.Parameter(torch.zeros([channels]))

    def forward(self, x: torch.Tensor, noise_mode: str) -> torch.Tensor:
        if noise_mode == "none":
            return x
        noise = self.noise
        if noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device, dtype=x.dtype)
        return x + noise * self.weight.reshape(1, -1, 1, 1)


class BlurFilter(nn.Module):
    """Depthwise 3x3 [1, 2, 1]^T [1, 2, 1] / 16 smoothing after upsampling (stored per channel by genforce)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(taps, taps) / 16
        self.register_buffer("kernel", kernel.reshape(1, 1, 3, 3).repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel.to(x.dtype), padding=1, groups=x.shape[1])


class StyleLayer(nn.Module):
    """One synthesis layer: const or (up-)convolution, noise, bias, lrelu, instance norm, AdaIN."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kind: str) -> None:
        super().__init__()
        if kind not in ("const", "conv", "up", "fused_up"):
            raise ValueError(f"unknown layer kind {kind!r}")
        self.kind = kind
        if kind == "const":
            self.const = nn.Parameter(torch.ones([1, out_channels, resolution, resolution]))
        else:
            self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]))
            self.weight_gain = math.sqrt(2) / math.sqrt(in_channels * 9)
        if kind in ("up", "fused_up"):
            self.blur = BlurFilter(out_channels)
        self.apply_noise = NoiseInput(resolution, out_channels)
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        # w_i -> (scale, shift) per channel: the only place the latent code enters a layer (what SeFa reads)
        self.style = DenseLayer(w_dim, 2 * out_channels, gain=1.0, lr_multiplier=1.0, activation=False)

    def forward(self, x: torch.Tensor | None, w: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        if self.kind == "const":
            x = self.const.repeat(w.shape[0], 1, 1, 1)
        elif self.kind == "fused_up":
            # Nearest 2x upsampling followed by a 3x3 conv equals one stride-2 transposed conv whose 4x4
            # kernel is the sum of the 3x3 kernel at the four one-pixel shifts.
            weight = F.pad(self.weight * self.weight_gain, [1, 1, 1, 1])
            weight = weight[:, :, 1:, 1:] + weight[:, :, :-1, 1:] + weight[:, :, 1:, :-1] + weight[:, :, :-1, :-1]
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2, padding=1)
        else:
            if self.kind == "up":
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = F.conv2d(x, self.weight * self.weight_gain, padding=1)
        if self.kind in ("up", "fused_up"):
            x = self.blur(x)
        x = self.apply_noise(x, noise_mode)
        x = F.leaky_relu(x + self.bias.reshape(1, -1, 1, 1), LRELU_SLOPE)
        x = instance_norm(x)
        style = self.style(w).reshape(-1, 2, x.shape[1], 1, 1)
        return x * (style[:, 0] + 1) + style[:, 1]


class ToRGB(nn.Module):
    """1x1 convolution to image channels (linear)."""

    def __init__(self, in_channels: int, img_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn([img_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([img_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.weight_gain, self.bias)


class SynthesisNetwork(nn.Module):
    """W+ codes [N, num_ws, w_dim] -> images. Layer 2b is block b's first layer, 2b+1 its 3x3 conv."""

    def __init__(self, config: StyleGANConfig) -> None:
        super().__init__()
        self.num_ws, self.w_dim, self.final_tanh = config.num_ws, config.w_dim, config.final_tanh
        self.register_buffer("lod", torch.zeros([]))  # progressive-training level of detail; 0 = full resolution
        for block, res in enumerate(config.block_resolutions):
            nf = config.channels[res]
            if res == 4:
                first = StyleLayer(0, nf, config.w_dim, res, "const")
            else:
                kind = "fused_up" if res in config.fused_resolutions else "up"
                first = StyleLayer(config.channels[res // 2], nf, config.w_dim, res, kind)
            setattr(self, f"layer{2 * block}", first)
            setattr(self, f"layer{2 * block + 1}", StyleLayer(nf, nf, config.w_dim, res, "conv"))
            # Every block keeps its to-RGB (progressive growing); only the last one draws at lod 0.
            setattr(self, f"output{block}", ToRGB(nf, config.img_channels))
        self.num_blocks = len(config.block_resolutions)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"expected W+ codes of shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        x = None
        for i in range(self.num_ws):
            x = getattr(self, f"layer{i}")(x, ws[:, i], noise_mode)
        image = getattr(self, f"output{self.num_blocks - 1}")(x)
        return torch.tanh(image) if self.final_tanh else image


class Generator(nn.Module):
    """Mapping, truncation and synthesis, with the interface every sefa-edit generator offers
    (`generators/interface.py`): codes are W+ [N, num_ws, w_dim]."""

    latent_kind = "W+"
    invertible = True
    default_truncation_cutoff = 8  # StyleGAN v1's published sampling truncated the coarse 8 layers

    def __init__(self, config: StyleGANConfig) -> None:
        super().__init__()
        self.config = config
        self.z_dim, self.w_dim, self.num_ws = config.z_dim, config.w_dim, config.num_ws
        self.img_resolution, self.img_channels = config.img_resolution, config.img_channels
        self.mapping = MappingNetwork(config)
        self.truncation = Truncation(config)
        self.synthesis = SynthesisNetwork(config)

    @property
    def has_shared_w(self) -> bool:
        """Whether one w drives all layers (so a W-space inversion is the generator's own W)."""
        return self.config.repeat_w

    num_classes = 0  # conditional genforce StyleGANs are refused by the reader

    def sample_codes(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                     class_index: int | None = None) -> torch.Tensor:
        if class_index is not None:
            raise ValueError("this generator is unconditional: it takes no class")
        return self.truncation(self.mapping(z), truncation_psi, truncation_cutoff)

    def render(self, codes: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        return self.synthesis(codes, noise_mode=noise_mode)

    def mean_code(self) -> torch.Tensor:
        return self.truncation.w_avg.reshape(1, -1).repeat(self.num_ws, 1)

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "const") -> torch.Tensor:
        return self.render(self.sample_codes(z, truncation_psi, truncation_cutoff), noise_mode)
