"""What a face image measurably looks like: head pose, mouth, eyes, framing and colours, from dlib's 68
landmarks and OpenCV. `factorization/describe.py` compares these between renders moved along a
direction, to say what the direction does.

Every measure is relative to the face itself or to the image, so it does not depend on the render size:
- `yaw`, `pitch` (degrees): the head pose that best explains six landmarks (nose tip, chin, outer eye
  corners, mouth corners) on a generic 3-D face (OpenCV `solvePnP`, focal length = image width).
  Generic pose: good for the sign and for changes, not an absolute measurement. Positive yaw: the face
  turns towards the image's right; positive pitch: it looks up.
- `roll` (degrees): the angle of the line through the two eye centres (counter-clockwise positive),
  exact for an in-plane rotation of the image.
- `mouth_open`: inner-lip gap, `smile`: mouth-corner distance, `eyes_open`: eye height over width
  (dlib's eye aspect ratio, both eyes), the first two relative to the distance between the eye centres.
- `face_size`: RMS distance of the landmarks from their centre, over the image width (a crop zoomed by s
  gives s times the size); `face_x`, `face_y`: that centre over the image size (0.5 = the middle).
- `skin_*`, `hair_*`, `background_*`: mean luminance (L of CIE Lab, 0-1) and hue (degrees of HSV, a circular
  mean weighted by saturation) of three regions: the face inside the jaw line below the brows without eyes,
  brows and mouth; the band above the brows, as high as brows to chin, as wide as the jaw (hair, or
  forehead where there is none); and the image border strips (left, right and top 12 %) outside both.
A face that dlib does not find gives None: an untrained generator's renders have no pose to measure.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass
from functools import lru_cache

import cv2
import dlib
import numpy as np

from common.dlib_models import model_path

_SIDE = 256  # images are measured at this size (an aligned face spans about half of it)
_lock = threading.Lock()

# A generic head (mm, x right, y up, z towards the camera) at the six landmarks solvePnP fits.
_MODEL_POINTS = np.array([
    (0.0, 0.0, 0.0),  # nose tip (30)
    (0.0, -63.6, -12.5),  # chin (8)
    (-43.3, 32.7, -26.0),  # outer corner of the image-left eye (36)
    (43.3, 32.7, -26.0),  # outer corner of the image-right eye (45)
    (-28.9, -28.9, -24.1),  # image-left mouth corner (48)
    (28.9, -28.9, -24.1),  # image-right mouth corner (54)
], dtype=np.float64)
_PNP_LANDMARKS = (30, 8, 36, 45, 48, 54)
MEASURES = ("yaw", "pitch", "roll", "mouth_open", "smile", "eyes_open", "face_size", "face_x", "face_y",
            "skin_light", "skin_hue", "hair_light", "hair_hue", "background_light", "background_hue")
HUES = {"skin_hue", "hair_hue", "background_hue"}  # circular: changes are wrapped to [-180, 180)


@dataclass(frozen=True)
class FaceMeasures:
    yaw: float
    pitch: float
    roll: float
    mouth_open: float
    smile: float
    eyes_open: float
    face_size: float
    face_x: float
    face_y: float
    skin_light: float
    skin_hue: float
    hair_light: float
    hair_hue: float
    background_light: float
    background_hue: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@lru_cache(maxsize=1)
def _models():
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model_path("68")))


def landmarks(rgb: np.ndarray) -> np.ndarray | None:
    """The 68 landmarks [68, 2] of the largest face, in the image's own pixels, or None."""
    height, width = rgb.shape[:2]
    scale = _SIDE / max(height, width)
    small = cv2.resize(np.ascontiguousarray(rgb[..., :3]), (round(width * scale), round(height * scale)),
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    with _lock:
        detector, predictor = _models()
        boxes = detector(small, 1)
        if not boxes:
            return None
        box = max(boxes, key=lambda rect: rect.width() * rect.height())
        shape = predictor(small, box)
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=np.float64) / scale


def measure(rgb: np.ndarray) -> FaceMeasures | None:
    """All measures of the largest face in an RGB uint8 image, or None when no face is found."""
    points = landmarks(rgb)
    if points is None:
        return None
    height, width = rgb.shape[:2]
    yaw, pitch = _pose(points, width, height)
    left_eye, right_eye = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    eye_distance = max(float(np.linalg.norm(right_eye - left_eye)), 1e-6)
    roll = -math.degrees(math.atan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0]))
    centre = points.mean(axis=0)
    size = float(np.sqrt(((points - centre) ** 2).sum(axis=1).mean())) / width
    skin, hair, background = region_masks(points, height, width)
    colours = {name: _colour(rgb, mask) for name, mask in (("skin", skin), ("hair", hair), ("background", background))}
    return FaceMeasures(
        yaw=yaw, pitch=pitch, roll=roll,
        mouth_open=float(np.linalg.norm(points[66] - points[62])) / eye_distance,
        smile=float(np.linalg.norm(points[54] - points[48])) / eye_distance,
        eyes_open=(_eye_ratio(points[36:42]) + _eye_ratio(points[42:48])) / 2,
        face_size=size, face_x=float(centre[0]) / width, face_y=float(centre[1]) / height,
        skin_light=colours["skin"][0], skin_hue=colours["skin"][1],
        hair_light=colours["hair"][0], hair_hue=colours["hair"][1],
        background_light=colours["background"][0], background_hue=colours["background"][1],
    )


def change(name: str, before: float, after: float) -> float:
    """after - before, with hues wrapped to the shorter way round the circle."""
    delta = after - before
    if name in HUES:
        delta = (delta + 180.0) % 360.0 - 180.0
    return delta


def _pose(points: np.ndarray, width: int, height: int) -> tuple[float, float]:
    image_points = points[list(_PNP_LANDMARKS)].astype(np.float64)
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
    # A frontal face is the model turned half a turn about x (OpenCV's camera: x right, y down, z away).
    guess = np.array([[math.pi], [0.0], [0.0]])
    ok, rotation, _ = cv2.solvePnP(_MODEL_POINTS, image_points, camera, np.zeros(4), guess,
                                   np.array([[0.0], [0.0], [1000.0]]), useExtrinsicGuess=True,
                                   flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return 0.0, 0.0
    matrix, _ = cv2.Rodrigues(rotation)
    # The face's forward axis (model +z) in camera coordinates, about (0, 0, -1) for a frontal face: its x
    # gives the yaw (towards the image's right), its y the pitch (up is -y).
    forward = matrix[:, 2]
    return math.degrees(math.atan2(forward[0], -forward[2])), math.degrees(math.atan2(-forward[1], -forward[2]))


def _eye_ratio(eye: np.ndarray) -> float:
    width = max(float(np.linalg.norm(eye[3] - eye[0])), 1e-6)
    return float(np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])) / (2 * width)


def region_masks(points: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks of skin, hair band and background (see the module docstring)."""
    def polygon(vertices: np.ndarray) -> np.ndarray:
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [np.round(vertices).astype(np.int32)], 1)
        return mask.astype(bool)

    brow_y = points[17:27, 1].min()
    jaw = points[0:17]
    face = polygon(np.concatenate([jaw, points[26:16:-1]]))  # jaw line closed along the brows
    holes = polygon(cv2.convexHull(points[48:60].astype(np.float32))[:, 0]) | \
        polygon(cv2.convexHull(points[36:42].astype(np.float32))[:, 0]) | \
        polygon(cv2.convexHull(points[42:48].astype(np.float32))[:, 0])
    skin = face & ~holes
    face_height = points[8, 1] - brow_y
    top = max(brow_y - face_height, 0)
    hair = polygon(np.array([(jaw[0, 0], brow_y), (jaw[0, 0], top), (jaw[16, 0], top), (jaw[16, 0], brow_y)]))
    hair &= ~face
    border = np.zeros((height, width), bool)
    strip_w, strip_h = max(int(0.12 * width), 1), max(int(0.12 * height), 1)
    border[:, :strip_w] = border[:, -strip_w:] = border[:strip_h, :] = True
    background = border & ~hair & ~face
    return skin, hair, background


def _colour(rgb: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(mean CIE L in 0-1, saturation-weighted circular mean hue in degrees) of the masked pixels."""
    if not mask.any():
        return float("nan"), float("nan")
    pixels = np.ascontiguousarray(rgb[..., :3][mask].reshape(-1, 1, 3))
    lightness = cv2.cvtColor(pixels, cv2.COLOR_RGB2LAB)[:, 0, 0].astype(np.float64) / 255.0
    hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV_FULL)[:, 0].astype(np.float64)
    angle, weight = hsv[:, 0] / 256.0 * 2 * math.pi, hsv[:, 1] / 255.0 + 1e-6
    hue = math.degrees(math.atan2((weight * np.sin(angle)).sum(), (weight * np.cos(angle)).sum())) % 360.0
    return float(lightness.mean()), hue
