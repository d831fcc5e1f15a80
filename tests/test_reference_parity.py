"""Parity with the reference implementations, on the golden fixtures of ../shared/reference.

Each checkpoint is rebuilt in its real on-disk layout from the reference's own tensors, loaded through
the public loader, and compared with what the reference code computed: mapping W / W+ at three
truncations, images with constant and without noise, discriminator logits, and SeFa eigenvalues and
directions. Tolerances are the ones the fixtures' README gives.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorization.sefa import factorize
from generators.checkpoint import load_checkpoint
from generators.latent_layers import latent_layers
from tests.reference_checkpoints import (
    REFERENCE, STYLEGAN3_REPO_SOURCE, close, load_case, nvidia_kwargs, write_genforce, write_nvidia_snapshot, write_rosinality,
)

pytestmark = pytest.mark.skipif(not (REFERENCE / "README.md").is_file(),
                                reason=f"reference fixtures not found at {REFERENCE} (shared/ is beside the checkout in CI)")
W_ATOL = 1e-5
IMAGE_ATOL = 1e-4
SPECS = ("all", "0-1", "2-5", "6-")
TRUNCATIONS = {"psi1": (1.0, None), "psi0.7": (0.7, None), "psi0.7_cutoff4": (0.7, 4)}


@pytest.fixture(scope="module")
def nvidia(tmp_path_factory):
    params, config, expected = load_case("nvidia")
    folder = tmp_path_factory.mktemp("nvidia")
    path = write_nvidia_snapshot(folder / "network-snapshot.pkl", params, nvidia_kwargs(config, "G"),
                                 nvidia_kwargs(config, "D"), folder / "PWNED")
    loaded = load_checkpoint(path)
    assert not (folder / "PWNED").exists(), "the module source embedded in the pickle was executed"
    return loaded, expected


@pytest.fixture(scope="module")
def nvidia_clamp(tmp_path_factory):
    params, config, expected = load_case("nvidia_clamp")
    folder = tmp_path_factory.mktemp("clamp")
    path = write_nvidia_snapshot(folder / "clamp.pkl", params, nvidia_kwargs(config, "G"), None, folder / "PWNED")
    return load_checkpoint(path), expected, params, config


@pytest.fixture(scope="module")
def rosinality(tmp_path_factory):
    params, _, expected = load_case("rosinality")
    return load_checkpoint(write_rosinality(tmp_path_factory.mktemp("rosinality") / "550000.pt", params)), expected


@pytest.fixture(scope="module")
def genforce(tmp_path_factory):
    params, _, expected = load_case("genforce")
    folder = tmp_path_factory.mktemp("genforce")
    loaded = {net: load_checkpoint(write_genforce(folder / f"{net}.pth", params, net)) for net in ("stylegan2", "stylegan", "pggan")}
    return loaded, expected


# ------------------------------------------------------------------------------------------ NVIDIA

@pytest.mark.parametrize("case", ["nvidia", "nvidia_clamp"])
@pytest.mark.parametrize("tag", list(TRUNCATIONS))
def test_nvidia_mapping_and_images(request, case, tag):
    loaded, expected = request.getfixturevalue(case)[:2]
    generator = loaded.build_generator()
    psi, cutoff = TRUNCATIONS[tag]
    with torch.no_grad():
        ws = generator.mapping(torch.from_numpy(expected["z"]), None, truncation_psi=psi, truncation_cutoff=cutoff)
        close(ws, expected[f"ws_{tag}"], W_ATOL)
        close(generator.synthesis(torch.from_numpy(expected[f"ws_{tag}"]), noise_mode="const"), expected[f"img_{tag}"], IMAGE_ATOL)


@pytest.mark.parametrize("case", ["nvidia", "nvidia_clamp"])
@pytest.mark.parametrize("noise", ["const", "none"])
def test_nvidia_images_of_mixed_codes_with_and_without_noise(request, case, noise):
    loaded, expected = request.getfixturevalue(case)[:2]
    with torch.no_grad():
        images = loaded.build_generator().synthesis(torch.from_numpy(expected["ws_mixed"]), noise_mode=noise)
    close(images, expected[f"img_ws_mixed_noise_{noise}"], IMAGE_ATOL)


def test_nvidia_discriminator_logits(nvidia):
    loaded, expected = nvidia
    discriminator = loaded.build_discriminator()
    assert discriminator.mbstd_group_size == 4
    with torch.no_grad():
        close(discriminator(torch.from_numpy(expected["d_input"])), expected["d_logits"], 1e-5)


# ------------------------------------------------------------------------------------------ rosinality

@pytest.mark.parametrize("tag", ["psi1", "psi0.7"])
def test_rosinality_mapping_and_images(rosinality, tag):
    loaded, expected = rosinality
    generator = loaded.build_generator()
    psi = TRUNCATIONS[tag][0]
    with torch.no_grad():
        ws = generator.mapping(torch.from_numpy(expected["z"]), None, truncation_psi=psi)
        close(ws, expected[f"ws_{tag}"], W_ATOL)
        close(generator.synthesis(ws, noise_mode="const"), expected[f"img_{tag}"], IMAGE_ATOL)


@pytest.mark.parametrize("noise, tag", [("const", "stored"), ("none", "zero")])
def test_rosinality_images_with_stored_and_zero_noise(rosinality, noise, tag):
    loaded, expected = rosinality
    with torch.no_grad():
        images = loaded.build_generator().synthesis(torch.from_numpy(expected["ws_mixed"]), noise_mode=noise)
    close(images, expected[f"img_ws_mixed_noise_{tag}"], IMAGE_ATOL)


# ------------------------------------------------------------------------------------------ genforce

def test_genforce_stylegan2_mapping_and_images(genforce):
    loaded, expected = genforce
    generator = loaded["stylegan2"].build_generator()
    z = torch.from_numpy(expected["stylegan2_z"])
    with torch.no_grad():
        close(generator.mapping(z, None)[:, 0], expected["stylegan2_w"], W_ATOL)
        for tag, (psi, cutoff) in TRUNCATIONS.items():
            ws = generator.mapping(z, None, truncation_psi=psi, truncation_cutoff=cutoff)
            close(ws, expected[f"stylegan2_wp_{tag}"], W_ATOL)
            close(generator.synthesis(ws, noise_mode="const"), expected[f"stylegan2_img_{tag}"], IMAGE_ATOL)
        mixed = generator.synthesis(torch.from_numpy(expected["stylegan2_wp_mixed"]), noise_mode="const")
    close(mixed, expected["stylegan2_img_wp_mixed"], IMAGE_ATOL)


# ------------------------------------------------------------------------------------------ SeFa

def _sefa_cases():
    for case in ("nvidia", "nvidia_clamp", "rosinality"):
        for spec in SPECS:
            yield case, "", spec
    for net in ("stylegan2", "stylegan"):
        for spec in SPECS:
            yield "genforce", net, spec
    yield "genforce", "pggan", "all"


@pytest.mark.parametrize("case, net, spec", list(_sefa_cases()), ids=lambda v: v or "-")
def test_sefa_matches_genforce_factorize_weight(request, case, net, spec):
    """Same layers, same row normalisation, same spectrum; directions equal up to sign (|cos|)."""
    fixture = request.getfixturevalue(case)
    loaded = fixture[0][net] if net else fixture[0]
    expected = fixture[1]
    prefix = f"{net}_sefa_{spec}" if net else f"sefa_{spec}"
    layers = latent_layers(loaded)
    selected = [int(i) for i in expected[f"{prefix}_layers"]]
    dim = layers[0].weight.shape[1]
    result = factorize([layers[i].weight for i in selected], dim)

    reference_values, reference_directions = expected[f"{prefix}_eigenvalues"], expected[f"{prefix}_directions"]
    top = reference_values[0]
    np.testing.assert_allclose(result.eigenvalues[:5], reference_values[:5], rtol=1e-6)
    np.testing.assert_allclose(result.eigenvalues, reference_values, rtol=0, atol=1e-6 * top)
    cosines = np.abs(np.sum(result.directions * reference_directions, axis=1))
    assert cosines[:5].min() >= 1 - 1e-6
    non_null = reference_values > 1e-4 * top
    assert cosines[non_null].min() >= 0.9999


def test_genforce_top_k_is_not_the_sorted_top_k():
    """What the README says of genforce: np.linalg.eig's order is not sorted, so its 'top K' is not."""
    _, _, expected = load_case("genforce")
    orders = [expected[k] for k in expected if k.endswith("_raw_order")]
    assert any((order[:5] != np.arange(5)).any() for order in orders)


def test_rosinality_closed_form_is_a_different_factorisation(rosinality):
    """rosinality's closed_form_factorization.py: other layers (to_rgb1 in, to_rgbs out), no row
    normalisation. Its directions are not SeFa's: recorded here, quoted in the README."""
    loaded, expected = rosinality
    layers = latent_layers(loaded)
    ours = factorize([layer.weight for layer in layers], 5).directions
    theirs = expected["closed_form_eigvec"][:, :5].T
    cosines = np.abs(np.sum(ours * theirs, axis=1))
    assert cosines.max() < 0.95 and cosines.min() > 0.1, cosines


# ------------------------------------------------------------------------------------------ loader gaps

def test_flat_stylegan3_repo_kwargs_keep_their_clamp(tmp_path):
    """A StyleGAN2 pickle written by the stylegan3 repository takes synthesis kwargs flat: the clamp that
    bites in this case must be read from there, not dropped."""
    params, config, expected = load_case("nvidia_clamp")
    g_kwargs = nvidia_kwargs(config, "G")
    flat = {**{k: v for k, v in g_kwargs.items() if k != "synthesis_kwargs"}, **g_kwargs["synthesis_kwargs"]}
    path = write_nvidia_snapshot(tmp_path / "sg3.pkl", params, flat, None, tmp_path / "PWNED", source=STYLEGAN3_REPO_SOURCE)
    loaded = load_checkpoint(path)
    assert loaded.stylegan2_config.conv_clamp == 0.5
    with torch.no_grad():
        images = loaded.build_generator().synthesis(torch.from_numpy(expected["ws_psi1"]), noise_mode="const")
    close(images, expected["img_psi1"], IMAGE_ATOL)


def test_stylegan3_repo_class_defaults_apply_when_the_pickle_is_silent(tmp_path):
    """The published stylegan2-ffhqu-*.pkl leave conv_clamp and num_fp16_res to the class defaults of
    training/networks_stylegan2.py: 256 and 4, for G and D alike (stylegan2-ada's defaults are None and 0)."""
    params, config, _ = load_case("nvidia")
    g_kwargs = nvidia_kwargs(config, "G")
    synthesis = {k: v for k, v in g_kwargs["synthesis_kwargs"].items() if k not in ("conv_clamp", "num_fp16_res")}
    flat = {**{k: v for k, v in g_kwargs.items() if k != "synthesis_kwargs"}, **synthesis}
    d_kwargs = {k: v for k, v in nvidia_kwargs(config, "D").items() if k not in ("conv_clamp", "num_fp16_res")}
    sg3 = load_checkpoint(write_nvidia_snapshot(tmp_path / "sg3.pkl", params, flat, d_kwargs, tmp_path / "x",
                                                source=STYLEGAN3_REPO_SOURCE))
    assert (sg3.stylegan2_config.conv_clamp, sg3.stylegan2_config.num_fp16_res) == (256.0, 4)
    assert (sg3.discriminator_kwargs["conv_clamp"], sg3.discriminator_kwargs["num_fp16_res"]) == (256, 4)
    ada_kwargs = {**g_kwargs, "synthesis_kwargs": synthesis}
    ada = load_checkpoint(write_nvidia_snapshot(tmp_path / "ada.pkl", params, ada_kwargs, d_kwargs, tmp_path / "x"))
    assert (ada.stylegan2_config.conv_clamp, ada.stylegan2_config.num_fp16_res) == (None, 0)
    assert ada.discriminator_kwargs["conv_clamp"] is None


def test_discriminator_group_size_comes_from_the_pickle(tmp_path):
    params, config, expected = load_case("nvidia")
    logits = {}
    for group in (2, 8):
        d_kwargs = nvidia_kwargs(config, "D")
        d_kwargs["epilogue_kwargs"] = {"mbstd_group_size": group}
        path = write_nvidia_snapshot(tmp_path / f"g{group}.pkl", params, nvidia_kwargs(config, "G"), d_kwargs, tmp_path / "x")
        discriminator = load_checkpoint(path).build_discriminator()
        assert discriminator.mbstd_group_size == group
        with torch.no_grad():
            logits[group] = discriminator(torch.from_numpy(expected["d_input"]))
    close(logits[8], expected["d_logits"], 1e-5)  # min(8, batch 4) = 4: NVIDIA's own grouping
    assert not np.allclose(logits[2].numpy(), expected["d_logits"], atol=1e-3)  # groups of 2 are used, not 4


def test_a_batch_that_does_not_divide_into_groups_is_an_error_as_in_nvidia(nvidia):
    loaded, expected = nvidia
    discriminator = loaded.build_discriminator()
    batch = torch.from_numpy(np.concatenate([expected["d_input"], expected["d_input"][:2]]))  # 6 images, groups of 4
    with pytest.raises(ValueError, match="does not divide into minibatch-stddev groups of 4"):
        discriminator(batch)
