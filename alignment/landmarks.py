"""Faces and 68 (or 5) landmarks with dlib, models taken from the `face-recognition-models` package.

Large photos are searched at a reduced size (the detector's cost grows with the pixel count and a
face filling a 4000-pixel photo is found just as well at 1200), but the landmarks are fitted on the
full-resolution photo, inside the box scaled back up, so the crop keeps every pixel of precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np

from common.dlib_models import model_path
from common.errors import UserError



@dataclass(frozen=True)
class DetectedFace:
    box: tuple[int, int, int, int]  # left, top, right, bottom in full-resolution pixels
    score: float
    landmarks: np.ndarray  # [68, 2] or [5, 2], x/y in full-resolution pixels


class FaceFinder:
    """Detector + shape predictor, loaded once and reused for every photo of a run."""

    def __init__(self, detector: str = "hog", landmarks: str = "68", upsample: int = 1, detect_max_side: int = 1280,
                 predictor_path: Path | None = None, min_score: float = 0.2) -> None:
        if detector not in ("hog", "cnn"):
            raise UserError(f"--detector {detector!r}: expected hog or cnn")
        if landmarks not in ("68", "5"):
            raise UserError(f"--landmarks {landmarks!r}: expected 68 or 5")
        self.detector_name, self.landmarks_model = detector, landmarks
        self.upsample, self.detect_max_side, self.min_score = upsample, detect_max_side, min_score
        if detector == "hog":
            self._detector = dlib.get_frontal_face_detector()
        else:
            self._detector = dlib.cnn_face_detection_model_v1(str(model_path("mmod")))
        self._predictor = dlib.shape_predictor(str(predictor_path or model_path(landmarks)))

    def detect(self, rgb: np.ndarray) -> list[tuple[tuple[int, int, int, int], float]]:
        """Face boxes (full-resolution pixels) with detector scores, searched at <= detect_max_side."""
        height, width = rgb.shape[:2]
        scale = min(1.0, self.detect_max_side / max(height, width))
        small = rgb if scale == 1.0 else cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        boxes = []
        if self.detector_name == "hog":
            rects, scores, _ = self._detector.run(small, self.upsample, 0.0)
            found = list(zip(rects, scores))
        else:
            found = [(d.rect, d.confidence) for d in self._detector(small, self.upsample)]
        for rect, score in found:
            if score < self.min_score:
                continue  # the weakest HOG hits are mostly not faces (patches, textures)
            box = (rect.left() / scale, rect.top() / scale, rect.right() / scale, rect.bottom() / scale)
            boxes.append((tuple(int(round(v)) for v in box), float(score)))
        return boxes

    def landmarks(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        shape = self._predictor(rgb, dlib.rectangle(*box))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def find(self, rgb: np.ndarray) -> list[DetectedFace]:
        """All faces, largest first (so face 0 is the main subject)."""
        faces = [DetectedFace(box, score, self.landmarks(rgb, box)) for box, score in self.detect(rgb)]
        return sorted(faces, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
