"""Real generator weights from ../shared/, when the project is given any (see ../shared/README.md).

Every .pkl/.pt/.pth/.bin found under ../shared/ (outside photos/ and reference/) is loaded,
factorised and checked against the NumPy reference; StyleGAN2 ones also render an image that must
look like an image (strong neighbouring-pixel correlation), not noise. reference/ holds golden
fixtures of reference code on random weights (its StyleGAN3 snapshot among them), which the parity
tests check against their expected outputs; what we do with the StyleGAN3 snapshot today is tested
below: it is refused in one line that says what it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from factorization.sefa import factorize
from generators.checkpoint import load_checkpoint
from generators.latent_layers import latent_layers
from tests.conftest import SHARED

WEIGHT_SUFFIXES = {".pkl", ".pt", ".pth", ".bin"}
NOT_REAL_WEIGHTS = ("photos", "reference")  # folders of ../shared/ that hold no trained generator
WEIGHTS = sorted(
    p for p in SHARED.rglob("*") if p.suffix.lower() in WEIGHT_SUFFIXES
    and not set(NOT_REAL_WEIGHTS) & set(p.relative_to(SHARED).parts)
) if SHARED.exists() else []
STYLEGAN3_SNAPSHOT = SHARED / "reference" / "stylegan3_t_snapshot.pkl"


def neighbour_correlation(image: np.ndarray) -> float:
    gray = image.mean(axis=0)
    return float(np.corrcoef(gray[:, :-1].ravel(), gray[:, 1:].ravel())[0, 1])


@pytest.mark.skipif(not WEIGHTS, reason=f"no generator weights under {SHARED} (only photos are shared so far)")
@pytest.mark.parametrize("path", WEIGHTS, ids=lambda p: p.name)
def test_real_checkpoint_loads_renders_and_factorises(path: Path):
    checkpoint = load_checkpoint(path)
    layers = latent_layers(checkpoint)
    weights = [layer.weight for layer in layers]
    result = factorize(weights, 5)
    stacked = np.concatenate(weights, axis=0)
    stacked /= np.linalg.norm(stacked, axis=1, keepdims=True)
    reference = np.sort(np.linalg.eigvalsh(stacked.T @ stacked))[::-1][:5]
    np.testing.assert_allclose(result.eigenvalues, reference, rtol=1e-8)
    if checkpoint.stylegan2_config is None:
        return
    generator = checkpoint.build_generator()
    z = torch.randn([1, generator.z_dim], generator=torch.Generator().manual_seed(0))
    c = torch.zeros([1, generator.c_dim]) if generator.c_dim else None
    with torch.no_grad():
        image = generator(z, c, truncation_psi=0.7)[0].numpy()
    assert -1.5 < image.mean() < 1.5 and 0.05 < image.std() < 1.5
    assert neighbour_correlation(image) > 0.8


@pytest.mark.skipif(not STYLEGAN3_SNAPSHOT.is_file(), reason=f"{STYLEGAN3_SNAPSHOT} is not there")
def test_a_stylegan3_snapshot_is_read_and_renders():
    """Read through the restricted unpickler (no NVIDIA code runs) as StyleGAN3-T; tests/test_stylegan3.py
    compares its images with the reference's."""
    checkpoint = load_checkpoint(STYLEGAN3_SNAPSHOT)
    assert (checkpoint.architecture, checkpoint.describe()["config"]) == ("stylegan3", "StyleGAN3-T")
    generator = checkpoint.build_generator()
    with torch.no_grad():
        image = generator.render(generator.sample_codes(torch.randn([1, generator.z_dim])))
    assert image.shape == (1, 3, 32, 32) and torch.isfinite(image).all()


def test_neighbour_correlation_separates_images_from_noise():
    """The check above is meaningful: smooth structure scores high, noise near zero."""
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    smooth = np.stack([np.sin(6 * xx) * np.cos(4 * yy)] * 3)
    noise = np.random.default_rng(0).normal(size=(3, 64, 64))
    assert neighbour_correlation(smooth) > 0.9 and abs(neighbour_correlation(noise)) < 0.1


PSNR_FLOOR_DB = 20.0  # W+ optimisation (no encoder, 100 steps) of a real aligned face with a real FFHQ generator


@pytest.mark.skipif(not WEIGHTS, reason=f"no generator weights under {SHARED} (only photos are shared so far)")
@pytest.mark.parametrize("path", WEIGHTS, ids=lambda p: p.name)
def test_real_face_inverts_above_the_psnr_floor(path: Path, tmp_path):
    from alignment.stage import AlignOptions, run_align
    from inversion.optimize import InversionSettings, invert, psnr_from_mse
    from inversion.worker import load_target

    checkpoint = load_checkpoint(path)
    if checkpoint.stylegan2_config is None:
        pytest.skip(f"{path.name} is {checkpoint.architecture}: no synthesis to invert with")
    generator = checkpoint.build_generator()
    records = []
    size = min(1024, max(256, generator.img_resolution))
    run_align(str(SHARED / "photos" / "face-recognition" / "obama.jpg"), tmp_path, AlignOptions(size=size),
              emit=records.append, say=lambda m: None)
    target = load_target(Path(records[0]["aligned"]), generator.img_resolution)[None]
    result = invert(generator, target, settings=InversionSettings(steps=100, lr=0.02, lambda_encoder=0))
    psnr = psnr_from_mse(result.mse).item()
    print(f"{path.name}: PSNR {psnr:.2f} dB after 100 steps")
    assert psnr > PSNR_FLOOR_DB
