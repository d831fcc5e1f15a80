"""GANSpace (Härkönen et al., NeurIPS 2020) on a style generator's W, computed here to compare with SeFa.

GANSpace samples z, maps it through the mapping network and takes the principal components of the
resulting w: the directions along which the generator's *output distribution of codes* varies most.
SeFa instead reads the directions the synthesis weights are most sensitive to, with no sampling.
For W, GANSpace's "activations" are the latents themselves (`samples_are_latents` in its code), so no
regression back to a latent space is needed; its published files then hold `lat_comp` (unit components),
`lat_mean` and `lat_stdev` (the spread of w along each component), and its sliders move
`w + sigma * lat_stdev[k] * lat_comp[k]`: one unit of strength is one standard deviation. We keep that
unit (`scales`), so `--edit 0=-2:2:5` means what GANSpace's -2..2 sigma means.

GANSpace fits an incremental PCA over 10^6 samples; here the covariance of N samples (default 10^5)
is accumulated in float64 batch by batch and decomposed with a symmetric eigensolver, which gives the
same components (up to sign) without holding the samples. Generators without a mapping network
(PGGAN, BigGAN: their codes are z, an isotropic Gaussian whose PCA is meaningless) are refused:
GANSpace handles them by PCA of an intermediate layer's activations regressed back to z, which is not
implemented here.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import torch

from common.directions_file import DirectionsFile
from common.progress import track
from factorization.sefa import canonical_signs

DEFAULT_SAMPLES = 100_000
BATCH = 4096


@dataclass(frozen=True)
class GanspaceResult:
    directions: np.ndarray  # [K, dim], unit rows, by variance, descending
    variances: np.ndarray  # [K]: the variance of w along each (eigenvalues of the covariance)
    all_variances: np.ndarray  # [dim], descending
    mean: np.ndarray  # [dim]: the mean w of the samples
    num_samples: int
    seed: int

    @property
    def stdevs(self) -> np.ndarray:
        return np.sqrt(np.clip(self.variances, 0, None))


@torch.no_grad()
def ganspace_components(generator, num_directions: int, num_samples: int = DEFAULT_SAMPLES, seed: int = 0) -> GanspaceResult:
    """PCA of w = mapping(z) for `num_samples` seeded z (no truncation, the all-zero class of a conditional
    generator). `generator` follows `generators/interface.py` and has one shared w (`has_shared_w`)."""
    if num_samples < 2:
        raise ValueError("GANSpace needs at least 2 samples")
    device = next(generator.parameters()).device
    rng = np.random.RandomState(seed)  # NVIDIA's convention for z; batch size does not change the samples
    dim = generator.w_dim
    total = np.zeros(dim, np.float64)
    outer = np.zeros((dim, dim), np.float64)
    shift = None  # sums are taken about the first batch's mean: no cancellation when w's mean is far from 0
    counts = [min(BATCH, num_samples - start) for start in range(0, num_samples, BATCH)]
    for count in track(counts, "sampling W", weight=lambda count: count, unit="samples"):
        z = torch.from_numpy(rng.randn(count, generator.z_dim)).float().to(device)
        w = generator.sample_codes(z, 1.0)[:, 0].double().cpu().numpy()
        if shift is None:
            shift = w.mean(axis=0)
        w -= shift
        total += w.sum(axis=0)
        outer += w.T @ w
    mean = total / num_samples
    # Population covariance: its eigenvalues are the variances of the projections, whose square roots are
    # GANSpace's `lat_stdev` (numpy's std of the projected samples, ddof 0).
    covariance = (outer - num_samples * np.outer(mean, mean)) / num_samples
    variances, vectors = np.linalg.eigh((covariance + covariance.T) / 2)
    order = np.argsort(variances)[::-1]
    variances, vectors = variances[order], vectors[:, order].T
    return GanspaceResult(directions=canonical_signs(vectors[:num_directions]), variances=variances[:num_directions].copy(),
                          all_variances=variances, mean=mean + shift, num_samples=num_samples, seed=seed)


def sefa_objective(stacked_rows: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """||A n||^2 for each unit direction n (A: SeFa's row-normalised stacked weights): how strongly the
    chosen layers respond to it, the quantity SeFa's eigenvectors maximise, so directions of any method
    can be set beside SeFa's eigenvalues."""
    units = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    return np.square(stacked_rows @ units.T).sum(axis=0)


def best_matches(directions: np.ndarray, reference: np.ndarray) -> list[tuple[int, float]]:
    """For each direction, the reference direction it is most parallel to and |cos| between them
    (signs are arbitrary in both methods)."""
    units = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    cosines = np.abs(units @ (reference / np.linalg.norm(reference, axis=1, keepdims=True)).T)
    return [(int(np.argmax(row)), float(np.max(row))) for row in cosines]


def ganspace_directions(checkpoint, generator, layers: list[int], layer_names: list[str], stacked_rows: np.ndarray,
                        sefa_spectrum: np.ndarray, num_directions: int, num_samples: int, seed: int
                        ) -> tuple[DirectionsFile, GanspaceResult]:
    """GANSpace's components as a directions file for this checkpoint: unit directions, one standard
    deviation as the unit of strength, SeFa's objective ||A n||^2 on `layers` in place of eigenvalues
    (so the page sets them beside SeFa's), SeFa's spectrum of the same layers for the plot."""
    result = ganspace_components(generator, num_directions, num_samples, seed)
    return DirectionsFile(
        directions=result.directions, eigenvalues=sefa_objective(stacked_rows, result.directions),
        all_eigenvalues=sefa_spectrum, layers=layers, layer_names=layer_names, checkpoint_sha256=checkpoint.sha256,
        architecture=checkpoint.architecture, latent_space=checkpoint.latent_space, method="ganspace",
        scales=result.stdevs, sources=[f"GANSpace: principal component {k} of {num_samples} W samples (seed {seed})"
                                       for k in range(len(result.directions))]), result
