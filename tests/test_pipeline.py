"""`run` end to end on real photos with the bundled model: outputs, bad inputs, and resuming after a kill."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from common.images import read_rgb
from tests.conftest import SHARED

REPO = Path(__file__).resolve().parents[1]
PORTRAITS = SHARED / "photos" / "face-recognition"
GROUPS = SHARED / "photos" / "dlib-faces"
pytestmark = pytest.mark.skipif(not PORTRAITS.is_dir(), reason=f"real photos not found at {PORTRAITS}")
FAST = ("--steps", "15", "--batch-size", "1", "--edit", "0=-2:2:3", "--edit", "3=1", "--device", "cpu")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(PORTRAITS / "obama_small.jpg", folder / "obama_small.jpg")
    shutil.copy(PORTRAITS / "two_people.jpg", folder / "two_people.jpg")
    shutil.copy(GROUPS / "dogs.jpg", folder / "dogs.jpg")  # no face
    (folder / "broken.jpg").write_text("not a photo")
    return folder


def command(photos: Path, out: Path) -> list[str]:
    return [sys.executable, str(REPO / "cli.py"), "run", str(photos), str(out), *FAST]


def files_of(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and not p.name.endswith((".jsonl", ".html"))}


@pytest.fixture(scope="module")
def complete_run(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("complete") / "out"
    result = subprocess.run(command(photos, out), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return out


def test_run_writes_every_stage_and_a_report(complete_run):
    out = complete_run
    crops = sorted(p.name for p in (out / "aligned").rglob("*.png"))
    assert crops == ["obama_small_0.png", "two_people_0.png", "two_people_1.png"]
    assert sorted(p.name for p in (out / "codes").glob("*.npy")) == ["obama_small_0.npy", "two_people_0.npy", "two_people_1.npy"]
    assert len(list((out / "directions").glob("*/directions.npz"))) == 1
    for face in ("obama_small_0", "two_people_0", "two_people_1"):
        assert (out / "edits" / face / "grid.png").is_file()
    # one picture per photo, edit and strength, with every face of the photo edited
    assert sorted(p.name for p in (out / "photos").iterdir()) == ["obama_small", "two_people"]
    for photo in ("obama_small", "two_people"):
        pasted = sorted(p.name for p in (out / "photos" / photo).glob("*.jpg"))
        assert pasted == ["photo_dir00_+0p00.jpg", "photo_dir00_+2p00.jpg", "photo_dir00_-2p00.jpg", "photo_dir03_+1p00.jpg"]
    # a pasted photo keeps the original's full size, and both faces of two_people changed in it
    original = read_rgb(PORTRAITS / "two_people.jpg")
    pasted = read_rgb(out / "photos" / "two_people" / "photo_dir03_+1p00.jpg")
    assert pasted.shape == original.shape
    for face in ("two_people_0", "two_people_1"):
        quad = np.array(json.loads((out / "aligned" / f"{face}.json").read_text())["quad"])
        x, y = quad.mean(axis=0).astype(int)
        assert np.abs(pasted[y - 10 : y + 10, x - 10 : x + 10].astype(int) - original[y - 10 : y + 10, x - 10 : x + 10]).mean() > 10
    page = (out / "index.html").read_text()
    assert "codes/two_people_1_rec.png" in page and "edits/obama_small_0/grid.png" in page and "dogs.jpg" in page
    # the bundled encoder's own reconstruction beside the optimised one, each with its PSNR
    assert "codes/two_people_1_encoder.png" in page and "encoder only, PSNR" in page and "optimised (15 steps), PSNR" in page
    failures = {json.loads(line)["error"] for line in (out / "aligned" / "failures.jsonl").read_text().splitlines()}
    assert failures == {"no_face", "unreadable"}


def test_interrupted_run_resumes_to_the_same_files(photos, complete_run, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(command(photos, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "codes").glob("*.npy")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted = files_of(out)
    assert any(name.endswith(".npy") for name in interrupted), "killed before any code was written"
    assert interrupted != files_of(complete_run), "the run finished before it could be interrupted"

    result = subprocess.run(command(photos, out), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # a kill can leave the temporary file of a write in progress (never a half-written output); ignore those
    leftovers = {p for p in files_of(out) if Path(p).name.startswith(".") and p.endswith(".tmp")}
    assert files_of(out) - leftovers == files_of(complete_run)
    for code in (complete_run / "codes").glob("*.npy"):
        np.testing.assert_allclose(np.load(out / "codes" / code.name), np.load(code), atol=1e-4)
    for image in (complete_run / "edits").rglob("*.png"):
        assert np.abs(read_rgb(out / image.relative_to(complete_run)).astype(int) - read_rgb(image)).max() <= 2


def test_stages_chain_through_shell_pipes(tmp_path):
    generator = REPO / "assets" / "example-stylegan2-64.pt"
    cli = f"{sys.executable} {REPO / 'cli.py'}"
    factorize = subprocess.run(f"{cli} factorize {generator} --out {tmp_path / 'dirs'} --layers 0-3 -K 3",
                               shell=True, capture_output=True, text=True)
    assert factorize.returncode == 0, factorize.stderr
    pipe = (f"{cli} align {PORTRAITS / 'two_people.jpg'} {tmp_path / 'a'} "
            f"| {cli} invert - {tmp_path / 'c'} -g {generator} --perceptual none --steps 5 "
            f"| {cli} edit - {tmp_path / 'e'} -g {generator} -d {tmp_path / 'dirs' / 'directions.npz'} --edit 1=3 --paste-back")
    result = subprocess.run(["bash", "-o", "pipefail", "-c", pipe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2
    for record in records:
        assert Path(record["grid"]).is_file()
        assert [Path(p).name for p in record["photos"]] == ["photo_dir01_+3p00.jpg"]
        assert read_rgb(Path(record["photos"][0])).shape == read_rgb(PORTRAITS / "two_people.jpg").shape


def test_unknown_model_name_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "run", str(PORTRAITS), str(tmp_path), "-g", "stylegan9-mars"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "stylegan9-mars: neither a file nor a known model name (`sefa-edit models list` shows the names)" in result.stderr
