"""What a new user trips over (issue 21), each seen the way the user sees it: through the CLI."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

import common.output_folder as output_folder
from common.errors import UserError
from common.output_folder import LOCK_NAME, claimed_output_folder
from tests.conftest import SHARED
from tests.hardening_helpers import ENCODER, GENERATOR, cli

PORTRAIT = SHARED / "photos" / "face-recognition" / "obama_small.jpg"
pytestmark = pytest.mark.skipif(not PORTRAIT.is_file(), reason=f"real photos not found at {PORTRAIT}")


def test_no_lock_file_is_left_behind_and_the_lock_still_excludes(tmp_path):
    aligned = cli("align", PORTRAIT, tmp_path / "aligned")
    assert aligned.returncode == 0, aligned.stderr
    inverted = cli("invert", tmp_path / "aligned", tmp_path / "codes", "-g", GENERATOR, "-e", ENCODER, "--steps", "0",
                   "--perceptual", "none", "--device", "cpu")
    assert inverted.returncode == 0, inverted.stderr
    assert not list(tmp_path.rglob(LOCK_NAME))

    out = tmp_path / "out"
    with claimed_output_folder(out):
        late = open(out / LOCK_NAME, "a+")  # another process opened the lock file just before we finish
        with pytest.raises(UserError, match="another sefa-edit .* is writing into this folder"):
            with claimed_output_folder(out):
                pass
    assert not (out / LOCK_NAME).exists()
    fcntl.flock(late.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # it can lock the deleted file now, but that is no lock:
    with claimed_output_folder(out):  # whoever comes next takes the file that is at the path
        assert (out / LOCK_NAME).exists() and not output_folder._same_file(late, out / LOCK_NAME)
    late.close()


def test_a_lock_file_replaced_between_open_and_lock_is_taken_again(tmp_path, monkeypatch):
    real = output_folder._same_file
    checks: list[Path] = []

    def replaced_the_first_time(handle, path):  # the first file we lock was deleted by its holder meanwhile
        checks.append(path)
        return len(checks) > 1 and real(handle, path)

    monkeypatch.setattr(output_folder, "_same_file", replaced_the_first_time)
    with claimed_output_folder(tmp_path / "out"):
        assert (tmp_path / "out" / LOCK_NAME).exists()
    assert len(checks) == 2 and not (tmp_path / "out" / LOCK_NAME).exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA: --device cuda is valid here")
def test_a_missing_cuda_device_is_said_before_any_work(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "obama_small.jpg").write_bytes(PORTRAIT.read_bytes())
    directions = tmp_path / "none.npz"
    commands = {
        "run": ("run", photos, tmp_path / "run"),
        "invert": ("invert", photos, tmp_path / "invert", "-g", GENERATOR),
        "edit": ("edit", photos, tmp_path / "edit", "-g", GENERATOR, "-d", directions, "--edit", "0=1"),
        "ui": ("ui", tmp_path / "ui"),
    }
    for name, command in commands.items():
        result = cli(*command, "--device", "cuda", timeout=120)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (name, result.stderr)
        assert lines[-1] == "error: --device cuda: no CUDA device is visible to PyTorch; use --device cpu or auto", (name, lines)
        assert not (tmp_path / name / "aligned").exists() and not list((tmp_path / name).rglob("*.png")), name


def test_the_readme_pipe_works_offline_with_one_notice_and_a_rerun_says_nothing(tmp_path):
    import os
    import subprocess
    import sys

    from tests.hardening_helpers import REPO

    env = {**os.environ, "SEFA_EDIT_CACHE": str(tmp_path / "empty-cache"), "TORCH_HOME": str(tmp_path / "torch")}
    run = lambda args, stdin=None: subprocess.run([sys.executable, str(REPO / "cli.py"), *map(str, args)], input=stdin,
                                                  capture_output=True, text=True, env=env, timeout=600)
    directions = run(["factorize", GENERATOR, "--out", tmp_path / "dirs", "-K", "3"])
    assert directions.returncode == 0, directions.stderr
    aligned = run(["align", PORTRAIT, tmp_path / "a"])
    invert_args = ["invert", "-", tmp_path / "c", "-g", GENERATOR, "--steps", "2", "--device", "cpu"]
    inverted = run(invert_args, aligned.stdout)  # no --perceptual: the default, auto
    assert inverted.returncode == 0, inverted.stderr
    notices = [line for line in inverted.stderr.splitlines() if "no VGG16 weights" in line]
    assert len(notices) == 1 and notices[0].startswith("warning: "), inverted.stderr
    edited = run(["edit", "-", tmp_path / "e", "-g", GENERATOR, "-d", tmp_path / "dirs" / "directions.npz", "--edit", "0=1"],
                 inverted.stdout)
    assert edited.returncode == 0, edited.stderr
    again = run(invert_args, aligned.stdout)  # everything done: nothing to say about losses
    assert again.returncode == 0 and "VGG16" not in again.stderr, again.stderr

    nothing = run(["edit", "-", tmp_path / "e2", "-g", GENERATOR, "-d", tmp_path / "dirs" / "directions.npz", "--edit", "0=1"], "")
    assert nothing.returncode == 1
    assert "no codes arrived on stdin" in nothing.stderr and "edited 0" not in nothing.stderr, nothing.stderr


def test_a_no_op_rerun_reports_done_and_already_done_apart(tmp_path):
    import json

    command = ("run", PORTRAIT, tmp_path / "out", "--steps", "2", "-K", "3", "--edit", "0=1", "--device", "cpu")
    first = cli(*command)
    assert first.returncode == 0, first.stderr
    done = json.loads(first.stdout.strip().splitlines()[-1])
    assert (done["inverted"], done["already_inverted"], done["edited"], done["already_edited"]) == (1, 0, 1, 0)
    again = cli(*command)
    assert again.returncode == 0, again.stderr  # nothing to do is still a success
    rerun = json.loads(again.stdout.strip().splitlines()[-1])
    assert (rerun["inverted"], rerun["already_inverted"], rerun["edited"], rerun["already_edited"]) == (0, 1, 0, 1)


def test_factorize_previews_are_rendered_once_for_the_same_settings(tmp_path):
    command = ("factorize", GENERATOR, "--out", tmp_path / "dirs", "-K", "2", "--preview", "-N", "1", "--steps", "3",
               "--device", "cpu")
    assert cli(*command).returncode == 0
    grids = sorted((tmp_path / "dirs" / "preview").glob("direction_*.png"))
    assert [p.name for p in grids] == ["direction_00.png", "direction_01.png"]
    written = {p.name: p.stat().st_mtime_ns for p in grids}
    assert cli(*command).returncode == 0
    assert {p.name: p.stat().st_mtime_ns for p in grids} == written  # the same settings: not rendered again
    wider = cli(*command[:-2], "--distance", "2", "--device", "cpu")
    assert wider.returncode == 0, wider.stderr
    assert all(p.stat().st_mtime_ns != written[p.name] for p in grids)  # another distance: rendered anew
    fewer = cli("factorize", GENERATOR, "--out", tmp_path / "dirs", "-K", "1", "--preview", "-N", "1", "--steps", "3",
                "--distance", "2", "--device", "cpu")
    assert fewer.returncode == 0
    assert [p.name for p in (tmp_path / "dirs" / "preview").glob("direction_*.png")] == ["direction_00.png"]


def test_models_info_describes_encoders_too(tmp_path):
    import json

    from tests.reference_checkpoints import REFERENCE, load_case, write_idinvert

    ours = cli("models", "info", ENCODER, "--json")
    assert ours.returncode == 0, ours.stderr
    info = json.loads(ours.stdout)
    assert (info["kind"], info["format"], info["codes"], info["input_resolution"]) == ("encoder", "sefa-edit-encoder", [10, 128], 64)
    assert info["parameters"] > 1000 and len(info["trained_for_generator_sha256"]) == 64
    if (REFERENCE / "idinvert_params.npz").is_file():
        params, _, _ = load_case("idinvert")
        _, encoder = write_idinvert(tmp_path, params)
        theirs = cli("models", "info", encoder, "--json")
        assert theirs.returncode == 0, theirs.stderr
        assert json.loads(theirs.stdout)["format"] == "idinvert-encoder"
    neither = tmp_path / "neither.pt"
    __import__("torch").save({"something": 1}, neither)
    refused = cli("models", "info", neither)
    assert refused.returncode == 2 and "unrecognised checkpoint contents" in refused.stderr


def test_the_report_header_says_the_losses_in_words():
    from pipeline.run import losses_in_words

    full = losses_in_words(100, "lpips", 1.0, 2.0, has_encoder=True, vgg_missing=False)
    assert full.startswith("pixel difference") and "LPIPS" in full and "domain regulariser" in full and "none" not in full
    offline = losses_in_words(100, "none", 1.0, 2.0, has_encoder=True, vgg_missing=True)
    assert "no LPIPS: VGG16 weights not found" in offline and "x1.0" not in offline
    assert "no encoder, so no domain regulariser" in losses_in_words(100, "lpips", 1.0, 2.0, has_encoder=False, vgg_missing=False)
    assert losses_in_words(0, "lpips", 1.0, 2.0, has_encoder=True, vgg_missing=False).startswith("none: the codes are the encoder's")


def test_run_renders_a_small_cached_preview_and_keeps_full_grids(tmp_path):
    from dataclasses import asdict

    from factorization.preview import SMALL_PREVIEW, PreviewSettings
    from factorization.stage import previews_made_with
    from generators.checkpoint import load_checkpoint
    from pipeline.run import ensure_directions

    sha = load_checkpoint(GENERATOR).sha256
    small = ensure_directions(tmp_path, GENERATOR, sha, "0-9", 3, preview=SMALL_PREVIEW, device="cpu", any_preview_will_do=True)
    grids = sorted((small.parent / "preview").glob("direction_*.png"))
    assert len(grids) == 3 and previews_made_with(small.parent) == asdict(SMALL_PREVIEW)
    stamp = grids[0].stat().st_mtime_ns
    ensure_directions(tmp_path, GENERATOR, sha, "0-9", 3, preview=SMALL_PREVIEW, device="cpu", any_preview_will_do=True)
    assert grids[0].stat().st_mtime_ns == stamp  # cached
    ensure_directions(tmp_path, GENERATOR, sha, "0-9", 3, preview=PreviewSettings(), device="cpu")  # --preview: full grids
    assert previews_made_with(small.parent) == asdict(PreviewSettings())
    stamp = grids[0].stat().st_mtime_ns
    ensure_directions(tmp_path, GENERATOR, sha, "0-9", 3, preview=SMALL_PREVIEW, device="cpu", any_preview_will_do=True)
    assert grids[0].stat().st_mtime_ns == stamp and previews_made_with(small.parent) == asdict(PreviewSettings())


def test_a_directions_page_without_grids_says_how_to_get_them(tmp_path):
    result = cli("factorize", GENERATOR, "--out", tmp_path / "dirs", "-K", "2")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "dirs" / "index.html").read_text()
    assert "No sample grids were rendered" in page and f"--out {tmp_path / 'dirs'} --preview" in page
