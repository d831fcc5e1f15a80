"""The FFHQ face crop (Karras et al., "A Style-Based Generator Architecture", 2019, dataset tool),
re-implemented with NumPy/OpenCV.

From the landmarks: eye centres and mouth corners give an oriented square (the quad) centred a little
below the eyes, sized by the larger of 2x the eye distance and 1.8x the eye-to-mouth distance, and
turned so the face is upright. The crop is then made as the dataset tool makes it: shrink very large
faces first (anti-aliasing), cut a margin around the quad, reflect-pad where the quad leaves the photo
and blend the padding towards a blurred, median-coloured version (so the generator does not see hard
mirror seams), resample the quad at 4x the output size, and area-downsample to the output size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from common.face_transform import cut_crop

# From the 5-point model (eye corners + nose base) the mouth is placed along the face's vertical axis,
# at 1.46x the eye-to-nose distance below the eyes: the least-squares ratio on the 43 hand-labelled
# faces of dlib's examples (residual 0.12 inter-ocular distances).
MOUTH_FROM_NOSE_RATIO = 1.46


def eyes_and_mouth(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left eye centre, right eye centre, mouth centre) in image coordinates ('left' = image left)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if len(lm) == 68:
        eye_a, eye_b = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
        mouth = (lm[48] + lm[54]) / 2
    elif len(lm) == 5:
        eye_a, eye_b = lm[0:2].mean(axis=0), lm[2:4].mean(axis=0)
        eye_avg = (eye_a + eye_b) / 2
        across = eye_b - eye_a
        down = np.array([-across[1], across[0]]) / (np.hypot(*across) or 1.0)
        if down[1] < 0:
            down = -down
        mouth = eye_avg + down * MOUTH_FROM_NOSE_RATIO * float(np.dot(lm[4] - eye_avg, down))
    else:
        raise ValueError(f"expected 68 or 5 landmarks, got {len(lm)}")
    left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    return left, right, mouth


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The oriented crop square [4, 2]: upper-left, lower-left, lower-right, upper-right (source pixels)."""
    eye_left, eye_right, mouth_avg = eyes_and_mouth(landmarks)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]  # the face's horizontal axis, tilt removed
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def render_aligned(image: np.ndarray, quad: np.ndarray, output_size: int, enable_padding: bool = True) -> np.ndarray:
    """Cut the quad of `image` (uint8 RGB) into an output_size x output_size crop, FFHQ-style."""
    quad = np.asarray(quad, dtype=np.float64).copy()
    qsize = np.hypot(*(quad[3] - quad[0]))
    img = image

    # Shrink: a face much larger than the output is first reduced with an anti-aliasing filter.
    shrink = int(math.floor(qsize / output_size * 0.5))
    if shrink > 1:
        new_size = (int(round(img.shape[1] / shrink)), int(round(img.shape[0] / shrink)))
        scale = np.array([new_size[0] / img.shape[1], new_size[1] / img.shape[0]])
        img = cv2.resize(img, new_size, interpolation=cv2.INTER_AREA)
        quad *= scale
        qsize *= float(scale.mean())

    # Crop to the quad plus a border (keeps the work local to the face).
    border = max(int(round(qsize * 0.1)), 3)
    crop = (int(math.floor(quad[:, 0].min())), int(math.floor(quad[:, 1].min())),
            int(math.ceil(quad[:, 0].max())), int(math.ceil(quad[:, 1].max())))
    crop = (max(crop[0] - border, 0), max(crop[1] - border, 0),
            min(crop[2] + border, img.shape[1]), min(crop[3] + border, img.shape[0]))
    if crop[2] - crop[0] < img.shape[1] or crop[3] - crop[1] < img.shape[0]:
        img = img[crop[1] : crop[3], crop[0] : crop[2]]
        quad -= crop[0:2]

    # Pad where the quad leaves the photo: mirror, then blend towards blur and the median colour.
    pad = (int(math.floor(quad[:, 0].min())), int(math.floor(quad[:, 1].min())),
           int(math.ceil(quad[:, 0].max())), int(math.ceil(quad[:, 1].max())))
    pad = (max(-pad[0] + border, 0), max(-pad[1] + border, 0),
           max(pad[2] - img.shape[1] + border, 0), max(pad[3] - img.shape[0] + border, 0))
    if enable_padding and max(pad) > border - 4:
        pad = np.maximum(pad, int(round(qsize * 0.3)))
        padded = np.pad(img.astype(np.float32), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), mode="reflect")
        h, w = padded.shape[:2]
        yy, xx = np.ogrid[:h, :w]
        mask = np.maximum(
            1.0 - np.minimum(xx.astype(np.float32) / pad[0], (w - 1 - xx).astype(np.float32) / pad[2]),
            1.0 - np.minimum(yy.astype(np.float32) / pad[1], (h - 1 - yy).astype(np.float32) / pad[3]),
        )[..., None]
        blur = qsize * 0.02
        blurred = cv2.GaussianBlur(padded, (0, 0), sigmaX=blur, sigmaY=blur, borderType=cv2.BORDER_REFLECT)
        padded += (blurred - padded) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        padded += (np.median(padded, axis=(0, 1)) - padded) * np.clip(mask, 0.0, 1.0)
        img = np.clip(np.rint(padded), 0, 255).astype(np.uint8)
        quad += pad[:2]

    # Resample at 4x (at most 4096, as FFHQ) and area-downsample: smooth, alias-free edges.
    transform_size = min(4 * output_size, max(4096, output_size))
    aligned = cut_crop(img, quad, transform_size)
    if transform_size != output_size:
        aligned = cv2.resize(aligned, (output_size, output_size), interpolation=cv2.INTER_AREA)
    return aligned
