"""`align` on real photographs (../shared/photos): FFHQ geometry, multi-face, EXIF, bad input, reruns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from alignment.ffhq import eyes_and_mouth, ffhq_quad
from alignment.landmarks import FaceFinder
from alignment.stage import AlignOptions, run_align
from common.errors import UserError
from common.face_transform import apply_affine, source_to_crop_matrix, warp_crop_to_source
from common.images import read_rgb
from common.photo_io import read_photo
from tests.conftest import SHARED

REPO = Path(__file__).resolve().parents[1]
PORTRAITS = SHARED / "photos" / "face-recognition"
GROUPS = SHARED / "photos" / "dlib-faces"
pytestmark = pytest.mark.skipif(not PORTRAITS.is_dir(), reason=f"real photos not found at {PORTRAITS}")


def align(inputs, out: Path, **options) -> tuple[list[dict], list[str], object]:
    records, messages = [], []
    summary = run_align(str(inputs), out, AlignOptions(**options), emit=records.append, say=messages.append)
    return records, messages, summary


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True, input=stdin)


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    return FaceFinder()


def test_portrait_eyes_land_on_the_ffhq_template(tmp_path, finder):
    records, _, summary = align(PORTRAITS / "obama.jpg", tmp_path, size=512)
    assert summary.crops == 1 and summary.no_face == 0
    meta = json.loads(Path(records[0]["meta"]).read_text())
    crop = read_rgb(Path(records[0]["aligned"]))
    assert crop.shape == (512, 512, 3)

    # Where the photo's eyes must land, by the stored transform...
    left, right, mouth = eyes_and_mouth(np.array(meta["landmarks"]))
    to_crop = source_to_crop_matrix(np.array(meta["quad"]), 512)
    expected = apply_affine(to_crop, np.stack([left, right]))
    # ...the FFHQ template: about level (the crop's axis blends the eye line with the face's vertical
    # axis), centred, a quarter of the width apart when eye distance sets the scale.
    assert abs(expected[0, 1] - expected[1, 1]) < 0.01 * 512
    assert abs(expected.mean(axis=0)[0] - 256) < 0.01 * 512
    eye_to_eye, eye_to_mouth = np.hypot(*(right - left)), np.hypot(*(mouth - (left + right) / 2))
    if 2.0 * eye_to_eye >= 1.8 * eye_to_mouth:
        assert abs(np.hypot(*(expected[1] - expected[0])) - 128) < 0.5
    assert 0.44 * 512 < expected[0, 1] < 0.50 * 512

    # ...and the pixels agree: landmarks found again on the crop put the eyes there (within 3 px).
    faces = finder.find(crop)
    assert len(faces) == 1
    found_left, found_right, _ = eyes_and_mouth(faces[0].landmarks)
    assert np.abs(np.stack([found_left, found_right]) - expected).max() < 3.0


def test_every_face_of_a_group_photo_is_aligned(tmp_path):
    records, _, summary = align(PORTRAITS / "two_people.jpg", tmp_path)
    assert summary.crops == 2
    assert [Path(r["aligned"]).name for r in records] == ["two_people_0.png", "two_people_1.png"]
    boxes = [json.loads(Path(r["meta"]).read_text())["box"] for r in records]
    area = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    assert area[0] >= area[1]  # largest first
    largest, _, _ = align(PORTRAITS / "two_people.jpg", tmp_path / "largest", largest=True)
    assert len(largest) == 1

    small_faces, _, _ = align(GROUPS / "2008_002470.jpg", tmp_path / "group")
    assert len(small_faces) == 6  # 37-109 px faces, as dlib's HOG finds them


def test_exif_rotated_photo_is_turned_upright(tmp_path):
    original = Image.open(PORTRAITS / "obama.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": stored pixels are turned counter-clockwise
    rotated_path = tmp_path / "in" / "sideways.jpg"
    rotated_path.parent.mkdir()
    original.rotate(90, expand=True).save(rotated_path, quality=95, exif=exif.tobytes())
    assert read_photo(rotated_path).rgb.shape[:2] == np.asarray(original).shape[:2]

    records, _, _ = align(rotated_path, tmp_path / "out")
    reference, _, _ = align(PORTRAITS / "obama.jpg", tmp_path / "ref")
    assert json.loads(Path(records[0]["meta"]).read_text())["exif_orientation"] == 6
    diff = np.abs(read_rgb(Path(records[0]["aligned"])).astype(int) - read_rgb(Path(reference[0]["aligned"])).astype(int))
    assert diff.mean() < 6


def test_stored_quad_maps_the_crop_back_onto_the_photo(tmp_path):
    records, _, _ = align(PORTRAITS / "biden.jpg", tmp_path, size=512)
    meta = json.loads(Path(records[0]["meta"]).read_text())
    photo = read_photo(PORTRAITS / "biden.jpg").rgb
    crop = read_rgb(Path(records[0]["aligned"]))
    warped, coverage = warp_crop_to_source(crop, np.array(meta["quad"]), photo.shape[:2])
    inside = cv2.erode((coverage > 0.999).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert inside.sum() > 0.05 * inside.size
    error = np.abs(warped[inside].astype(float) - photo[inside].astype(float)).mean()
    assert error < 6, error
    # a wrong transform (the quad shifted by 2% of its size) is clearly worse: the check has teeth
    shifted = np.array(meta["quad"]) + 0.02 * np.hypot(*(np.array(meta["quad"][3]) - meta["quad"][0]))
    wrong, _ = warp_crop_to_source(crop, shifted, photo.shape[:2])
    assert np.abs(wrong[inside].astype(float) - photo[inside].astype(float)).mean() > 2 * error


def test_five_point_landmarks_give_nearly_the_same_crop(tmp_path):
    photo = read_photo(PORTRAITS / "obama2.jpg").rgb
    full = FaceFinder(landmarks="68").find(photo)[0]
    fast = FaceFinder(landmarks="5").find(photo)[0]
    q68, q5 = ffhq_quad(full.landmarks), ffhq_quad(fast.landmarks)
    size = np.hypot(*(q68[3] - q68[0]))
    assert np.abs(q68 - q5).max() < 0.08 * size


def test_large_photo_is_detected_small_and_cropped_at_full_resolution(tmp_path):
    photo = read_photo(PORTRAITS / "obama.jpg").rgb
    big = cv2.resize(photo, None, fx=3.5, fy=3.5, interpolation=cv2.INTER_CUBIC)
    big_path = tmp_path / "big.png"
    cv2.imwrite(str(big_path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    records, _, _ = align(big_path, tmp_path / "out")
    reference, _, _ = align(PORTRAITS / "obama.jpg", tmp_path / "ref")
    quad_big = np.array(json.loads(Path(records[0]["meta"]).read_text())["quad"])
    quad_ref = np.array(json.loads(Path(reference[0]["meta"]).read_text())["quad"])
    assert np.abs(quad_big / 3.5 - quad_ref).max() < 4
    diff = np.abs(read_rgb(Path(records[0]["aligned"])).astype(int) - read_rgb(Path(reference[0]["aligned"])).astype(int))
    assert diff.mean() < 8


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "I;16", "P", "webp", "tiff", "bmp"])
def test_pixel_modes_are_converted(tmp_path, mode):
    base = Image.open(PORTRAITS / "obama_small.jpg").convert("RGB")
    if mode in ("webp", "tiff", "bmp"):
        image, path = base, tmp_path / f"photo.{mode.upper()}"
    elif mode == "I;16":
        image = Image.fromarray((np.asarray(base.convert("L")).astype(np.uint16) * 257))
        path = tmp_path / "photo.png"
    else:
        image = base.convert(mode) if mode != "P" else base.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
        path = tmp_path / ("photo.jpg" if mode == "CMYK" else "photo.png")
    if not path.exists():
        image.save(path)
    rgb = read_photo(path).rgb
    assert rgb.dtype == np.uint8 and rgb.shape == (*np.asarray(base).shape[:2], 3)
    if mode in ("webp", "tiff", "bmp"):
        image.save(path, format=mode.upper() if mode != "tiff" else "TIFF")
    reference = np.asarray(base.convert("L") if mode in ("L", "I;16") else base).astype(float)
    got = rgb.astype(float).mean(axis=2) if mode in ("L", "I;16") else rgb.astype(float)
    assert np.abs(got - reference).mean() < 12
    records, _, _ = align(path, tmp_path / "out")
    assert len(records) == 1


def test_bad_files_are_reported_and_the_batch_goes_on(tmp_path):
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.JPG").write_text("this is a text file named like a photo\n")
    data = (PORTRAITS / "obama.jpg").read_bytes()
    (folder / "sub" / "truncated.jpg").write_bytes(data[:2000])
    (folder / "sub" / "dogs.jpeg").write_bytes((GROUPS / "dogs.jpg").read_bytes())
    (folder / "sub" / "good.JPG").write_bytes(data)
    out = tmp_path / "out"
    result = run_cli("align", str(folder), str(out))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["aligned"]).relative_to(out).as_posix() for r in lines] == ["sub/good_0.png"]
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert sorted((Path(f["source"]).name, f["error"]) for f in failures) == [
        ("dogs.jpeg", "no_face"), ("notes.JPG", "unreadable"), ("truncated.jpg", "unreadable")
    ]
    for name in ("notes.JPG", "truncated.jpg"):
        line = next(l for l in result.stderr.splitlines() if name in l)
        assert "not a readable image" in line and "skipped" in line
    assert "aligned 1 face(s) from 4 photo(s)" in result.stderr


def test_nothing_aligned_exits_non_zero(tmp_path):
    only_dogs = run_cli("align", str(GROUPS / "dogs.jpg"), str(tmp_path / "a"))
    assert only_dogs.returncode == 1 and "no face found" in only_dogs.stderr
    (tmp_path / "empty").mkdir()
    empty = run_cli("align", str(tmp_path / "empty"), str(tmp_path / "b"))
    assert empty.returncode == 1 and "no images found" in empty.stderr


def test_unusable_paths_fail_before_any_work(tmp_path):
    missing = run_cli("align", str(tmp_path / "nope"), str(tmp_path / "out"))
    assert missing.returncode == 2 and "nope: no such file or folder" in missing.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="is a file, so OUT cannot be created there"):
        align(PORTRAITS / "obama.jpg", blocker / "out")


def test_rerun_skips_finished_photos_and_overwrite_redoes_them(tmp_path):
    first, _, _ = align(PORTRAITS / "two_people.jpg", tmp_path)
    stamps = {r["aligned"]: Path(r["aligned"]).stat().st_mtime_ns for r in first}
    again, _, summary = align(PORTRAITS / "two_people.jpg", tmp_path)
    assert again == first and summary.skipped_photos == 1
    assert all(Path(p).stat().st_mtime_ns == t for p, t in stamps.items())
    redone, _, summary = align(PORTRAITS / "two_people.jpg", tmp_path, overwrite=True)
    assert summary.skipped_photos == 0 and len(redone) == 2
    assert not list(tmp_path.rglob("*.tmp"))


def test_stdin_takes_paths_and_json_lines(tmp_path):
    stdin = f"{PORTRAITS / 'obama_small.jpg'}\n" + json.dumps({"path": str(PORTRAITS / "biden2.jpg")}) + "\n"
    result = run_cli("align", "-", str(tmp_path), stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert sorted(Path(json.loads(l)["aligned"]).name for l in result.stdout.splitlines()) == ["biden2_0.png", "obama_small_0.png"]


def test_cnn_detector_finds_the_same_face(tmp_path):
    hog, _, _ = align(PORTRAITS / "obama_small.jpg", tmp_path / "hog")
    cnn, _, _ = align(PORTRAITS / "obama_small.jpg", tmp_path / "cnn", detector="cnn")
    assert len(cnn) == 1
    quads = [np.array(json.loads(Path(r[0]["meta"]).read_text())["quad"]) for r in (hog, cnn)]
    size = np.hypot(*(quads[0][3] - quads[0][0]))
    assert np.abs(quads[0] - quads[1]).max() < 0.05 * size  # the landmarks, not the box, define the crop
