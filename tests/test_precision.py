"""`--precision fp32|bf16|fp16` and `--batch-size auto`: reduced precision where NVIDIA puts it (the
checkpoint's `num_fp16_res` highest blocks), renders returned in fp32 and close to the exact ones, fp32
unchanged bit for bit, precision part of the fingerprints (so a rerun redoes what it changes), a
one-line refusal for generators that render in fp32 only, and the arithmetic of the GPU batch size."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import UserError
from common.images import save_rgb, tensor_to_uint8
from generators.checkpoint import load_checkpoint
from generators.precision import set_precision
from inversion.memory import crops_that_fit
from inversion.optimize import InversionSettings, invert, psnr_from_mse
from inversion.stage import run_invert
from tests import checkpoint_factories as factories
from tests.conftest import SHARED

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "assets" / "example-stylegan2-64.pt"
ENCODER = REPO / "assets" / "example-encoder.pt"


def _psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    return psnr_from_mse(((image - reference) ** 2).mean()).item()


def _renders_in_each_precision(generator, codes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Renders of `codes` in fp32, bf16 and fp16, and in fp32 again after them ("again")."""
    renders = {}
    with torch.no_grad():
        for name in ("fp32", "bf16", "fp16"):
            set_precision(generator, name)
            renders[name] = generator.render(codes)
        set_precision(generator, "fp32")
        renders["again"] = generator.render(codes)
    return renders


def _reduced_blocks(generator) -> list[int]:
    return [res for res in generator.config.block_resolutions
            if getattr(generator.synthesis, f"b{res}").compute_dtype != torch.float32]


def test_reduced_blocks_follow_the_checkpoints_num_fp16_res():
    declared = factories.random_generator(factories.small_config(64, num_fp16_res=2))
    set_precision(declared, "fp16")
    assert _reduced_blocks(declared) == [32, 64]
    undeclared = factories.random_generator(factories.small_config(64))  # NVIDIA's default of 4, never below 8 px
    set_precision(undeclared, "bf16")
    assert _reduced_blocks(undeclared) == [8, 16, 32, 64]
    set_precision(undeclared, "fp32")
    assert _reduced_blocks(undeclared) == []


@pytest.mark.parametrize("architecture", ["skip", "resnet", "orig"])
def test_reduced_precision_renders_stay_close_and_fp32_is_unchanged(architecture):
    config = factories.small_config(32, architecture=architecture, conv_clamp=256.0)
    generator = factories.random_generator(config)
    codes = generator.sample_codes(torch.randn(3, generator.z_dim, generator=torch.Generator().manual_seed(1)))
    renders = _renders_in_each_precision(generator, codes)
    exact, bf16, fp16 = renders["fp32"], renders["bf16"], renders["fp16"]
    assert torch.equal(renders["again"], exact)  # back to fp32: the exact renders, bit for bit
    assert bf16.dtype == fp16.dtype == torch.float32
    assert torch.isfinite(bf16).all() and torch.isfinite(fp16).all()
    assert not torch.equal(bf16, exact)  # the reduced blocks really computed in bf16
    # fp16 keeps 10 mantissa bits, bf16 7: fp16 is the closer of the two
    assert _psnr(fp16, exact) > 45 and _psnr(bf16, exact) > 30 and _psnr(fp16, exact) > _psnr(bf16, exact)


@pytest.mark.skipif(not (SHARED / "reference" / "stylegan3_t_snapshot.pkl").is_file(), reason="reference fixtures not found")
def test_stylegan3_reduces_the_layers_nvidia_runs_in_fp16():
    """NVIDIA's rule (`networks_stylegan3.py`): a layer is fp16 when its output sampling rate times
    2^num_fp16_res passes the image resolution. On the 32 px snapshot (rates 16 and 32)."""
    generator = load_checkpoint(SHARED / "reference" / "stylegan3_t_snapshot.pkl").build_generator("cpu")
    codes = generator.sample_codes(torch.randn(2, generator.z_dim, generator=torch.Generator().manual_seed(0)))
    renders = _renders_in_each_precision(generator, codes)
    exact, bf16, fp16 = renders["fp32"], renders["bf16"], renders["fp16"]
    assert torch.equal(renders["again"], exact)
    assert fp16.dtype == bf16.dtype == torch.float32 and not torch.equal(fp16, exact)
    assert _psnr(fp16, exact) > 60 and _psnr(bf16, exact) > 40
    layers = generator.synthesis.layer_names
    generator.config = dataclasses.replace(generator.config, num_fp16_res=1)
    set_precision(generator, "bf16")
    reduced = [name for name in layers if getattr(generator.synthesis, name).compute_dtype == torch.bfloat16]
    assert reduced == [name for name in layers if getattr(generator.synthesis, name).plan.out_sampling_rate == 32]
    assert 0 < len(reduced) < len(layers)


def test_bundled_model_in_bf16_inverts_as_well_as_in_fp32():
    """Gradients flow through the reduced blocks: the same optimisation in bf16 gets as close to the
    target (within a dB) as in fp32."""
    generator = load_checkpoint(GENERATOR).build_generator("cpu")
    with torch.no_grad():
        target = generator.render(generator.sample_codes(torch.randn(1, generator.z_dim,
                                                                     generator=torch.Generator().manual_seed(3))))
    settings = InversionSettings(steps=8, lr=0.05, lambda_encoder=0)
    exact = invert(generator, target, None, None, settings)
    set_precision(generator, "bf16")
    reduced = invert(generator, target, None, None, settings)
    assert torch.isfinite(reduced.ws).all()
    assert reduced.mse[0] < reduced.start_mse[0]  # it optimised
    assert abs(psnr_from_mse(reduced.mse[0]).item() - psnr_from_mse(exact.mse[0]).item()) < 1.0


def test_precision_is_part_of_the_codes_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("SEFA_EDIT_IDENTITY", "0")
    generator = load_checkpoint(GENERATOR).build_generator("cpu")
    with torch.no_grad():
        crop = generator.render(generator.mean_code().unsqueeze(0))
    save_rgb(tmp_path / "crops" / "face.png", tensor_to_uint8(crop)[0])

    def invert_with(precision: str) -> dict:
        return run_invert(str(tmp_path / "crops"), tmp_path / "codes", GENERATOR, ENCODER,
                          InversionSettings(steps=1, precision=precision), "none", device_name="cpu")

    assert invert_with("fp32")["inverted"] == 1
    fp32_code = np.load(tmp_path / "codes" / "face.npy")
    info = json.loads((tmp_path / "codes" / "face.json").read_text())
    assert "precision" not in json.dumps(info.get("settings", {}))  # fp32 codes keep the prints they had before
    assert invert_with("fp32")["skipped"] == 1
    redone = invert_with("bf16")
    assert redone["inverted"] == 1 and redone["redone"] == 1
    assert not np.array_equal(np.load(tmp_path / "codes" / "face.npy"), fp32_code)
    assert invert_with("bf16")["skipped"] == 1


def test_a_generator_that_renders_in_fp32_only_is_refused_in_one_line(tmp_path):
    path = factories.write_genforce_stylegan1(tmp_path / "stylegan_tiny32.pth")
    with pytest.raises(UserError, match=r"stylegan_tiny32\.pth: --precision bf16: .* renders in fp32 only.*--precision fp32"):
        load_checkpoint(path).build_generator("cpu", "bf16")
    load_checkpoint(path).build_generator("cpu", "fp32")  # fp32 is always there
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "sample", str(path), str(tmp_path / "out"), "-n", "1",
                             "--precision", "fp8"], capture_output=True, text=True)
    assert result.returncode != 0 and "--precision 'fp8': expected one of fp32, bf16, fp16" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_sample_writes_reduced_precision_images_close_to_fp32(tmp_path):
    for precision in ("fp32", "fp16"):
        result = subprocess.run([sys.executable, str(REPO / "cli.py"), "sample", str(GENERATOR), str(tmp_path / precision),
                                 "-n", "2", "--precision", precision, "--device", "cpu"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    for seed in (0, 1):
        exact = np.asarray(Image.open(tmp_path / "fp32" / f"seed{seed:04d}.png"), dtype=int)
        reduced = np.asarray(Image.open(tmp_path / "fp16" / f"seed{seed:04d}.png"), dtype=int)
        assert np.abs(exact - reduced).max() <= 4  # grey levels


@pytest.mark.parametrize("free, fixed, per_crop, expected", [
    (16 * 2**30, 2**30, 2**29, 22),  # (12 GiB usable - 1 GiB fixed) / 0.5 GiB
    (2**30, 2**30, 2**29, 1),  # nothing left after the fixed part: still one crop
    (80 * 2**30, 2**28, 2**20, 64),  # a large card: capped
])
def test_the_gpu_batch_size_leaves_a_quarter_of_the_free_memory(free, fixed, per_crop, expected):
    assert crops_that_fit(free, fixed, per_crop) == expected


def test_the_gpu_batch_size_is_measured_from_two_probe_steps(monkeypatch, tmp_path):
    """The CUDA-only probe of `InversionWorker.batch_size_that_fits`, run here with a stand-in for the
    CUDA memory counters: one step on 1 crop and one on 2 give the fixed part and the part per crop."""
    import inversion.worker as worker_module
    from inversion.worker import InversionWorker

    fixed, per_crop, free = 300 * 2**20, 40 * 2**20, 2 * 2**30
    peak = {"bytes": 0}

    def fake_invert(generator, targets, encoder, lpips, settings):
        assert settings.steps == 1
        peak["bytes"] = fixed + per_crop * targets.shape[0]

    cuda = worker_module.torch.cuda
    monkeypatch.setattr(worker_module, "invert", fake_invert)
    monkeypatch.setattr(cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(cuda, "memory_allocated", lambda device=None: 0)
    monkeypatch.setattr(cuda, "reset_peak_memory_stats", lambda device=None: peak.update(bytes=0))
    monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: peak["bytes"])
    monkeypatch.setattr(cuda, "mem_get_info", lambda device=None: (free, 2 * free))
    worker = InversionWorker(tmp_path, GENERATOR, ENCODER, InversionSettings(steps=5), None, "cpu")
    assert worker.batch_size_that_fits() == (30, per_crop)  # (1536 MB usable - 300 MB fixed) // 40 MB per crop
