"""Time SeFa per architecture on this machine (checkpoint loading excluded), against the naive way.

Weights are random with the real shapes of the published models (StyleGAN2 config-f FFHQ 1024,
StyleGAN FFHQ 1024, PGGAN CelebA-HQ 1024, BigGAN-deep 256); the eigen-decomposition's cost depends
only on shapes. "naive" is the original SeFa code path: float32 stack, general `np.linalg.eig` on the
Gram matrix. Target: under 50 ms for the 512-dim StyleGAN2 with all layers.

    python benchmarks/factorize.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from factorization.sefa import factorize, stack_normalised  # noqa: E402


def stylegan2_1024() -> list[np.ndarray]:
    channels = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    ins = [512]  # b4.conv1 reads 512 channels
    for res in list(channels)[1:]:
        ins += [channels[res // 2], channels[res]]
    ins.append(channels[1024])  # final to-RGB
    rng = np.random.default_rng(0)
    return [rng.normal(size=(c, 512)).astype(np.float32) for c in ins]


def stylegan_1024() -> list[np.ndarray]:
    channels = [512, 512, 512, 512, 256, 128, 64, 32, 16]
    rng = np.random.default_rng(1)
    return [rng.normal(size=(2 * c, 512)).astype(np.float32) for c in channels for _ in range(2)]


def pggan_1024() -> list[np.ndarray]:
    return [np.random.default_rng(2).normal(size=(512 * 16, 512)).astype(np.float32)]


def biggan_deep_256() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    ch = 128
    widths = [16, 16, 16, 16, 16, 8, 8, 8, 8, 4, 4, 2, 2]
    weights = [rng.normal(size=(4 * 4 * 16 * ch, 128)).astype(np.float32)]
    for w in widths[:12]:
        weights.append(rng.normal(size=(8 * w * ch, 128)).astype(np.float32))
    return weights


def naive(weights: list[np.ndarray]) -> None:
    weight = np.concatenate([w.T for w in weights], axis=1)
    weight = weight / np.linalg.norm(weight, axis=0, keepdims=True)
    np.linalg.eig(weight.dot(weight.T))


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    cases = {
        "stylegan2-1024 (18 layers, 512-d)": stylegan2_1024,
        "stylegan2-1024 layers 0-1": lambda: stylegan2_1024()[:2],
        "stylegan-1024 (18 layers, 512-d)": stylegan_1024,
        "pggan-1024 (first FC, 512-d)": pggan_1024,
        "biggan-deep-256 (13 z-layers, 128-d)": biggan_deep_256,
    }
    print(f"cpu threads: {os.cpu_count()}, numpy {np.__version__}, best of {args.repeats}")
    print(f"{'architecture':40s} {'rows':>7s} {'sefa-edit ms':>13s} {'naive ms':>10s} {'speed-up':>9s}")
    for name, make in cases.items():
        weights = make()
        ours = best_of(lambda: factorize(weights, 5), args.repeats)
        reference = best_of(lambda: naive(weights), max(3, args.repeats // 4))
        rows = sum(w.shape[0] for w in weights)
        print(f"{name:40s} {rows:7d} {ours * 1e3:13.2f} {reference * 1e3:10.2f} {reference / ours:8.1f}x")
    # Where the time goes for the largest StyleGAN2 case: the float64 Gram product and the 512x512
    # symmetric eigen-solver are each near what LAPACK/BLAS reach on this machine.
    weights = stylegan2_1024()
    stacked = stack_normalised(weights)
    gram = stacked.T @ stacked
    print("stylegan2-1024 all layers, split (ms): "
          f"stack+normalise {best_of(lambda: stack_normalised(weights), args.repeats) * 1e3:.1f}, "
          f"gram A^T A {best_of(lambda: stacked.T @ stacked, args.repeats) * 1e3:.1f}, "
          f"eigh {best_of(lambda: np.linalg.eigh(gram), args.repeats) * 1e3:.1f}")


if __name__ == "__main__":
    main()
