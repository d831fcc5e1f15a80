"""The alignment sidecar that paste-back trusts, checked field by field before use.

The sidecar (`<crop>.json`, written by `align`) says where the original photo is and which quad of it
the crop came from. It may be hand-edited, damaged, or point at something that is not a photo (a FIFO
would block the reader forever), so every field is checked and the photo must be a regular file. The
quad must fit the photo it names: a quad of 1e9 pixels would make paste-back warp a gigapixel
window (minutes, gigabytes) for one face, so a face more than a few times the photo's size, or one
far outside it, is refused for that item before any warp.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.json_files import BadJson, read_json

MAX_FACE_TO_PHOTO = 4.0  # a crop's quad side at most this many times the photo's longer side


class BadSidecar(ValueError):
    """The sidecar cannot be used for paste-back; the message says why in plain words."""


@dataclass(frozen=True)
class Sidecar:
    source: Path
    source_size: tuple[int, int]  # width, height
    quad: np.ndarray  # [4, 2] in source pixels
    landmarks: np.ndarray | None  # [N, 2] in source pixels


def _points(value, name: str, count: int | None) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadSidecar(f"'{name}' is not a list of [x, y] points") from None
    if array.ndim != 2 or array.shape[1] != 2 or (count is not None and array.shape[0] != count) or not np.isfinite(array).all():
        raise BadSidecar(f"'{name}' should be {count or 'N'} finite [x, y] points")
    return array


def _check_quad_fits(quad: np.ndarray, size: tuple[int, int], path: Path) -> None:
    """The crop's quad must be a face of the photo: not degenerate, not many times the photo, not far off it."""
    sides = np.linalg.norm(quad - np.roll(quad, 1, axis=0), axis=1)
    longer = max(size)
    if sides.min() < 1:
        raise BadSidecar(f"alignment sidecar {path}: 'quad' is degenerate (a side under 1 pixel); re-run align")
    if sides.max() > MAX_FACE_TO_PHOTO * longer:
        raise BadSidecar(f"alignment sidecar {path}: 'quad' is {sides.max():.3g} px across, more than {MAX_FACE_TO_PHOTO:g}x "
                         f"the {size[0]}x{size[1]} photo; re-run align")
    centre = quad.mean(axis=0)
    if not (-longer <= centre[0] <= size[0] + longer and -longer <= centre[1] <= size[1] + longer):
        raise BadSidecar(f"alignment sidecar {path}: 'quad' lies far outside the {size[0]}x{size[1]} photo; re-run align")


def read_sidecar(path: Path) -> Sidecar:
    try:
        meta = read_json(path)
    except OSError as exc:
        raise BadSidecar(f"alignment sidecar {path} cannot be read ({exc.strerror or exc})") from None
    except BadJson as exc:
        raise BadSidecar(f"alignment sidecar {path} is {exc}; re-run align") from None
    if not isinstance(meta, dict):
        raise BadSidecar(f"alignment sidecar {path} holds a JSON {type(meta).__name__}, not the object align writes; re-run align")
    missing = [key for key in ("source", "quad", "source_size") if key not in meta]
    if missing:
        raise BadSidecar(f"alignment sidecar {path} lacks {', '.join(repr(k) for k in missing)}; re-run align")
    size = meta["source_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise BadSidecar(f"alignment sidecar {path}: 'source_size' should be [width, height] in pixels")
    quad = _points(meta["quad"], "quad", 4)
    _check_quad_fits(quad, (size[0], size[1]), path)
    landmarks = _points(meta["landmarks"], "landmarks", None) if meta.get("landmarks") is not None else None
    if not isinstance(meta["source"], str) or not meta["source"]:
        raise BadSidecar(f"alignment sidecar {path}: 'source' should be the photo's path")
    source = Path(meta["source"])
    try:
        mode = source.stat().st_mode
    except OSError as exc:
        raise BadSidecar(f"the original photo {source} cannot be found ({exc.strerror or exc}); re-run align") from None
    if not stat.S_ISREG(mode):
        raise BadSidecar(f"the original photo {source} is not a regular file (a folder, pipe or device)")
    return Sidecar(source, (size[0], size[1]), quad, landmarks)
