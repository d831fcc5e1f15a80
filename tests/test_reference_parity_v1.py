"""Parity for the seeds' own models: StyleGAN v1 and PGGAN (genforce/sefa) and In-Domain GAN Inversion's
published generator + encoder layout (genforce/idinvert_pytorch), on the golden fixtures of ../shared/reference.

Checkpoints are rebuilt in their real on-disk layout from the reference's tensors, loaded through the
public loaders, and compared with what the reference code computed, within the tolerances its README
suggests for an independent float32 implementation.
"""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch

from common.errors import UserError
from generators.checkpoint import load_checkpoint
from generators.readers import idinvert
from inversion.encoder import load_encoder
from inversion.optimize import InversionSettings, invert, per_image_mse
from tests.reference_checkpoints import REFERENCE, close, load_case, write_genforce, write_idinvert

pytestmark = pytest.mark.skipif(not (REFERENCE / "README-idinvert.md").is_file(),
                                reason=f"reference fixtures not found at {REFERENCE} (shared/ is beside the checkout in CI)")


@pytest.fixture(scope="module")
def genforce(tmp_path_factory):
    params, _, expected = load_case("genforce")
    folder = tmp_path_factory.mktemp("genforce_v1")
    return {net: load_checkpoint(write_genforce(folder / f"{net}.pth", params, net)) for net in ("stylegan", "pggan")}, expected


@pytest.fixture(scope="module")
def idinvert_files(tmp_path_factory):
    params, _, expected = load_case("idinvert")
    generator_path, encoder_path = write_idinvert(tmp_path_factory.mktemp("idinvert"), params)
    return generator_path, encoder_path, params, expected


@pytest.fixture(scope="module")
def idinvert_nets(idinvert_files):
    generator_path, encoder_path, _, expected = idinvert_files
    checkpoint = load_checkpoint(generator_path)
    generator = checkpoint.build_generator()
    encoder = load_encoder(encoder_path, generator.num_ws, generator.w_dim)
    return checkpoint, generator, encoder, expected


# ------------------------------------------------------------------------------ genforce StyleGAN v1, PGGAN

@pytest.mark.parametrize("net", ["stylegan", "pggan"])
def test_genforce_stylegan1_and_pggan_images(genforce, net):
    loaded, expected = genforce
    generator = loaded[net].build_generator()
    z = torch.from_numpy(expected[f"{net}_z"])
    with torch.no_grad():
        # SeFa's StyleGAN call has no truncation (trunc_layers=None); PGGAN has none at all.
        image = generator.render(generator.sample_codes(z))
    reference = expected[f"{net}_img"]
    close(image, reference, atol=max(1e-4, 1e-5 * np.abs(reference).max()))
    assert loaded[net].format == "genforce-pth" and loaded[net].can_render


# ------------------------------------------------------------------------------ IDInvert generator

def test_idinvert_generator_is_recognised_with_its_settings(idinvert_nets):
    checkpoint, generator, _, _ = idinvert_nets
    assert (checkpoint.format, checkpoint.architecture, checkpoint.resolution) == ("idinvert-pth", "stylegan", 128)
    assert (generator.num_ws, generator.w_dim, generator.z_dim) == (12, 24, 16)
    config = checkpoint.synthesis_config
    assert (config.repeat_w, config.final_tanh, config.fused_resolutions) == (False, True, (128,))
    assert checkpoint.describe()["truncation"] == {"psi": 0.7, "layers": 8}


def test_idinvert_mapping_truncation_and_images(idinvert_nets):
    _, generator, _, expected = idinvert_nets
    z = torch.from_numpy(expected["gen_z"])
    with torch.no_grad():
        close(generator.mapping(z), expected["gen_z_w"], atol=1e-4)  # the flat [N, 12 * 24] "W"
        wp = generator.sample_codes(z, idinvert.TRUNCATION_PSI, idinvert.TRUNCATION_LAYERS)
        close(wp, expected["gen_z_wp"], atol=1e-4)
        image = generator.render(wp)
    close(image, expected["gen_z_image"], atol=5e-4)
    # the reference's uint8 conversion: floor(clip((x + 1) * 127.5 + 0.5, 0, 255))
    as_uint8 = np.floor(np.clip((image.numpy() + 1) * 127.5 + 0.5, 0, 255)).astype(np.uint8).transpose(0, 2, 3, 1)
    differs = as_uint8.astype(int) != expected["gen_z_image_uint8"].astype(int)
    assert np.abs(as_uint8.astype(int) - expected["gen_z_image_uint8"]).max() <= 1 and differs.mean() < 1e-3


def test_idinvert_images_and_styles_of_given_codes(idinvert_nets):
    _, generator, _, expected = idinvert_nets
    wp = torch.from_numpy(expected["gen_wp_in"])
    with torch.no_grad():
        close(generator.render(wp), expected["gen_wp_image"], atol=5e-4)
        for index in range(generator.num_ws):
            style = getattr(generator.synthesis, f"layer{index}").style(wp[:, index])
            close(style, expected[f"gen_wp_style{index:02d}"], atol=1e-4)


# ------------------------------------------------------------------------------ IDInvert encoder + inverter

def test_idinvert_encoder_outputs(idinvert_nets):
    _, _, encoder, expected = idinvert_nets
    photos = torch.from_numpy(expected["enc_images_uint8"]).permute(0, 3, 1, 2).float() / 255 * 2 - 1
    close(photos, expected["enc_input"], atol=1e-6)
    with torch.no_grad():
        close(encoder(photos), expected["enc_wp"], atol=1e-4)
        close(encoder(torch.from_numpy(expected["gen_wp_image"])), expected["enc_on_gen_wp_image_wp"], atol=1e-4)
        close(encoder(torch.from_numpy(expected["inv_x"])), expected["inv_init_wp"], atol=1e-4)


def test_idinvert_inverter_steps_match(idinvert_nets):
    """Our optimisation with IDInvert's settings (Adam lr 0.01, encoder regulariser weight 2, no perceptual
    term as in the fixture) reproduces the reference's loss and its codes after 1 and 3 steps."""
    _, generator, encoder, expected = idinvert_nets
    target = torch.from_numpy(expected["inv_x"])
    with torch.no_grad():
        start = encoder(target)
        loss = per_image_mse(generator.render(start), target) + 2.0 * per_image_mse(encoder(generator.render(start)), start)
    np.testing.assert_allclose(loss.item(), expected["inv_losses"][0, 2], rtol=1e-4)
    # The gradient at the reference's start code (our E(x) agrees with it to 1e-5, but a leaky-ReLU kink
    # that flips between the two would move a gradient element by ~1e-2; start where the reference did).
    start = torch.from_numpy(expected["inv_init_wp"]).requires_grad_(True)
    image = generator.render(start)
    (per_image_mse(image, target) + 2.0 * per_image_mse(encoder(image), start)).sum().backward()
    close(start.grad, expected["inv_grads"][0], atol=1e-4)
    for steps, name, atol in ((1, "inv_step1_wp", 1e-5), (3, "inv_step3_wp", 1e-3)):
        settings = InversionSettings(steps=steps, lr=0.01, lambda_perceptual=0.0, lambda_encoder=2.0)
        result = invert(generator, target, encoder, None, settings, start=torch.from_numpy(expected["inv_init_wp"]))
        assert result.failure == [None]
        close(result.ws, expected[name], atol=atol)


# ------------------------------------------------------------------------------ the published layout

def _random_state(layout: dict[str, list[int]], seed: int) -> OrderedDict:
    generator = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros([], dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        elif key == "synthesis.lod":
            state[key] = torch.zeros([])
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    return state


def test_published_ffhq256_layout_loads_as_generator_and_encoder(tmp_path):
    published = json.loads((REFERENCE / "idinvert_ffhq256_keys.json").read_text())
    generator_layout = {k: v for k, v in published["generator"].items() if k != "truncation.truncation"}
    config = idinvert.generator_config(_random_state(generator_layout, 0))
    assert {k: list(v) for k, v in idinvert.expected_generator_layout(config).items()} == published["generator"]

    torch.save(_random_state(generator_layout, 0), tmp_path / "styleganinv_ffhq256_generator.pth")
    checkpoint = load_checkpoint(tmp_path / "styleganinv_ffhq256_generator.pth")
    assert (checkpoint.resolution, checkpoint.num_latent_layers, checkpoint.latent_dim) == (256, 14, 512)
    generator = checkpoint.build_generator()
    with torch.no_grad():
        image = generator.render(generator.mean_code()[None])
    assert image.shape == (1, 3, 256, 256) and torch.isfinite(image).all()

    encoder_state = _random_state(published["encoder"], 1)
    for key in [k for k in encoder_state if k.endswith("num_batches_tracked")][::2]:
        del encoder_state[key]  # the counters may be absent
    torch.save(encoder_state, tmp_path / "styleganinv_ffhq256_encoder.pth")
    del encoder_state
    encoder = load_encoder(tmp_path / "styleganinv_ffhq256_encoder.pth", 14, 512)
    with torch.no_grad():
        codes = encoder(torch.zeros(1, 3, 256, 256))
    assert codes.shape == (1, 14, 512) and torch.isfinite(codes).all()


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_missing_or_misshapen_keys_are_named(idinvert_files, tmp_path):
    _, _, params, _ = idinvert_files
    generator = OrderedDict((k[len("generator."):], v) for k, v in params.items() if k.startswith("generator."))
    encoder = OrderedDict((k[len("encoder."):], v) for k, v in params.items() if k.startswith("encoder."))
    cases = [
        ("g_missing.pth", {k: v for k, v in generator.items() if k != "synthesis.layer3.epilogue.apply_noise.noise"},
         "synthesis.layer3.epilogue.apply_noise.noise"),
        ("g_shape.pth", {**generator, "synthesis.layer10.weight": torch.zeros(3, 3, 16, 9)}, "synthesis.layer10.weight"),
        ("g_extra.pth", {**generator, "synthesis.layer99.bias": torch.zeros(3)}, "synthesis.layer99.bias"),
    ]
    for name, state, key in cases:
        torch.save(state, tmp_path / name)
        with pytest.raises(UserError) as exc:
            load_checkpoint(tmp_path / name)
        assert key in _one_line(exc) and name in str(exc.value)
    encoder_cases = [
        ("e_missing.pth", {k: v for k, v in encoder.items() if k != "block2.bn1.bn.running_var"}, "block2.bn1.bn.running_var"),
        ("e_shape.pth", {**encoder, "block3.conv2.weight": torch.zeros(32, 32, 1, 1)}, "block3.conv2.weight"),
    ]
    for name, state, key in encoder_cases:
        torch.save(state, tmp_path / name)
        with pytest.raises(UserError) as exc:
            load_encoder(tmp_path / name, 12, 24)
        assert key in _one_line(exc)
    torch.save(encoder, tmp_path / "enc.pth")
    with pytest.raises(UserError, match="not a generator"):
        load_checkpoint(tmp_path / "enc.pth")


def test_truncation_buffer_may_be_absent_or_anything(idinvert_files, idinvert_nets, tmp_path):
    _, _, params, expected = idinvert_files
    state = OrderedDict((k[len("generator."):], v) for k, v in params.items() if k.startswith("generator."))
    state["truncation.truncation"] = torch.full([1, 12, 1], 123.0)  # the reference overwrites it; so do we
    torch.save(state, tmp_path / "with_truncation.pth")
    generator = load_checkpoint(tmp_path / "with_truncation.pth").build_generator()
    with torch.no_grad():
        wp = generator.sample_codes(torch.from_numpy(expected["gen_z"]), 0.7, 8)
    close(wp, expected["gen_z_wp"], atol=1e-4)


def test_legacy_torch_format_of_the_published_era_loads(idinvert_files, tmp_path):
    """The published files were written by PyTorch 1.2, i.e. probably in the legacy (pre-zip) format."""
    _, _, params, expected = idinvert_files
    generator = OrderedDict((k[len("generator."):], v) for k, v in params.items()
                            if k.startswith("generator.") and k != "generator.truncation.truncation")
    encoder = OrderedDict((k[len("encoder."):], v) for k, v in params.items() if k.startswith("encoder."))
    torch.save(generator, tmp_path / "g_generator.pth", _use_new_zipfile_serialization=False)
    torch.save(encoder, tmp_path / "g_encoder.pth", _use_new_zipfile_serialization=False)
    assert (tmp_path / "g_generator.pth").read_bytes()[:2] != b"PK"
    network = load_checkpoint(tmp_path / "g_generator.pth").build_generator()
    with torch.no_grad():
        close(network.render(torch.from_numpy(expected["gen_wp_in"])), expected["gen_wp_image"], atol=5e-4)
        close(load_encoder(tmp_path / "g_encoder.pth", 12, 24)(torch.from_numpy(expected["inv_x"])), expected["inv_init_wp"], atol=1e-4)
