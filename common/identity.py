"""Identity distance: does a reconstruction or an edit still look like the person in the photo?

dlib's face-recognition ResNet (shipped by `face-recognition-models`) maps a face to a 128-d
descriptor; two photos of the same person are under 0.6 apart (dlib's threshold: 99.38 % on LFW).
Measured on `../shared/photos/face-recognition`: obama / obama2 / obama3 / obama_small 0.07-0.42 apart,
biden / biden2 0.43, obama vs biden 0.76-0.86. It works offline, unlike ArcFace (the measure of the
HyperStyle / PTI papers), so its figures are not theirs, but it answers the same question.

Every image is an aligned crop or a render of one (the face fills the middle), so the face is found
again with dlib's frontal detector on the crop brought to 256 px, its 5 landmarks fitted, and the
descriptor computed from dlib's own aligned face chip. A render in which no face is found gets
`NO_FACE_IN_RENDER` instead of a number: an untrained generator's noise has no identity to score.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache

import cv2
import dlib
import numpy as np

from common.dlib_models import model_path

SAME_PERSON = 0.6  # dlib's threshold: descriptors of one person are closer than this
NO_FACE_IN_RENDER = "no face in the render"
NO_FACE_IN_PHOTO = "no face in the photo's crop"
DRIFT_WARNING = "may no longer look like the same person"
IDENTITY_OFF = "not measured (SEFA_EDIT_IDENTITY=0)"
_SIDE = 256  # crops and renders are brought to this size before detection (the detector finds faces from ~40 px)
_lock = threading.Lock()  # dlib's models are shared by the threads of the editor
_load_lock = threading.Lock()


@lru_cache(maxsize=1)
def _detector():
    return dlib.get_frontal_face_detector()


@lru_cache(maxsize=1)
def _read_recognition():
    return dlib.shape_predictor(str(model_path("5"))), dlib.face_recognition_model_v1(str(model_path("recognition")))


def _recognition():
    """The landmark predictor and the ResNet: ~3 s to read, so read only once a face needs describing (an
    untrained generator's renders never do) or ahead of time by `prefetch`; read once, whichever thread asks first."""
    with _load_lock:
        return _read_recognition()


def prefetch() -> None:
    """Start reading the models in the background (a stage calls this before its slow work, so the reading
    overlaps it instead of adding to it)."""
    if not enabled():
        return
    threading.Thread(target=lambda: (_detector(), _recognition()), daemon=True).start()


def enabled() -> bool:
    """`SEFA_EDIT_IDENTITY=0` turns the measure off (a batch where ~3 s per command and 0.15 s per face matter)."""
    return os.environ.get("SEFA_EDIT_IDENTITY", "1").strip().lower() not in ("0", "off", "false", "no")


def stored_descriptor(info: dict) -> np.ndarray | None:
    """The photo's descriptor that `invert` stored in a code's info JSON (`photo_descriptor`), when it is a
    well-formed 128-d vector; None otherwise (none stored, or `invert` found no face in the crop)."""
    stored = info.get("photo_descriptor")
    if isinstance(stored, list) and len(stored) == 128 and all(isinstance(v, (int, float)) for v in stored):
        return np.asarray(stored, dtype=np.float64)
    return None


def descriptor(rgb: np.ndarray) -> np.ndarray | None:
    """The 128-d descriptor of the largest face in an RGB uint8 crop, or None when no face is found."""
    image = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    if image.shape[0] != _SIDE or image.shape[1] != _SIDE:
        interpolation = cv2.INTER_AREA if image.shape[0] > _SIDE else cv2.INTER_CUBIC
        image = cv2.resize(image, (_SIDE, _SIDE), interpolation=interpolation)
    with _lock:
        boxes = _detector()(image, 0)  # an aligned face spans half the crop: 128 px at 256, no upsampling needed
        if not boxes:
            return None
        box = max(boxes, key=lambda rect: rect.width() * rect.height())
        predictor, recognition = _recognition()
        shape = predictor(image, box)
        return np.asarray(recognition.compute_face_descriptor(image, shape), dtype=np.float64)


def distance_between(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    if a is None or b is None:
        return None
    return round(float(np.linalg.norm(a - b)), 4)


def identity_distance(photo_crop: np.ndarray | None, render: np.ndarray,
                      photo_descriptor: np.ndarray | None = None) -> float | str:
    """How far `render` is from the person of `photo_crop` (or of its precomputed descriptor), or the
    words for why there is no number."""
    if not enabled():
        return IDENTITY_OFF
    reference = photo_descriptor if photo_descriptor is not None else (descriptor(photo_crop) if photo_crop is not None else None)
    if reference is None:
        return NO_FACE_IN_PHOTO
    found = descriptor(render)
    if found is None:
        return NO_FACE_IN_RENDER
    return distance_between(reference, found)


def drifted(value: float | str | None) -> bool:
    """An identity distance past the same-person threshold (words and missing values are not)."""
    return isinstance(value, (int, float)) and value >= SAME_PERSON
