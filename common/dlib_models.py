"""dlib's models, taken from the `face-recognition-models` package: the landmark predictors and the CNN
face detector (alignment), and the face-recognition ResNet (the identity score of inversions and edits)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from common.errors import UserError

MODEL_FILES = {
    "68": "shape_predictor_68_face_landmarks.dat",
    "5": "shape_predictor_5_face_landmarks.dat",
    "mmod": "mmod_human_face_detector.dat",
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
}


def model_path(name: str) -> Path:
    """Locate a dlib model in the installed `face_recognition_models` package without importing it
    (its __init__ needs pkg_resources, which recent setuptools no longer has)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the face-recognition-models package is not installed; run ./setup.sh (pip install face-recognition-models)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL_FILES[name]
    if not path.is_file():
        raise UserError(f"{path}: dlib model missing from face-recognition-models; reinstall that package")
    return path
