"""`sefa-edit factorize` end to end: files written, labels validated, errors on one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.directions_file import load_directions
from common.images import LABEL_HEADER, read_rgb
from generators.checkpoint import save_native
from tests import checkpoint_factories as factories
from tests.hardening_helpers import assert_same_picture

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True, cwd=REPO)


@pytest.fixture()
def checkpoint(tmp_path) -> Path:
    return save_native(tmp_path / "g.pt", factories.random_generator())


def test_factorize_with_preview_writes_directions_grids_spectrum_and_page(tmp_path, checkpoint):
    labels = tmp_path / "my_labels.json"
    labels.write_text(json.dumps({"age": {"index": 1, "sign": -1, "layers": [0, 1]}, "pose": 0}))
    out = tmp_path / "dirs"
    result = run_cli("factorize", str(checkpoint), "--out", str(out), "--layers", "0-1", "-K", "3", "--labels", str(labels),
                     "--preview", "-N", "2", "--steps", "5", "--distance", "2")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["layers"] == [0, 1] and record["num_directions"] == 3

    saved = load_directions(out / "directions.npz")
    assert saved.directions.shape == (3, 16) and saved.layers == [0, 1]
    assert saved.labels["age"].sign == -1 and saved.labels["pose"].index == 0
    assert len(saved.checkpoint_sha256) == 64

    grid = read_rgb(out / "preview" / "direction_00.png")
    cell = 192
    assert grid.shape[0] == LABEL_HEADER + 2 * cell + 3 * 4 and grid.shape[1] == 5 * cell + 6 * 4
    assert (grid[:LABEL_HEADER] < 128).any()  # the strengths are written above the columns
    grid = grid[LABEL_HEADER:]
    # the middle column is the unedited sample, the ends differ from it
    row = grid[4 : 4 + cell]
    cols = [row[:, 4 + j * (cell + 4) : 4 + j * (cell + 4) + cell].astype(int) for j in range(5)]
    assert np.abs(cols[0] - cols[2]).mean() > 1 and np.abs(cols[4] - cols[2]).mean() > 1
    assert (out / "spectrum.png").stat().st_size > 1000
    page = (out / "index.html").read_text()
    assert "preview/direction_02.png" in page and "<svg" in page


def test_preview_middle_column_is_the_plain_sample(tmp_path, checkpoint):
    """Strength 0 must reproduce the sample exactly: compare with a direct render."""
    from factorization.preview import PreviewSettings, render, sample_codes

    generator = factories.random_generator()
    settings = PreviewSettings(num_samples=1, steps=3, distance=1, cell_size=32)
    out = tmp_path / "d"
    assert run_cli("factorize", str(checkpoint), "--out", str(out), "-K", "1", "--preview", "-N", "1", "--steps", "3", "--distance", "1").returncode == 0
    grid = read_rgb(out / "preview" / "direction_00.png")[LABEL_HEADER:]
    direct = render(generator, sample_codes(generator, settings, torch.device("cpu")), 1, 192)[0]
    assert_same_picture(grid[4 : 4 + 192, 4 + 196 : 4 + 196 + 192], direct, "the preview's middle and the direct render")


@pytest.mark.parametrize(
    "labels_text, message",
    [("{not json", "not valid JSON"), ('{"age": {"index": 9}}', "index 9 is outside 0..2"), ('{"age": {"index": 0, "sign": 2}}', "sign must be 1 or -1")],
)
def test_bad_labels_fail_before_writing(tmp_path, checkpoint, labels_text, message):
    labels = tmp_path / "labels.json"
    labels.write_text(labels_text)
    out = tmp_path / "dirs"
    result = run_cli("factorize", str(checkpoint), "--out", str(out), "-K", "3", "--labels", str(labels))
    assert result.returncode == 2
    assert message in result.stderr and str(labels) in result.stderr
    assert not (out / "directions.npz").exists()


def test_factorize_previews_stylegan1_and_pggan_and_refuses_a_biggan_preview_without_its_config(tmp_path):
    import cv2
    import torch

    pggan = factories.write_genforce_pggan(tmp_path / "pggan.pth")
    stylegan1 = factories.write_genforce_stylegan1(tmp_path / "stylegan.pth")
    for name, checkpoint, space in (("p", pggan, "Z"), ("s", stylegan1, "W+")):
        result = run_cli("factorize", str(checkpoint), "--out", str(tmp_path / name), "-K", "2", "--preview")
        assert result.returncode == 0, result.stderr
        assert load_directions(tmp_path / name / "directions.npz").latent_space == space
        grid = cv2.imread(str(tmp_path / name / "preview" / "direction_00.png"))
        assert grid is not None and grid.shape[0] > 5 * 100 and grid.std() > 5  # 5 sample rows, not blank
    torch.save(factories.biggan_state(), tmp_path / "pytorch_model.bin")
    refused = run_cli("factorize", str(tmp_path / "pytorch_model.bin"), "--out", str(tmp_path / "q"), "--preview")
    assert refused.returncode == 2 and "drop --preview" in refused.stderr and "no config.json" in refused.stderr
    refused = run_cli("factorize", str(tmp_path / "pytorch_model.bin"), "--out", str(tmp_path / "q"), "--preview", "--describe")
    assert refused.returncode == 2 and "drop --preview and --describe" in refused.stderr


def test_bad_options_exit_non_zero(tmp_path, checkpoint):
    result = run_cli("factorize", str(checkpoint), "--out", str(tmp_path / "x"), "-K", "999")
    assert result.returncode == 2 and "-K 999" in result.stderr
    result = run_cli("factorize", str(checkpoint), "--out", str(tmp_path / "x"), "--layers", "0-99")
    assert result.returncode == 2 and "outside 0..7" in result.stderr
