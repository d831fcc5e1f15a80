"""StyleGAN3's filtered leaky ReLU in plain PyTorch: bias, upsample, leaky ReLU, downsample.

NVIDIA's `filtered_lrelu` (torch_utils/ops/filtered_lrelu.py) is one fused CUDA kernel; its fallback,
`_filtered_lrelu_ref`, spells out the math this module computes:

    x = x + b
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up**2)   # zero insertion, pad, FIR low-pass
    x = clamp(lrelu(x, slope) * gain, -clamp, clamp)
    x = upfirdn2d(x, fd, down=down)                             # FIR low-pass, keep every down-th sample

The fallback is slow and memory-hungry because it materialises the zero-inserted tensor (up^2 times
the input, three quarters zeros at up=2) and filters every sample at the high rate before throwing
away all but one in down^2. Here both filters run polyphase instead: the up-filter is a transposed
convolution with stride `up` (it never multiplies an inserted zero) and the down-filter a
convolution with stride `down` (it never computes a discarded sample). Each output is the same sum
of the same products; only the order of additions inside a convolution may differ (float32 rounding).

Filters are 1-D (separable: applied along x, then along y, each carrying the square root of the 2-D
gain, as NVIDIA's separable path does) or 2-D (StyleGAN3-R's radially symmetric down-filters).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _along(x: torch.Tensor, taps: torch.Tensor, axis: int, stride: int, transposed: bool) -> torch.Tensor:
    """One 1-D FIR pass over every channel (a depthwise convolution): axis 3 is x (width), 2 is y."""
    channels = x.shape[1]
    kernel = taps.reshape([1, 1, 1, -1] if axis == 3 else [1, 1, -1, 1]).to(x.dtype).repeat(channels, 1, 1, 1)
    strides = (1, stride) if axis == 3 else (stride, 1)
    if transposed:
        return F.conv_transpose2d(x, kernel, stride=strides, groups=channels)
    return F.conv2d(x, kernel, stride=strides, groups=channels)


def upsample_fir(x: torch.Tensor, f: torch.Tensor | None, up: int, padding: tuple[int, int, int, int],
                 gain: float) -> torch.Tensor:
    """NVIDIA's `upfirdn2d(x, f, up=up, padding=padding, gain=gain)` (padding x0, x1, y0, y1; negative
    values crop), as a stride-`up` transposed convolution.

    Zero insertion then convolution with the K taps of f gives, at sample n, sum_i x[i] f[n - i*up]:
    exactly what `conv_transpose` computes. That full result starts K-1 samples before the padded
    signal NVIDIA filters, so it is padded (or cropped) by `pad - (K-1)` in front and by
    `pad + up - K` behind."""
    px0, px1, py0, py1 = padding
    if f is None and up == 1:
        return F.pad(x, [px0, px1, py0, py1])
    if f is None:
        f = torch.ones([1], device=x.device)
    if f.ndim != 1:
        raise ValueError("StyleGAN3 up-filters are separable (1-D taps)")
    taps, k = f * gain ** 0.5, len(f)
    x = F.pad(_along(x, taps, 3, up, transposed=True), [px0 - (k - 1), px1 + up - k])
    return F.pad(_along(x, taps, 2, up, transposed=True), [0, 0, py0 - (k - 1), py1 + up - k])


def downsample_fir(x: torch.Tensor, f: torch.Tensor | None, down: int) -> torch.Tensor:
    """NVIDIA's `upfirdn2d(x, f, down=down)`: convolution with f (a true convolution: the taps are
    flipped for PyTorch's correlation), keeping every `down`-th sample, as one strided convolution."""
    if f is None:
        return x[:, :, ::down, ::down]
    if f.ndim == 1:
        taps = f.flip(0)
        return _along(_along(x, taps, 3, down, transposed=False), taps, 2, down, transposed=False)
    channels = x.shape[1]
    kernel = f.flip([0, 1])[None, None].to(x.dtype).repeat(channels, 1, 1, 1)
    return F.conv2d(x, kernel, stride=down, groups=channels)


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None, bias: torch.Tensor,
                   up: int, down: int, padding: tuple[int, int, int, int], gain: float, slope: float,
                   clamp: float | None) -> torch.Tensor:
    """Bias, `up`x FIR upsampling, leaky ReLU (`slope`; 1 = linear) times `gain`, clamp, FIR `down`x
    downsampling. The activation runs at the higher rate so the frequencies it creates can be removed
    by the down-filter before they alias (the point of the paper)."""
    x = x + bias.reshape(1, -1, 1, 1).to(x.dtype)
    x = upsample_fir(x, fu, up, padding, gain=up * up)
    if slope != 1:
        x = F.leaky_relu(x, slope)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return downsample_fir(x, fd, down)
