"""Geometry between an aligned face crop and its source photo, stored as the FFHQ quad.

The FFHQ crop is defined by a quad (an oriented square) in source-photo pixel coordinates, corners
in the order upper-left, lower-left, lower-right, upper-right of the crop. Because the quad is a
square (a similarity transform of the crop), the map between crop and source is affine:
    source = Q(u),  u = crop pixel centre + 0.5, in units of the crop size,
which is how PIL's QUAD transform (used to build FFHQ) samples. Both `align` (to cut the crop) and
`edit` (to paste an edited face back) use these two matrices, so they cannot disagree.
"""

from __future__ import annotations

import cv2
import numpy as np


def crop_to_source_matrix(quad: np.ndarray, size: int) -> np.ndarray:
    """2x3 affine A with source_xy = A @ [crop_x, crop_y, 1] (pixel centres at integers in both)."""
    quad = np.asarray(quad, dtype=np.float64)
    ex = (quad[3] - quad[0]) / size  # one crop pixel to the right, in source pixels
    ey = (quad[1] - quad[0]) / size  # one crop pixel down
    origin = quad[0] + 0.5 * (ex + ey)  # source position of crop pixel (0, 0)'s centre
    return np.array([[ex[0], ey[0], origin[0]], [ex[1], ey[1], origin[1]]])


def source_to_crop_matrix(quad: np.ndarray, size: int) -> np.ndarray:
    return cv2.invertAffineTransform(crop_to_source_matrix(quad, size))


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def cut_crop(image: np.ndarray, quad: np.ndarray, size: int, border_mode: int = cv2.BORDER_REFLECT) -> np.ndarray:
    """Resample the quad of `image` into a size x size crop (bilinear)."""
    matrix = crop_to_source_matrix(quad, size)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border_mode)


def warp_crop_to_source(crop: np.ndarray, quad: np.ndarray, source_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Warp a crop back into source-photo coordinates.

    Returns (warped image of the source's height x width, coverage mask in [0, 1] that is 1 where the
    crop lands). The crop may have any resolution: the quad scales to it.
    """
    height, width = source_shape
    matrix = source_to_crop_matrix(quad, crop.shape[0])
    warped = cv2.warpAffine(crop, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_CONSTANT)
    coverage = cv2.warpAffine(np.ones(crop.shape[:2], np.float32), matrix, (width, height),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
    return warped, coverage
