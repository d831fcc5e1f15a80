"""Produce `assets/example-encoder.pt`: the domain-guided encoder of the bundled example generator.

Trained with this project's own `train-encoder` on the generator's samples (400 steps, batch 8, no
LPIPS: about 5 minutes on 2 CPU cores), then saved without the optimiser state (a quarter of the
size). Rerun to regenerate: `python assets/make_example_encoder.py`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from common import atomic
from inversion.train import TrainSettings, train_encoder

ASSETS = Path(__file__).resolve().parent
GENERATOR = ASSETS / "example-stylegan2-64.pt"
OUTPUT = ASSETS / "example-encoder.pt"


def release_copy(trained: Path, target: Path) -> Path:
    """The encoder without its optimiser state: what inference needs."""
    payload = torch.load(trained, map_location="cpu", weights_only=True)
    payload.pop("optimizer", None)
    return atomic.write_with(target, lambda handle: torch.save(payload, handle))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as work:
        trained = Path(work) / "encoder.pt"
        train_encoder(GENERATOR, trained, TrainSettings(steps=400, batch_size=8, lr=3e-4, checkpoint_every=100),
                      perceptual="none", device_name="cpu")
        print(release_copy(trained, OUTPUT))
