"""pSp and e4e checkpoints: the published layout, loading as generator and as encoder, the e4e / pSp
difference, one-line errors for broken files, and `-g FILE` alone running the in-domain pipeline."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import UserError
from generators.checkpoint import load_checkpoint
from generators.psp_encoder import PSPEncoderConfig, PSPEncoderNet
from inversion.encoder import load_encoder
from tests import checkpoint_factories as factories

REPO = Path(__file__).resolve().parents[1]

# Measured on the reference networks themselves (omertov/encoder4editing `Encoder4Editing(50, 'ir_se')` with
# stylegan_size 1024, and pixel2style2pixel's `GradualStyleEncoder` with n_styles 18): the sha256 of the list
# of (state-dict key, shape) pairs, its length and its number of values: the layout of the published files'
# `encoder.*` entries.
PUBLISHED_LAYOUT_SHA256 = "61cfe08be6ea7c3884656f774dcd7b0b370fcbeb993b20bd1faf6fd7f85ee08a"
PUBLISHED_KEYS, PUBLISHED_VALUES = 621, 267_161_076


@pytest.mark.parametrize("encoder_type", ["Encoder4Editing", "GradualStyleEncoder"])
def test_full_size_layout_is_the_published_one(encoder_type):
    with torch.device("meta"):  # 1 GB of weights: the shapes are all this needs
        state = PSPEncoderNet(PSPEncoderConfig(encoder_type, 18)).state_dict()
    pairs = [(key, tuple(value.shape)) for key, value in state.items()]
    assert len(pairs) == PUBLISHED_KEYS and sum(v.numel() for v in state.values()) == PUBLISHED_VALUES
    assert hashlib.sha256(repr(pairs).encode()).hexdigest() == PUBLISHED_LAYOUT_SHA256


@pytest.mark.parametrize("encoder_type, name", [("Encoder4Editing", "e4e"), ("GradualStyleEncoder", "pSp")])
def test_one_file_is_generator_and_encoder(tmp_path, encoder_type, name):
    path = factories.write_psp(tmp_path / "ffhq_encode.pt", encoder_type)
    checkpoint = load_checkpoint(path)
    info = checkpoint.describe()
    assert (info["format"], info["architecture"], info["encoder"], info["encoder_codes"]) == ("psp-pt", "stylegan2", name, [8, 512])
    generator = checkpoint.build_generator()
    encoder = load_encoder(path, generator.num_ws, generator.w_dim)
    with torch.no_grad():
        image = generator.render(generator.mean_code()[None])
        codes = encoder(image)  # 32 px in, brought to 256 px
    assert codes.shape == (1, 8, 512) and torch.isfinite(codes).all()
    # codes are offsets from latent_avg: the encoder's zero output is the mean code
    np.testing.assert_allclose(encoder.latent_avg[0].numpy(), checkpoint.state["mapping.w_avg"].numpy(), atol=1e-6)


def test_e4e_is_one_code_plus_per_layer_deltas_of_the_same_heads(tmp_path):
    e4e = load_encoder(factories.write_psp(tmp_path / "e4e.pt", "Encoder4Editing"), 8, 512)
    psp = load_encoder(factories.write_psp(tmp_path / "psp.pt", "GradualStyleEncoder"), 8, 512)
    images = torch.rand(2, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        a, b = e4e(images) - e4e.latent_avg, psp(images) - psp.latent_avg
    np.testing.assert_allclose(a[:, 0], b[:, 0], atol=1e-5)
    np.testing.assert_allclose(a[:, 1:], b[:, :1] + b[:, 1:], atol=1e-4)


def _one_line(call) -> str:
    with pytest.raises(UserError) as exc:
        call()
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_broken_files_are_one_line_errors_naming_the_key(tmp_path):
    missing = factories.write_psp(tmp_path / "missing.pt", drop="encoder.body.20.res_layer.5.fc2.weight")
    assert "encoder.body.20.res_layer.5.fc2.weight"[len("encoder."):] in _one_line(lambda: load_encoder(missing, 8, 512))
    decoder_missing = factories.write_psp(tmp_path / "nodec.pt", drop="decoder.conv1.conv.weight")
    assert "conv1.conv.weight" in _one_line(lambda: load_checkpoint(decoder_missing))
    path = factories.write_psp(tmp_path / "shape.pt")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["encoder.styles.5.linear.weight"] = torch.zeros(512, 256)
    torch.save(payload, path)
    assert "styles.5.linear.weight has shape [512, 256], expected [512, 512]" in _one_line(lambda: load_encoder(path, 8, 512))
    untyped = factories.write_psp(tmp_path / "untyped.pt", opts={"encoder_type": None})
    assert "encoder_type" in _one_line(lambda: load_encoder(untyped, 8, 512))
    assert "generator takes [14, 512]" in _one_line(lambda: load_encoder(factories.write_psp(tmp_path / "ok.pt"), 14, 512))


def test_a_file_with_python_objects_in_opts_is_refused(tmp_path):
    """Anything weights_only rejects (here a pickled PosixPath in opts) is refused, never unpickled."""
    path = tmp_path / "objects.pt"
    payload = torch.load(factories.write_psp(tmp_path / "clean.pt"), weights_only=True)
    payload["opts"]["exp_dir"] = Path("/experiments/e4e")
    torch.save(payload, path)
    assert "cannot be loaded safely" in _one_line(lambda: load_checkpoint(path))
    assert "not a readable encoder" in _one_line(lambda: load_encoder(path, 8, 512))


def test_invert_with_the_file_alone_uses_its_encoder(tmp_path):
    import cv2

    path = factories.write_psp(tmp_path / "e4e_ffhq_encode.pt")
    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "invert", str(crop), str(tmp_path / "codes"), "-g", str(path),
                             "--steps", "0", "--perceptual", "none", "--device", "cpu"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "using the e4e encoder stored in e4e_ffhq_encode.pt" in result.stderr
    info = json.loads((tmp_path / "codes" / "crop.json").read_text())
    assert info["metrics"]["encoder"] is True and info["metrics"]["steps"] == 0
    assert info["metrics"]["mse"] == info["metrics"]["start_mse"]  # --steps 0 is the encoder's code itself
    assert info["record"]["encoder_reconstruction"] == str((tmp_path / "codes" / "crop_encoder.png").resolve())
    assert (tmp_path / "codes" / "crop_encoder.png").is_file()
