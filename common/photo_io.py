"""Reading personal photos as they come: any common format, EXIF-rotated, any pixel mode.

Pillow decodes (it understands EXIF orientation, CMYK JPEGs, palettes, 16-bit PNG/TIFF); OpenCV is the
fallback for files Pillow cannot open. Every result is an upright uint8 RGB array.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from PIL import Image, ImageOps

from common.errors import UserError
from common.output_folder import is_inside
from common.regular_files import open_regular, problem_with

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}

# Our own limit (`max_pixels`, checked from the header before any pixel is decoded) is the one that
# applies: Pillow's would refuse a 65000 x 65000 JPEG in its own words first, and warn on stderr
# (DecompressionBombWarning) for photos a user allowed with --max-pixels. `read_photo` is the only
# place the project hands user files to Pillow.
Image.MAX_IMAGE_PIXELS = None
DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: a 12,000 x 8,000 photo; decoding takes 300 MB
HIGHEST_MAX_PIXELS = 1_600_000_000  # what --max-pixels may allow: 40,000 x 40,000, ~5 GB to decode and warp


def check_max_pixels(value: int) -> None:
    """--max-pixels must be positive and within what a machine can decode; checked before any work."""
    if not 1 <= value <= HIGHEST_MAX_PIXELS:
        raise UserError(f"--max-pixels {value}: expected 1 to {HIGHEST_MAX_PIXELS:,} ({HIGHEST_MAX_PIXELS / 1e6:g} MP)")


def find_images(root: Path, exclude: Path | None = None, regular_only: bool = False) -> list[Path]:
    """Paths named like images under `root` (recursive, by suffix, any case; links to folders are not
    followed), sorted; hidden files and folders (our own `.done` markers and temporary files) are left
    out, and so is `exclude` (an OUT folder that lies inside the input folder: its own outputs must
    never become inputs).

    A FIFO, a device, a folder named `x.jpg`, a dangling link or a link loop is returned too, so that
    the stage lists it with its reader's reason (`common.regular_files`) instead of passing it over
    without a word; `regular_only` leaves such paths out (training data, where there is no list)."""
    root = Path(root)
    return sorted(
        path for path in root.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and not (exclude is not None and is_inside(path, exclude))
        and not (regular_only and problem_with(path) is not None)
    )


class UnreadableImage(ValueError):
    """The file is not an image we can decode (corrupt, truncated, or not an image at all)."""


@dataclass(frozen=True)
class Photo:
    path: Path
    rgb: np.ndarray  # [H, W, 3] uint8, upright
    exif_orientation: int  # 1 = as stored; 2..8 = the EXIF transform that was applied
    alpha: np.ndarray | None = None  # [H, W] uint8, only when asked for (`keep_alpha`) and the file has one
    icc_profile: bytes | None = None  # the colour profile, to write results in the same colour space
    exif: bytes | None = None  # EXIF with the orientation reset to 1 (the pixels are upright now)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _to_uint8_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if _has_alpha(image):
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


@contextlib.contextmanager
def _quiet_c_stderr() -> Iterator[None]:
    """Hold back what C libraries write to file descriptor 2 meanwhile (libjpeg's "Corrupt JPEG data",
    libpng's warnings, OpenCV's size-limit errors): the reason the photo is skipped is ours, one line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to protect
        yield
        return
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _read_with_opencv(path: Path) -> np.ndarray | None:
    with open_regular(path) as handle:
        data = np.frombuffer(handle.read(), dtype=np.uint8)
    if data.size == 0:
        return None
    with _quiet_c_stderr():
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


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        advice = "pass --max-pixels to allow larger photos" if max_pixels < HIGHEST_MAX_PIXELS else "scale the photo down"
        raise UnreadableImage(f"{width}x{height} is {width * height / 1e6:.0f} MP, over the {max_pixels / 1e6:g} MP limit; {advice}")


def _check_regular_file(path: Path) -> None:
    """A FIFO or device named like a photo would block or never end: only regular files are read."""
    problem = problem_with(path)
    if problem is not None:
        raise UnreadableImage(problem)
    if Path(path).stat().st_size == 0:
        raise UnreadableImage("not a readable image (empty file, 0 bytes)")


def _upright_exif(image: Image.Image) -> bytes | None:
    exif = image.getexif()
    if not exif:
        return None
    exif[0x0112] = 1
    try:
        return exif.tobytes()
    except Exception:  # a damaged EXIF block is dropped rather than copied
        return None


def read_photo(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, keep_alpha: bool = False) -> Photo:
    """Decode `path` into an upright RGB uint8 array, or raise UnreadableImage with the reason.

    The size is read from the header and checked against `max_pixels` before anything is decoded, so
    a small file declaring a huge image costs nothing. Any decoder failure becomes UnreadableImage:
    one bad photo must never stop a batch.

    `keep_alpha` (for writing results): a photo with transparency gives its own colour channels, not
    composited on white, and the alpha channel beside them, so both can be written back unchanged."""
    _check_regular_file(path)
    max_pixels = min(max_pixels, HIGHEST_MAX_PIXELS)
    try:
        # Pillow reads from the descriptor checked to be a regular file: a path swapped for a FIFO since
        # the check above cannot block it.
        with open_regular(path) as handle, Image.open(handle) as image:
            _check_pixels(image.width, image.height, max_pixels)
            orientation = int(image.getexif().get(0x0112, 1) or 1)
            upright = ImageOps.exif_transpose(image)
            upright.load()
            alpha = None
            if keep_alpha and _has_alpha(upright):
                rgba = np.asarray(upright.convert("RGBA"))
                rgb, alpha = rgba[..., :3], np.ascontiguousarray(rgba[..., 3])
            else:
                rgb = _to_uint8_rgb(upright)
            return Photo(path, np.ascontiguousarray(rgb), orientation, alpha, image.info.get("icc_profile"),
                         _upright_exif(image))
    except UnreadableImage:
        raise
    except Exception as exc:  # decoders raise many types (OSError, SyntaxError, struct.error, ...)
        pillow_error = exc
    try:
        rgb = _read_with_opencv(path)
    except Exception:  # OpenCV's decoders raise cv2.error on some damaged files
        rgb = None
    if rgb is None:
        reason = str(pillow_error).splitlines()[0] if str(pillow_error) else type(pillow_error).__name__
        # Pillow names the open file object it was handed ("<_io.BufferedReader name=5>"): a descriptor number
        # that means nothing to the user and differs from run to run
        reason = re.sub(r"\s*<_io\.\w+ name=\d+>", "", reason)
        raise UnreadableImage(f"not a readable image ({reason})")
    _check_pixels(rgb.shape[1], rgb.shape[0], max_pixels)
    return Photo(path, rgb, 1)
