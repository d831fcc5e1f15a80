"""The stages on StyleGAN3, StyleGAN v1, PGGAN and In-Domain GAN Inversion's generator + encoder, through
the CLI: `run` end to end on a real photo, `sample` + `edit` for every architecture, and the refusals
that say why (PGGAN has no W+; IDInvert's generator has no shared W; only StyleGAN3 rotates)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.images import read_rgb
from tests import checkpoint_factories as factories
from tests.conftest import SHARED
from tests.reference_checkpoints import REFERENCE, load_case, write_idinvert

REPO = Path(__file__).resolve().parents[1]
PORTRAIT = SHARED / "photos" / "face-recognition" / "obama_small.jpg"


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True, input=stdin)


@pytest.fixture(scope="module")
def idinvert_pair(tmp_path_factory) -> tuple[Path, Path]:
    if not (REFERENCE / "idinvert_params.npz").is_file():
        pytest.skip(f"reference fixtures not found at {REFERENCE}")
    params, _, _ = load_case("idinvert")
    return write_idinvert(tmp_path_factory.mktemp("idinvert"), params)


@pytest.fixture(scope="module")
def stylegan1(tmp_path_factory) -> Path:
    return factories.write_genforce_stylegan1(tmp_path_factory.mktemp("sg1") / "stylegan_tiny32.pth")


@pytest.fixture(scope="module")
def stylegan3() -> Path:
    """NVlabs/stylegan3's own training snapshot (StyleGAN3-T, 32 px), as the reference code wrote it."""
    path = REFERENCE / "stylegan3_t_snapshot.pkl"
    if not path.is_file():
        pytest.skip(f"reference fixtures not found at {REFERENCE}")
    return path


@pytest.fixture(scope="module")
def pggan(tmp_path_factory) -> Path:
    return factories.write_genforce_pggan(tmp_path_factory.mktemp("pggan") / "pggan_tiny32.pth")


@pytest.mark.skipif(not PORTRAIT.is_file(), reason=f"real photos not found at {PORTRAIT}")
def test_run_with_the_idinvert_generator_loads_its_encoder_and_edits(idinvert_pair, tmp_path):
    generator, _ = idinvert_pair  # the encoder lies beside it, named as published
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PORTRAIT, photos)
    out = tmp_path / "out"
    result = cli("run", str(photos), str(out), "-g", str(generator), "--size", "256", "--steps", "3",
                 "--edit", "0=-2:2:3", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "styleganinv_tiny128_encoder.pth, the encoder beside" in result.stderr
    info = json.loads((out / "codes" / "obama_small_0.json").read_text())
    assert info["metrics"]["encoder"] is True and info["fingerprint"]
    assert np.load(out / "codes" / "obama_small_0.npy").shape == (12, 24)
    grid = read_rgb(out / "edits" / "obama_small_0" / "grid.png")
    assert grid.std() > 5
    pasted = sorted((out / "photos" / "obama_small").glob("*.jpg"))
    assert len(pasted) == 3
    assert (out / "index.html").is_file()


@pytest.mark.skipif(not PORTRAIT.is_file(), reason=f"real photos not found at {PORTRAIT}")
def test_run_with_a_stylegan3_generator(stylegan3, tmp_path):
    """A real photo through align, invert (no encoder exists for it: from the mean W), factorize, edit and
    the paste-back, on NVIDIA's own StyleGAN3 pickle."""
    out = tmp_path / "out"
    result = cli("run", str(PORTRAIT), str(out), "-g", str(stylegan3), "--steps", "3", "--edit", "1=-2,2",
                 "--perceptual", "none", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert np.load(out / "codes" / "obama_small_0.npy").shape == (16, 64)
    assert len(list((out / "edits" / "obama_small_0").glob("*.png"))) == 4
    assert len(list((out / "photos" / "obama_small").glob("*.jpg"))) == 2
    assert "StyleGAN3" not in result.stderr or "error" not in result.stderr


@pytest.mark.skipif(not PORTRAIT.is_file(), reason=f"real photos not found at {PORTRAIT}")
def test_run_with_a_stylegan1_generator(stylegan1, tmp_path):
    out = tmp_path / "out"
    result = cli("run", str(PORTRAIT), str(out), "-g", str(stylegan1), "--size", "256", "--steps", "3",
                 "--edit", "1=-2,2", "--perceptual", "none", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert np.load(out / "codes" / "obama_small_0.npy").shape == (8, 16)
    assert len(list((out / "edits" / "obama_small_0").glob("*.png"))) == 4  # two strengths, the reconstruction, the grid


def test_invert_refuses_pggan_and_w_space_without_shared_w(pggan, idinvert_pair, tmp_path):
    import cv2

    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), np.full((128, 128, 3), 128, np.uint8))
    refused = cli("invert", str(crop), str(tmp_path / "codes"), "-g", str(pggan))
    assert refused.returncode == 2 and "no W+ space to invert" in refused.stderr and "sefa-edit sample" in refused.stderr
    generator, _ = idinvert_pair
    refused = cli("invert", str(crop), str(tmp_path / "codes"), "-g", str(generator), "--space", "w")
    assert refused.returncode == 2 and "--space w+" in refused.stderr


@pytest.mark.parametrize("kind", ["stylegan3", "stylegan1", "pggan", "idinvert"])
def test_sample_then_edit_with_every_architecture(kind, stylegan3, stylegan1, pggan, idinvert_pair, tmp_path):
    """StyleGAN3's samples are also turned and shifted (`--rotate/--translate`): their edits keep that view."""
    generator = {"stylegan3": stylegan3, "stylegan1": stylegan1, "pggan": pggan, "idinvert": idinvert_pair[0]}[kind]
    samples = tmp_path / "samples"
    extra = () if kind == "pggan" else ("--truncation", "0.7")
    view = ("--rotate", "30", "--translate", "0.1,-0.05") if kind == "stylegan3" else ()
    result = cli("sample", str(generator), str(samples), "-n", "3", "--seed", "5", *extra, *view, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["seed"] for r in records] == [5, 6, 7]
    first = read_rgb(samples / "seed0005.png")
    assert first.std() > 2 and not np.array_equal(first, read_rgb(samples / "seed0006.png"))
    again = cli("sample", str(generator), str(tmp_path / "again"), "-n", "1", "--seed", "5", *extra, "--device", "cpu")
    assert again.returncode == 0  # the same seed gives the same code, whatever the batch around it
    np.testing.assert_allclose(np.load(tmp_path / "again" / "seed0005.npy"), np.load(samples / "seed0005.npy"), atol=1e-5)
    if view:
        assert np.abs(read_rgb(tmp_path / "again" / "seed0005.png").astype(int) - first).mean() > 1  # the view moved it
        assert json.loads((samples / "seed0005.json").read_text())["input_transform"] == {"rotate": 30.0, "translate": [0.1, -0.05]}

    directions = tmp_path / "dirs"
    assert cli("factorize", str(generator), "--out", str(directions), "-K", "2").returncode == 0
    edited = cli("edit", "-", str(tmp_path / "edits"), "-g", str(generator), "-d", str(directions / "directions.npz"),
                 "--edit", "0=-3,0,3", "--device", "cpu", stdin=result.stdout)
    assert edited.returncode == 0, edited.stderr
    moved = read_rgb(tmp_path / "edits" / "seed0005" / f"{_name_of(tmp_path / 'edits' / 'seed0005', '+3')}")
    unmoved = read_rgb(tmp_path / "edits" / "seed0005" / f"{_name_of(tmp_path / 'edits' / 'seed0005', '+0')}")
    assert np.abs(unmoved.astype(int) - first).max() <= 1  # strength 0 re-renders the sample (up to batch rounding)
    assert np.abs(moved.astype(int) - unmoved).mean() > 1  # and the direction changes it


def _name_of(folder: Path, strength: str) -> str:
    matches = sorted(p.name for p in folder.glob("*.png") if strength in p.name and p.name != "grid.png")
    assert matches, sorted(p.name for p in folder.glob("*"))
    return matches[0]


def test_pggan_refuses_truncation(pggan, tmp_path):
    refused = cli("sample", str(pggan), str(tmp_path / "s"), "--truncation", "0.7")
    assert refused.returncode == 2 and "no mapping network" in refused.stderr


def test_only_stylegan3_turns_its_samples(stylegan1, tmp_path):
    refused = cli("sample", str(stylegan1), str(tmp_path / "s"), "--rotate", "10")
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(errors) == 1 and "only StyleGAN3" in errors[0]
    refused = cli("sample", str(stylegan1), str(tmp_path / "s"), "--translate", "0.1")
    assert refused.returncode == 2 and "two numbers X,Y" in refused.stderr


@pytest.mark.parametrize("kind", ["stylegan3", "stylegan1", "idinvert"])
def test_pivotal_tuning_works_on_every_invertible_architecture(kind, stylegan3, stylegan1, idinvert_pair, tmp_path):
    """PTI through the generator interface only: StyleGAN3, StyleGAN v1 and IDInvert's generator tune and edit
    like StyleGAN2."""
    import json

    from common.images import read_rgb, save_rgb
    from tests.hardening_helpers import assert_same_picture

    generator = {"stylegan3": stylegan3, "stylegan1": stylegan1, "idinvert": idinvert_pair[0]}[kind]
    crops = tmp_path / "crops"
    crops.mkdir()
    save_rgb(crops / "face.png", np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    inverted = cli("invert", str(crops), str(tmp_path / "codes"), "-g", str(generator), "--steps", "1", "--tune", "3",
                   "--tune-per", "face", "--device", "cpu", "--perceptual", "none")
    assert inverted.returncode == 0, inverted.stderr
    metrics = json.loads((tmp_path / "codes" / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["tune_steps_run"] == 3 and metrics["tuned_psnr"] > metrics["psnr"], metrics
    assert cli("factorize", str(generator), "--out", str(tmp_path / "dirs"), "-K", "1").returncode == 0
    edited = cli("edit", str(tmp_path / "codes"), str(tmp_path / "edits"), "-g", str(generator), "-d",
                 str(tmp_path / "dirs" / "directions.npz"), "--edit", "0=1", "--device", "cpu")
    assert edited.returncode == 0, edited.stderr
    assert_same_picture(read_rgb(tmp_path / "edits" / "face" / "reconstruction.png"),
                        read_rgb(tmp_path / "codes" / "face_tuned.png"), kind)


def test_the_editor_turns_and_shifts_stylegan3_samples_for_that_render_only(stylegan3, tmp_path):
    from generators.interface import InputTransform
    from pipeline.editor_session import EditorSession

    session = EditorSession(tmp_path / "ui", stylegan3, None, None, "cpu", num_directions=2)
    assert session.edits_photos and session.can_transform
    code = session.sample(5, truncation=0.7)
    plain = session.render_sample(code, [])
    turned = session.render_sample(code, [], InputTransform((0.1, -0.05), 30.0))
    assert np.abs(turned.astype(int) - plain).mean() > 1
    np.testing.assert_array_equal(session.render_sample(code, []), plain)  # the next render is untransformed again
    sampled = cli("sample", str(stylegan3), str(tmp_path / "s"), "-n", "1", "--seed", "5", "--truncation", "0.7",
                  "--rotate", "30", "--translate", "0.1,-0.05", "--device", "cpu")
    assert sampled.returncode == 0, sampled.stderr
    assert np.abs(read_rgb(tmp_path / "s" / "seed0005.png").astype(int) - turned).max() <= 1  # as the CLI renders it
