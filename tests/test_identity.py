"""Identity distance (issue 20, first part): dlib's face descriptor on the shared photos, and the score
recorded by invert and edit and shown by the report."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from alignment.stage import AlignOptions, run_align
from common.identity import DRIFT_WARNING, NO_FACE_IN_RENDER, SAME_PERSON, descriptor, distance_between, identity_distance
from common.images import read_rgb
from tests.conftest import SHARED
from tests.hardening_helpers import GENERATOR

PORTRAITS = SHARED / "photos" / "face-recognition"
PEOPLE = {"obama": "obama", "obama2": "obama", "obama3": "obama", "obama_small": "obama", "biden": "biden", "biden2": "biden"}
pytestmark = pytest.mark.skipif(not PORTRAITS.is_dir(), reason=f"real photos not found at {PORTRAITS}")


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("aligned")
    records: list[dict] = []
    for name in PEOPLE:
        run_align(str(PORTRAITS / f"{name}.jpg"), out, AlignOptions(largest=True), emit=records.append, say=lambda m: None)
    return {Path(r["source"]).stem: Path(r["aligned"]) for r in records}


def test_same_people_are_under_the_threshold_and_different_people_over_it(crops):
    found = {name: descriptor(read_rgb(path)) for name, path in crops.items()}
    assert set(found) == set(PEOPLE) and all(value is not None and value.shape == (128,) for value in found.values())
    names = sorted(found)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            apart = distance_between(found[a], found[b])
            if PEOPLE[a] == PEOPLE[b]:
                assert apart < SAME_PERSON, (a, b, apart)
            else:
                assert apart > SAME_PERSON + 0.1, (a, b, apart)


def test_a_mirrored_or_rescaled_crop_stays_the_same_person(crops):
    crop = read_rgb(crops["obama"])
    assert identity_distance(crop, crop[:, ::-1]) < 0.25
    assert identity_distance(crop, cv2.resize(crop, (200, 200), interpolation=cv2.INTER_AREA)) < 0.15
    noise = np.random.default_rng(0).integers(0, 256, crop.shape, dtype=np.uint8)
    assert identity_distance(crop, noise) == NO_FACE_IN_RENDER


def test_invert_and_edit_record_the_identity_of_every_reconstruction_and_edit(crops, tmp_path):
    from editing.stage import EditOptions, run_edit
    from factorization.stage import run_factorize
    from inversion.optimize import InversionSettings
    from inversion.stage import run_invert

    records: list[dict] = []
    summary = run_invert(str(crops["obama"]), tmp_path / "codes", GENERATOR, None, InversionSettings(steps=1),
                         perceptual="none", device_name="cpu", emit=records.append)
    assert summary["inverted"] == 1
    metrics = json.loads((tmp_path / "codes" / "metrics.jsonl").read_text().splitlines()[0])
    assert metrics["identity"] == NO_FACE_IN_RENDER  # the bundled model is untrained: its renders hold no face
    assert records[0]["identity"] == NO_FACE_IN_RENDER
    info = json.loads(next((tmp_path / "codes").glob("*.json")).read_text())
    assert len(info["photo_descriptor"]) == 128
    person = np.array(info["photo_descriptor"])
    assert distance_between(person, descriptor(read_rgb(crops["obama2"]))) < SAME_PERSON  # the stored person is obama

    run_factorize(GENERATOR, tmp_path / "dirs", "all", 2)
    edited: list[dict] = []
    run_edit(str(tmp_path / "codes"), tmp_path / "edits", GENERATOR, tmp_path / "dirs" / "directions.npz", ["0=-1,1"],
             EditOptions(), "cpu", emit=edited.append)
    assert edited[0]["identity"] == {"reconstruction.png": NO_FACE_IN_RENDER, "dir00_-1p00.png": NO_FACE_IN_RENDER,
                                     "dir00_+1p00.png": NO_FACE_IN_RENDER}
    again: list[dict] = []
    run_edit(str(tmp_path / "codes"), tmp_path / "edits", GENERATOR, tmp_path / "dirs" / "directions.npz", ["0=-1,1"],
             EditOptions(), "cpu", emit=again.append)
    assert again[0]["identity"] == edited[0]["identity"]  # a rerun that redoes nothing still reports it


def test_the_report_marks_edits_that_drift_from_the_person(tmp_path):
    from pipeline.report import _identity_line

    folder = tmp_path / "edits" / "face"
    folder.mkdir(parents=True)
    (folder / ".edit.json").write_text(json.dumps({"identity": {"reconstruction.png": 0.2, "dir00_-3p00.png": 0.31,
                                                                "dir00_+3p00.png": 0.72, "dir01_+3p00.png": NO_FACE_IN_RENDER}}))
    line = _identity_line(folder)
    assert f"1 {DRIFT_WARNING}" in line and '<span class="drift">dir00 +3: 0.72</span>' in line
    assert "dir00 -3: 0.31" in line and f"dir01 +3: {NO_FACE_IN_RENDER}" in line and "reconstruction" not in line


def test_identity_can_be_turned_off_and_says_so(crops, monkeypatch):
    from common.identity import IDENTITY_OFF

    monkeypatch.setenv("SEFA_EDIT_IDENTITY", "0")
    crop = read_rgb(crops["obama"])
    assert identity_distance(crop, crop) == IDENTITY_OFF
