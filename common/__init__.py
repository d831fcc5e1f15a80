"""Shared plumbing every stage may import: errors, atomic file writes, devices, images, progress.

Stages (alignment, inversion, factorization, ...) never import each other; what they share lives here
or in `generators/`.
"""

import os as _os

# OpenCV reads this once, at its first decode: images it decodes (photos Pillow cannot open, crops)
# are refused above 100 MP instead of its own 1 GP default.
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(100_000_000))
