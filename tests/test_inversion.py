"""In-domain inversion on a small generator: recovery of generated images, the domain regulariser,
encoder training and resuming, failure isolation, LPIPS loading, and the `invert` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from common import images
from common.errors import UserError
from generators.checkpoint import save_native
from inversion.encoder import Encoder, EncoderConfig, load_encoder
from inversion.optimize import InversionSettings, invert, per_image_mse
from inversion.perceptual import LPIPS, find_vgg_weights
from inversion.train import TrainSettings, sample_codes, train_encoder
from tests import checkpoint_factories as factories

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def generator():
    return factories.random_generator(factories.small_config(32))


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory, generator) -> Path:
    return save_native(tmp_path_factory.mktemp("g") / "g.pt", generator)


def generated_targets(generator, n: int = 2, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.randn([n, generator.z_dim], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ws = generator.mapping(z, truncation_psi=0.7)
        return ws, generator.synthesis(ws)


def random_encoder(generator, seed: int = 0) -> Encoder:
    torch.manual_seed(seed)
    encoder = Encoder(EncoderConfig.for_generator(32, generator.num_ws, generator.w_dim), w_avg=generator.mapping.w_avg)
    with torch.no_grad():
        encoder.to_ws.weight.normal_(0, 0.02)
    return encoder.eval().requires_grad_(False)


def test_inverting_a_generated_image_recovers_it(generator):
    _, targets = generated_targets(generator)
    result = invert(generator, targets, settings=InversionSettings(steps=150, lr=0.05))
    assert all(f is None for f in result.failure)
    assert (result.mse < 0.05 * result.start_mse).all(), (result.mse, result.start_mse)
    with torch.no_grad():
        again = generator.synthesis(result.ws)
    torch.testing.assert_close(again, result.reconstructions)
    assert per_image_mse(again, targets).max() < 0.01


def test_domain_regulariser_changes_the_result(generator):
    _, targets = generated_targets(generator, seed=2)
    encoder = random_encoder(generator)
    plain = invert(generator, targets, encoder, settings=InversionSettings(steps=40, lr=0.05, lambda_encoder=0.0))
    regularised = invert(generator, targets, encoder, settings=InversionSettings(steps=40, lr=0.05, lambda_encoder=20.0))
    assert (plain.ws - regularised.ws).abs().max() > 1e-2
    with torch.no_grad():
        def consistency(ws):
            return per_image_mse(encoder(generator.synthesis(ws)), ws).mean()
        assert consistency(regularised.ws) < consistency(plain.ws)
    # both start from the encoder's code
    torch.testing.assert_close(plain.start_mse, regularised.start_mse)


def test_a_failing_image_does_not_stop_the_batch(generator):
    _, targets = generated_targets(generator, seed=3)
    targets = targets.clone()
    targets[1, 0, 0, 0] = float("nan")
    result = invert(generator, targets, settings=InversionSettings(steps=20, lr=0.05))
    assert result.failure[0] is None and "loss became nan" in result.failure[1]
    assert result.mse[0] < result.start_mse[0]
    assert torch.isfinite(result.ws[1]).all()


def test_encoder_training_lowers_its_loss_and_resumes_exactly(tmp_path, generator, generator_file):
    settings = TrainSettings(steps=30, batch_size=4, lr=1e-3, checkpoint_every=10, seed=4)

    def held_out_loss(encoder) -> float:
        ws = sample_codes(generator, 8, 10_000, settings, torch.device("cpu"))
        with torch.no_grad():
            return torch.nn.functional.mse_loss(encoder(generator.synthesis(ws)), ws).item()

    untrained = Encoder(EncoderConfig.for_generator(32, generator.num_ws, generator.w_dim), w_avg=generator.mapping.w_avg)
    train_encoder(generator_file, tmp_path / "full.pt", settings, perceptual="none", device_name="cpu")
    trained = load_encoder(tmp_path / "full.pt", generator.num_ws, generator.w_dim)
    assert held_out_loss(trained) < 0.8 * held_out_loss(untrained)

    # Interrupted after 10 steps, then resumed to 30: the same weights and the same log.
    short = TrainSettings(**{**settings.__dict__, "steps": 10})
    train_encoder(generator_file, tmp_path / "resumed.pt", short, perceptual="none", device_name="cpu")
    result = train_encoder(generator_file, tmp_path / "resumed.pt", settings, perceptual="none", device_name="cpu")
    assert result["resumed_from"] == 10
    full = torch.load(tmp_path / "full.pt", weights_only=True)["state"]
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)["state"]
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], rtol=0, atol=1e-6)
    strip = lambda text: [{k: v for k, v in json.loads(l).items() if k != "time"} for l in text.splitlines()]
    assert strip((tmp_path / "resumed.pt.log.jsonl").read_text()) == strip((tmp_path / "full.pt.log.jsonl").read_text())


def test_training_with_real_photos(tmp_path, generator, generator_file):
    data = tmp_path / "aligned"
    data.mkdir()
    _, targets = generated_targets(generator, n=3, seed=5)
    for i, image in enumerate(images.tensor_to_uint8(targets)):
        images.save_rgb(data / f"face_{i}.png", image)
    result = train_encoder(generator_file, tmp_path / "e.pt", TrainSettings(steps=3, batch_size=2), data=data,
                           perceptual="none", device_name="cpu")
    assert "real_image" in result["last"]
    with pytest.raises(UserError, match="holds no images"):
        train_encoder(generator_file, tmp_path / "e2.pt", TrainSettings(steps=1), data=tmp_path / "nothing-here",
                      perceptual="none", device_name="cpu")


def test_adversarial_term_uses_the_checkpoints_discriminator(tmp_path, generator):
    pickle_path = factories.write_nvidia_pkl(tmp_path / "network-snapshot.pkl", generator, tmp_path / "marker")
    data = tmp_path / "aligned"
    data.mkdir()
    _, targets = generated_targets(generator, n=2, seed=7)
    for i, image in enumerate(images.tensor_to_uint8(targets)):
        images.save_rgb(data / f"face_{i}.png", image)
    result = train_encoder(pickle_path, tmp_path / "e.pt", TrainSettings(steps=2, batch_size=2), data=data,
                           perceptual="none", device_name="cpu")
    assert result["last"]["adversarial"] > 0
    from generators.checkpoint import load_checkpoint

    discriminator = load_checkpoint(pickle_path).build_discriminator()
    assert discriminator(targets).shape == (2, 1)
    assert not (tmp_path / "marker").exists()


def test_lpips_backbone_from_a_local_file(tmp_path):
    weights = tmp_path / "vgg16-397923af.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), weights)
    lpips = LPIPS(find_vgg_weights(weights))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    assert lpips(x, x).abs().max() < 1e-6
    assert (lpips(x, y) > 0).all()
    backbone = lpips.model.net.slice1[0].weight
    torch.testing.assert_close(backbone, torch.load(weights, weights_only=True)["features.0.weight"])

    with pytest.raises(UserError, match="--perceptual none"):
        find_vgg_weights(None, tmp_path / "no-shared")
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(UserError, match="not torchvision VGG16 weights"):
        LPIPS(tmp_path / "wrong.pth")


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], capture_output=True, text=True, input=stdin,
                          env={"SEFA_EDIT_CACHE": "/nonexistent-cache", "PATH": "/usr/bin:/bin", "HOME": "/tmp"})


def test_invert_command_writes_codes_and_reruns_only_missing_work(tmp_path, generator, generator_file):
    crops = tmp_path / "aligned"
    crops.mkdir()
    _, targets = generated_targets(generator, n=3, seed=6)
    for i, image in enumerate(images.tensor_to_uint8(targets)):
        images.save_rgb(crops / f"face_{i}.png", image)
    (crops / "broken.png").write_text("not an image")
    out = tmp_path / "codes"
    args = ("invert", str(crops), str(out), "-g", str(generator_file), "--perceptual", "none", "--steps", "30", "--lr", "0.05", "--batch-size", "2")
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    records = [json.loads(line) for line in first.stdout.splitlines()]
    assert sorted(Path(r["code"]).name for r in records) == ["face_0.npy", "face_1.npy", "face_2.npy"]
    assert "broken.png" in first.stderr
    code = np.load(out / "face_0.npy")
    assert code.shape == (generator.num_ws, generator.w_dim) and code.dtype == np.float32
    metrics = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if "error" not in l]
    assert all(m["mse"] < m["start_mse"] for m in metrics) and all(m["psnr"] > 10 for m in metrics)

    # a rerun after losing one output redoes only that one, and reproduces it (its batch differs now, so
    # float rounding may differ in the last bits: codes within 1e-4, pixels within one level)
    saved_code, saved_rec = np.load(out / "face_1.npy"), images.read_rgb(out / "face_1_rec.png")
    stamp = (out / "face_0.npy").stat().st_mtime_ns
    (out / "face_1.npy").unlink()
    second = run_cli(*args)
    assert second.returncode == 0
    assert (out / "face_0.npy").stat().st_mtime_ns == stamp
    np.testing.assert_allclose(np.load(out / "face_1.npy"), saved_code, atol=1e-4)
    assert np.abs(images.read_rgb(out / "face_1_rec.png").astype(int) - saved_rec).max() <= 1
    assert len(second.stdout.splitlines()) == 3

    # LPIPS asked for by name without VGG16 weights: one line saying where to put them (auto falls back instead)
    missing_vgg = run_cli("invert", str(crops), str(tmp_path / "x"), "-g", str(generator_file), "--perceptual", "lpips")
    assert missing_vgg.returncode == 2 and "LPIPS needs VGG16 weights" in missing_vgg.stderr
