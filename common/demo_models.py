"""The bundled demo generator and encoder (assets/): tiny, untrained, and said to be so wherever they are used.

They make every stage run without downloading gigabytes, so a new user can try the mechanics and the
tests can run anywhere. Their images are colour blobs, not faces; every page that shows them carries
DEMO_WARNING, so the blobs are not taken for a broken tool.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEMO_GENERATOR = ASSETS / "example-stylegan2-64.pt"
DEMO_ENCODER = ASSETS / "example-encoder.pt"
DEMO_WARNING = "untrained demo model: shows the mechanics, not faces; use -g NAME for real edits"


def is_demo_generator(path: Path | str) -> bool:
    try:
        return Path(path).resolve() == DEMO_GENERATOR.resolve()
    except OSError:
        return False
