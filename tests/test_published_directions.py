"""Published directions as directions files: InterFaceGAN boundaries (`.npy`, both naming conventions)
and GANSpace components (`.npz` with its own keys), read wherever `-d` goes, with labels from their
names; `factorize --method ganspace` proven against GANSpace's own estimator (scikit-learn's
IncrementalPCA, as `estimators.py` calls it) on the same W samples; `factorize --from` gathering them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.directions_file import load_directions
from common.errors import UserError
from common.images import read_rgb, tensor_to_uint8
from generators.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "assets" / "example-stylegan2-64.pt"
DIM = 128  # the bundled generator's W


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *map(str, args)], capture_output=True, text=True)


def boundary(path: Path, seed: int = 0, dim: int = DIM) -> np.ndarray:
    """A boundary saved as InterFaceGAN's train_boundary does: a unit normal, float32, shape [1, dim]."""
    normal = np.random.default_rng(seed).normal(size=(1, dim))
    normal /= np.linalg.norm(normal)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, normal.astype(np.float32))
    return normal[0]


def ganspace_file(path: Path, components: np.ndarray, stdevs: np.ndarray) -> None:
    """What GANSpace's decomposition.py writes (np.savez_compressed, its eight keys, lat_comp [K, 1, dim])."""
    k, dim = components.shape
    np.savez_compressed(path, act_comp=components[:, None].astype(np.float32), act_mean=np.zeros((1, dim), np.float32),
                        act_stdev=stdevs.astype(np.float32), lat_comp=components[:, None].astype(np.float32),
                        lat_mean=np.zeros((1, dim), np.float32), lat_stdev=stdevs.astype(np.float32),
                        var_ratio=np.full(k, 0.1, np.float32), random_stdevs=np.ones(k, np.float32))


@pytest.mark.parametrize("relative, label, space", [
    ("stylegan_ffhq_smile_w_boundary.npy", "smile", "W+"),
    ("stylegan_ffhq_age_c_gender_boundary.npy", "age_c_gender", "Z"),
    ("pggan_celebahq_eyeglasses_boundary.npy", "eyeglasses", "Z"),
    ("stylegan2_ffhq_w/boundary_Smiling.npy", "smiling", "W+"),
    ("stylegan3_ffhq_z/boundary_5_o_Clock_Shadow.npy", "boundary_5_o_clock_shadow", "Z"),
])
def test_interfacegan_boundaries_are_read_with_their_attribute_and_space(tmp_path, relative, label, space):
    normal = boundary(tmp_path / relative)
    directions = load_directions(tmp_path / relative)
    assert directions.published and directions.method == "interfacegan" and directions.latent_space == space
    assert list(directions.labels) == [label] and directions.labels[label].index == 0
    np.testing.assert_allclose(directions.vector(0), normal, atol=1e-7)
    assert directions.layers == [] and directions.for_code(10).layers == list(range(10))  # every entry of the code


def test_a_boundary_whose_space_cannot_be_told_is_refused_in_one_line(tmp_path):
    boundary(tmp_path / "Downloads" / "boundary_Smiling.npy")
    with pytest.raises(UserError, match=r"boundary_Smiling.npy: cannot tell whether this InterFaceGAN boundary is in Z or W"):
        load_directions(tmp_path / "Downloads" / "boundary_Smiling.npy")
    np.save(tmp_path / "stylegan_ffhq_pose_w_boundary.npy", np.zeros((1, 8), np.float32))
    with pytest.raises(UserError, match="all zeros"):
        load_directions(tmp_path / "stylegan_ffhq_pose_w_boundary.npy")
    np.save(tmp_path / "stylegan_ffhq_age_w_boundary.npy", np.ones((3, 8), np.float32))
    with pytest.raises(UserError, match=r"one vector \[1, dim\]; this holds shape \[3, 8\]"):
        load_directions(tmp_path / "stylegan_ffhq_age_w_boundary.npy")


def test_ganspace_components_keep_its_keys_space_and_sigma_unit(tmp_path):
    rng = np.random.default_rng(1)
    components = np.linalg.qr(rng.normal(size=(DIM, 4)))[0].T
    stdevs = np.array([2.0, 1.5, 1.0, 0.5])
    ganspace_file(tmp_path / "stylegan2-ffhq_style_ipca_c80_n1000000_w.npz", components, stdevs)
    directions = load_directions(tmp_path / "stylegan2-ffhq_style_ipca_c80_n1000000_w.npz")
    assert directions.method == "ganspace" and directions.latent_space == "W+" and directions.trained_for == "stylegan2-ffhq"
    np.testing.assert_allclose(directions.vector(1), components[1] * 1.5, atol=1e-6)  # GANSpace: w + sigma * stdev * comp
    assert "GANSpace component 2 of stylegan2-ffhq_style_ipca_c80_n1000000_w.npz" == directions.source_of(2)
    ganspace_file(tmp_path / "biggan-512-husky_generator.gen_z_ipca_c80_n1000000.npz", components, np.ones(4))
    assert load_directions(tmp_path / "biggan-512-husky_generator.gen_z_ipca_c80_n1000000.npz").latent_space == "Z"


def test_edit_with_a_boundary_moves_every_entry_by_the_boundary(tmp_path):
    assert cli("sample", GENERATOR, tmp_path / "s", "-n", "1", "--device", "cpu").returncode == 0
    normal = boundary(tmp_path / "stylegan_ffhq_smile_w_boundary.npy", seed=3)
    result = cli("edit", tmp_path / "s", tmp_path / "e", "-g", GENERATOR, "-d", tmp_path / "stylegan_ffhq_smile_w_boundary.npy",
                 "--edit", "smile=-2,2", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "was published for stylegan_ffhq; nothing in the file lets sefa-edit check" in result.stderr
    generator = load_checkpoint(GENERATOR).build_generator("cpu")
    code = torch.from_numpy(np.load(tmp_path / "s" / "seed0000.npy")).float()[None]
    with torch.no_grad():
        expected = generator.render(code + 2.0 * torch.from_numpy(normal).float())
    expected = tensor_to_uint8(expected)[0].astype(int)
    got = read_rgb(tmp_path / "e" / "seed0000" / "smile_+2p00.png").astype(int)
    assert np.abs(got - expected).max() <= 1  # the same picture, at most one grey level apart


def test_a_z_boundary_or_another_size_cannot_edit_w_codes(tmp_path):
    assert cli("sample", GENERATOR, tmp_path / "s", "-n", "1", "--device", "cpu").returncode == 0
    boundary(tmp_path / "stylegan_ffhq_smile_boundary.npy")
    result = cli("edit", tmp_path / "s", tmp_path / "e", "-g", GENERATOR, "-d", tmp_path / "stylegan_ffhq_smile_boundary.npy",
                 "--edit", "smile=2", "--device", "cpu")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "interfacegan directions in Z space cannot edit the W+ codes" in result.stderr and "_w_boundary.npy" in result.stderr
    boundary(tmp_path / "stylegan_ffhq_smile_w_boundary.npy", dim=512)
    result = cli("edit", tmp_path / "s", tmp_path / "e", "-g", GENERATOR, "-d", tmp_path / "stylegan_ffhq_smile_w_boundary.npy",
                 "--edit", "smile=2", "--device", "cpu")
    assert result.returncode == 2 and "512-dimensional" in result.stderr and "made for another generator" in result.stderr


def test_ganspace_here_equals_ganspaces_own_estimator_on_the_same_samples():
    """GANSpace's exact estimator (`--estimator pca`: scikit-learn's PCA, svd_solver 'full') on w = mapping(z);
    ours accumulates the covariance and takes its eigenvectors. Same samples, same components and spreads.
    (Its default `ipca`, IncrementalPCA, keeps only K components between blocks: an approximation of this.)"""
    import sklearn.decomposition as sklearn
    from factorization.ganspace import ganspace_components

    generator = load_checkpoint(GENERATOR).build_generator("cpu")
    result = ganspace_components(generator, num_directions=5, num_samples=6000, seed=7)
    z = torch.from_numpy(np.random.RandomState(7).randn(6000, generator.z_dim)).float()
    with torch.no_grad():
        w = torch.cat([generator.sample_codes(z[i:i + 4096], 1.0)[:, 0] for i in range(0, 6000, 4096)]).double().numpy()
    theirs = sklearn.PCA(5, svd_solver="full").fit(w)
    cosines = np.abs(np.sum(result.directions * theirs.components_, axis=1))
    assert cosines.min() > 1 - 1e-6, cosines
    np.testing.assert_allclose(result.mean, theirs.mean_, atol=1e-9)
    lat_stdev = (theirs.components_ @ w.T).std(axis=1)  # GANSpace's lat_stdev: spread of the projected samples
    np.testing.assert_allclose(result.stdevs, lat_stdev, rtol=1e-6)
    assert np.all(np.diff(result.variances) <= 0)


def test_factorize_method_ganspace_writes_sigma_unit_directions_compared_with_sefa(tmp_path):
    result = cli("factorize", GENERATOR, "--out", tmp_path / "g", "--method", "ganspace", "--samples", "3000", "-K", "3",
                 "--seed", "1", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"GANSpace component \d: std", result.stderr)) == 3 and "closest SeFa direction" in result.stderr
    directions = load_directions(tmp_path / "g" / "directions.npz")
    assert directions.method == "ganspace" and directions.scales is not None and (directions.scales > 0).all()
    np.testing.assert_allclose(np.linalg.norm(directions.directions, axis=1), 1.0, atol=1e-9)
    page = (tmp_path / "g" / "index.html").read_text()
    assert "GANSpace components of example-stylegan2-64.pt" in page and "Compared with SeFa on the same layers" in page
    assert "principal component 0 of 3000 W samples" in page and "SeFa objective" in page
    sefa = cli("factorize", GENERATOR, "--out", tmp_path / "s", "-K", "3")
    assert sefa.returncode == 0
    sefa_dirs = load_directions(tmp_path / "s" / "directions.npz")
    # SeFa's directions maximise ||A n||^2: no GANSpace component responds more than SeFa's first
    assert directions.eigenvalues.max() <= sefa_dirs.eigenvalues[0] * (1 + 1e-9)


def test_ganspace_is_refused_in_one_line_for_a_generator_without_w(tmp_path):
    from tests.checkpoint_factories import write_genforce_pggan

    pggan = write_genforce_pggan(tmp_path / "pggan.pth")
    result = cli("factorize", pggan, "--out", tmp_path / "g", "--method", "ganspace", "--device", "cpu")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no mapping network" in result.stderr


def test_factorize_from_gathers_boundaries_with_their_labels_and_sources(tmp_path):
    smile = boundary(tmp_path / "stylegan_ffhq_smile_w_boundary.npy", seed=1)
    age = boundary(tmp_path / "stylegan_ffhq_age_w_boundary.npy", seed=2)
    result = cli("factorize", GENERATOR, "--out", tmp_path / "i", "--from", tmp_path / "stylegan_ffhq_smile_w_boundary.npy",
                 "--from", tmp_path / "stylegan_ffhq_age_w_boundary.npy")
    assert result.returncode == 0, result.stderr
    directions = load_directions(tmp_path / "i" / "directions.npz")
    assert directions.checkpoint_sha256 == load_checkpoint(GENERATOR).sha256 and not directions.published
    np.testing.assert_allclose(directions.directions, np.stack([smile, age]), atol=1e-7)
    assert json.loads((tmp_path / "i" / "labels.json").read_text()) == {"smile": {"index": 0, "sign": 1}, "age": {"index": 1, "sign": 1}}
    page = (tmp_path / "i" / "index.html").read_text()
    assert "InterFaceGAN boundary stylegan_ffhq_smile_w_boundary.npy (smile, W space)" in page
    edited = cli("sample", GENERATOR, tmp_path / "s", "-n", "1", "--device", "cpu")
    assert edited.returncode == 0
    edit = cli("edit", tmp_path / "s", tmp_path / "e", "-g", GENERATOR, "-d", tmp_path / "i" / "directions.npz",
               "--edit", "smile=2", "--keep", "age", "--device", "cpu")
    assert edit.returncode == 0, edit.stderr
    record = json.loads(edit.stdout.splitlines()[-1])
    remaining = record["conditional"]["smile"]["remaining"]
    assert remaining == pytest.approx(np.sqrt(1 - float(smile @ age) ** 2), abs=1e-4)  # what is left after keeping age out
    clash = cli("factorize", GENERATOR, "--out", tmp_path / "c", "--from", tmp_path / "stylegan_ffhq_smile_w_boundary.npy",
                "--from", tmp_path / "stylegan_ffhq_smile_w_boundary.npy")
    assert clash.returncode == 2 and "label 'smile' is also given by" in clash.stderr


def test_the_editor_keeps_chosen_directions_out_of_a_slider_and_its_recipe(tmp_path):
    from editing.recipe import load_recipe
    from pipeline.editor_session import EditorSession, Move

    smile = boundary(tmp_path / "stylegan_ffhq_smile_w_boundary.npy", seed=1)
    age = boundary(tmp_path / "stylegan_ffhq_age_w_boundary.npy", seed=2)
    mixed = smile + 0.8 * age  # a boundary that also moves age: what keeping age out is for
    np.save(tmp_path / "stylegan_ffhq_older_smile_w_boundary.npy", (mixed / np.linalg.norm(mixed))[None].astype(np.float32))
    assert cli("factorize", GENERATOR, "--out", tmp_path / "i", "--from", tmp_path / "stylegan_ffhq_older_smile_w_boundary.npy",
               "--from", tmp_path / "stylegan_ffhq_age_w_boundary.npy").returncode == 0
    session = EditorSession(tmp_path / "out", GENERATOR, None, tmp_path / "i" / "directions.npz", "cpu")
    assert "InterFaceGAN boundary" in session.directions.source_of(0)
    layers = tuple(range(session.num_ws))
    ws = session.sample(3, 0.7)
    kept = session.moved(ws, [Move(0, 2.0, layers, keep=(1,))]) - ws
    plain = session.moved(ws, [Move(0, 2.0, layers)]) - ws
    step = kept[0, 0].double().numpy() / 2.0
    assert abs(step @ age) < 1e-6 and np.linalg.norm(step) == pytest.approx(1.0, abs=1e-6)  # age kept out, unit length
    assert np.abs((plain[0, 0].double().numpy() / 2.0) @ age) > 0.5
    recipe = load_recipe(session.write_recipe([Move(0, 2.0, layers, keep=(1,))], "smile-only"))
    np.testing.assert_allclose(recipe.moves[0].vector, step, atol=1e-6)


def test_the_editor_moves_ganspace_components_in_standard_deviations(tmp_path):
    from pipeline.editor_session import EditorSession, Move

    components = np.linalg.qr(np.random.default_rng(4).normal(size=(DIM, 3)))[0].T
    ganspace_file(tmp_path / "stylegan2-ffhq_style_ipca_c80_n1000000_w.npz", components, np.array([3.0, 2.0, 1.0]))
    session = EditorSession(tmp_path / "out", GENERATOR, None, tmp_path / "stylegan2-ffhq_style_ipca_c80_n1000000_w.npz", "cpu")
    ws = session.sample(0, 1.0)
    moved = session.moved(ws, [Move(1, 1.5, (0, 1))]) - ws
    np.testing.assert_allclose(moved[0, 0].double().numpy(), 1.5 * 2.0 * components[1], atol=1e-5)
    assert float(moved[0, 2].abs().max()) == 0.0
    recipe = session.recipe([Move(1, 1.5, (0, 1))])
    assert recipe.moves[0].strength == pytest.approx(3.0) and np.linalg.norm(recipe.moves[0].vector) == pytest.approx(1, abs=1e-6)
