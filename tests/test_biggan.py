"""BigGAN-deep against pytorch-pretrained-BigGAN's own outputs (../shared/reference/biggan_deep_*), from
its real on-disk layout (a folder with `pytorch_model.bin` in the legacy torch.save format and the
`config.json` text the reference wrote), and through the stages: `sample --class --truncation`,
factorize previews, `edit` of z codes with their class kept, and the refusal to invert."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from common.images import read_rgb
from factorization.sefa import factorize
from generators import biggan
from generators.checkpoint import load_checkpoint
from generators.interface import apply_render_condition
from generators.latent_layers import latent_layers
from tests.reference_checkpoints import REFERENCE, close, load_case

pytestmark = pytest.mark.skipif(not (REFERENCE / "biggan_deep_params.npz").is_file(),
                                reason=f"BigGAN fixtures not found at {REFERENCE}")
REPO = Path(__file__).resolve().parents[1]
IMAGE_ATOL = 1e-4


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *map(str, args)], capture_output=True, text=True, input=stdin)


def write_checkpoint(folder: Path, weights_name: str = "pytorch_model.bin", config_name: str = "config.json") -> Path:
    params, config, _ = load_case("biggan_deep")
    folder.mkdir(parents=True, exist_ok=True)
    state = OrderedDict((k[len("biggan."):], v) for k, v in params.items())
    torch.save(state, folder / weights_name, _use_new_zipfile_serialization=False)  # as the published files
    (folder / config_name).write_text(config["biggan_config_json_text"], encoding="utf-8")
    return folder / weights_name


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = write_checkpoint(tmp_path_factory.mktemp("biggan") / "biggan-deep-tiny")
    _, _, expected = load_case("biggan_deep")
    return path, load_checkpoint(path), expected


@pytest.mark.parametrize("truncation", ["0.4", "1.0", "0.333"])
def test_images_match_the_reference_at_every_truncation(model, truncation):
    """0.333 falls between two rows of batch-norm statistics, where the reference mixes them reversed."""
    _, checkpoint, expected = model
    generator = checkpoint.build_generator()
    with torch.no_grad():
        for i, class_index in enumerate(expected["class_index"]):
            apply_render_condition(generator, {"class": int(class_index), "truncation_psi": float(truncation)})
            z = torch.from_numpy(expected[f"z_trunc{truncation}"][i : i + 1])
            close(generator.render(z[:, None]), expected[f"img_trunc{truncation}"][i : i + 1], IMAGE_ATOL)


def test_the_condition_vector_and_first_layer_match(model):
    _, checkpoint, expected = model
    generator = checkpoint.build_generator()
    with torch.no_grad():
        condition = torch.cat([torch.from_numpy(expected["z_trunc0.4"]),
                               generator.embeddings(torch.from_numpy(expected["class_vector"]))], dim=1)
        close(condition, expected["cond_vector_trunc0.4"], 1e-6)
        close(generator.generator.gen_z(condition), expected["gen_z_out_trunc0.4"], 1e-5)


def test_truncated_noise_is_the_references_for_the_same_seed(model):
    _, _, expected = model
    np.testing.assert_array_equal(biggan.truncated_noise(4103, 32), expected["z_base"][0])
    assert np.abs(biggan.truncated_noise(7, 128)).max() <= 2


def test_statistics_between_rows_are_mixed_as_the_reference_does():
    means = torch.arange(51, dtype=torch.float64)[:, None].repeat(1, 2)
    mean, _ = biggan.statistics_at(means, means, 0.333)  # coef 0.65 on row 16, 0.35 on row 17
    torch.testing.assert_close(mean, torch.full([2], 16 * 0.65 + 17 * 0.35, dtype=torch.float64))
    assert biggan.statistics_at(means, means, 0.4)[0][0].item() == 20
    assert abs(biggan.statistics_at(means, means, 0.14)[0][0].item() - 8) < 1e-9  # float rounding reads row 8


@pytest.mark.parametrize("spec, prefix", [([0], "sefa_genz"), (None, "sefa_genz_bn")])
def test_sefa_on_gen_z_and_every_batch_norm_matches(model, spec, prefix):
    _, checkpoint, expected = model
    layers = latent_layers(checkpoint)
    chosen = [layer.weight for layer in layers] if spec is None else [layers[i].weight for i in spec]
    assert sum(w.shape[0] for w in chosen) == (2048 if spec else 2048 + sum(
        v.shape[0] for k, v in checkpoint.state.items() if ".bn_" in k and k.endswith("weight_orig")))
    result = factorize(chosen, 32)
    values, directions = expected[f"{prefix}_eigenvalues"], expected[f"{prefix}_directions"]
    np.testing.assert_allclose(result.eigenvalues[:5], values[:5], rtol=1e-6)
    cosines = np.abs(np.sum(result.directions * directions, axis=1))
    assert cosines[:5].min() >= 1 - 1e-6 and cosines[values > 1e-4 * values[0]].min() >= 0.9999


def test_the_published_file_names_find_their_config(tmp_path):
    path = write_checkpoint(tmp_path, "biggan-deep-tiny-pytorch_model.bin", "biggan-deep-tiny-config.json")
    checkpoint = load_checkpoint(path)
    assert checkpoint.can_render and checkpoint.describe()["num_classes"] == 10


def test_a_config_that_does_not_fit_the_weights_is_one_line(tmp_path):
    path = write_checkpoint(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["layers"][1][0] = False  # the tensors cannot tell; the image size then can
    config["num_classes"] = 11
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = cli("models", "info", path)
    assert result.returncode == 2 and "config.json: does not describe the BigGAN weights" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_sample_preview_edit_keep_the_class_and_truncation_and_invert_refuses(model, tmp_path):
    path, _, _ = model
    samples = tmp_path / "samples"
    result = cli("sample", path, samples, "-n", "2", "--class", "3", "--truncation", "0.4", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    record = json.loads((samples / "seed0000.json").read_text())
    assert (record["class"], record["truncation_psi"], record["latent_space"]) == (3, 0.4, "Z")
    code = np.load(samples / "seed0000.npy")
    np.testing.assert_allclose(code[0], 0.4 * biggan.truncated_noise(0, 32), rtol=1e-6)
    other_class = cli("sample", path, tmp_path / "other", "-n", "1", "--class", "4", "--truncation", "0.4")
    assert other_class.returncode == 0
    first = read_rgb(samples / "seed0000.png")
    assert np.abs(read_rgb(tmp_path / "other" / "seed0000.png").astype(int) - first).mean() > 1  # the class shows

    factorized = cli("factorize", path, "--out", tmp_path / "dirs", "-K", "2", "--preview")
    assert factorized.returncode == 0, factorized.stderr
    assert read_rgb(tmp_path / "dirs" / "preview" / "direction_00.png").std() > 5
    edited = cli("edit", samples, tmp_path / "edits", "-g", path, "-d", tmp_path / "dirs" / "directions.npz",
                 "--edit", "0=-2,0,2", "--device", "cpu")
    assert edited.returncode == 0, edited.stderr
    folder = tmp_path / "edits" / "seed0000"
    unmoved = read_rgb(next(p for p in folder.glob("*+0p00.png")))
    assert np.abs(unmoved.astype(int) - first).max() <= 1  # strength 0 renders the sample: same class, same truncation
    assert np.abs(read_rgb(next(p for p in folder.glob("*+2p00.png"))).astype(int) - unmoved).mean() > 1

    refused = cli("invert", samples / "seed0000.png", tmp_path / "codes", "-g", path)
    assert refused.returncode == 2 and "no W+ space to invert" in refused.stderr
    bad = cli("sample", path, tmp_path / "bad", "--truncation", "1.5")
    assert bad.returncode == 2 and "(0, 1]" in bad.stderr


def test_the_editor_explores_biggan_samples_and_refuses_photos_in_one_line(model, tmp_path):
    from common.errors import UserError
    from pipeline.editor_session import EditorSession, Move

    path, _, _ = model
    session = EditorSession(tmp_path / "ui", path, None, None, "cpu", num_directions=2)
    assert not session.edits_photos and not session.can_transform and session.num_classes == 10
    code = session.sample(0, truncation=0.4, class_index=3)
    image = session.render_sample(code, [])
    sampled = cli("sample", path, tmp_path / "s", "-n", "1", "--class", "3", "--truncation", "0.4", "--device", "cpu")
    assert sampled.returncode == 0
    assert np.abs(image.astype(int) - read_rgb(tmp_path / "s" / "seed0000.png")).max() <= 1  # the CLI's very sample
    moved = session.render_sample(code, [Move(0, 2.0, (0,))])
    assert np.abs(moved.astype(int) - image).mean() > 1
    other_class = session.render_sample(session.sample(0, truncation=0.4, class_index=4), [])
    assert np.abs(other_class.astype(int) - image).mean() > 1
    with pytest.raises(UserError, match="no W\\+ codes to invert a photo into"):
        session.find_faces(tmp_path / "s" / "seed0000.png")
    with pytest.raises(UserError, match=r"\(0, 1\]"):
        session.sample(0, truncation=0.0, class_index=3)
