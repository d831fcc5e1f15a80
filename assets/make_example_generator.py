"""Produce `assets/example-stylegan2-64.pt`, the small StyleGAN2 bundled for trying the commands offline.

Real architecture (64x64, 7 W+ entries... see `models info`), seeded weights, and a mean W estimated
from 10,000 samples. It is untrained: it shows what each stage does and how fast, not faces.
Rerun to regenerate: `python assets/make_example_generator.py`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from generators.checkpoint import save_native
from generators.stylegan2 import Generator, StyleGAN2Config, channels_for

OUTPUT = Path(__file__).with_name("example-stylegan2-64.pt")


def build_example(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    config = StyleGAN2Config(
        img_resolution=64, channels=channels_for(64, channel_base=4096, channel_max=128), z_dim=128, w_dim=128,
        mapping_layers=4,
    )
    generator = Generator(config).eval()
    with torch.no_grad():
        for name, param in generator.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.05)
        z = torch.randn([10_000, config.z_dim])
        generator.mapping.w_avg.copy_(generator.mapping(z)[:, 0].mean(dim=0))
    return generator


if __name__ == "__main__":
    save_native(OUTPUT, build_example())
    print(OUTPUT)
