"""Paste an edited face crop back into the original photo, at the photo's full resolution.

The crop is warped through the quad stored by `align` (the same matrices that cut it), and blended
with a feathered mask: the face region (landmark hull raised to cover the forehead, grown by a
margin) or the whole crop square (`crop`: for edits that move hair or the head outline). Either mask
is confined to a window inset from the crop's square and feathered to zero before its edge, so the
square itself never shows as a straight seam across the chin or beside an ear (the face hull of a
small or turned face often reaches past the crop). Outside the mask the photo's pixels are returned
untouched, bit for bit.
"""

from __future__ import annotations

import cv2
import numpy as np

from common.face_transform import source_to_crop_matrix, warp_crop_to_source

MASK_KINDS = ("face", "crop")


def face_mask_in_crop(landmarks_in_crop: np.ndarray, size: int) -> np.ndarray:
    """Binary mask [size, size] of the face: hull of the landmarks plus a forehead band, grown by 8%."""
    points = np.asarray(landmarks_in_crop, dtype=np.float64)
    top, bottom = points[:, 1].min(), points[:, 1].max()
    raised = points.copy()
    raised[:, 1] -= 0.45 * (bottom - top)  # landmarks stop at the eyebrows; the forehead is above
    hull = cv2.convexHull(np.concatenate([points, raised]).astype(np.float32)).astype(np.int32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    grow = max(1, int(0.08 * size))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))).astype(np.float32)


def crop_mask(size: int, margin: float = 0.06) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    inset = int(round(margin * size))
    mask[inset : size - inset, inset : size - inset] = 1
    return mask


def feather(mask: np.ndarray, amount: float = 0.05) -> np.ndarray:
    """Soft edge: Gaussian blur, then zero where the hard mask was far outside (keeps the outside exact)."""
    size = mask.shape[0]
    sigma = max(0.5, amount * size)
    soft = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma)
    # Shrink before blurring so the soft edge stays inside the region: values outside are then ~0; cut them to 0.
    soft[soft < 1e-3] = 0
    return np.clip(soft, 0, 1)


def inside_window(size: int, margin: float = 0.08, amount: float = 0.02) -> np.ndarray:
    """1 in the middle of the crop, 0 from `margin` - ~3.5 sigma of feathering to the border: the mask's
    limit, so that no edited pixel reaches the crop's edge (within 3 px of it the weight is < 1e-3, cut to 0)."""
    return feather(crop_mask(size, margin), amount)


def paste_back(
    photo: np.ndarray, edited_crop: np.ndarray, quad: np.ndarray, landmarks: np.ndarray | None, mask_kind: str = "face"
) -> tuple[np.ndarray, np.ndarray]:
    """Return (photo with the edited face, alpha [H, W] that was used)."""
    size = edited_crop.shape[0]
    if mask_kind == "face" and landmarks is not None and len(landmarks) >= 5:
        to_crop = source_to_crop_matrix(quad, size)
        in_crop = np.asarray(landmarks, dtype=np.float64) @ to_crop[:, :2].T + to_crop[:, 2]
        hard = face_mask_in_crop(in_crop, size)
    else:
        hard = crop_mask(size)
    erode = max(1, int(0.05 * size))
    core = cv2.erode(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1)))
    soft = feather(core, amount=0.025) * inside_window(size)
    warped, coverage = warp_crop_to_source(edited_crop, quad, photo.shape[:2])
    alpha, _ = warp_crop_to_source(soft, quad, photo.shape[:2])
    alpha = np.clip(alpha, 0, 1) * (coverage >= 0.999)
    blended = photo.astype(np.float32) * (1 - alpha[..., None]) + warped.astype(np.float32) * alpha[..., None]
    result = np.where(alpha[..., None] > 0, np.clip(np.rint(blended), 0, 255), photo).astype(np.uint8)
    return result, alpha
