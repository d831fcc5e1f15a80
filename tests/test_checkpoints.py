"""Every checkpoint format loads into the same network, and bad files fail with a clear message."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import UserError
from generators.checkpoint import load_checkpoint, save_native
from generators.latent_layers import latent_layers
from tests import checkpoint_factories as factories

REPO = Path(__file__).resolve().parents[1]


def images_of(generator, seed: int = 0, n: int = 2) -> torch.Tensor:
    z = torch.randn([n, generator.z_dim], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator(z, truncation_psi=0.7)


@pytest.fixture()
def source():
    return factories.random_generator(factories.small_config(32, conv_clamp=256.0))


def test_native_round_trip(tmp_path, source):
    path = save_native(tmp_path / "g.pt", source)
    loaded = load_checkpoint(path)
    assert loaded.format == "sefa-edit-pt" and loaded.architecture == "stylegan2"
    torch.testing.assert_close(images_of(loaded.build_generator()), images_of(source))


def test_rosinality_round_trip(tmp_path, source):
    path = factories.write_rosinality(tmp_path / "550000.pt", source)
    loaded = load_checkpoint(path)
    assert loaded.format == "rosinality-pt"
    assert loaded.stylegan2_config.conv_clamp is None  # rosinality has no clamp; compare without it
    plain = factories.random_generator(factories.small_config(32))
    plain.load_state_dict(source.state_dict())
    torch.testing.assert_close(images_of(loaded.build_generator()), images_of(plain))


def test_rosinality_without_latent_avg_estimates_it(tmp_path, source):
    loaded = load_checkpoint(factories.write_rosinality(tmp_path / "g.pt", source, with_latent_avg=False))
    assert any("estimated" in note for note in loaded.notes)
    generator = loaded.build_generator()
    z = torch.randn([20000, source.z_dim], generator=torch.Generator().manual_seed(5))
    reference = source.mapping(z)[:, 0].mean(0)
    assert torch.linalg.vector_norm(generator.mapping.w_avg - reference) < 0.05 * torch.linalg.vector_norm(reference)


def test_genforce_round_trip(tmp_path, source):
    loaded = load_checkpoint(factories.write_genforce(tmp_path / "stylegan2_tiny32.pth", source))
    assert loaded.format == "genforce-pth"
    plain = factories.random_generator(factories.small_config(32))
    plain.load_state_dict(source.state_dict())
    torch.testing.assert_close(images_of(loaded.build_generator()), images_of(plain), atol=1e-5, rtol=1e-5)


def test_nvidia_pickle_round_trip_never_runs_embedded_code(tmp_path, source):
    marker = tmp_path / "PWNED"
    path = factories.write_nvidia_pkl(tmp_path / "network-snapshot-000100.pkl", source, marker)
    loaded = load_checkpoint(path)
    assert not marker.exists(), "the module source embedded in the pickle was executed"
    assert loaded.format == "nvidia-pkl"
    assert loaded.stylegan2_config.conv_clamp == 256.0  # read from the pickled init kwargs
    torch.testing.assert_close(images_of(loaded.build_generator()), images_of(source))


def test_nvidia_pickle_with_os_system_payload_is_inert(tmp_path, source):
    marker = tmp_path / "PWNED"
    path = factories.write_nvidia_pkl(
        tmp_path / "evil.pkl", source, tmp_path / "unused", extra={"augment_pipe": factories.ShellCommand(f"touch {marker}")}
    )
    load_checkpoint(path)
    assert not marker.exists(), "os.system in the pickle was called"


def test_plain_pickle_load_would_have_run_the_payload(tmp_path):
    """Control for the two tests above: the payload is real, plain pickle does execute it."""
    marker = tmp_path / "RAN"
    payload = pickle.dumps({"x": factories.ShellCommand(f"touch {marker}")})
    pickle.loads(payload)
    assert marker.exists()


@pytest.mark.parametrize("resolution", [4, 8, 64])
def test_any_resolution_and_channel_config(tmp_path, resolution):
    config = factories.small_config(resolution, channels={r: 8 + r // 4 for r in [2**i for i in range(2, 7)]})
    source = factories.random_generator(config)
    loaded = load_checkpoint(factories.write_rosinality(tmp_path / "g.pt", source))
    assert loaded.resolution == resolution
    assert loaded.num_latent_layers == 2 * int(np.log2(resolution)) - 2
    assert loaded.stylegan2_config.channels == {r: config.channels[r] for r in config.block_resolutions}
    torch.testing.assert_close(images_of(loaded.build_generator()), images_of(source))


def test_stylegan1_pggan_biggan_are_read_for_sefa(tmp_path):
    sg1 = load_checkpoint(factories.write_genforce_stylegan1(tmp_path / "stylegan_tiny32.pth"))
    assert (sg1.architecture, sg1.resolution, sg1.num_latent_layers, sg1.latent_dim) == ("stylegan", 32, 8, 16)
    pggan = load_checkpoint(factories.write_genforce_pggan(tmp_path / "pggan_tiny32.pth"))
    assert (pggan.architecture, pggan.resolution, pggan.latent_space, pggan.latent_dim) == ("pggan", 32, "Z", 16)
    torch.save(factories.biggan_state(), tmp_path / "pytorch_model.bin")
    biggan = load_checkpoint(tmp_path / "pytorch_model.bin")
    assert (biggan.architecture, biggan.latent_dim, biggan.num_latent_layers, biggan.resolution) == ("biggan", 8, 5, 16)
    with pytest.raises(UserError, match="no config.json beside pytorch_model.bin"):
        biggan.build_generator()  # the state dict alone does not say which blocks upsample
    for loaded, kind, num_ws in ((sg1, "W+", 8), (pggan, "Z", 1)):
        network = loaded.build_generator()
        assert (network.latent_kind, network.num_ws) == (kind, num_ws)
        codes = network.sample_codes(torch.randn(2, network.z_dim))
        image = network.render(codes)
        assert image.shape == (2, 3, 32, 32) and torch.isfinite(image).all() and image.std() > 0.01


def test_latent_layers_pick_the_right_weights(tmp_path, source):
    loaded = load_checkpoint(factories.write_rosinality(tmp_path / "g.pt", source))
    layers = latent_layers(loaded)
    assert len(layers) == source.num_ws
    for i, layer in enumerate(layers):
        np.testing.assert_array_equal(layer.weight, source.style_affine(i).weight.double().numpy())
    assert [layers[i].name for i in (0, 1, 2, len(layers) - 1)] == [
        "synthesis.b4.conv1.affine", "synthesis.b8.conv0.affine", "synthesis.b8.conv1.affine", "synthesis.b32.torgb.affine"
    ]

    state = factories.biggan_state()
    torch.save(state, tmp_path / "biggan.bin")
    big = latent_layers(load_checkpoint(tmp_path / "biggan.bin"))
    np.testing.assert_array_equal(big[0].weight, state["generator.gen_z.weight_orig"][:, :8].double().numpy())
    # block 2 is generator.layers.3 (the attention layer sits at index 2): 4 BNs x (scale, offset) rows
    assert big[3].weight.shape == (8 * 32, 8) and big[3].name == "generator.layers.3.bn_*"
    np.testing.assert_array_equal(
        big[3].weight[:32], state["generator.layers.3.bn_0.offset.weight_orig"][:, :8].double().numpy()
    )

    pggan = latent_layers(load_checkpoint(factories.write_genforce_pggan(tmp_path / "p.pth")))
    weight = torch.load(tmp_path / "p.pth")["generator"]["layer0.weight"]
    assert pggan[0].weight.shape == (32 * 16, 16)
    np.testing.assert_array_equal(pggan[0].weight[0], weight[0, :, 0, 0].double().numpy())


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such checkpoint file"),
        (lambda p: p.write_bytes(b""), "file is empty"),
        (lambda p: p.write_text("just some text\n"), "unknown file format"),
        (lambda p: p.write_bytes(bytes(range(256)) * 4), "unknown file format"),
        (lambda p: torch.save([1, 2, 3], p), "expected a dict of weights"),
        (lambda p: torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, p), "unrecognised checkpoint contents"),
        (lambda p: pickle.dump({"G_ema": 3}, open(p, "wb")), "not an NVIDIA network pickle"),
    ],
)
def test_bad_files_give_a_clear_error(tmp_path, make, message):
    path = tmp_path / "bad.pt"
    make(path)
    with pytest.raises(UserError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_files_are_reported_as_such(tmp_path, source):
    for writer, name in ((factories.write_rosinality, "g.pt"), (lambda p, g: factories.write_nvidia_pkl(p, g, tmp_path / "m"), "g.pkl")):
        path = writer(tmp_path / name, source)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(UserError, match="truncated or corrupt|not a readable generator checkpoint") as info:
            load_checkpoint(path)
        assert str(path) in str(info.value)


def test_inconsistent_weights_are_named(tmp_path, source):
    state = factories.rosinality_state(source)
    state["convs.1.conv.weight"] = state["convs.1.conv.weight"][:, :, :-1]  # one in-channel short
    torch.save({"g_ema": state, "latent_avg": source.mapping.w_avg}, tmp_path / "g.pt")
    with pytest.raises(UserError, match=r"inconsistent StyleGAN2 weights.*synthesis\.b8\.conv1\.weight"):
        load_checkpoint(tmp_path / "g.pt")
    state = factories.rosinality_state(source)
    del state["to_rgbs.0.conv.modulation.bias"]
    torch.save({"g_ema": state}, tmp_path / "g2.pt")
    with pytest.raises(UserError, match="to_rgbs.0.conv.modulation.bias"):
        load_checkpoint(tmp_path / "g2.pt")


def test_pickled_code_in_a_torch_file_is_refused(tmp_path):
    torch.save({"g_ema": factories.ShellCommand("true")}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path / "evil.pt")


def test_models_info_cli(tmp_path, source):
    path = factories.write_genforce(tmp_path / "g.pth", source)
    result = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "models", "info", str(path), "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["format"] == "genforce-pth" and info["architecture"] == "stylegan2"
    assert info["resolution"] == 32 and info["num_ws"] == 8
    assert info["parameters"] == sum(p.numel() for p in source.parameters())
    missing = subprocess.run([sys.executable, str(REPO / "cli.py"), "models", "info", str(tmp_path / "nope.pkl")], capture_output=True, text=True)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "nope.pkl: no such checkpoint file" in missing.stderr


def test_an_unchanged_file_is_read_once_and_a_rewritten_one_again(tmp_path, source):
    path = save_native(tmp_path / "g.pt", source)
    first = load_checkpoint(path)
    assert load_checkpoint(path) is first
    save_native(path, factories.random_generator(factories.small_config(32), seed=3))
    second = load_checkpoint(path)
    assert second is not first
    assert not torch.equal(second.state["mapping.fc0.weight"], first.state["mapping.fc0.weight"])
