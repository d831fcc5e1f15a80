"""A straightforward PIL implementation of the FFHQ dataset tool's crop, written for comparison only.

It follows `recreate_aligned_images` of NVlabs/ffhq-dataset step by step with the same libraries
(PIL for the shrink, the QUAD transform at 4096 px and the final resize; scipy for the padding blur),
and reproduces the reference crops in ../shared/reference/ffhq-align exactly. `benchmarks/align.py`
times sefa-edit's crop against it.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
from PIL import Image


def _bounds(quad: np.ndarray) -> tuple[int, int, int, int]:
    return (int(np.floor(quad[:, 0].min())), int(np.floor(quad[:, 1].min())),
            int(np.ceil(quad[:, 0].max())), int(np.ceil(quad[:, 1].max())))


def pil_ffhq_crop(photo: Image.Image, quad: np.ndarray, output_size: int, transform_size: int = 4096) -> Image.Image:
    quad = np.asarray(quad, dtype=np.float64).copy()
    qsize = float(np.hypot(*(quad[3] - quad[0])))
    img = photo
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        img = img.resize((int(np.rint(img.size[0] / shrink)), int(np.rint(img.size[1] / shrink))), Image.Resampling.LANCZOS)
        quad /= shrink
        qsize /= shrink
    border = max(int(np.rint(qsize * 0.1)), 3)
    left, top, right, bottom = _bounds(quad)
    box = (max(left - border, 0), max(top - border, 0), min(right + border, img.size[0]), min(bottom + border, img.size[1]))
    if box[2] - box[0] < img.size[0] or box[3] - box[1] < img.size[1]:
        img = img.crop(box)
        quad -= box[0:2]
    left, top, right, bottom = _bounds(quad)
    pad = (max(-left + border, 0), max(-top + border, 0), max(right - img.size[0] + border, 0), max(bottom - img.size[1] + border, 0))
    if max(pad) > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        array = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
        h, w, _ = array.shape
        yy, xx, _ = np.ogrid[:h, :w, :1]
        edge = np.maximum(1.0 - np.minimum(np.float32(xx) / pad[0], np.float32(w - 1 - xx) / pad[2]),
                          1.0 - np.minimum(np.float32(yy) / pad[1], np.float32(h - 1 - yy) / pad[3]))
        sigma = qsize * 0.02
        array += (scipy.ndimage.gaussian_filter(array, [sigma, sigma, 0]) - array) * np.clip(edge * 3.0 + 1.0, 0.0, 1.0)
        array += (np.median(array, axis=(0, 1)) - array) * np.clip(edge, 0.0, 1.0)
        img = Image.fromarray(np.uint8(np.clip(np.rint(array), 0, 255)), "RGB")
        quad += pad[:2]
    img = img.transform((transform_size, transform_size), Image.Transform.QUAD, (quad + 0.5).flatten(), Image.Resampling.BILINEAR)
    if output_size < transform_size:
        img = img.resize((output_size, output_size), Image.Resampling.LANCZOS)
    return img
