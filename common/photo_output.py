"""Writing an edited photo in its source's own terms: format, transparency, colour profile, EXIF.

A JPEG in gives a JPEG out, at `quality` (default 95) with full-resolution colour (4:4:4 chroma) from
quality 90 up, so the pixels outside the edited faces change only by that re-encoding. A PNG (or any
other format) gives a PNG, which is lossless: outside the faces it is the photo bit for bit, and an
alpha channel is written back as it was read. The colour profile and EXIF (orientation reset, as the
pixels are upright) travel along, so photo viewers show the result like the original.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from common import atomic
from common.errors import UserError
from common.photo_io import Photo

DEFAULT_QUALITY = 95
JPEG_SUFFIXES = (".jpg", ".jpeg")


def check_quality(quality: int) -> None:
    if not 1 <= quality <= 100:
        raise UserError(f"--quality {quality}: JPEG quality runs from 1 to 100 (95 is the default)")


def output_suffix(source: Path) -> str:
    """.jpg for JPEG sources, .png for everything else (PNG, WebP, TIFF, BMP: lossless, alpha kept)."""
    return ".jpg" if Path(source).suffix.lower() in JPEG_SUFFIXES else ".png"


def encode_like(rgb: np.ndarray, source: Photo, suffix: str, quality: int = DEFAULT_QUALITY) -> bytes:
    """The bytes of `rgb` as a `suffix` file that keeps what `source` carried (alpha, profile, EXIF)."""
    extra = {}
    if source.icc_profile:
        extra["icc_profile"] = source.icc_profile
    if source.exif:
        extra["exif"] = source.exif
    buffer = io.BytesIO()
    if suffix == ".jpg":
        subsampling = 0 if quality >= 90 else 2
        Image.fromarray(rgb, "RGB").save(buffer, format="JPEG", quality=quality, subsampling=subsampling, **extra)
    else:
        if source.alpha is not None:
            image = Image.fromarray(np.dstack([rgb, source.alpha]), "RGBA")
        else:
            image = Image.fromarray(rgb, "RGB")
        image.save(buffer, format="PNG", compress_level=6, **extra)
    return buffer.getvalue()


def write_like(path: Path, rgb: np.ndarray, source: Photo, quality: int = DEFAULT_QUALITY) -> Path:
    """Write atomically; the suffix of `path` (.jpg or .png) picks the format."""
    suffix = ".jpg" if Path(path).suffix.lower() in JPEG_SUFFIXES else ".png"
    return atomic.write_bytes(path, encode_like(rgb, source, suffix, quality))
