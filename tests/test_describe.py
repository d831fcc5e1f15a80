"""`factorize --describe`: each measure checked on real photos under transforms whose effect is known,
the description of directions whose effect is known (a test generator that turns or zooms a real face),
and the refusal to make up figures for renders without a face."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from common import face_measures
from common.directions_file import DirectionLabel
from common.images import read_rgb
from factorization.describe import NO_FACE, DescribeSettings, describe_directions
from factorization.stage import accept_suggestions
from tests.conftest import SHARED

REPO = Path(__file__).resolve().parents[1]
PHOTOS = SHARED / "photos"
FRONTAL = PHOTOS / "face-recognition" / "biden2.jpg"
TURNED = PHOTOS / "dlib-faces" / "2008_001322.jpg"  # its largest face looks about 40 degrees to the side
pytestmark = pytest.mark.skipif(not FRONTAL.is_file() or not TURNED.is_file(), reason=f"shared photos not found at {PHOTOS}")


def warp(image: np.ndarray, angle: float = 0.0, scale: float = 1.0) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def face_crop(path: Path, side: int = 256) -> np.ndarray:
    """A square around the largest face (about half the crop, as in an aligned crop), at `side` px."""
    image = read_rgb(path)
    points = face_measures.landmarks(image)
    centre, half = points.mean(axis=0), int(np.ptp(points, axis=0).max())
    x0, y0 = int(centre[0]) - half, int(centre[1]) - half
    padded = cv2.copyMakeBorder(image, 2 * half, 2 * half, 2 * half, 2 * half, cv2.BORDER_REFLECT)
    crop = padded[y0 + 2 * half : y0 + 4 * half, x0 + 2 * half : x0 + 4 * half]
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)


def test_a_mirrored_photo_flips_the_sign_of_the_yaw():
    image = read_rgb(TURNED)
    turned, mirrored = face_measures.measure(image), face_measures.measure(np.ascontiguousarray(image[:, ::-1]))
    assert abs(turned.yaw) > 20 and np.sign(mirrored.yaw) == -np.sign(turned.yaw)
    assert abs(abs(mirrored.yaw) - abs(turned.yaw)) < 5


@pytest.mark.parametrize("angle", [-12.0, 8.0])
def test_a_rotated_photo_shows_the_rotation_as_roll(angle):
    image = read_rgb(FRONTAL)
    before, after = face_measures.measure(image), face_measures.measure(warp(image, angle))
    assert abs(face_measures.change("roll", before.roll, after.roll) - angle) <= 2


@pytest.mark.parametrize("scale", [0.85, 1.2])
def test_a_rescaled_photo_shows_the_zoom_factor(scale):
    image = read_rgb(FRONTAL)
    before, after = face_measures.measure(image), face_measures.measure(warp(image, scale=scale))
    assert after.face_size / before.face_size == pytest.approx(scale, rel=0.03)
    assert abs(after.face_x - before.face_x) < 0.03 + abs(scale - 1) * abs(before.face_x - 0.5)


def test_a_brightened_hair_region_shows_in_hair_and_not_in_skin():
    image = face_crop(FRONTAL)
    points = face_measures.landmarks(image)
    _, hair, _ = face_measures.region_masks(points, *image.shape[:2])
    brighter = image.copy()
    brighter[hair] = np.clip(brighter[hair].astype(int) + 60, 0, 255).astype(np.uint8)
    before, after = face_measures.measure(image), face_measures.measure(brighter)
    assert after.hair_light - before.hair_light > 0.1
    assert abs(after.skin_light - before.skin_light) < 0.01 and abs(after.yaw - before.yaw) < 2


class TurningFace(torch.nn.Module):
    """A stand-in generator whose z renders one real face crop, turned by 4 degrees per unit of z[0] and
    zoomed by 5 % per unit of z[1]; z[2] does nothing. Only what `generators/interface.py` names."""

    latent_kind, invertible, has_shared_w, default_truncation_cutoff = "Z", False, False, None
    z_dim = w_dim = 3
    num_ws, num_classes = 1, 0

    def __init__(self, face: np.ndarray) -> None:
        super().__init__()
        self.face = face
        self.img_resolution = face.shape[0]
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # a parameter, so the device can be found

    def sample_codes(self, z, truncation_psi=1.0, truncation_cutoff=None, class_index=None):
        return (0.2 * z)[:, None, :]  # small variations around the photo

    def render(self, codes, noise_mode="const"):
        pictures = [warp(self.face, 4.0 * float(c[0, 0]), 1.05 ** float(c[0, 1])) for c in codes]
        return torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() / 127.5 - 1

    def mean_code(self):
        return torch.zeros([1, 3])


def test_directions_that_turn_or_zoom_the_face_are_described_as_roll_and_zoom():
    generator = TurningFace(face_crop(FRONTAL))
    settings = DescribeSettings(num_samples=3, distance=3.0)
    turn, zoom, nothing = describe_directions(generator, np.eye(3), [0], settings, torch.device("cpu"))
    assert turn.label == "roll" and turn.confidence > 0.5 and turn.measures["roll"]["consistency"] == 1.0
    assert turn.measures["roll"]["per_unit"] == pytest.approx(4.0, abs=0.5)  # degrees per unit strength
    assert zoom.label == "zoom" and zoom.confidence > 0.5
    assert zoom.measures["face_size"]["per_unit"] == pytest.approx(np.log(1.05) * 1.0, rel=0.25)
    assert nothing.pixel_change == 0 and nothing.confidence == 0
    assert turn.identity_change is not None and turn.identity_change < 0.6  # turning the head keeps the person


def test_renders_without_a_face_get_no_figures():
    generator = TurningFace(np.full((128, 128, 3), 127, np.uint8))
    (result,) = describe_directions(generator, np.eye(3)[:1], [0], DescribeSettings(num_samples=2), torch.device("cpu"))
    assert result.note == NO_FACE and result.label is None and result.measures == {}


def test_accepted_labels_never_replace_the_users_and_the_more_confident_direction_wins():
    def suggestion(index, label, confidence, per_unit):
        measure = {"zoom": "face_size"}.get(label, label)
        return {"direction": index, "suggested_label": {"label": label, "confidence": confidence},
                "measures": {measure: {"per_unit": per_unit}}}

    labels = {"age": DirectionLabel(index=0)}
    added = accept_suggestions(labels, [suggestion(0, "yaw", 0.9, 1.0), suggestion(1, "yaw", 0.7, -1.0),
                                        suggestion(2, "yaw", 0.95, -2.0), suggestion(3, "zoom", 0.8, 0.1),
                                        suggestion(4, "smile", 0.3, 1.0)])
    assert added == {"yaw": 2, "zoom": 3}  # direction 0 is the user's "age"; smile is not confident enough
    assert labels["yaw"].sign == -1 and labels["zoom"].sign == 1 and labels["age"].index == 0


def test_factorize_describe_on_the_bundled_model_says_no_face(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "factorize", str(REPO / "assets" / "example-stylegan2-64.pt"),
                             "--out", str(tmp_path / "dirs"), "-K", "2", "--describe", "--json", "--accept-labels",
                             "--device", "cpu"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["direction"] for row in rows] == [0, 1] and all(row["note"] == NO_FACE for row in rows)
    assert all(row["suggested_label"] is None and row["measures"] == {} for row in rows)
    assert not (tmp_path / "dirs" / "labels.json").exists()
    assert json.loads((tmp_path / "dirs" / "description.json").read_text())["directions"] == rows
    assert NO_FACE in (tmp_path / "dirs" / "index.html").read_text()
    refused = subprocess.run([sys.executable, str(REPO / "cli.py"), "factorize", str(REPO / "assets" / "example-stylegan2-64.pt"),
                              "--out", str(tmp_path / "d2"), "--json"], capture_output=True, text=True)
    assert refused.returncode == 2 and "add --describe" in refused.stderr
