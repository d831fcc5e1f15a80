"""Paste an edited face crop back into the original photo, at the photo's full resolution.

The crop is warped through the quad stored by `align` (the same matrices that cut it), and blended
with a feathered mask: the face region (landmark hull raised to cover the forehead, grown by a
margin) or the whole crop square (`crop`: for edits that move hair or the head outline). Either mask
is confined to a window inset from the crop's square and feathered to zero before its edge, so the
square itself never shows as a straight seam across the chin or beside an ear (the face hull of a
small or turned face often reaches past the crop). Outside the mask the photo's pixels are returned
untouched, bit for bit.

Colour matching. A GAN's reconstruction is never the photo: its skin tone, white balance and
brightness drift by a few to tens of grey levels, and that drift shows as a halo where the mask
fades out. Given the unedited reconstruction R and the photo P cut to the crop, the low-frequency
difference measured on the face itself,
    offset = G_s * (m (P - R)) / G_s * m,      m = face hull, s = 4% of the crop,
is added to every edited crop before it is blended. The offset is the same for all edits of a face,
so what an edit changes (w' - w) is kept, and only the inversion's colour error is taken out.
Why not Poisson (cv2.seamlessClone) or a Laplacian pyramid: Poisson matched the mask's boundary
tighter on colour-cast reconstructions of the shared photos (1.0 vs 2.0 grey levels), but it takes
its correction from the boundary, which for `--mask crop` lies on a background the GAN invents,
and it bleeds that colour into the face; a Laplacian pyramid blends the low frequencies over a
wide band and so changes pixels outside the mask. The transfer measured on the face does neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from common.face_transform import cut_crop, source_to_crop_matrix

MASK_KINDS = ("face", "crop")
COLOUR_SIGMA = 0.04  # of the crop size: the colour offset's smoothness


def face_mask_in_crop(landmarks_in_crop: np.ndarray, size: int) -> np.ndarray:
    """Binary mask [size, size] of the face: hull of the landmarks plus a forehead band, grown by 8%."""
    mask = face_hull_in_crop(landmarks_in_crop, size)
    grow = max(1, int(0.08 * size))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))


def face_hull_in_crop(landmarks_in_crop: np.ndarray, size: int) -> np.ndarray:
    """Binary mask [size, size]: the landmarks' hull raised over the forehead (landmarks stop at the brows)."""
    points = np.asarray(landmarks_in_crop, dtype=np.float64)
    top, bottom = points[:, 1].min(), points[:, 1].max()
    raised = points.copy()
    raised[:, 1] -= 0.45 * (bottom - top)
    hull = cv2.convexHull(np.concatenate([points, raised]).astype(np.float32)).astype(np.int32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(np.float32)


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
    soft[soft < 1e-3] = 0
    return np.clip(soft, 0, 1)


def inside_window(size: int, margin: float = 0.08, amount: float = 0.02) -> np.ndarray:
    """1 in the middle of the crop, 0 from `margin` - ~3.5 sigma of feathering to the border: the mask's
    limit, so that no edited pixel reaches the crop's edge (within 3 px of it the weight is < 1e-3, cut to 0)."""
    return feather(crop_mask(size, margin), amount)


def landmarks_in_crop(landmarks: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    to_crop = source_to_crop_matrix(quad, size)
    return np.asarray(landmarks, dtype=np.float64) @ to_crop[:, :2].T + to_crop[:, 2]


def blend_weights_in_crop(size: int, landmarks_crop: np.ndarray | None, mask_kind: str) -> np.ndarray:
    """The soft mask [size, size] in crop pixels: 1 where the edit replaces the photo, 0 where it keeps it."""
    if mask_kind == "face" and landmarks_crop is not None and len(landmarks_crop) >= 5:
        hard = face_mask_in_crop(landmarks_crop, size)
    else:
        hard = crop_mask(size)
    erode = max(1, int(0.05 * size))
    core = cv2.erode(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1)))
    return feather(core, amount=0.025) * inside_window(size)


def colour_offset(photo: np.ndarray, reconstruction: np.ndarray, quad: np.ndarray, landmarks_crop: np.ndarray | None) -> np.ndarray:
    """[size, size, 3] float32 to add to every edit of this face: the photo's colour minus the
    reconstruction's, low-passed, measured on the face hull (or the crop's middle without landmarks)
    where it lies inside the photo."""
    size = reconstruction.shape[0]
    target = cut_crop(photo, quad, size).astype(np.float32)
    if landmarks_crop is not None and len(landmarks_crop) >= 5:
        measured = face_hull_in_crop(landmarks_crop, size)
    else:
        measured = crop_mask(size, margin=0.25)
    # Only where the crop shows the photo itself: beyond the photo's edge align pads with blurred mirror images.
    in_photo = cut_crop(np.ones(photo.shape[:2], np.float32), quad, size, border_mode=cv2.BORDER_CONSTANT) >= 0.999
    measured = measured * in_photo
    sigma = COLOUR_SIGMA * size
    difference = (target - reconstruction.astype(np.float32)) * measured[..., None]
    numerator = cv2.GaussianBlur(difference, (0, 0), sigma)
    weight = cv2.GaussianBlur(measured, (0, 0), sigma)[..., None]
    return numerator / np.maximum(weight, 1e-6)  # a weighted mean of nearby face differences: bounded everywhere


@dataclass(frozen=True)
class PreparedFace:
    """What every edit of one face shares: the photo box it lands in, its blend weights there, the colour offset."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in photo pixels (ends exclusive)
    box_to_crop: np.ndarray  # 2x3: box pixel -> crop pixel, for a crop of `size`
    size: int
    alpha: np.ndarray  # [y1 - y0, x1 - x0] float32 in [0, 1]
    offset: np.ndarray | None  # [size, size, 3] float32, added to each edit before warping


def _quad_box(quad: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    height, width = shape
    quad = np.asarray(quad, dtype=np.float64)
    x0, y0 = np.floor(quad.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 2
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def _warp(crop: np.ndarray, face: PreparedFace) -> np.ndarray:
    x0, y0, x1, y1 = face.box
    return cv2.warpAffine(crop, face.box_to_crop, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT)


def prepare_face(photo: np.ndarray, quad: np.ndarray, landmarks: np.ndarray | None, size: int, mask_kind: str = "face",
                 reconstruction: np.ndarray | None = None) -> PreparedFace:
    """Everything but the edit: done once per face, then `paste_face` for each of its edits."""
    quad = np.asarray(quad, dtype=np.float64)
    box = _quad_box(quad, photo.shape[:2])
    x0, y0, x1, y1 = box
    to_crop = source_to_crop_matrix(quad, size)
    box_to_crop = to_crop.copy()
    box_to_crop[:, 2] += to_crop[:, :2] @ np.array([x0, y0], dtype=np.float64)
    in_crop = landmarks_in_crop(landmarks, quad, size) if landmarks is not None and len(landmarks) >= 5 else None
    soft = blend_weights_in_crop(size, in_crop, mask_kind)
    offset = None
    if reconstruction is not None:
        if reconstruction.shape[:2] != (size, size):
            raise ValueError(f"the reconstruction is {reconstruction.shape[1]}x{reconstruction.shape[0]}, the edits {size}x{size}")
        offset = colour_offset(photo, reconstruction, quad, in_crop)
    face = PreparedFace(box, box_to_crop, size, np.zeros((0, 0), np.float32), offset)
    if x1 <= x0 or y1 <= y0:  # the quad lies wholly outside the photo
        return face
    alpha = _warp(soft, face)
    coverage = _warp(np.ones((size, size), np.float32), face)
    alpha = np.clip(alpha, 0, 1) * (coverage >= 0.999)
    return PreparedFace(box, box_to_crop, size, alpha.astype(np.float32), offset)


def paste_face(canvas: np.ndarray, edited_crop: np.ndarray, face: PreparedFace) -> None:
    """Blend one edited crop into `canvas` (uint8 RGB, changed in place); pixels with weight 0 stay as they are."""
    if edited_crop.shape[:2] != (face.size, face.size):
        raise ValueError(f"an edited crop is {edited_crop.shape[1]}x{edited_crop.shape[0]}, expected {face.size}x{face.size}")
    if face.alpha.size == 0:
        return
    x0, y0, x1, y1 = face.box
    crop = edited_crop.astype(np.float32)
    if face.offset is not None:
        crop = np.clip(crop + face.offset, 0, 255)
    warped = _warp(crop, face)
    region = canvas[y0:y1, x0:x1]
    alpha = face.alpha[..., None]
    blended = np.clip(np.rint(region.astype(np.float32) * (1 - alpha) + warped * alpha), 0, 255).astype(np.uint8)
    canvas[y0:y1, x0:x1] = np.where(alpha > 0, blended, region)


def full_alpha(face: PreparedFace, shape: tuple[int, int]) -> np.ndarray:
    """The face's blend weights over the whole photo [H, W]."""
    alpha = np.zeros(shape, np.float32)
    if face.alpha.size:
        x0, y0, x1, y1 = face.box
        alpha[y0:y1, x0:x1] = face.alpha
    return alpha


def paste_back(photo: np.ndarray, edited_crop: np.ndarray, quad: np.ndarray, landmarks: np.ndarray | None,
               mask_kind: str = "face", reconstruction: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (photo with the edited face, alpha [H, W] that was used). With `reconstruction` (the
    unedited render of the same code) the face's colour is matched to the photo first."""
    face = prepare_face(photo, quad, landmarks, edited_crop.shape[0], mask_kind, reconstruction)
    result = photo.copy()
    paste_face(result, edited_crop, face)
    return result, full_alpha(face, photo.shape[:2])
