"""StyleGAN3 (T and R) against NVlabs/stylegan3's own outputs on the fixtures of ../shared/reference.

T is read from the real training-snapshot pickle the reference code wrote (`stylegan3_t_snapshot.pkl`,
with NVIDIA's source text embedded: it must never run); R from a snapshot rebuilt from its params in
the same layout. Compared: W+ at three truncations, images of mapped and mixed codes, images under a
non-identity input transform (`gen_images.py --rotate --translate`), and SeFa on the 16 style affines.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorization.sefa import factorize
from generators import stylegan3
from generators.checkpoint import load_checkpoint
from generators.filtered_lrelu import downsample_fir, upsample_fir
from generators.latent_layers import latent_layers
from generators.ops import upfirdn2d
from tests.reference_checkpoints import REFERENCE, STYLEGAN3_SOURCE, close, load_case, nvidia_kwargs, write_nvidia_snapshot

pytestmark = pytest.mark.skipif(not (REFERENCE / "stylegan3_t_snapshot.pkl").is_file(),
                                reason=f"StyleGAN3 fixtures not found at {REFERENCE}")
W_ATOL, IMAGE_ATOL = 1e-5, 1e-4
TRUNCATIONS = {"psi1": (1.0, None), "psi0.7": (0.7, None), "psi0.7_cutoff8": (0.7, 8)}


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    """{'t': (checkpoint, expected), 'r': ...}."""
    _, _, expected_t = load_case("stylegan3_t")
    params_r, config_r, expected_r = load_case("stylegan3_r")
    folder = tmp_path_factory.mktemp("stylegan3")
    path_r = write_nvidia_snapshot(folder / "stylegan3-r-snapshot.pkl", params_r, nvidia_kwargs(config_r, "G"), None,
                                   folder / "PWNED", source=STYLEGAN3_SOURCE)
    loaded_r = load_checkpoint(path_r)
    assert not (folder / "PWNED").exists(), "the module source embedded in the pickle was executed"
    return {"t": (load_checkpoint(REFERENCE / "stylegan3_t_snapshot.pkl"), expected_t), "r": (loaded_r, expected_r)}


@pytest.mark.parametrize("config", ["t", "r"])
def test_the_snapshot_is_read_as_stylegan3_of_its_config(networks, config):
    checkpoint, _ = networks[config]
    info = checkpoint.describe()
    assert (checkpoint.architecture, checkpoint.format) == ("stylegan3", "nvidia-pkl")
    assert info["config"] == f"StyleGAN3-{config.upper()}" and info["num_ws"] == 16 and info["resolution"] == 32
    assert info["conv_kernel"] == (1 if config == "r" else 3)
    assert checkpoint.discriminator_state is not None or config == "r"


@pytest.mark.parametrize("config", ["t", "r"])
@pytest.mark.parametrize("tag", list(TRUNCATIONS))
def test_mapping_and_images_match_nvidia(networks, config, tag):
    checkpoint, expected = networks[config]
    generator = checkpoint.build_generator()
    psi, cutoff = TRUNCATIONS[tag]
    with torch.no_grad():
        ws = generator.sample_codes(torch.from_numpy(expected["z"]), psi, cutoff)
        close(ws, expected[f"ws_{tag}"], W_ATOL)
        close(generator.render(ws), expected[f"img_{tag}"], IMAGE_ATOL)


@pytest.mark.parametrize("config", ["t", "r"])
def test_mixed_codes_and_the_input_transform_match_nvidia(networks, config):
    checkpoint, expected = networks[config]
    generator = checkpoint.build_generator()
    with torch.no_grad():
        close(generator.render(torch.from_numpy(expected["ws_mixed"])), expected["img_ws_mixed"], IMAGE_ATOL)
        translate, angle = tuple(expected["transform_translate"]), float(expected["transform_angle_deg"])
        np.testing.assert_allclose(stylegan3.make_transform(translate, angle), expected["transform_make"], atol=1e-15)
        generator.set_input_transform(translate, angle)
        close(generator.synthesis.input.transform, expected["transform_buffer"], 1e-7)
        for tag in ("psi1", "psi0.7"):
            image = generator.render(torch.from_numpy(expected[f"ws_{tag}"]))
            close(image, expected[f"img_transform_{tag}"], IMAGE_ATOL)
        assert np.abs(expected["img_transform_psi1"] - expected["img_psi1"]).max() > 0.1  # the transform moves pixels


@pytest.mark.parametrize("config", ["t", "r"])
def test_the_designed_filters_are_the_stored_ones(networks, config):
    """The layer schedule (rates, cutoffs, taps, radial or not) reproduces every filter in the file."""
    checkpoint, _ = networks[config]
    fresh = stylegan3.Generator(checkpoint.synthesis_config).state_dict()
    filters = [key for key in checkpoint.state if key.endswith("_filter")]
    assert len(filters) == 28 and any(checkpoint.state[key].ndim == 2 for key in filters) == (config == "r")
    for key in filters:
        close(fresh[key], checkpoint.state[key].numpy(), 1e-7)


@pytest.mark.parametrize("config", ["t", "r"])
@pytest.mark.parametrize("spec", ["all", "0-1", "2-5", "6-"])
def test_sefa_on_the_style_affines_matches_genforce_convention(networks, config, spec):
    checkpoint, expected = networks[config]
    layers = latent_layers(checkpoint)
    assert layers[0].name == "synthesis.input.affine" and layers[0].weight.shape == (4, 64)
    selected = [int(i) for i in expected[f"sefa_{spec}_layers"]]
    result = factorize([layers[i].weight for i in selected], 64)
    values, directions = expected[f"sefa_{spec}_eigenvalues"], expected[f"sefa_{spec}_directions"]
    np.testing.assert_allclose(result.eigenvalues[:5], values[:5], rtol=1e-6)
    np.testing.assert_allclose(result.eigenvalues, values, rtol=0, atol=1e-6 * values[0])
    cosines = np.abs(np.sum(result.directions * directions, axis=1))
    assert cosines[:5].min() >= 1 - 1e-6
    assert cosines[values > 1e-4 * values[0]].min() >= 0.9999


@pytest.mark.parametrize("up, padding", [(2, (9, 8, 9, 8)), (4, (13, 12, 13, 12)), (2, (-11, -12, -11, -12))])
def test_polyphase_upsampling_is_zero_insertion_then_filtering(up, padding):
    """The transposed-convolution form equals NVIDIA's reference order of operations (pad, FIR)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn([2, 3, 20, 20], generator=generator)
    taps = torch.rand([6 * up], generator=generator)
    reference = upfirdn2d(x, torch.outer(taps, taps), up=up, padding=padding, gain=up * up)
    ours = upsample_fir(x, taps, up, padding, gain=up * up)
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, atol=1e-6 * reference.abs().max().item(), rtol=0)


@pytest.mark.parametrize("radial", [False, True])
def test_strided_downsampling_is_filtering_then_decimation(radial):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn([2, 3, 40, 40], generator=generator)
    taps = torch.rand([12, 12] if radial else [12], generator=generator)
    full = upfirdn2d(x, taps if radial else torch.outer(taps, taps))
    torch.testing.assert_close(downsample_fir(x, taps, 2), full[:, :, ::2, ::2], atol=1e-5, rtol=1e-5)


def test_a_render_does_not_depend_on_the_rest_of_its_batch(networks):
    """Styles are normalised per sample, so one face renders the same alone or with others (NVIDIA
    normalises over the batch; demodulation cancels it up to float rounding)."""
    checkpoint, expected = networks["t"]
    generator = checkpoint.build_generator()
    ws = torch.from_numpy(expected["ws_psi1"])
    with torch.no_grad():
        together = generator.render(ws)
        alone = generator.render(ws[2:3])
    torch.testing.assert_close(alone, together[2:3], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"z_dim": 64, "c_dim": 0, "w_dim": 64, "img_resolution": 32, "img_channels": 3, "warp": 2}, "unknown StyleGAN3 argument warp"),
    ({"z_dim": 64, "c_dim": 0, "w_dim": 64, "img_channels": 3}, "img_resolution"),
    ({"z_dim": 64, "c_dim": 0, "w_dim": 64, "img_resolution": 32, "img_channels": 3, "channel_base": "x"}, "not a size"),
])
def test_kwargs_we_cannot_reproduce_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        stylegan3.config_from_kwargs(kwargs)
