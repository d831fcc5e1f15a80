"""What each SeFa direction measurably does, so a user can name it without guessing from grids.

For every direction, a fixed set of seeded samples (the preview's, `factorization/preview.sample_codes`)
is rendered moved to -d and +d, and each render is measured (`common/face_measures.py`: head pose, mouth,
eyes, framing, skin / hair / background colour). Per measure: the mean change per unit strength,
(m(+d) - m(-d)) / 2d over the samples, and its consistency, the share of samples that move the same way
as the mean. Also: how much of the render changed (mean absolute pixel change between -d and +d, 0-1)
and the identity distance between the -d and +d renders (dlib's descriptor; over 0.6: another person).

A suggested label is the measure with the largest effect over the whole range 2d, in units of what is
a clear change for it (`CLEAR_CHANGE`: 15 degrees of yaw, 0.08 of luminance, ...). Its confidence is
consistency x min(1, effect) x dominance, dominance = effect / (effect + the runner-up's): a direction
that turns every face by 30 degrees and does little else is a confident `yaw`; one that changes many
things a little is not confidently anything. Directions whose renders have no face dlib can find get
`NO_FACE` instead of figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from common import face_measures, images
from common.identity import descriptor, distance_between
from common.progress import track
from factorization.preview import PreviewSettings, sample_codes
from generators.interface import LatentGenerator
from generators.latent_edit import move_along

NO_FACE = "no face in the renders"
MEASURE_SIDE = 256  # renders are measured at this size

# What a clear change of each measure is (its effect over the range 2d is divided by this).
CLEAR_CHANGE = {
    "yaw": 15.0, "pitch": 10.0, "roll": 10.0, "mouth_open": 0.15, "smile": 0.15, "eyes_open": 0.08,
    "face_size": 0.15,  # relative: a 15 % larger face
    "face_x": 0.05, "face_y": 0.05,
    "skin_light": 0.08, "hair_light": 0.08, "background_light": 0.08,
    "skin_hue": 20.0, "hair_hue": 20.0, "background_hue": 20.0,
}
LABELS = {"face_size": "zoom", "face_x": "shift_x", "face_y": "shift_y"}  # the rest are named as measured


@dataclass(frozen=True)
class DescribeSettings:
    num_samples: int = 6
    distance: float = 3.0
    seed: int = 0
    truncation_psi: float = 0.7
    truncation_cutoff: int = 8
    batch_size: int = 8


@dataclass
class DirectionDescription:
    index: int
    faces_found: int  # samples with a face at both -d and +d
    samples: int
    pixel_change: float
    identity_change: float | None  # mean descriptor distance between -d and +d renders
    measures: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> {per_unit, consistency, effect}
    label: str | None = None
    confidence: float = 0.0
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"direction": self.index, "faces_found": self.faces_found, "samples": self.samples,
                "pixel_change": round(self.pixel_change, 5),
                "identity_change": None if self.identity_change is None else round(self.identity_change, 4),
                "measures": {name: {k: round(v, 5) for k, v in values.items()} for name, values in self.measures.items()},
                "suggested_label": None if self.label is None else {"label": self.label, "confidence": round(self.confidence, 3)},
                **({"note": self.note} if self.note else {})}


def _measure_side(picture: np.ndarray) -> np.ndarray:
    if picture.shape[0] == MEASURE_SIDE:
        return picture
    interpolation = cv2.INTER_AREA if picture.shape[0] > MEASURE_SIDE else cv2.INTER_CUBIC
    return cv2.resize(picture, (MEASURE_SIDE, MEASURE_SIDE), interpolation=interpolation)


@torch.no_grad()
def _render(generator: LatentGenerator, codes: torch.Tensor, batch_size: int) -> list[np.ndarray]:
    return [_measure_side(picture) for start in range(0, len(codes), batch_size)
            for picture in images.tensor_to_uint8(generator.render(codes[start : start + batch_size]))]


def summarise(index: int, low: list[np.ndarray], high: list[np.ndarray], distance: float) -> DirectionDescription:
    """The description of one direction from its renders at -d (`low`) and +d (`high`), sample by sample."""
    pixel_change = float(np.mean([np.abs(a.astype(np.float64) - b).mean() / 255 for a, b in zip(low, high)]))
    pairs = [(face_measures.measure(a), face_measures.measure(b)) for a, b in zip(low, high)]
    found = [(a, b) for a, b in pairs if a is not None and b is not None]
    result = DirectionDescription(index, len(found), len(low), pixel_change, None)
    if len(found) * 2 < len(low):  # faces in fewer than half the samples: no figures to trust
        result.note = NO_FACE
        return result
    distances = []
    for picture_low, picture_high in zip(low, high):
        before, after = descriptor(picture_low), descriptor(picture_high)
        if before is not None and after is not None:
            distances.append(distance_between(before, after))
    result.identity_change = float(np.mean(distances)) if distances else None
    for name in face_measures.MEASURES:
        changes = []
        for a, b in found:
            before, after = getattr(a, name), getattr(b, name)
            if math.isnan(before) or math.isnan(after):
                continue
            delta = face_measures.change(name, before, after)
            if name == "face_size":
                delta = delta / max((before + after) / 2, 1e-6)  # relative
            changes.append(delta)
        if not changes:
            continue
        mean = float(np.mean(changes))
        consistency = float(np.mean([np.sign(c) == np.sign(mean) and c != 0 for c in changes]))
        result.measures[name] = {"per_unit": mean / (2 * distance), "consistency": consistency,
                                 "effect": abs(mean) / CLEAR_CHANGE[name]}
    ranked = sorted(result.measures.items(), key=lambda item: item[1]["effect"], reverse=True)
    if ranked and ranked[0][1]["effect"] > 0:
        best, values = ranked[0]
        runner_up = ranked[1][1]["effect"] if len(ranked) > 1 else 0.0
        dominance = values["effect"] / (values["effect"] + runner_up)
        result.label = LABELS.get(best, best)
        result.confidence = values["consistency"] * min(1.0, values["effect"]) * dominance
    return result


def describe_directions(generator: LatentGenerator, directions: np.ndarray, layers: list[int], settings: DescribeSettings,
                        device: torch.device) -> list[DirectionDescription]:
    """One description per direction (rows of `directions`), moved on `layers`."""
    preview = PreviewSettings(num_samples=settings.num_samples, seed=settings.seed, truncation_psi=settings.truncation_psi,
                              truncation_cutoff=settings.truncation_cutoff)
    codes = sample_codes(generator, preview, device)
    results = []
    for k in track(range(len(directions)), "describing", unit="directions"):
        direction = torch.as_tensor(directions[k], dtype=torch.float32, device=device)
        low = _render(generator, move_along(codes, direction, layers, -settings.distance), settings.batch_size)
        high = _render(generator, move_along(codes, direction, layers, settings.distance), settings.batch_size)
        results.append(summarise(k, low, high, settings.distance))
    return results
