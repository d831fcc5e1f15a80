"""The FFHQ face crop (Karras et al., "A Style-Based Generator Architecture", 2019), reproducing the
dataset tool's `recreate_aligned_images` (NVlabs/ffhq-dataset) pixel for pixel up to rounding.

From the landmarks: eye centres and mouth corners give an oriented square (the quad) centred a little
below the eyes, sized by the larger of 2x the eye distance and 1.8x the eye-to-mouth distance, and
turned so the face is upright. The pixels are then made as the tool makes them:
1. shrink: a face more than twice the output size is first reduced by an integer factor with PIL's
   antialiased Lanczos (only the region around the face is resized: PIL's `box` gives exactly the
   coefficients of the whole-image resize there), and the quad divided by that factor;
2. crop the quad's bounding box plus a border; reflect-pad where the quad leaves the photo and blend
   the padding towards a Gaussian blur (scipy's, as the tool) and the median colour;
3. sample the quad at 4096 x 4096 with bilinear interpolation truncated to 8 bits (PIL's QUAD
   transform truncates; OpenCV samples here, on values scaled by 256, so the truncation is exact);
4. resize to the output size with PIL's antialiased Lanczos (which rounds between its two passes).
The rounding steps decide single grey levels in 5-12% of pixels, so they are reproduced, not
approximated: the crops agree with the tool's to 75-88 dB PSNR (tests/test_alignment_reference.py).

The crop's true position in the photo is also returned for paste-back: dividing the quad by the
shrink factor ignores that a shrunk pixel's centre lies half a (shrink - 1) source pixels further on,
so the tool's crop comes from a quad shifted by that much, and paste-back must use the shifted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.ndimage
from PIL import Image

from common.face_transform import crop_to_source_matrix

# From the 5-point model (eye corners + nose base) the mouth is placed along the face's vertical axis,
# at 1.46x the eye-to-nose distance below the eyes: the least-squares ratio on the 43 hand-labelled
# faces of dlib's examples (residual 0.12 inter-ocular distances).
MOUTH_FROM_NOSE_RATIO = 1.46
TRANSFORM_SIZE = 4096  # the tool samples every quad at this size, whatever the output size


def eyes_and_mouth(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the subject's-right eye centre, the other eye centre, mouth centre) in image coordinates.

    With 68 points the landmark order says which eye is which (iBUG 36-41 is the one on the image's
    left of an upright face), so a face rolled past 90 degrees keeps its orientation. dlib's 5-point
    model lists the eye corners in no such fixed order relative to the mouth, so there the eyes are
    taken left to right."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if len(lm) == 68:
        return lm[36:42].mean(axis=0), lm[42:48].mean(axis=0), (lm[48] + lm[54]) / 2
    if len(lm) != 5:
        raise ValueError(f"expected 68 or 5 landmarks, got {len(lm)}")
    eye_a, eye_b = lm[0:2].mean(axis=0), lm[2:4].mean(axis=0)
    eye_avg = (eye_a + eye_b) / 2
    across = eye_b - eye_a
    down = np.array([-across[1], across[0]]) / (np.hypot(*across) or 1.0)
    if down[1] < 0:
        down = -down
    mouth = eye_avg + down * MOUTH_FROM_NOSE_RATIO * float(np.dot(lm[4] - eye_avg, down))
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


@dataclass(frozen=True)
class AlignedCrop:
    pixels: np.ndarray  # [size, size, 3] uint8 RGB
    source_quad: np.ndarray  # [4, 2]: where the crop's pixels really come from in the photo (for paste-back)


def _bounds(quad: np.ndarray) -> tuple[int, int, int, int]:
    return (int(math.floor(quad[:, 0].min())), int(math.floor(quad[:, 1].min())),
            int(math.ceil(quad[:, 0].max())), int(math.ceil(quad[:, 1].max())))


def _shrunk_region(image: np.ndarray, quad: np.ndarray, shrink: int, border: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The part of the photo shrunk by `shrink` that the crop step keeps, and the quad in it (the tool's
    quad / shrink), plus the quad's true position in the photo."""
    height, width = image.shape[:2]
    size = (int(np.rint(width / shrink)), int(np.rint(height / shrink)))
    scale = np.array([width / size[0], height / size[1]])
    quad_small = quad / shrink
    left, top, right, bottom = _bounds(quad_small)
    box = (max(left - border, 0), max(top - border, 0), min(right + border, size[0]), min(bottom + border, size[1]))
    region = Image.fromarray(image).resize(
        (box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS,
        box=(box[0] * scale[0], box[1] * scale[1], box[2] * scale[0], box[3] * scale[1]))
    source_quad = (quad_small + 0.5) * scale - 0.5  # a shrunk pixel's centre, in photo pixels
    return np.asarray(region), quad_small - box[:2], source_quad


def _pad_and_blend(img: np.ndarray, quad: np.ndarray, qsize: float, border: int) -> tuple[np.ndarray, np.ndarray]:
    """Reflect-pad where the quad leaves the image and fade the padding into blur and the median colour."""
    left, top, right, bottom = _bounds(quad)
    pad = (max(-left + border, 0), max(-top + border, 0), max(right - img.shape[1] + border, 0), max(bottom - img.shape[0] + border, 0))
    if max(pad) <= border - 4:
        return img, quad
    pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
    padded = np.pad(img.astype(np.float32), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), mode="reflect")
    h, w = padded.shape[:2]
    yy, xx = np.ogrid[:h, :w]
    mask = np.maximum(
        1.0 - np.minimum(np.float32(xx) / pad[0], np.float32(w - 1 - xx) / pad[2]),
        1.0 - np.minimum(np.float32(yy) / pad[1], np.float32(h - 1 - yy) / pad[3]),
    )[..., None]
    blur = qsize * 0.02
    padded += (scipy.ndimage.gaussian_filter(padded, [blur, blur, 0]) - padded) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    padded += (np.median(padded, axis=(0, 1)) - padded) * np.clip(mask, 0.0, 1.0)
    return np.clip(np.rint(padded), 0, 255).astype(np.uint8), quad + pad[:2]


def _sample_truncated(img: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    """Bilinear samples of the quad on a size x size grid, truncated to 8 bits as PIL's QUAD transform does.

    OpenCV interpolates 16-bit values exactly enough: with the image scaled by 256, the high byte of
    each sample is floor(value)."""
    scaled = img.astype(np.uint16) << 8
    samples = cv2.warpAffine(scaled, crop_to_source_matrix(quad, size), (size, size),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    high_byte = 1 if np.little_endian else 0  # OpenCV returns native-order uint16
    return np.ascontiguousarray(samples.view(np.uint8)[..., high_byte::2])


def render_aligned(image: np.ndarray, quad: np.ndarray, output_size: int, enable_padding: bool = True) -> AlignedCrop:
    """Cut the quad of `image` (uint8 RGB) into an output_size x output_size crop, exactly as the FFHQ tool."""
    quad = np.asarray(quad, dtype=np.float64).copy()
    qsize = float(np.hypot(*(quad[3] - quad[0])))
    source_quad = quad.copy()
    img = image

    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        border = max(int(np.rint(qsize / shrink * 0.1)), 3)
        img, quad, source_quad = _shrunk_region(image, quad, shrink, border)
        qsize /= shrink
    else:
        border = max(int(np.rint(qsize * 0.1)), 3)
        left, top, right, bottom = _bounds(quad)
        crop = (max(left - border, 0), max(top - border, 0), min(right + border, img.shape[1]), min(bottom + border, img.shape[0]))
        if crop[2] - crop[0] < img.shape[1] or crop[3] - crop[1] < img.shape[0]:
            img = img[crop[1] : crop[3], crop[0] : crop[2]]
            quad = quad - crop[0:2]

    if enable_padding:
        img, quad = _pad_and_blend(img, quad, qsize, border)

    transform_size = max(TRANSFORM_SIZE, output_size)
    sampled = _sample_truncated(img, quad, transform_size)
    if output_size < transform_size:
        sampled = np.asarray(Image.fromarray(sampled).resize((output_size, output_size), Image.Resampling.LANCZOS))
    return AlignedCrop(sampled, source_quad)
