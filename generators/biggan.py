"""BigGAN-deep generator (Brock et al., ICLR 2019) with the parameter names of `pytorch-pretrained-biggan`.

The condition vector is cat(z, class embedding); a linear layer `gen_z` turns it into a 4x4 map,
GenBlocks (bottleneck residual blocks, half of them upsampling 2x) grow it to the output size, with
one self-attention layer, and every batch norm inside the blocks takes its scale and offset from the
condition vector. Three things decide an image besides z and the class:

- Spectral normalisation: every convolution and linear layer divides its stored `weight_orig` by its
  largest singular value, estimated as sigma = u . (W v) from the stored power-iteration vectors (what
  torch's `spectral_norm` does in eval mode; in train mode it would first move u and v, so the same
  input would render differently on every call).
- Truncation t: z is drawn from a normal truncated to [-2, 2] and scaled by t, and the batch norms use
  statistics measured at that truncation: 51 rows for t = 0, 0.02, ..., 1. Between rows the reference
  mixes them as `row[i] * c + row[i + 1] * (1 - c)`, c = frac(t / 0.02): weights reversed with
  respect to a linear interpolation, reproduced here because that is what the published weights were
  evaluated with.
- The final batch norm is unconditional; the to-RGB convolution's first 3 channels go through tanh.

Codes are z [N, 1, z_dim] (already scaled by t); the class and t are the render condition
(`set_render_condition`), kept in each code's record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class BigGANConfig:
    """`config.json` of a pytorch-pretrained-biggan checkpoint."""

    output_dim: int
    z_dim: int = 128
    num_classes: int = 1000
    channel_width: int = 128
    layers: tuple[tuple[bool, int, int], ...] = ()  # (upsample, in multiplier, out multiplier) per GenBlock
    attention_layer_position: int = 8
    eps: float = 1e-4
    n_stats: int = 51

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "BigGANConfig":
        """From the parsed config.json; a ValueError names what is missing or malformed."""
        try:
            layers = tuple((bool(up), int(a), int(b)) for up, a, b in data["layers"])
            config = cls(int(data["output_dim"]), int(data["z_dim"]), int(data["num_classes"]), int(data["channel_width"]),
                         layers, int(data["attention_layer_position"]), float(data["eps"]), int(data["n_stats"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"config.json is not a BigGAN config ({type(exc).__name__}: {exc})") from None
        sizes = [config.z_dim, config.num_classes, config.channel_width * 16, config.output_dim, config.n_stats]
        if not config.layers or min(sizes) < 1 or max(sizes) > 65536 or len(config.layers) > 64:
            raise ValueError(f"config.json declares sizes the network cannot have ({data!r:.200})")
        return config


def truncated_noise(seed: int, z_dim: int, truncation: float = 1.0) -> np.ndarray:
    """z for a seed as `pytorch_pretrained_biggan.truncated_noise_sample` draws it: scipy's truncnorm on
    [-2, 2] from RandomState(seed), times the truncation."""
    from scipy.stats import truncnorm  # scipy.stats takes a while to import: only when sampling

    values = truncnorm.rvs(-2, 2, size=(1, z_dim), random_state=np.random.RandomState(seed)).astype(np.float32)
    return truncation * values[0]


def _sigma(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The spectral norm estimate u . (W v) from the stored power-iteration vectors (torch eval mode)."""
    return torch.dot(u, torch.mv(weight.flatten(1), v))


class SNLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.weight_orig = nn.Parameter(torch.randn([out_features, in_features]) / math.sqrt(in_features))
        self.bias = nn.Parameter(torch.zeros([out_features])) if bias else None
        self.register_buffer("weight_u", F.normalize(torch.randn([out_features]), dim=0))
        self.register_buffer("weight_v", F.normalize(torch.randn([in_features]), dim=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_orig / _sigma(self.weight_orig, self.weight_u, self.weight_v), self.bias)


class SNConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__()
        self.padding = kernel_size // 2
        self.weight_orig = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None
        self.register_buffer("weight_u", F.normalize(torch.randn([out_channels]), dim=0))
        self.register_buffer("weight_v", F.normalize(torch.randn([in_channels * kernel_size ** 2]), dim=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_orig / _sigma(self.weight_orig, self.weight_u, self.weight_v)
        return F.conv2d(x, weight, self.bias, padding=self.padding)


def statistics_at(means: torch.Tensor, variances: torch.Tensor, truncation: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch-norm statistics the reference uses at truncation t (rows at t = i / (n - 1); between
    two rows its reversed mix, see the module docstring)."""
    step = 1.0 / (means.shape[0] - 1)
    coef, start = math.modf(truncation / step)
    start = int(start)
    if coef == 0.0:
        return means[start], variances[start]
    return (means[start] * coef + means[start + 1] * (1 - coef),
            variances[start] * coef + variances[start + 1] * (1 - coef))


class ConditionalBatchNorm(nn.Module):
    """Normalise with the truncation's stored statistics, then scale by 1 + scale(c) and shift by offset(c)."""

    def __init__(self, features: int, condition_dim: int, n_stats: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("running_means", torch.zeros([n_stats, features]))
        self.register_buffer("running_vars", torch.ones([n_stats, features]))
        self.scale = SNLinear(condition_dim, features, bias=False)
        self.offset = SNLinear(condition_dim, features, bias=False)

    def forward(self, x: torch.Tensor, truncation: float, condition: torch.Tensor) -> torch.Tensor:
        mean, var = statistics_at(self.running_means, self.running_vars, truncation)
        weight = 1 + self.scale(condition)[:, :, None, None]
        bias = self.offset(condition)[:, :, None, None]
        return (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps) * weight + bias


class BatchNorm(nn.Module):
    """The final, unconditional batch norm (learned weight and bias), with the truncation's statistics."""

    def __init__(self, features: int, n_stats: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("running_means", torch.zeros([n_stats, features]))
        self.register_buffer("running_vars", torch.ones([n_stats, features]))
        self.weight = nn.Parameter(torch.ones([features]))
        self.bias = nn.Parameter(torch.zeros([features]))

    def forward(self, x: torch.Tensor, truncation: float) -> torch.Tensor:
        mean, var = statistics_at(self.running_means, self.running_vars, truncation)
        return F.batch_norm(x, mean, var, self.weight, self.bias, training=False, momentum=0.0, eps=self.eps)


class SelfAttention(nn.Module):
    """SAGAN self-attention: queries at every position, keys and values on a 2x max-pooled grid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.snconv1x1_theta = SNConv2d(channels, channels // 8, 1, bias=False)
        self.snconv1x1_phi = SNConv2d(channels, channels // 8, 1, bias=False)
        self.snconv1x1_g = SNConv2d(channels, channels // 2, 1, bias=False)
        self.snconv1x1_o_conv = SNConv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        theta = self.snconv1x1_theta(x).view(batch, channels // 8, height * width)
        phi = F.max_pool2d(self.snconv1x1_phi(x), 2).view(batch, channels // 8, height * width // 4)
        attention = torch.softmax(torch.bmm(theta.permute(0, 2, 1), phi), dim=-1)
        g = F.max_pool2d(self.snconv1x1_g(x), 2).view(batch, channels // 2, height * width // 4)
        attended = torch.bmm(g, attention.permute(0, 2, 1)).view(batch, channels // 2, height, width)
        return x + self.gamma * self.snconv1x1_o_conv(attended)


class GenBlock(nn.Module):
    """Bottleneck residual block: 1x1 down to in/4 channels, two 3x3 (after the optional 2x nearest
    upsampling), 1x1 out; the shortcut keeps the first `out` channels and is upsampled alike."""

    def __init__(self, in_channels: int, out_channels: int, condition_dim: int, upsample: bool, n_stats: int,
                 eps: float) -> None:
        super().__init__()
        self.upsample, self.drop_channels = upsample, in_channels != out_channels
        middle = in_channels // 4
        self.bn_0 = ConditionalBatchNorm(in_channels, condition_dim, n_stats, eps)
        self.conv_0 = SNConv2d(in_channels, middle, 1)
        self.bn_1 = ConditionalBatchNorm(middle, condition_dim, n_stats, eps)
        self.conv_1 = SNConv2d(middle, middle, 3)
        self.bn_2 = ConditionalBatchNorm(middle, condition_dim, n_stats, eps)
        self.conv_2 = SNConv2d(middle, middle, 3)
        self.bn_3 = ConditionalBatchNorm(middle, condition_dim, n_stats, eps)
        self.conv_3 = SNConv2d(middle, out_channels, 1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor, truncation: float) -> torch.Tensor:
        shortcut = x
        x = self.conv_0(F.relu(self.bn_0(x, truncation, condition)))
        x = F.relu(self.bn_1(x, truncation, condition))
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv_1(x)
        x = self.conv_2(F.relu(self.bn_2(x, truncation, condition)))
        x = self.conv_3(F.relu(self.bn_3(x, truncation, condition)))
        if self.drop_channels:
            shortcut = shortcut[:, : shortcut.shape[1] // 2]
        if self.upsample:
            shortcut = F.interpolate(shortcut, scale_factor=2, mode="nearest")
        return x + shortcut


class Synthesis(nn.Module):
    """pytorch-pretrained-biggan's `Generator`: condition vector -> image in (-1, 1)."""

    def __init__(self, config: BigGANConfig) -> None:
        super().__init__()
        ch, condition_dim = config.channel_width, config.z_dim * 2
        self.channel_width = ch
        self.gen_z = SNLinear(condition_dim, 4 * 4 * 16 * ch)
        layers: list[nn.Module] = []
        for i, (upsample, in_mult, out_mult) in enumerate(config.layers):
            if i == config.attention_layer_position:
                layers.append(SelfAttention(ch * in_mult))
            layers.append(GenBlock(ch * in_mult, ch * out_mult, condition_dim, upsample, config.n_stats, config.eps))
        self.layers = nn.ModuleList(layers)
        self.bn = BatchNorm(ch, config.n_stats, config.eps)
        self.conv_to_rgb = SNConv2d(ch, ch, 3)

    def forward(self, condition: torch.Tensor, truncation: float) -> torch.Tensor:
        # gen_z's output is in TensorFlow's NHWC order (the weights were converted from TF Hub).
        x = self.gen_z(condition).view(-1, 4, 4, 16 * self.channel_width).permute(0, 3, 1, 2).contiguous()
        for layer in self.layers:
            x = layer(x, condition, truncation) if isinstance(layer, GenBlock) else layer(x)
        x = self.conv_to_rgb(F.relu(self.bn(x, truncation)))
        return torch.tanh(x[:, :3])


class Generator(nn.Module):
    """Class embedding + synthesis, with the interface of `generators/interface.py`. Codes are z as
    [N, 1, z_dim]; the class and the truncation are the render condition (`set_render_condition`)."""

    latent_kind = "Z"
    invertible = False  # no W+: a photo cannot be inverted into BigGAN's codes here
    has_shared_w = False
    default_truncation_cutoff = None

    def __init__(self, config: BigGANConfig) -> None:
        super().__init__()
        self.config = config
        self.z_dim = self.w_dim = config.z_dim
        self.num_ws = 1
        self.img_resolution = config.output_dim
        self.embeddings = nn.Linear(config.num_classes, config.z_dim, bias=False)
        self.generator = Synthesis(config)
        self.class_index: int | None = None
        self.truncation = 1.0

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def draw_noise(self, seed: int) -> np.ndarray:
        """BigGAN's z is a truncated normal (the reference's `truncated_noise_sample(seed=seed)`)."""
        return truncated_noise(seed, self.z_dim)

    def sample_codes(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                     class_index: int | None = None) -> torch.Tensor:
        """z scaled by the truncation (which must lie in (0, 1]), as [N, 1, z_dim]. The class does not
        enter the code: it is part of the render condition."""
        check_truncation(truncation_psi)
        if class_index is not None and not 0 <= class_index < self.num_classes:
            raise ValueError(f"class {class_index} does not exist: this generator has classes 0..{self.num_classes - 1}")
        return (truncation_psi * z)[:, None, :]

    def set_render_condition(self, condition: Mapping[str, Any]) -> None:
        """Take the class ("class": int or None for the all-zero label) and truncation ("truncation_psi")
        a code was sampled with; a ValueError says what is wrong with them."""
        class_index = condition.get("class")
        if class_index is not None and (not isinstance(class_index, int) or isinstance(class_index, bool)
                                        or not 0 <= class_index < self.num_classes):
            raise ValueError(f"class {class_index!r} does not exist: this generator has classes 0..{self.num_classes - 1}")
        truncation = condition.get("truncation_psi")
        truncation = 1.0 if truncation is None else truncation
        check_truncation(truncation)
        self.class_index, self.truncation = class_index, float(truncation)

    def render(self, codes: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        if codes.ndim != 3 or codes.shape[1:] != (1, self.z_dim):
            raise ValueError(f"expected z codes of shape [N, 1, {self.z_dim}], got {list(codes.shape)}")
        label = torch.zeros([codes.shape[0], self.num_classes], device=codes.device)
        if self.class_index is not None:
            label[:, self.class_index] = 1
        condition = torch.cat([codes[:, 0], self.embeddings(label)], dim=1)
        return self.generator(condition, self.truncation)

    def mean_code(self) -> torch.Tensor:
        return torch.zeros([1, self.z_dim], device=self.embeddings.weight.device)


def check_truncation(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"truncation {value!r}: BigGAN takes a truncation in (0, 1] (its batch-norm statistics "
                         f"exist only there)")
