"""`sefa-edit ui`: the session's work checked directly, and the page driven in a real headless Chromium.

The browser test starts the app as a user would (`sefa-edit ui OUT --port P`), uploads a shared photo,
waits for the inversion, moves a slider, checks that the face and the photo changed, saves a recipe,
downloads it from the page and applies it with `edit --recipe`: the result must be the very face the
page showed. Screenshots of each step go to SEFA_EDIT_SCREENSHOTS when that is set (else tmp)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from common.errors import UserError
from common.images import read_rgb
from editing.recipe import load_recipe, recipe_from_json
from pipeline.editor_session import EditorSession, Move
from tests.conftest import SHARED
from tests.hardening_helpers import assert_same_picture

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "assets" / "example-stylegan2-64.pt"
ENCODER = REPO / "assets" / "example-encoder.pt"
PORTRAIT = SHARED / "photos" / "face-recognition" / "obama_small.jpg"
pytestmark = pytest.mark.skipif(not PORTRAIT.is_file(), reason=f"real photos not found at {PORTRAIT}")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> EditorSession:
    return EditorSession(tmp_path_factory.mktemp("ui") / "out", GENERATOR, ENCODER, None, "cpu", num_directions=5)


def test_a_photo_is_aligned_and_inverted_once_and_sliders_combine(session):
    photo = session.import_photo(PORTRAIT)
    assert photo.parent == session.out / "uploads" and session.import_photo(PORTRAIT) == photo
    face = session.find_faces(photo)[0]
    opened = session.open_face(face, steps=3)
    code_file = session.out / "codes" / f"{face.name}.npy"
    written = code_file.stat().st_mtime_ns
    session.open_face(face, steps=3)  # the same photo and settings: served from OUT/codes
    assert code_file.stat().st_mtime_ns == written
    one = [Move(0, 2.0, session.layers_for("directions' layers")), Move(1, 0.0, (0,))]
    both = [Move(0, 2.0, session.layers_for("directions' layers")), Move(1, -1.5, session.layers_for("2-5 (features, expression)"))]
    crop_one, screen_one = session.edit_face(opened, one)
    crop_both, screen_both = session.edit_face(opened, both)
    assert np.abs(crop_one.astype(int) - crop_both).mean() > 1
    assert screen_one.shape == opened.screen_photo.shape and not np.array_equal(screen_one, opened.screen_photo)
    # the combination is the sum of the moves: the same as moving the code by hand
    ws = opened.code.clone()
    direction = lambda k: session.directions.directions[k]
    ws[0, list(both[0].layers)] += 2.0 * torch_tensor(direction(0))
    ws[0, [2, 3, 4, 5]] += -1.5 * torch_tensor(direction(1))
    np.testing.assert_array_equal(session._render(ws), crop_both)
    assert session.layers_for("custom", "1,3") == (1, 3)
    # the photo is offered again (as an earlier `run` OUT's photos are), and finding its faces redoes nothing
    assert session.photos_in_out() == [photo]
    sidecar_time = face.sidecar_path.stat().st_mtime_ns
    assert [f.name for f in session.find_faces(photo)] == [face.name] and face.sidecar_path.stat().st_mtime_ns == sidecar_time
    with pytest.raises(UserError, match="layer"):
        session.layers_for("custom", "99")


def torch_tensor(array):
    import torch

    return torch.as_tensor(array, dtype=torch.float32)


def test_labels_named_in_the_ui_are_saved_beside_the_directions(session):
    path = session.save_label(2, "smile", sign=-1)
    assert json.loads(path.read_text())["smile"] == {"index": 2, "sign": -1}
    assert "2: smile (-)" in session.direction_names()
    with pytest.raises(UserError, match="not a valid name"):
        session.save_label(1, "no spaces please")


def test_recipe_is_checked_and_refused_for_another_generator(session, tmp_path):
    moves = [Move(0, 1.5, (0, 1)), Move(3, -2.0, tuple(range(session.num_ws)))]
    recipe_path = session.write_recipe(moves, "older smile")
    raw = json.loads(recipe_path.read_text())
    assert raw["name"] == "older-smile" and len(raw["moves"]) == 2 and raw["generator_sha256"] == session.checkpoint.sha256
    recipe = load_recipe(recipe_path)
    assert recipe.moves[1].strength == -2.0 and recipe.moves[0].layers == (0, 1)
    for broken, words in [({**raw, "format": "x"}, "not a sefa-edit recipe"),
                          ({**raw, "moves": []}, "'moves' should be a list"),
                          ({**raw, "moves": [{**raw["moves"][0], "layers": [99]}]}, "'layers' should be"),
                          ({**raw, "moves": [{**raw["moves"][0], "vector": [1.0, 1.0]}]}, "unit-length"),
                          ({**raw, "moves": [{**raw["moves"][0], "strength": float("nan")}]}, "finite")]:
        with pytest.raises(UserError, match=words):
            recipe_from_json(broken, "r.json")
    with pytest.raises(UserError, match="every slider is at 0"):
        session.recipe([Move(0, 0.0, (0,))])
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**raw, "generator_sha256": "0" * 64}))
    result = cli("edit", session.out / "codes", tmp_path / "e", "-g", GENERATOR, "--recipe", other)
    assert result.returncode == 2 and "made with another generator" in result.stderr


def test_run_applies_a_recipe_to_a_folder(session, tmp_path):
    recipe = session.write_recipe([Move(1, 2.0, (0, 1, 2))], "wider")
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PORTRAIT, photos / "a.jpg")
    result = cli("run", photos, tmp_path / "out", "--recipe", recipe, "--steps", "2", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "edits" / "a_0" / "wider_+1p00.png").is_file()
    assert (tmp_path / "out" / "photos" / "a" / "photo_wider_+1p00.jpg").is_file()
    assert not list((tmp_path / "out" / "edits" / "a_0").glob("dir0*"))  # the recipe instead of the default edits


# --- in a real browser ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("headless Chromium and chromedriver are not installed (setup.sh installs them)")
    out = tmp_path_factory.mktemp("app") / "out"
    log = out.parent / "server-stderr.txt"  # a file, not a pipe: the server never blocks on a full pipe
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "ui", str(out), "--steps", "5", "-K", "4",
                                    "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    url = None
    deadline = time.time() + 90
    while time.time() < deadline and url is None and process.poll() is None:
        url = next((line.split()[2] for line in log.read_text().splitlines()
                    if line.startswith("sefa-edit ui: http://127.0.0.1:")), None)
        time.sleep(0.2)
    if url is None:
        process.kill()
        pytest.fail("the ui did not start: " + log.read_text())
    yield url, out
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def browser_for():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1600"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def download_links(browser) -> list[str]:
    """The links in the downloads box, read in one script (the box re-renders: elements found earlier go stale)."""
    return browser.execute_script("return [...document.querySelectorAll('#downloads a')].map(a => a.href || '')")


def wait_for(condition, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def fetch_rgb(url: str) -> np.ndarray:
    import cv2

    data = np.frombuffer(urllib.request.urlopen(url, timeout=10).read(), np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_upload_invert_slide_and_take_the_recipe_to_the_batch(app, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, out = app
    shots = Path(os.environ.get("SEFA_EDIT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    browser = browser_for()
    try:
        browser.get(url)
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"), 30, "the page")
        browser.save_screenshot(str(shots / "ui-1-start.png"))

        def image_src(element_id: str):
            found = browser.find_elements(By.CSS_SELECTOR, f"#{element_id} img")
            return found[0].get_attribute("src") if found else None

        # a file that is not a photo: the CLI's words, no stack trace
        broken = tmp_path / "broken.jpg"
        broken.write_text("not a photo")
        browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(broken))
        wait_for(lambda: "broken.jpg: not a readable image" in browser.page_source, 30, "the error message")
        assert "Traceback" not in browser.page_source and not list((out / "uploads").glob("broken*"))
        browser.save_screenshot(str(shots / "ui-2-bad-file.png"))
        browser.refresh()
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"), 30, "the page again")

        browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(PORTRAIT))
        wait_for(lambda: "inverted" in browser.find_element(By.ID, "status").text, 120, "the inversion")
        browser.save_screenshot(str(shots / "ui-3-inverted.png"))
        face_before, photo_before = image_src("face"), image_src("photo")
        assert face_before and photo_before

        slider = browser.find_element(By.CSS_SELECTOR, "#edit-slider-0 input[type=range]")
        ActionChains(browser).click_and_hold(slider).move_by_offset(90, 0).release().perform()
        wait_for(lambda: image_src("face") != face_before and image_src("photo") != photo_before, 30, "the edited images")
        strength = float(slider.get_attribute("value"))
        assert strength > 0.3
        browser.save_screenshot(str(shots / "ui-4-slider-moved.png"))
        shown = fetch_rgb(image_src("face"))
        assert np.abs(shown.astype(int) - fetch_rgb(face_before)).mean() > 1

        browser.find_element(By.CSS_SELECTOR, "#recipe-name input, #recipe-name textarea").clear()
        browser.find_element(By.CSS_SELECTOR, "#recipe-name input, #recipe-name textarea").send_keys("slid")
        browser.find_element(By.ID, "save-recipe").click()
        link = wait_for(lambda: [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a")
                                 if "recipe" in (a.get_attribute("href") or "")], 30, "the recipe link")[0]
        browser.save_screenshot(str(shots / "ui-5-recipe.png"))
        keep = browser.find_element(By.ID, "edit-keep-0")  # each slider's "keep unchanged" choice (conditional edit)
        assert "keep unchanged" in keep.text
    finally:
        browser.quit()
    recipe_file = tmp_path / "slid.recipe.json"
    recipe_file.write_bytes(urllib.request.urlopen(link, timeout=10).read())
    recipe = load_recipe(recipe_file)
    assert len(recipe.moves) == 1 and recipe.moves[0].direction == 0 and abs(recipe.moves[0].strength - strength) < 1e-6

    result = cli("edit", out / "codes", tmp_path / "batch", "-g", GENERATOR, "--recipe", recipe_file, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    applied = read_rgb(next((tmp_path / "batch").glob("*/slid_+1p00.png")))
    factor = shown.shape[0] // applied.shape[0]
    assert_same_picture(shown[::factor, ::factor], applied, "the batch's face and the page's")


def test_explore_samples_and_names_a_direction(app, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, out = app
    browser = browser_for()
    try:
        browser.get(url)
        tab = wait_for(lambda: [b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text == "Explore"],
                       30, "the Explore tab")[0]
        tab.click()
        wait_for(lambda: browser.find_element(By.ID, "sample").is_displayed(), 10, "the Sample button")
        browser.find_element(By.ID, "sample").click()
        first = wait_for(lambda: (browser.find_elements(By.CSS_SELECTOR, "#sample-image img") or [None])[0], 30, "a sample")
        before = first.get_attribute("src")
        slider = browser.find_element(By.CSS_SELECTOR, "#explore-slider-1 input[type=range]")
        ActionChains(browser).click_and_hold(slider).move_by_offset(-90, 0).release().perform()
        wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#sample-image img").get_attribute("src") != before, 30,
                 "the moved sample")
        box = browser.find_element(By.CSS_SELECTOR, "#label-name input, #label-name textarea")
        box.send_keys("tilt")
        browser.find_element(By.ID, "save-label").click()
        wait_for(lambda: "Saved" in browser.find_element(By.ID, "label-status").text, 20, "the label")
        browser.save_screenshot(str(Path(os.environ.get("SEFA_EDIT_SCREENSHOTS", tmp_path)) / "ui-6-explore.png"))
    finally:
        browser.quit()
    labels = json.loads(next((out / "directions").glob("*/labels.json")).read_text())
    assert labels["tilt"]["index"] == 0


def _click_on_picture(browser, element_id: str, x: float, y: float) -> None:
    """Click pixel (x, y) of the picture shown in a gr.Image (scaled to fit its box, object-fit: contain)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    image = browser.find_element(By.CSS_SELECTOR, f"#{element_id} img")
    box = browser.execute_script("const i = arguments[0], r = i.getBoundingClientRect();"
                                 "return [r.width, r.height, i.naturalWidth, i.naturalHeight]", image)
    width, height, natural_width, natural_height = box
    scale = min(width / natural_width, height / natural_height)
    dx = (x - natural_width / 2) * scale
    dy = (y - natural_height / 2) * scale
    ActionChains(browser).move_to_element_with_offset(image, round(dx), round(dy)).click().perform()


def test_a_group_photo_is_picked_on_the_photo_and_both_downloads_stay(app, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from editing.photo_composite import face_side
    from editing.sidecar import read_sidecar
    from pipeline.editor_session import face_box

    url, out = app
    shots = Path(os.environ.get("SEFA_EDIT_SCREENSHOTS", tmp_path))
    browser = browser_for()
    try:
        browser.get(url)
        upload = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"), 30, "the page")[0]
        dogs = tmp_path / "dogs.jpg"  # no face, small enough for the cnn detector to answer quickly on a CPU
        import cv2

        cv2.imwrite(str(dogs), cv2.resize(cv2.imread(str(SHARED / "photos" / "dlib-faces" / "dogs.jpg")), (300, 300)))
        upload.send_keys(str(dogs))  # no face: said in the page's words
        wait_for(lambda: "dogs.jpg: no face found by the fast detector" in browser.page_source, 60, "the no-face message")
        assert "--detector" not in browser.page_source
        browser.save_screenshot(str(shots / "ui-7-no-face.png"))
        cnn = [label for label in browser.find_elements(By.CSS_SELECTOR, "#detector label") if label.text.startswith("cnn")]
        cnn[0].click()  # the page's own detector choice looks again at the same photo
        wait_for(lambda: "dogs.jpg: no face found, even by the cnn detector" in browser.page_source, 120, "the cnn answer")
        [label for label in browser.find_elements(By.CSS_SELECTOR, "#detector label") if label.text.startswith("hog")][0].click()
        browser.refresh()
        upload = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"), 30, "the page")[0]
        upload.send_keys(str(SHARED / "photos" / "face-recognition" / "two_people.jpg"))
        wait_for(lambda: "two_people.jpg: 2 faces: click the one" in browser.find_element(By.ID, "status").text, 60, "the choice")
        captions = wait_for(lambda: (lambda found: found if len(found) == 2 else None)(browser.execute_script(
            "return [...document.querySelectorAll('#faces .caption-label')].map(c => c.textContent.trim())")),
            30, "the numbered thumbnails")
        assert captions == ["face 1", "face 2"], captions  # numbers matching the boxes, no internal names
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#faces-photo img"), 30, "the photo with boxes")
        sidecars = sorted(out.glob("aligned/two_people_*.json"), key=lambda p: -face_side(read_sidecar(p)))
        assert len(sidecars) == 2
        second = read_sidecar(sidecars[1])
        x0, y0, x1, y1 = face_box(second)
        shown_width = browser.execute_script("return document.querySelector('#faces-photo img').naturalWidth")
        scale = shown_width / second.source_size[0]
        _click_on_picture(browser, "faces-photo", (x0 + x1) / 2 * scale, (y0 + y1) / 2 * scale)
        wait_for(lambda: "two_people.jpg, face 2 of 2 inverted" in browser.find_element(By.ID, "status").text, 120,
                 "the clicked face's inversion")
        assert sidecars[1].stem.split("_")[-2] not in browser.find_element(By.ID, "status").text  # no upload hash
        slider = browser.find_element(By.CSS_SELECTOR, "#edit-slider-1 input[type=range]")
        ActionChains(browser).click_and_hold(slider).move_by_offset(-80, 0).release().perform()
        wait_for(lambda: float(slider.get_attribute("value")) < 0, 10, "the slider")
        browser.find_element(By.ID, "save-photo").click()
        link = wait_for(lambda: [href for href in download_links(browser) if href.endswith(".jpg")], 60, "the photo link")[0]
        assert "two_people_face2_edited_" in link
        browser.find_element(By.ID, "save-recipe").click()
        links = wait_for(lambda: (lambda hrefs: hrefs if any("recipe" in h for h in hrefs) else None)(download_links(browser)),
                         30, "the recipe link")
        assert link in links  # saving the recipe kept the photo's link
        browser.save_screenshot(str(shots / "ui-8-group.png"))
        browser.find_element(By.ID, "reset").click()
        wait_for(lambda: float(slider.get_attribute("value")) == 0, 10, "the reset")
    finally:
        browser.quit()
    saved = fetch_rgb(link)
    original = read_rgb(SHARED / "photos" / "face-recognition" / "two_people.jpg")
    assert saved.shape == original.shape  # full resolution
    quad = second.quad
    x, y = quad.mean(axis=0).astype(int)
    assert np.abs(saved[y - 10 : y + 10, x - 10 : x + 10].astype(int) - original[y - 10 : y + 10, x - 10 : x + 10]).mean() > 5


def test_ui_refuses_a_wrong_directions_file_in_one_line(tmp_path):
    wrong = tmp_path / "directions.npz"
    wrong.write_bytes(b"not a directions file")
    result = cli("ui", tmp_path / "out", "-d", wrong, "--device", "cpu")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert str(wrong) in result.stderr and "Traceback" not in result.stderr


def test_crafted_requests_and_oversized_uploads_get_one_line(app, tmp_path):
    """What only a crafted request can send (a value outside a dropdown's choices, an upload past the
    limit) is refused in one line, in the response and on the server's stderr: no Gradio traceback."""
    from gradio_client import Client

    from pipeline.editor_session import MAX_UPLOAD_BYTES

    url, out = app
    log = out.parent / "server-stderr.txt"
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    client = Client(url, verbose=False)
    for value in ("/etc/passwd", "../../x", str(fifo)):
        with pytest.raises(Exception, match="is not one of the choices of 'or a photo already in OUT'"):
            client.predict(value, api_name="/pick_existing")
    boundary = "sefa-edit-test-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="huge.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n").encode() + b"\xff" * (MAX_UPLOAD_BYTES + 1024) + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url}gradio_api/upload", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=120)
    assert refused.value.code == 413
    assert "over the 100 MB upload limit of `sefa-edit ui`" in refused.value.read().decode()
    assert not list((out / "uploads").glob("huge*"))
    time.sleep(0.5)
    stderr = log.read_text()
    assert "Traceback" not in stderr, stderr[-3000:]
    assert sum("ui: refused" in line and "not one of its choices" in line for line in stderr.splitlines()) == 3
    assert any(line.startswith("ui: refused an upload: ") for line in stderr.splitlines())


def test_the_page_refuses_an_oversized_photo_before_sending_it(app, tmp_path):
    from selenium.webdriver.common.by import By

    from pipeline.editor_session import MAX_UPLOAD_BYTES

    url, out = app
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_UPLOAD_BYTES + 1)  # sparse: nothing is written, the size is what counts
    browser = browser_for()
    try:
        browser.get(url)
        upload = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"), 30, "the page")[0]
        assert "Photo (at most 100 MB)" in browser.find_element(By.ID, "upload").text
        upload.send_keys(str(huge))
        wait_for(lambda: 'exceed the maximum allowed size of 100.0 Mb: "huge.jpg"' in browser.page_source, 30,
                 "the size message")
        browser.save_screenshot(str(Path(os.environ.get("SEFA_EDIT_SCREENSHOTS", tmp_path)) / "ui-8-too-large.png"))
    finally:
        browser.quit()
    assert not list((out / "uploads").glob("huge*"))


def test_faces_are_named_by_their_photo_and_number_and_picked_by_their_box(session):
    from editing.sidecar import read_sidecar
    from pipeline.editor_session import face_box, no_face_message

    faces = session.find_faces(SHARED / "photos" / "face-recognition" / "two_people.jpg", shown_as="two_people.jpg")
    assert [face.label for face in faces] == ["two_people.jpg, face 1 of 2", "two_people.jpg, face 2 of 2"]
    assert [face.file_stem for face in faces] == ["two_people_face1", "two_people_face2"]
    overview = session.faces_overview(faces)
    width = overview.shape[1]
    scale = width / read_sidecar(faces[0].sidecar_path).source_size[0]
    for face in faces:
        x0, y0, x1, y1 = face_box(read_sidecar(face.sidecar_path))
        assert session.face_at(faces, (x0 + x1) / 2 * scale, (y0 + y1) / 2 * scale, width) is face
        changed = overview[max(0, int(y0 * scale)) : int(y1 * scale) + 3, max(0, int(x0 * scale)) : int(x1 * scale) + 3]
        assert (np.abs(changed.astype(int) - [255, 212, 0]).sum(axis=-1) == 0).any()  # its box is drawn
    assert session.face_at(faces, 2, overview.shape[0] - 2, width) is None  # a corner: no face there
    assert "choose \"cnn" in no_face_message("a.jpg", "hog") and "--detector" not in no_face_message("a.jpg", "hog")


def test_a_tuned_face_is_edited_with_its_own_weights(session):
    from common.tuned_weights import tuned_path

    face = session.find_faces(PORTRAIT)[0]
    tuned = session.open_face(face, steps=2, tune_steps=3)
    assert tuned.generator is not None and tuned.inversion["tune_steps_run"] == 3
    assert tuned_path(session.out / "codes" / f"{face.name}.npy").is_file()
    crop, _ = session.edit_face(tuned, [], paste=False)
    assert_same_picture(crop, read_rgb(session.out / "codes" / f"{face.name}_tuned.png"), "the editor's face and the tuned one")
    plain = session.open_face(face, steps=2)
    assert plain.generator is None and not tuned_path(session.out / "codes" / f"{face.name}.npy").exists()
    untuned, _ = session.edit_face(plain, [], paste=False)
    assert np.abs(untuned.astype(int) - crop.astype(int)).mean() > 0.1  # the tuned weights did change the face
