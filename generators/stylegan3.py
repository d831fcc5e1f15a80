"""StyleGAN3 generator (Karras et al., "Alias-Free Generative Adversarial Networks", NeurIPS 2021),
configs T and R, with NVIDIA `stylegan3` parameter names (`training/networks_stylegan3.py`).

The network is a Fourier-feature input (`synthesis.input`), 14 modulated-convolution layers
`L0_<size>_<channels>` ... `L13_...` and a to-RGB layer `L14_...`, each followed by a filtered leaky
ReLU (`generators/filtered_lrelu.py`). Sizes, sampling rates, cutoffs, filters and paddings follow from
a handful of constructor arguments through the geometric schedule of the paper (its Fig. 4 / Appendix
F), computed here as NVIDIA's `SynthesisNetwork.__init__` does; a checkpoint's stored filters replace
the designed ones on load. W+ has num_layers + 2 entries: the input's affine (which turns w into a
rotation and translation of the Fourier features), one per layer, and the to-RGB layer.

Config R differs only in its arguments (1x1 convolutions, twice the channels, radially symmetric
jinc down-filters in the non-critically-sampled layers).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import scipy.signal
import scipy.special
import torch
from torch import nn

from generators.filtered_lrelu import filtered_lrelu
from generators.precision import DEFAULT_FP16_CLAMP, DEFAULT_REDUCED_RESOLUTIONS
from generators.stylegan2 import FullyConnectedLayer, MappedGenerator


@dataclass(frozen=True)
class StyleGAN3Config:
    """NVIDIA's constructor arguments (defaults: `networks_stylegan3.py`'s class defaults)."""

    img_resolution: int
    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    img_channels: int = 3
    mapping_layers: int = 2
    mapping_lr_multiplier: float = 0.01
    channel_base: int = 32768
    channel_max: int = 512
    num_layers: int = 14
    num_critical: int = 2
    first_cutoff: float = 2.0
    first_stopband: float = 2 ** 2.1
    last_stopband_rel: float = 2 ** 0.3
    margin_size: int = 10
    output_scale: float = 0.25
    num_fp16_res: int = 4  # NVIDIA's layers in fp16 on CUDA: the layers `--precision bf16|fp16` reduces
    conv_kernel: int = 3
    filter_size: int = 6
    lrelu_upsampling: int = 2
    use_radial_filters: bool = False
    conv_clamp: float | None = 256

    @property
    def num_ws(self) -> int:
        return self.num_layers + 2

    @property
    def config_name(self) -> str:
        """'R' for the rotation-equivariant configuration (radial filters), 'T' otherwise."""
        return "R" if self.use_radial_filters else "T"


# Constructor arguments that only steer training (moving averages); they do not change a render.
TRAINING_ONLY_KWARGS = {"magnitude_ema_beta", "w_avg_beta"}
_NETWORK_KWARGS = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"}


def config_from_kwargs(kwargs: Mapping[str, Any]) -> StyleGAN3Config:
    """The config of a pickled `networks_stylegan3.Generator` from its stored constructor kwargs
    (`train.py` passes the synthesis arguments flat and the mapping's in `mapping_kwargs`). An argument
    we do not know would change the network in a way we cannot reproduce, so it is refused."""
    fields = {f.name for f in dataclasses.fields(StyleGAN3Config)}
    values: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key == "mapping_kwargs":
            for name, setting in dict(value or {}).items():
                if name == "num_layers":
                    values["mapping_layers"] = int(setting)
                elif name == "lr_multiplier":
                    values["mapping_lr_multiplier"] = float(setting)
                elif name not in TRAINING_ONLY_KWARGS:
                    raise ValueError(f"unknown mapping argument {name}={setting!r}")
        elif key in fields and key not in ("mapping_layers", "mapping_lr_multiplier"):
            values[key] = value
        elif key not in TRAINING_ONLY_KWARGS:
            raise ValueError(f"unknown StyleGAN3 argument {key}={value!r}")
    missing = sorted(_NETWORK_KWARGS - set(values))
    if missing:
        raise ValueError(f"the pickle does not say the generator's {', '.join(missing)}")
    for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "channel_base", "channel_max",
                 "num_layers", "num_critical", "margin_size", "conv_kernel", "filter_size", "lrelu_upsampling"):
        if name in values and (not isinstance(values[name], int) or isinstance(values[name], bool) or values[name] < 0):
            raise ValueError(f"{name}={values[name]!r} is not a size")
    config = StyleGAN3Config(**values)
    if config.num_layers <= config.num_critical or config.img_resolution < 4:
        raise ValueError(f"num_layers={config.num_layers} / num_critical={config.num_critical} / "
                         f"img_resolution={config.img_resolution} make no layer schedule")
    return config


@dataclass(frozen=True)
class LayerPlan:
    """One synthesis layer's place in the alias-free schedule."""

    name: str
    is_torgb: bool
    is_critically_sampled: bool
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    in_sampling_rate: int
    out_sampling_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    conv_kernel: int
    up_factor: int
    down_factor: int
    up_taps: int
    down_taps: int
    down_radial: bool
    padding: tuple[int, int, int, int]  # x0, x1, y0, y1 of the up-sampling pass


@dataclass(frozen=True)
class InputPlan:
    channels: int
    size: int
    sampling_rate: float
    bandwidth: float


def synthesis_plan(config: StyleGAN3Config) -> tuple[InputPlan, list[LayerPlan]]:
    """Cutoffs f_c and stopbands f_t grow geometrically from the first layer to the critically sampled
    last ones; each layer samples at the smallest power of two above twice its stopband, with a margin
    of extra pixels, and has channel_base / 2 / f_c channels (at most channel_max)."""
    n, critical = config.num_layers, config.num_critical
    last_cutoff = config.img_resolution / 2
    last_stopband = last_cutoff * config.last_stopband_rel
    exponents = np.minimum(np.arange(n + 1) / (n - critical), 1)
    cutoffs = config.first_cutoff * (last_cutoff / config.first_cutoff) ** exponents
    stopbands = config.first_stopband * (last_stopband / config.first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, config.img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + config.margin_size * 2
    sizes[-2:] = config.img_resolution
    channels = np.rint(np.minimum((config.channel_base / 2) / cutoffs, config.channel_max))
    channels[-1] = config.img_channels

    layers = []
    for idx in range(n + 1):
        prev = max(idx - 1, 0)
        is_torgb = idx == n
        critically_sampled = idx >= n - critical
        in_rate, out_rate = int(sampling_rates[prev]), int(sampling_rates[idx])
        tmp_rate = max(in_rate, out_rate) * (1 if is_torgb else config.lrelu_upsampling)
        kernel = 1 if is_torgb else config.conv_kernel
        up, down = int(np.rint(tmp_rate / in_rate)), int(np.rint(tmp_rate / out_rate))
        up_taps = config.filter_size * up if up > 1 and not is_torgb else 1
        down_taps = config.filter_size * down if down > 1 and not is_torgb else 1
        in_size, out_size = int(sizes[prev]), int(sizes[idx])
        # Output size before downsampling, minus the size after upsampling, plus what the filters remove;
        # the low side gets the extra sample (the symmetric interpretation, the paper's Appendix C.3).
        pad_total = (out_size - 1) * down + 1 - (in_size + kernel - 1) * up + up_taps + down_taps - 2
        pad_lo = (pad_total + up) // 2
        pad_hi = pad_total - pad_lo
        layers.append(LayerPlan(
            name=f"L{idx}_{out_size}_{int(channels[idx])}", is_torgb=is_torgb, is_critically_sampled=critically_sampled,
            in_channels=int(channels[prev]), out_channels=int(channels[idx]), in_size=in_size, out_size=out_size,
            in_sampling_rate=in_rate, out_sampling_rate=out_rate,
            in_cutoff=float(cutoffs[prev]), out_cutoff=float(cutoffs[idx]),
            in_half_width=float(half_widths[prev]), out_half_width=float(half_widths[idx]),
            conv_kernel=kernel, up_factor=up, down_factor=down, up_taps=up_taps, down_taps=down_taps,
            down_radial=config.use_radial_filters and not critically_sampled,
            padding=(int(pad_lo), int(pad_hi), int(pad_lo), int(pad_hi)),
        ))
    first = InputPlan(int(channels[0]), int(sizes[0]), float(sampling_rates[0]), float(cutoffs[0]))
    return first, layers


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False) -> torch.Tensor | None:
    """Kaiser-windowed low-pass taps (separable, 1-D), or a radially symmetric jinc filter (2-D);
    None for a single tap (no filtering)."""
    if numtaps == 1:
        return None
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs), dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f *= np.outer(window, window)
    return torch.as_tensor(f / np.sum(f), dtype=torch.float32)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, padding: int, demodulate: bool,
                     input_gain: torch.Tensor) -> torch.Tensor:
    """StyleGAN3's modulated convolution: per-sample kernel w'_{oik} = w_{oik} s_i / ||w_o s||  * g,
    with g = the layer's input gain (1 / running RMS of its input).

    NVIDIA first rescales w per output channel and s to unit mean square (numerical range in fp16);
    demodulation cancels both factors. It normalises s over the whole batch; here each sample is
    normalised on its own, so a face renders the same whatever shares its batch (the two differ only
    through the 1e-8 in the demodulation). The kernel is applied by scaling the input channels and the
    output channels around one shared convolution, as in `generators/ops.modulated_conv2d`. The
    convolution runs in x's number type (fp32, or bf16 / fp16 in a reduced layer); styles and
    demodulation coefficients are computed in fp32 and cast."""
    batch, dtype = x.shape[0], x.dtype
    if demodulate:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()
    x = x * (styles * input_gain).to(dtype).reshape(batch, -1, 1, 1)
    x = torch.nn.functional.conv2d(x, weight.to(dtype), padding=padding)
    if demodulate:
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()
        x = x * dcoefs.to(dtype).reshape(batch, -1, 1, 1)
    return x


class SynthesisInput(nn.Module):
    """Fourier features: `channels` sinusoids of fixed random frequencies (within the first cutoff)
    sampled on the layer's grid, rotated and translated by w (through `affine`) and by the user's
    `transform`, then mixed by a learned channel matrix."""

    def __init__(self, w_dim: int, plan: InputPlan) -> None:
        super().__init__()
        self.channels, self.size = plan.channels, plan.size
        self.sampling_rate, self.bandwidth = plan.sampling_rate, plan.bandwidth
        self.weight = nn.Parameter(torch.randn([plan.channels, plan.channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)  # (r_c, r_s, t_x, t_y)
        self.register_buffer("transform", torch.eye(3, 3))  # inverse transform of the image (gen_images.py)
        self.register_buffer("freqs", torch.zeros([plan.channels, 2]))
        self.register_buffer("phases", torch.zeros([plan.channels]))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        batch = w.shape[0]
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)  # a unit rotation (r_c, r_s) and a translation (t_x, t_y)
        m_r = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch, 1, 1])  # inverse rotation of the image
        m_r[:, 0, 0], m_r[:, 0, 1], m_r[:, 1, 0], m_r[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        m_t = torch.eye(3, device=w.device).unsqueeze(0).repeat([batch, 1, 1])  # inverse translation
        m_t[:, 0, 2], m_t[:, 1, 2] = -t[:, 2], -t[:, 3]
        transforms = m_r @ m_t @ self.transform.unsqueeze(0)  # rotate, then translate, then the user's transform

        freqs = self.freqs.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]
        # A user transform may push frequencies past the band; fade those out rather than alias them.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = theta[1, 1] = 0.5 * self.size / self.sampling_rate
        grid = torch.nn.functional.affine_grid(theta.unsqueeze(0), [1, 1, self.size, self.size], align_corners=False)
        x = (grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # [N, H, W, C]
        x = torch.sin((x + phases.unsqueeze(1).unsqueeze(2)) * (np.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)


class SynthesisLayer(nn.Module):
    """Modulated convolution, then the filtered leaky ReLU that moves the signal from this layer's
    input sampling rate to its output rate without aliasing."""

    def __init__(self, w_dim: int, plan: LayerPlan, config: StyleGAN3Config) -> None:
        super().__init__()
        self.plan = plan
        self.conv_clamp = config.conv_clamp
        self.compute_dtype = torch.float32  # a reduced type for NVIDIA's fp16 layers under --precision bf16|fp16
        self.affine = FullyConnectedLayer(w_dim, plan.in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([plan.out_channels, plan.in_channels, plan.conv_kernel, plan.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([plan.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))
        tmp_rate = plan.in_sampling_rate * plan.up_factor
        up_filter = design_lowpass_filter(plan.up_taps, plan.in_cutoff, plan.in_half_width * 2, tmp_rate)
        down_filter = design_lowpass_filter(plan.down_taps, plan.out_cutoff, plan.out_half_width * 2, tmp_rate,
                                            radial=plan.down_radial)
        self.register_buffer("up_filter", up_filter)  # None: no key, as in NVIDIA's state dicts
        self.register_buffer("down_filter", down_filter)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        plan = self.plan
        styles = self.affine(w)
        if plan.is_torgb:
            styles = styles * (1 / math.sqrt(plan.in_channels * plan.conv_kernel ** 2))
        x = modulated_conv2d(x.to(self.compute_dtype), self.weight, styles, padding=plan.conv_kernel - 1,
                             demodulate=not plan.is_torgb, input_gain=self.magnitude_ema.rsqrt())
        gain, slope = (1.0, 1.0) if plan.is_torgb else (math.sqrt(2), 0.2)
        clamp = self.conv_clamp if self.conv_clamp is not None or x.dtype != torch.float16 else DEFAULT_FP16_CLAMP
        return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias, plan.up_factor, plan.down_factor,
                              plan.padding, gain=gain, slope=slope, clamp=clamp)


class SynthesisNetwork(nn.Module):
    """W+ codes [N, num_ws, w_dim] -> images [N, C, R, R] (times `output_scale`, so about [-1, 1])."""

    def __init__(self, config: StyleGAN3Config) -> None:
        super().__init__()
        self.w_dim, self.num_ws = config.w_dim, config.num_ws
        self.img_resolution, self.output_scale = config.img_resolution, config.output_scale
        input_plan, layer_plans = synthesis_plan(config)
        self.input = SynthesisInput(config.w_dim, input_plan)
        self.layer_names = [plan.name for plan in layer_plans]
        for plan in layer_plans:
            setattr(self, plan.name, SynthesisLayer(config.w_dim, plan, config))

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"expected W+ codes of shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w)
        x = x.to(torch.float32)  # the last layers may have computed in a reduced type
        return x * self.output_scale if self.output_scale != 1 else x


def style_layer_names(config: StyleGAN3Config) -> list[str]:
    """Module whose affine reads W+ entry i: the input, then L0 ... L13, then the to-RGB layer."""
    return ["synthesis.input"] + [f"synthesis.{plan.name}" for plan in synthesis_plan(config)[1]]


def make_transform(translate: tuple[float, float], angle_degrees: float) -> np.ndarray:
    """The image transform of NVIDIA's `gen_images.py` (rotation by the angle, then the translation,
    in units of the image half-size): its inverse is what the input layer applies."""
    s, c = math.sin(angle_degrees / 360 * math.pi * 2), math.cos(angle_degrees / 360 * math.pi * 2)
    return np.array([[c, s, translate[0]], [-s, c, translate[1]], [0, 0, 1]], dtype=np.float64)


class Generator(MappedGenerator):
    """Mapping (StyleGAN2's, 2 layers by default) + alias-free synthesis, with the interface of
    `generators/interface.py`: codes are W+ [N, num_ws, w_dim]."""

    def __init__(self, config: StyleGAN3Config) -> None:
        super().__init__(config, SynthesisNetwork(config))

    def render(self, codes: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """StyleGAN3 has no noise inputs: `noise_mode` is accepted and ignored, as NVIDIA's code does."""
        return self.synthesis(codes)

    def style_layer_names(self) -> list[str]:
        return style_layer_names(self.config)

    def set_reduced_precision(self, dtype: torch.dtype | None) -> None:
        """NVIDIA's mixed precision (see `generators/precision.py`): the layers whose output sampling rate
        times 2^num_fp16_res exceeds the image resolution (`networks_stylegan3.py`; NVIDIA's default 4 when
        the file says 0) compute in `dtype`, the others in fp32; None: fp32 everywhere."""
        count = self.config.num_fp16_res or DEFAULT_REDUCED_RESOLUTIONS
        for name in self.synthesis.layer_names:
            layer = getattr(self.synthesis, name)
            reduced = dtype is not None and layer.plan.out_sampling_rate * 2**count > self.img_resolution
            layer.compute_dtype = dtype if reduced else torch.float32

    def set_input_transform(self, translate: tuple[float, float] = (0.0, 0.0), angle_degrees: float = 0.0) -> None:
        """Rotate (degrees, counter-clockwise) and translate (half-image units) every later render, as
        `gen_images.py --rotate --translate`: the input layer samples its features through the inverse."""
        inverse = np.linalg.inv(make_transform(translate, angle_degrees))
        self.synthesis.input.transform.copy_(torch.from_numpy(inverse))
