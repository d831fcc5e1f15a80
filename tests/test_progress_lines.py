"""Progress a user can read in a log (issue 21): steps within a face, rates as s/face when slow, a first
ETA after the first steps, and the plan with a measured warm-up before a long run."""

from __future__ import annotations

import re
import time

import numpy as np

from common.images import save_rgb
from common.progress import rate_text, report_progress, status_line, track
from generators.checkpoint import LoadedCheckpoint
from inversion.optimize import InversionSettings
from inversion.stage import run_invert
from pipeline.plan import plan_lines, say_plan
from tests.hardening_helpers import GENERATOR

SLOW_RENDER_SECONDS = 0.3


def test_rates_read_as_seconds_per_item_when_slow_and_items_per_second_when_fast():
    assert rate_text(1, 7.5, "crops") == "7.5 s/crop"
    assert rate_text(1, 95, "faces") == "95 s/face"
    assert rate_text(5, 2, "photos") == "2.5 photos/s"
    assert rate_text(300, 2, "images") == "150 images/s"
    assert "0.01" not in rate_text(1, 100, "crops")


def test_a_status_line_counts_the_finished_part_of_the_current_item():
    line = status_line("inverting", 0, 36, 20.0, "crops", within="optimising step 20/100", progress=0.2)
    assert line.startswith("[inverting] 0/36 crops (1%), optimising step 20/100, 100 s/crop, ETA ")
    assert "ETA 59 min 40 s" in line  # 35.8 crops left at 100 s each


def test_steps_inside_an_item_move_the_line_before_the_first_item_finishes(monkeypatch, capsys):
    monkeypatch.setenv("SEFA_EDIT_STATUS_SECONDS", "0")

    def batches():
        for _ in range(2):
            for step in range(1, 5):
                time.sleep(0.02)
                report_progress("optimising", step, 4, units=2)
            yield ["a", "b"]

    assert list(track(batches(), "inverting", total=4, weight=len, unit="crops")) == [["a", "b"]] * 2
    lines = capsys.readouterr().err.splitlines()
    first_done = next(i for i, line in enumerate(lines) if line.startswith("[inverting] 2/4"))
    before = lines[:first_done]
    assert [line.split(", ")[1] for line in before] == [f"optimising step {s}/4" for s in range(1, 5)]
    assert "(12%)" in before[0] and "ETA" in before[0]  # 1 step of 4 for 2 of 4 crops: 12.5 %
    assert lines[-1].startswith("[inverting] 4/4 crops (100%), ") and "done in" in lines[-1]
    assert not any("step" in line for line in lines[first_done:first_done + 1])


def _slow_generators(monkeypatch) -> None:
    """A stand-in for a big generator on a CPU: the bundled one, each render made slow."""
    build = LoadedCheckpoint.build_generator

    def slow_build(self, *args, **kwargs):
        generator = build(self, *args, **kwargs)
        render = generator.render

        def slow_render(ws, *rest, **options):
            time.sleep(SLOW_RENDER_SECONDS)
            return render(ws, *rest, **options)

        generator.render = slow_render
        return generator

    monkeypatch.setattr(LoadedCheckpoint, "build_generator", slow_build)


def test_a_slow_inversion_says_its_steps_its_plan_and_seconds_per_crop(tmp_path, monkeypatch, capsys):
    import pipeline.plan

    monkeypatch.setattr(pipeline.plan, "WARM_UP_FROM_STEPS", 1)  # two faces of three steps: measured all the same
    _slow_generators(monkeypatch)
    monkeypatch.setenv("SEFA_EDIT_STATUS_SECONDS", "0")
    crops = tmp_path / "aligned"
    crops.mkdir()
    rng = np.random.default_rng(0)
    for name in ("one", "two"):
        save_rgb(crops / f"{name}.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    said: list[str] = []
    settings = InversionSettings(steps=3)
    summary = run_invert(str(crops), tmp_path / "codes", GENERATOR, None, settings, perceptual="none", device_name="cpu",
                         say=said.append, plan=say_plan(said.append, photos=1, steps=3, device="cpu"))
    assert summary["inverted"] == 2
    assert said[0] == "plan: 1 photo(s), 2 face(s); 2 to invert with 3 optimisation step(s) each on cpu"
    measured = re.match(r"plan: warm-up measured ([0-9.]+) s per face -> inversion about ", said[1])
    assert measured, said
    # a crop renders at least 5 times (start, 3 steps, result): the warm-up must have seen the slowness
    assert float(measured.group(1)) >= 5 * SLOW_RENDER_SECONDS * 0.9
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[inverting]")]
    assert lines[0].startswith("[inverting] 0/2 crops") and "optimising step 1/3" in lines[0] and "ETA" in lines[0]
    assert all(re.search(r"[0-9.]+ s/crop", line) for line in lines), lines  # under 1 crop/s: seconds per crop


def test_the_plan_says_how_to_finish_sooner_when_it_is_long():
    short = plan_lines(photos=2, faces=3, to_invert=3, steps=100, device="cpu", seconds_per_face=2.0)
    assert len(short) == 2 and "about 6 s" in short[1]
    long = plan_lines(photos=10, faces=36, to_invert=30, steps=100, device="cpu", seconds_per_face=60.0)
    assert "(6 done before)" in long[0] and "about 30 min 00 s" in long[1]
    assert "--steps 25" in long[2] and "--steps 0" in long[2] and "--device cuda" in long[2]
    on_gpu = plan_lines(photos=10, faces=36, to_invert=36, steps=1000, device="cuda", seconds_per_face=20.0)
    assert "--device cuda" not in on_gpu[2]
    assert plan_lines(1, 1, 1, 0, "cpu", None) == ["plan: 1 photo(s), 1 face(s); 1 to invert with the encoder only (--steps 0) on cpu"]


def test_a_streamed_run_says_its_measured_time_per_face_as_a_lower_bound():
    from pipeline.plan import stream_estimate_lines

    short = stream_estimate_lines(photos_to_align=3, steps=100, device="cpu", seconds_per_face=2.0)
    assert short == ["plan: warm-up measured 2.00 s per face -> inversion at least 6 s for 3 photo(s) "
                     "(one face each; group photos take longer)"]
    long = stream_estimate_lines(photos_to_align=40, steps=100, device="cpu", seconds_per_face=60.0)
    assert "at least 40 min 00 s" in long[0] and "--steps 25" in long[1] and "--device cuda" in long[1]
