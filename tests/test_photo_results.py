"""What people get back from `run`: group photos with every face edited, sources' formats kept,
H.264 sweeps, progress lines in logs, and a report that explains itself and loads in a real browser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.images import read_rgb
from common.photo_io import read_photo
from common.sweeps import read_video_frames, video_codec
from common.demo_models import DEMO_WARNING
from pipeline.report import natural_key
from tests.conftest import SHARED

REPO = Path(__file__).resolve().parents[1]
PORTRAITS = SHARED / "photos" / "face-recognition"
GROUPS = SHARED / "photos" / "dlib-faces"
pytestmark = pytest.mark.skipif(not (PORTRAITS.is_dir() and GROUPS.is_dir()), reason=f"real photos not found under {SHARED}")
FAST = ("--steps", "0", "--edit", "0=-2,2", "--animate", "mp4", "--preview", "--device", "cpu")


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(GROUPS / "2008_002079.jpg", folder / "2008_002079.jpg")  # six faces, four of them under 64 px
    shutil.copy(PORTRAITS / "obama_small.jpg", folder / "obama_small.jpg")
    rgb = read_photo(PORTRAITS / "two_people.jpg").rgb
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :120] = np.linspace(0, 255, 120, dtype=np.uint8)[None]  # a transparent left edge
    alpha[:40] = 0
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(folder / "cutout.png")
    (folder / "broken.jpg").write_text("not a photo")
    return folder


@pytest.fixture(scope="module")
def run_out(photos, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("run") / "out"
    result = cli("run", str(photos), str(out), *FAST, env={"SEFA_EDIT_STATUS_SECONDS": "0"})
    assert result.returncode == 0, result.stderr
    return out, result


def quads(out: Path, photo_stem: str) -> dict[str, np.ndarray]:
    return {p.stem: np.array(json.loads(p.read_text())["quad"]) for p in sorted((out / "aligned").glob(f"{photo_stem}_*.json"))}


def box_change(before: np.ndarray, after: np.ndarray, quad: np.ndarray, inset: float = 0.35) -> float:
    """Mean |change| in the middle of a face's crop square (the face itself)."""
    (x0, y0), (x1, y1) = quad.min(axis=0), quad.max(axis=0)
    dx, dy = (x1 - x0) * inset, (y1 - y0) * inset
    ys, xs = slice(max(0, int(y0 + dy)), int(y1 - dy)), slice(max(0, int(x0 + dx)), int(x1 - dx))
    return float(np.abs(after[ys, xs].astype(int) - before[ys, xs].astype(int)).mean())


def outside_all(quads_of: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Pixels outside every face's crop square (with a margin): paste-back must not touch them."""
    keep = np.ones(shape, bool)
    for quad in quads_of.values():
        (x0, y0), (x1, y1) = np.floor(quad.min(axis=0)) - 2, np.ceil(quad.max(axis=0)) + 2
        keep[max(0, int(y0)) : max(0, int(y1)), max(0, int(x0)) : max(0, int(x1))] = False
    return keep


def test_group_photo_comes_back_once_per_strength_with_every_large_face_edited(run_out):
    out, result = run_out
    folder = out / "photos" / "2008_002079"
    assert sorted(p.name for p in folder.glob("photo_*")) == ["photo_dir00.mp4", "photo_dir00_+2p00.jpg", "photo_dir00_-2p00.jpg"]
    original = read_photo(GROUPS / "2008_002079.jpg").rgb
    edited = read_rgb(folder / "photo_dir00_+2p00.jpg")
    faces = quads(out, "2008_002079")
    sides = {name: float(np.linalg.norm(quad[3] - quad[0])) for name, quad in faces.items()}
    large = [name for name, side in sides.items() if side >= 64]
    small = [name for name, side in sides.items() if side < 64]
    assert len(large) == 2 and len(small) == 4
    for name in large:
        assert box_change(original, edited, faces[name]) > 8, name
    for name in small:  # untouched: only JPEG re-encoding differs
        assert box_change(original, edited, faces[name]) < 3, name
    marker = json.loads((folder / ".paste.json").read_text())
    assert sorted(entry["face"] for entry in marker["untouched"]) == sorted(small)
    assert "4 face(s) under 64 px left untouched" in result.stderr
    assert not (out / "photos" / "2008_002079_0").exists()  # no per-face copies by default


def test_png_in_gives_png_out_with_its_alpha_and_untouched_pixels_exact(run_out, photos):
    out, _ = run_out
    pasted = sorted((out / "photos" / "cutout").glob("photo_*.png"))
    assert [p.name for p in pasted] == ["photo_dir00_+2p00.png", "photo_dir00_-2p00.png"]
    with Image.open(photos / "cutout.png") as image:
        source = np.asarray(image.convert("RGBA"))
    with Image.open(pasted[0]) as image:
        assert image.mode == "RGBA"
        result = np.asarray(image)
    assert np.array_equal(result[..., 3], source[..., 3])
    outside = outside_all(quads(out, "cutout"), source.shape[:2])
    assert outside.mean() > 0.4
    assert np.array_equal(result[outside], source[outside])
    faces = quads(out, "cutout")
    assert all(box_change(source[..., :3], result[..., :3], quad) > 8 for quad in faces.values())


def test_jpeg_in_gives_jpeg_at_the_chosen_quality_and_per_face_copies_on_request(run_out, tmp_path):
    out, _ = run_out
    original = read_photo(PORTRAITS / "obama_small.jpg").rgb
    pasted = read_rgb(out / "photos" / "obama_small" / "photo_dir00_+2p00.jpg")
    outside = outside_all(quads(out, "obama_small"), original.shape[:2])
    assert np.abs(pasted[outside].astype(int) - original[outside]).mean() < 1.5  # re-encoding only, quality 95
    directions = next((out / "directions").glob("*/directions.npz"))
    generator = REPO / "assets" / "example-stylegan2-64.pt"
    low = tmp_path / "low"
    result = cli("edit", str(out / "codes"), str(low), "-g", str(generator), "-d", str(directions), "--edit", "0=2",
                 "--paste-back", "--per-face", "--quality", "60", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert sorted({p.parent.name for p in (low / "photos").glob("*/photo_*")}) == sorted(
        ["2008_002079_0", "2008_002079_1", "cutout_0", "cutout_1", "obama_small_0"])  # small faces: none
    low_jpeg = low / "photos" / "obama_small_0" / "photo_dir00_+2p00.jpg"
    assert low_jpeg.stat().st_size < 0.7 * (out / "photos" / "obama_small" / "photo_dir00_+2p00.jpg").stat().st_size
    # per face: only that face is edited in its copy
    faces = quads(out, "2008_002079")
    group = read_photo(GROUPS / "2008_002079.jpg").rgb
    only_first = read_rgb(low / "photos" / "2008_002079_0" / "photo_dir00_+2p00.jpg")
    edited_face = box_change(group, only_first, faces["2008_002079_0"])
    assert edited_face > 8 and box_change(group, only_first, faces["2008_002079_1"]) < min(6, edited_face / 4)  # JPEG q60 noise
    bad = cli("edit", str(out / "codes"), str(tmp_path / "bad"), "-g", str(generator), "-d", str(directions), "--edit", "0=2",
              "--paste-back", "--quality", "0")
    assert bad.returncode != 0 and "--quality 0: JPEG quality runs from 1 to 100" in bad.stderr


def test_sweeps_are_h264_that_play_there_and_back(run_out):
    out, _ = run_out
    for video in (out / "photos" / "obama_small" / "photo_dir00.mp4", out / "edits" / "obama_small_0" / "dir00.mp4"):
        assert video_codec(video) == "h264"
        frames = read_video_frames(video)
        assert len(frames) == 2 and frames[0].shape[0] % 2 == 0 and frames[0].shape[1] % 2 == 0
        assert np.abs(frames[0].astype(int) - frames[1]).mean() > 1  # -2 and +2 differ
    photo_frames = read_video_frames(out / "photos" / "obama_small" / "photo_dir00.mp4")
    assert photo_frames[0].shape[:2] == read_photo(PORTRAITS / "obama_small.jpg").rgb.shape[:2]


def test_progress_status_lines_when_stderr_is_not_a_terminal(run_out):
    _, result = run_out
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    # streamed: one line counts the photos through every stage (align, invert, edit, paste-back)
    assert any(line.startswith("[run] ") and " photos (" in line and ("photos/s" in line or " s/photo" in line)
               for line in lines), lines
    assert any("ETA" in line for line in lines) and any(line.startswith("[run] ") and "done in" in line for line in lines)


def test_report_explains_what_made_it(run_out):
    out, result = run_out
    page = (out / "index.html").read_text()
    assert DEMO_WARNING in page and result.stderr.count(DEMO_WARNING) == 1
    from common.hashing import sha256_file

    assert sha256_file(REPO / "assets" / "example-stylegan2-64.pt")[:12] in page and "sefa-edit-pt" in page
    assert "--edit 0=-2,2" in page and "0 steps" in page and "faces under 64 px untouched" in page
    # photos in natural order, the original of each, a before/after slider per pasted picture
    assert page.index("2008_002079.jpg") < page.index("cutout.png") < page.index("obama_small.jpg")
    assert page.count('type="range"') == 6 and page.count("alt=\"original\"") >= 3
    assert "left untouched, smaller than 64 px" in page
    assert "not a readable image" in page and "broken.jpg" in page  # failures in words
    directions_page = next((out / "directions").glob("*/index.html"))
    assert os.path.relpath(directions_page, out) in page
    directions_html = directions_page.read_text()
    assert DEMO_WARNING in directions_html and "of the spectrum" in directions_html and "layers 0-9" in directions_html
    assert len(list((directions_page.parent / "preview").glob("*.png"))) == 5
    # lazy images, thumbnails that link to the full-size photo
    assert page.count("<img") == page.count('loading="lazy"')
    assert "report/thumbs/" in page and "photos/obama_small/photo_dir00_%2B2p00.jpg" in page.replace("+", "%2B")
    assert natural_key("face_2") < natural_key("face_10")


def _chromium():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("headless Chromium and chromedriver are not installed (setup.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_report_loads_every_image_and_plays_every_video_in_chromium(run_out, tmp_path):
    out, _ = run_out
    browser = _chromium()
    try:
        browser.get((out / "index.html").resolve().as_uri())
        browser.execute_script("document.querySelectorAll('img').forEach(i => i.loading = 'eager');"
                               "document.querySelectorAll('video').forEach(v => v.load());")
        deadline = time.time() + 30
        while time.time() < deadline:
            pending = browser.execute_script("return [...document.images].filter(i => !i.complete).length + "
                                             "[...document.querySelectorAll('video')].filter(v => v.readyState < 2 && !v.error).length")
            if pending == 0:
                break
            time.sleep(0.2)
        broken = browser.execute_script("return [...document.images].filter(i => i.naturalWidth === 0).map(i => i.src)")
        videos = browser.execute_script("return [...document.querySelectorAll('video')].map(v => [v.src, v.readyState, v.videoWidth, !!v.error])")
        count = browser.execute_script("return document.images.length")
        browser.save_screenshot(str(tmp_path / "report.png"))
    finally:
        browser.quit()
    assert count > 20 and broken == []
    assert videos and all(ready >= 2 and width > 0 and not error for _, ready, width, error in videos), videos


def test_group_photo_starts_fully_edited_and_marks_every_face_in_chromium(run_out, tmp_path):
    out, _ = run_out
    browser = _chromium()
    try:
        browser.get((out / "index.html").resolve().as_uri())
        section = "[...document.querySelectorAll('section.photo')].find(s => s.querySelector('h2').textContent === '2008_002079.jpg')"
        state = browser.execute_script(f"""
            const s = {section};
            return {{
              sliders: [...s.querySelectorAll('.compare input[type=range]')].map(r => r.value),
              clips: [...s.querySelectorAll('.compare img.after')].map(i => getComputedStyle(i).clipPath),
              marks: [...s.querySelector('.marked svg.marks').querySelectorAll('g')].map(g => [g.getAttribute('class'), g.querySelector('text').textContent]),
              numbers: [...s.querySelectorAll('.face h4 .number')].map(n => n.textContent),
              markedCompares: s.querySelectorAll('.compare svg.marks').length,
            }};""")
        browser.execute_script(f"{section}.querySelector('.compare button.flip').click()")
        flipped = browser.execute_script(f"const s = {section}; const f = s.querySelector('.compare');"
                                         "return [f.querySelector('input').value, f.querySelector('button.flip').textContent,"
                                         "getComputedStyle(f.querySelector('img.after')).clipPath]")
        browser.save_screenshot(str(tmp_path / "group.png"))
    finally:
        browser.quit()
    assert state["sliders"] and set(state["sliders"]) == {"0"}  # every face edited at first, not half of them
    assert all(clip.replace("px", "").replace("%", "") in ("inset(0 0 0 0)", "none") for clip in state["clips"]), state["clips"]
    assert [number for _, number in state["marks"]] == state["numbers"] == [str(k) for k in range(1, 7)]
    assert sorted(kind for kind, _ in state["marks"]) == ["edited"] * 2 + ["untouched"] * 4  # four under 64 px
    assert state["markedCompares"] == len(state["sliders"])
    assert flipped[0] == "100" and flipped[1] == "show edited" and "100%" in flipped[2]
