"""StyleGAN2 generator (Karras et al., CVPR 2020) with NVIDIA `stylegan2-ada-pytorch` parameter names.

The module tree and parameter names are those of NVIDIA's `training/networks.py`
(`mapping.fc0.weight`, `synthesis.b64.conv0.affine.weight`, ...), so an NVIDIA state dict loads as is;
the rosinality and genforce readers rename their keys onto these. Every layer's math is written out
here with the helpers of `generators.ops`; nothing is compiled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from generators import ops
from generators.precision import DEFAULT_FP16_CLAMP, DEFAULT_REDUCED_RESOLUTIONS
from generators.resolutions import block_resolutions, check_ladder

ARCHITECTURES = ("orig", "skip", "resnet")


def channels_for(resolution: int, channel_base: int = 32768, channel_max: int = 512) -> dict[int, int]:
    """NVIDIA's rule for feature-map counts: min(channel_base // res, channel_max) for res = 4 .. resolution."""
    log2 = int(math.log2(resolution))
    return {2**i: min(channel_base // 2**i, channel_max) for i in range(2, log2 + 1)}


@dataclass(frozen=True)
class StyleGAN2Config:
    """Everything needed to rebuild the network; readers fill it from checkpoint shapes and init kwargs."""

    img_resolution: int
    channels: dict[int, int]
    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    img_channels: int = 3
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    architecture: str = "skip"
    conv_clamp: float | None = None
    resample_taps: tuple[int, ...] = field(default=(1, 3, 3, 1))
    num_fp16_res: int = 0  # NVIDIA's N highest resolutions in fp16: the blocks `--precision bf16|fp16` reduces

    def __post_init__(self) -> None:
        check_ladder(self.img_resolution, self.channels, minimum=4)
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")

    @property
    def block_resolutions(self) -> list[int]:
        return block_resolutions(self.img_resolution)

    @property
    def num_ws(self) -> int:
        """Number of W+ entries: one per modulated conv, plus one for the final to-RGB layer."""
        return 2 * len(self.block_resolutions) - 1 + 1


def style_layer_names(config: StyleGAN2Config) -> list[str]:
    """Module name whose affine reads W+ entry i, for i in 0..num_ws-1.

    Entry i drives convolution i; the last entry drives the final to-RGB layer (intermediate to-RGB
    layers share the entry of the next convolution). This is the layer list SeFa factorises.
    """
    names = ["synthesis.b4.conv1"]
    for res in config.block_resolutions[1:]:
        names += [f"synthesis.b{res}.conv0", f"synthesis.b{res}.conv1"]
    names.append(f"synthesis.b{config.img_resolution}.torgb")
    return names


class FullyConnectedLayer(nn.Module):
    """y = act(x W^T * gain + b * lr), with equalised learning rate: W is stored at unit variance."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        return ops.bias_act(x @ w.t(), b, activation=self.activation)


def class_label(c_dim: int, class_index: int | None, batch: int, device: torch.device | str) -> torch.Tensor | None:
    """c [batch, c_dim]: one-hot for `class_index`, zeros for None; None for an unconditional network."""
    if c_dim == 0:
        if class_index is not None:
            raise ValueError("this generator is unconditional: it takes no class")
        return None
    c = torch.zeros([batch, c_dim], device=device)
    if class_index is not None:
        if not 0 <= class_index < c_dim:
            raise ValueError(f"class {class_index} does not exist: this generator has classes 0..{c_dim - 1}")
        c[:, class_index] = 1
    return c


class MappingNetwork(nn.Module):
    """z (and optional class label c) -> w; keeps the running mean `w_avg` for truncation."""

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = config.z_dim, config.c_dim, config.w_dim
        self.num_ws = config.num_ws
        self.num_layers = config.mapping_layers
        embed_features = config.w_dim if config.c_dim > 0 else 0
        features = [config.z_dim + embed_features] + [config.w_dim] * config.mapping_layers
        if config.c_dim > 0:
            self.embed = FullyConnectedLayer(config.c_dim, embed_features)
        for idx in range(config.mapping_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation="lrelu", lr_multiplier=config.mapping_lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        self.register_buffer("w_avg", torch.zeros([config.w_dim]))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        x = ops.normalize_2nd_moment(z)
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is conditional: pass a class label vector of size {self.c_dim}")
            x = torch.cat([x, ops.normalize_2nd_moment(self.embed(c))], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return ws


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally with 2x upsampling), noise, bias and leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        resample_filter: torch.Tensor,
        up: int = 1,
        kernel_size: int = 3,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.resolution, self.up, self.padding = resolution, up, kernel_size // 2
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", resample_filter.clone())
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", gain: float = 1.0) -> torch.Tensor:
        styles = self.affine(w)
        noise = None
        if noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength
        elif noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = ops.modulated_conv2d(
            x, self.weight, styles, noise=noise, up=self.up, padding=self.padding, resample_filter=self.resample_filter
        )
        conv_clamp = self.conv_clamp if self.conv_clamp is not None or x.dtype != torch.float16 else DEFAULT_FP16_CLAMP
        clamp = conv_clamp * gain if conv_clamp is not None else None
        return ops.bias_act(x, self.bias, activation="lrelu", gain=ops.LRELU_GAIN * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = ops.modulated_conv2d(x, self.weight, styles, demodulate=False)
        conv_clamp = self.conv_clamp if self.conv_clamp is not None or x.dtype != torch.float16 else DEFAULT_FP16_CLAMP
        return ops.bias_act(x, self.bias, clamp=conv_clamp)


class Conv2dLayer(nn.Module):
    """Plain (unmodulated) convolution; used only as the 1x1 upsampling skip of the 'resnet' architecture."""

    def __init__(self, in_channels: int, out_channels: int, resample_filter: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("resample_filter", resample_filter.clone())
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        x = ops.conv2d_up2(x, (self.weight * self.weight_gain).to(x.dtype), self.resample_filter, padding=0)
        return x * gain


class SynthesisBlock(nn.Module):
    """One resolution: (const or 2x up-conv) -> conv -> optional to-RGB, with skip/resnet/orig wiring."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        config: StyleGAN2Config,
        resolution: int,
        is_last: bool,
    ) -> None:
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        self.architecture = config.architecture
        self.is_last = is_last
        self.compute_dtype = torch.float32  # a reduced type for NVIDIA's fp16 blocks under --precision bf16|fp16
        resample_filter = ops.setup_filter(config.resample_taps)
        self.register_buffer("resample_filter", resample_filter)
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, config.w_dim, resolution, resample_filter, up=2, conv_clamp=config.conv_clamp
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, config.w_dim, resolution, resample_filter, conv_clamp=config.conv_clamp
        )
        self.num_conv += 1
        if is_last or self.architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, config.img_channels, config.w_dim, conv_clamp=config.conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and self.architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, resample_filter)

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str = "const"
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        w_iter = iter(ws.unbind(dim=1))
        dtype = self.compute_dtype
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode)
        elif self.architecture == "resnet":
            x = x.to(dtype)
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, gain=np.sqrt(0.5))
            x = y + x
        else:
            x = self.conv0(x.to(dtype), next(w_iter), noise_mode=noise_mode)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode)
        if img is not None:
            img = ops.upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter)).to(torch.float32)  # the image accumulates in fp32, as NVIDIA's
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """W+ codes [N, num_ws, w_dim] -> images [N, C, H, W] in about [-1, 1]."""

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        self.w_dim, self.num_ws = config.w_dim, config.num_ws
        self.img_resolution, self.img_channels = config.img_resolution, config.img_channels
        self.block_resolutions = config.block_resolutions
        for res in self.block_resolutions:
            in_channels = config.channels[res // 2] if res > 4 else 0
            block = SynthesisBlock(
                in_channels, config.channels[res], config, res, is_last=(res == config.img_resolution)
            )
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"expected W+ codes of shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            x, img = block(x, img, block_ws, noise_mode=noise_mode)
            w_idx += block.num_conv
        return img


class MappedGenerator(nn.Module):
    """What NVIDIA's StyleGAN2 and StyleGAN3 generators share: a mapping network to W, repeated into W+
    codes [N, num_ws, w_dim] (the interface of `generators/interface.py`), and a synthesis network that
    renders them. `config` is kept so the network can be rebuilt and described."""

    latent_kind = "W+"
    invertible = True
    has_shared_w = True
    default_truncation_cutoff = None  # NVIDIA's tools truncate every entry

    def __init__(self, config, synthesis: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.z_dim, self.c_dim, self.w_dim = config.z_dim, config.c_dim, config.w_dim
        self.img_resolution, self.img_channels = config.img_resolution, config.img_channels
        self.num_ws = config.num_ws
        self.mapping = MappingNetwork(config)
        self.synthesis = synthesis

    @property
    def num_classes(self) -> int:
        return self.c_dim

    def sample_codes(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                     class_index: int | None = None) -> torch.Tensor:
        """Mapped codes. A conditional generator gets the one-hot label of `class_index`, as NVIDIA's
        `gen_images.py --class`, or the all-zero label (no class) when it is None."""
        c = class_label(self.c_dim, class_index, z.shape[0], z.device)
        return self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)

    def mean_code(self) -> torch.Tensor:
        return self.mapping.w_avg.reshape(1, -1).repeat(self.num_ws, 1)

    def style_layer_names(self) -> list[str]:
        raise NotImplementedError

    def style_affine(self, layer_index: int) -> FullyConnectedLayer:
        """The affine layer that turns W+ entry `layer_index` into that layer's style vector."""
        return self.get_submodule(self.style_layer_names()[layer_index] + ".affine")


class Generator(MappedGenerator):
    """StyleGAN2: mapping + the skip / resnet / orig synthesis network."""

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__(config, SynthesisNetwork(config))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)

    def render(self, codes: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        return self.synthesis(codes, noise_mode=noise_mode)

    def style_layer_names(self) -> list[str]:
        return style_layer_names(self.config)

    def set_reduced_precision(self, dtype: torch.dtype | None) -> None:
        """NVIDIA's mixed precision (see `generators/precision.py`): the blocks at the checkpoint's
        `num_fp16_res` highest resolutions (NVIDIA's default 4 when it does not say; never below 8 px)
        compute in `dtype`, the others in fp32; None: fp32 everywhere. In fp16 a checkpoint without
        `conv_clamp` is clamped at NVIDIA's 256 in those blocks, against overflow."""
        count = self.config.num_fp16_res or DEFAULT_REDUCED_RESOLUTIONS
        first_reduced = max(2 ** (int(math.log2(self.img_resolution)) + 1 - count), 8)
        for res in self.config.block_resolutions:
            block = getattr(self.synthesis, f"b{res}")
            block.compute_dtype = dtype if dtype is not None and res >= first_reduced else torch.float32
