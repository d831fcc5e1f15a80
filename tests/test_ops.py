"""The StyleGAN2 building blocks against direct, slow definitions of the same math."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from generators import ops


def naive_upsample_conv(x: torch.Tensor, weight_corr: torch.Tensor) -> torch.Tensor:
    """Zero-insertion 2x upsampling, then a 'same' correlation with `weight_corr`, then the
    [1,3,3,1] FIR (gain 4) — the textbook definition of StyleGAN2's up-conv, one step at a time."""
    n, c, h, w = x.shape
    up = torch.zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    y = F.conv2d(F.pad(up, [2, 2, 2, 2]), weight_corr)  # full 3x3 response: 2h + 2 samples
    f = ops.setup_filter([1, 3, 3, 1]) * 4
    out_c = y.shape[1]
    return F.conv2d(F.pad(y, [1, 0, 1, 0]), f.flip([0, 1])[None, None].repeat(out_c, 1, 1, 1), groups=out_c)


def test_upfirdn2d_matches_explicit_convolution():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6)
    f = ops.setup_filter([1, 3, 3, 1])
    got = ops.upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4)
    up = torch.zeros(2, 3, 10, 12)
    up[:, :, ::2, ::2] = x
    want = F.conv2d(F.pad(up, [2, 1, 2, 1]), (4 * f).flip([0, 1])[None, None].repeat(3, 1, 1, 1), groups=3)
    assert got.shape == (2, 3, 10, 12)
    torch.testing.assert_close(got, want)


def test_upsample_keeps_constant_images_constant():
    x = torch.full((1, 3, 8, 8), 0.7)
    y = ops.upsample2d(x, ops.setup_filter([1, 3, 3, 1]))
    assert y.shape == (1, 3, 16, 16)
    torch.testing.assert_close(y[:, :, 2:-2, 2:-2], torch.full((1, 3, 12, 12), 0.7))


def test_conv2d_up2_is_upsample_then_convolve_with_flipped_kernel():
    """NVIDIA's up-conv with stored kernel w equals zero-insert + correlation with flip(w) + FIR:
    the reason genforce (TensorFlow-oriented) up kernels are flipped when read."""
    torch.manual_seed(1)
    x = torch.randn(2, 4, 6, 6)
    w = torch.randn(5, 4, 3, 3)
    got = ops.conv2d_up2(x, w, ops.setup_filter([1, 3, 3, 1]), padding=1)
    want = naive_upsample_conv(x, w.flip([2, 3]))
    assert got.shape == (2, 5, 12, 12)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_genforce_up_conv_equals_ours_after_flip():
    """genforce runs conv_transpose2d on the flipped kernel followed by a pad-(1,1) FIR; our reader
    flips the stored kernel once, and both compute the same thing."""
    torch.manual_seed(2)
    x = torch.randn(1, 3, 4, 4)
    w_genforce = torch.randn(2, 3, 3, 3)
    y = F.conv_transpose2d(x, w_genforce.permute(1, 0, 2, 3).flip(2, 3), stride=2)
    f = ops.setup_filter([1, 3, 3, 1]) * 4
    genforce = F.conv2d(F.pad(y, [1, 1, 1, 1]), f[None, None].repeat(2, 1, 1, 1), groups=2)
    ours = ops.conv2d_up2(x, w_genforce.flip([2, 3]), ops.setup_filter([1, 3, 3, 1]), padding=1)
    torch.testing.assert_close(ours, genforce, atol=1e-5, rtol=1e-5)


def test_modulated_conv_equals_per_sample_kernels():
    torch.manual_seed(3)
    x = torch.randn(3, 4, 7, 7)
    weight = torch.randn(6, 4, 3, 3)
    styles = torch.randn(3, 4)
    got = ops.modulated_conv2d(x, weight, styles, padding=1)
    for n in range(3):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        torch.testing.assert_close(got[n : n + 1], F.conv2d(x[n : n + 1], w, padding=1), atol=1e-5, rtol=1e-5)


def test_bias_act_lrelu_gain_and_clamp():
    x = torch.tensor([[-2.0, 0.5, 300.0]]).reshape(1, 3)
    y = ops.bias_act(x, torch.tensor([1.0, 0.0, 0.0]), activation="lrelu", clamp=256)
    torch.testing.assert_close(y, torch.tensor([[-0.2 * 2**0.5, 0.5 * 2**0.5, 256.0]]))
