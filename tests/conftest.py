"""Shared fixtures: where the real data lives, and small generators written in each format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture()
def small_generator():
    from tests.checkpoint_factories import random_generator

    return random_generator()
