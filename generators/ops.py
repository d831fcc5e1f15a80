"""The few tensor operations StyleGAN2 is built from, written out in plain PyTorch.

They follow the definitions of NVIDIA's `stylegan2-ada-pytorch` (`bias_act`, `upfirdn2d`,
`conv2d_resample`, `modulated_conv2d`) so that its checkpoints reproduce the same images, but use
the reference (non-CUDA-plugin) formulation: no custom kernels to compile, runs on CPU and CUDA.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each vector to unit root-mean-square (the mapping network's input normalisation)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """x + bias (broadcast over channel dim 1), then activation, then gain, then optional clamp.

    'lrelu' uses slope 0.2 and default gain sqrt(2) so that activations keep unit variance.
    """
    if bias is not None:
        x = x + bias.to(x.dtype).reshape([1, -1] + [1] * (x.ndim - 2))
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
        gain = LRELU_GAIN if gain is None else gain
    elif activation != "linear":
        raise ValueError(f"unknown activation {activation!r}")
    if gain is not None and gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def setup_filter(taps: Sequence[float]) -> torch.Tensor:
    """Separable 1-D taps -> normalised 2-D FIR filter (sums to 1)."""
    f = torch.as_tensor(np.asarray(taps, dtype=np.float32))
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative = crop), convolve with the 2-D FIR `f`, downsample.

    padding is (x0, x1, y0, y1). This is the reference path of NVIDIA's upfirdn2d.
    """
    batch, channels, height, width = x.shape
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)
    px0, px1, py0, py1 = padding
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    # conv2d is a correlation; flipping the filter makes this a true convolution.
    kernel = (f * gain).flip([0, 1]).to(x.dtype)
    kernel = kernel[None, None].repeat(channels, 1, 1, 1)
    x = F.conv2d(x, kernel, groups=channels)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Filtered 2x upsampling of images (the skip path's to-RGB accumulation)."""
    taps = f.shape[-1]
    p0, p1 = (taps + up - 1) // 2, (taps - up) // 2
    return upfirdn2d(x, f, up=up, padding=(p0, p1, p0, p1), gain=up * up)


def conv2d_up2(x: torch.Tensor, weight: torch.Tensor, f: torch.Tensor, padding: int) -> torch.Tensor:
    """Convolution followed by 2x upsampling, as one strided transposed convolution plus FIR smoothing.

    Equivalent to NVIDIA's `conv2d_resample(up=2, flip_weight=False)`: the transposed convolution uses
    the weight as stored (which is why NVIDIA and rosinality checkpoints hold the kernel of their up
    layers spatially flipped with respect to the TensorFlow / genforce ones).
    """
    kernel_h, kernel_w = weight.shape[2:]
    taps = f.shape[-1]
    up = 2
    px0 = padding + (taps + up - 1) // 2 - (kernel_w - 1)
    px1 = padding + (taps - up) // 2 - (kernel_w - up)
    py0 = padding + (taps + up - 1) // 2 - (kernel_h - 1)
    py1 = padding + (taps - up) // 2 - (kernel_h - up)
    x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=up)
    return upfirdn2d(x, f, padding=(px0, px1, py0, py1), gain=up * up)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
) -> torch.Tensor:
    """StyleGAN2 weight (de)modulation, executed by scaling activations around one shared convolution.

    Mathematically the per-sample kernel is w'_{oik} = s_i * w_{oik} / sqrt(sum_{ik} (s_i w_{oik})^2);
    scaling the input by s and the output by the demodulation coefficient gives the same result while
    convolving the whole batch with one kernel, which is faster on CPU than grouped convolution.

    The convolution runs in x's number type (fp32, or bf16 / fp16 in a reduced-precision block); the
    styles and demodulation coefficients are computed in fp32 and cast. In reduced precision the weight
    and styles are first divided by their largest magnitude, as NVIDIA does against fp16 overflow:
    demodulation cancels any such scale, so the result is the same up to rounding.
    """
    batch, dtype = x.shape[0], x.dtype
    if demodulate and dtype != torch.float32:
        weight = weight * (1 / math.sqrt(weight[0].numel()) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    x = x * styles.to(dtype).reshape(batch, -1, 1, 1)
    if up == 1:
        x = F.conv2d(x, weight.to(dtype), padding=padding)
    else:
        x = conv2d_up2(x, weight.to(dtype), resample_filter, padding=padding)
    if demodulate:
        # sum_{i,k} (s_i w_oik)^2 = sum_i s_i^2 * (sum_k w_oik^2)
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()
        x = x * dcoefs.to(dtype).reshape(batch, -1, 1, 1)
    if noise is not None:
        x = x + noise.to(dtype)
    return x
