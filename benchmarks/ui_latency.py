"""Time from a slider release to the new images in `sefa-edit ui`, against the naive way, in one run.

What a release costs in the editor (`EditorSession.edit_face` + the JPEG/PNG encodes Gradio does):
one generator forward of the face crop, one warp into the face's box of the cached screen-size photo.
The baseline is what an editor without those caches would do: paste into the full-resolution photo
(mask, colour offset and warp prepared again) and encode the whole photo. Run for the bundled 64 px
model and for a StyleGAN2 stand-in at 1024 px (FFHQ layout, random weights: the time is the same as
real weights'); targets: under 0.3 s on CPU for the bundled model, under 0.1 s on a GPU at 1024 px.

    python benchmarks/ui_latency.py [--device cpu|cuda] [--repeats 10] [--skip-1024] [--browser]

`--browser` also measures the whole round trip as a user sees it, for the bundled model: the app is
started, a headless Chromium uploads the photo, and the page itself times each slider release from
the pointer's release to the `load` of the new face image (queue, HTTP, decoding included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.demo_models import DEMO_ENCODER, DEMO_GENERATOR  # noqa: E402
from common.images import encode_jpeg, encode_png  # noqa: E402
from common.photo_io import read_photo  # noqa: E402
from editing.paste_back import paste_face, prepare_face  # noqa: E402
from generators.checkpoint import save_native  # noqa: E402
from generators.stylegan2 import Generator, StyleGAN2Config, channels_for  # noqa: E402
from pipeline.editor_session import EditorSession, Move  # noqa: E402

PHOTO = Path(__file__).resolve().parents[2] / "shared" / "photos" / "face-recognition" / "obama3.jpg"  # 1434x2333


def stand_in(resolution: int, folder: Path) -> Path:
    torch.manual_seed(0)
    config = StyleGAN2Config(img_resolution=resolution, channels=channels_for(resolution, 32768, 512))
    return save_native(folder / f"stand-in-{resolution}.pt", Generator(config).eval())


def median_seconds(work, repeats: int, device: torch.device) -> float:
    work()  # warm-up: first forward allocates
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(label: str, generator: Path, encoder: Path | None, device: str, repeats: int, folder: Path) -> None:
    session = EditorSession(folder / label, generator, encoder, None, device, num_directions=5)
    face = session.find_faces(session.import_photo(PHOTO))[0]
    opened = session.open_face(face, steps=0, use_encoder=encoder is not None)
    moves = [Move(0, 1.5, session.layers_for("directions' layers")), Move(2, -1.0, session.layers_for("2-5 (features, expression)"))]

    def release():
        crop, screen = session.edit_face(opened, moves)
        encode_png(crop)
        encode_jpeg(screen, 90)

    full = read_photo(opened.sidecar.source).rgb

    def naive():
        crop = session.render_sample(opened.code, moves)
        prepared = prepare_face(full, opened.sidecar.quad, opened.sidecar.landmarks, crop.shape[0], "face", opened.reconstruction)
        canvas = full.copy()
        paste_face(canvas, crop, prepared)
        encode_png(crop)
        encode_jpeg(canvas, 90)

    def render_only():
        session.render_sample(opened.code, moves)

    torch_device = session.device
    ours, baseline, forward = (median_seconds(work, repeats, torch_device) for work in (release, naive, render_only))
    print(f"{label:28s} {ours:9.3f} {baseline:12.3f} {forward:10.3f}   "
          f"(photo {full.shape[1]}x{full.shape[0]}, screen {opened.screen_photo.shape[1]}x{opened.screen_photo.shape[0]})")


def browser_round_trips(repeats: int, folder: Path) -> list[float]:
    import shutil
    import subprocess

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    cli = Path(__file__).resolve().parents[1] / "cli.py"
    server = subprocess.Popen([sys.executable, str(cli), "ui", str(folder / "ui"), "--steps", "0", "--device", "cpu"],
                              stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        url = None
        while url is None:
            line = server.stderr.readline()
            if not line:
                raise RuntimeError("the ui did not start")
            if line.startswith("sefa-edit ui: "):
                url = line.split()[2]
        options = Options()
        options.binary_location = shutil.which("chromium")
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1600"):
            options.add_argument(argument)
        browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        try:
            browser.get(url)
            time.sleep(2)
            browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(PHOTO))
            while "inverted" not in browser.find_element(By.ID, "status").text:
                time.sleep(0.2)
            browser.execute_script("""
                const range = document.querySelector('#edit-slider-0 input[type=range]');
                range.addEventListener('pointerup', () => { window.__released = performance.now(); window.__latency = null; }, true);
                new MutationObserver(() => {
                    const img = document.querySelector('#face img');
                    if (img && window.__released && window.__latency === null && img.src !== window.__src) {
                        window.__src = img.src;
                        img.decode().then(() => { window.__latency = performance.now() - window.__released; });
                    }
                }).observe(document.querySelector('#face'), {subtree: true, attributes: true, childList: true});
                window.__src = (document.querySelector('#face img') || {}).src;
            """)
            slider = browser.find_element(By.CSS_SELECTOR, "#edit-slider-0 input[type=range]")
            latencies = []
            for k in range(repeats):
                ActionChains(browser).click_and_hold(slider).move_by_offset(30 if k % 2 else -30, 0).release().perform()
                deadline = time.time() + 10
                while time.time() < deadline and browser.execute_script("return window.__latency") is None:
                    time.sleep(0.01)
                latencies.append(browser.execute_script("return window.__latency") / 1000)
        finally:
            browser.quit()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-1024", action="store_true")
    parser.add_argument("--browser", action="store_true", help="also time the round trip in a headless Chromium")
    args = parser.parse_args()
    print(f"device {args.device}, {torch.get_num_threads()} CPU threads; median of {args.repeats} releases, seconds")
    print(f"{'generator':28s} {'editor':>9s} {'naive (full)':>12s} {'forward':>10s}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        measure("bundled 64 px", DEMO_GENERATOR, DEMO_ENCODER, args.device, args.repeats, folder)
        if args.browser:
            latencies = browser_round_trips(args.repeats, folder)
            print(f"{'bundled 64 px, in Chromium':28s} {statistics.median(latencies):9.3f} {'':12s} {'':10s}   "
                  f"(release to decoded image; max {max(latencies):.3f})")
        if not args.skip_1024:
            measure("StyleGAN2 1024 px stand-in", stand_in(1024, folder), None, args.device, max(3, args.repeats // 3), folder)


if __name__ == "__main__":
    main()
