"""SeFa: the latent directions a generator is most sensitive to, read off its weights in closed form.

A layer that takes the latent code z (or w) in computes y = A z + b. Moving the code along a unit
vector n changes its output by A n, so the directions that change the output most solve
    max_n ||A n||^2  subject to  ||n|| = 1,
whose solutions are the eigenvectors of A^T A with the largest eigenvalues. With several layers, A
stacks their weights along the output axis. Each row of A is first scaled to unit norm, as in the
paper's code, so that no single output unit dominates because of its weight scale (and so that
per-layer constants such as spectral norms or equalised-learning-rate gains cancel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class SefaResult:
    directions: np.ndarray  # [K, dim], unit rows, sorted by eigenvalue, descending
    eigenvalues: np.ndarray  # [K]
    all_eigenvalues: np.ndarray  # [dim], descending: the full spectrum


def stack_normalised(weights: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate [out_i, dim] weights into A [sum out_i, dim] (float64), each row scaled to unit L2 norm."""
    if not len(weights):
        raise ValueError("no layer weights to factorise")
    dims = {w.shape[1] for w in weights}
    if len(dims) != 1:
        raise ValueError(f"layers disagree on the latent size: {sorted(dims)}")
    stacked = np.empty((sum(w.shape[0] for w in weights), dims.pop()), dtype=np.float64)
    row = 0
    for w in weights:  # one float64 copy, filled in place: no temporaries of the full size
        stacked[row : row + w.shape[0]] = w
        row += w.shape[0]
    squared_norms = np.einsum("ij,ij->i", stacked, stacked)
    stacked *= np.where(squared_norms > 0, 1.0 / np.sqrt(squared_norms), 1.0)[:, None]
    return stacked


def canonical_signs(vectors: np.ndarray) -> np.ndarray:
    """Eigenvectors are defined up to sign; make each row's largest-magnitude entry positive, so runs agree."""
    pivots = np.argmax(np.abs(vectors), axis=1)
    signs = np.sign(vectors[np.arange(len(vectors)), pivots])
    return vectors * np.where(signs == 0, 1.0, signs)[:, None]


def factorize(weights: Sequence[np.ndarray], num_directions: int | None = None) -> SefaResult:
    """Top eigenvectors of A^T A (float64, symmetric solver), as rows, with deterministic signs."""
    return factorize_stacked(stack_normalised(weights), num_directions)


def factorize_stacked(a: np.ndarray, num_directions: int | None = None) -> SefaResult:
    """`factorize` of A already stacked and row-normalised (`stack_normalised`), for callers that use A too."""
    gram = a.T @ a
    eigenvalues, eigenvectors = np.linalg.eigh(gram)  # ascending, orthonormal columns
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = eigenvalues[order]
    directions = canonical_signs(eigenvectors[:, order].T)
    k = len(eigenvalues) if num_directions is None else int(num_directions)
    if not 1 <= k <= len(eigenvalues):
        raise ValueError(f"number of directions must be in 1..{len(eigenvalues)}, got {num_directions}")
    return SefaResult(directions=directions[:k].copy(), eigenvalues=eigenvalues[:k].copy(), all_eigenvalues=eigenvalues)
