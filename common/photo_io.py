"""Reading personal photos as they come: any common format, EXIF-rotated, any pixel mode.

Pillow decodes (it understands EXIF orientation, CMYK JPEGs, palettes, 16-bit PNG/TIFF); OpenCV is the
fallback for files Pillow cannot open. Every result is an upright uint8 RGB array.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}

Image.MAX_IMAGE_PIXELS = 40_000 * 40_000  # personal photos can be large; refuse only absurd sizes


def find_images(root: Path) -> list[Path]:
    """Image files under `root` (recursive, by suffix, any case), sorted; hidden files and folders
    (our own `.done` markers and temporary files) are left out."""
    root = Path(root)
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


class UnreadableImage(ValueError):
    """The file is not an image we can decode (corrupt, truncated, or not an image at all)."""


@dataclass(frozen=True)
class Photo:
    path: Path
    rgb: np.ndarray  # [H, W, 3] uint8, upright
    exif_orientation: int  # 1 = as stored; 2..8 = the EXIF transform that was applied


def _to_uint8_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(values / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if values.max() <= 1.0:
            values = values * 255.0
        gray = np.clip(values + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def _read_with_opencv(path: Path) -> np.ndarray | None:
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    if image.dtype == np.uint16:
        image = (image / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image.astype(np.float64), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_photo(path: Path) -> Photo:
    """Decode `path` into an upright RGB uint8 array, or raise UnreadableImage with the reason."""
    try:
        with Image.open(path) as image:
            orientation = int(image.getexif().get(0x0112, 1) or 1)
            upright = ImageOps.exif_transpose(image)
            upright.load()
            rgb = _to_uint8_rgb(upright)
            return Photo(path, np.ascontiguousarray(rgb), orientation)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        pillow_error = exc
    rgb = _read_with_opencv(path)
    if rgb is None:
        reason = str(pillow_error).splitlines()[0] if str(pillow_error) else type(pillow_error).__name__
        raise UnreadableImage(f"not a readable image ({reason})")
    return Photo(path, rgb, 1)
