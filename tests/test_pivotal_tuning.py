"""Pivotal tuning against danielroich/PTI's own run (`../shared/reference/pti_*`): five steps of
`SingleIDCoach.train()` on the `nvidia` fixture generator, l2 + locality regulariser, LPIPS 0 (no
backbone offline). Tolerances from the fixtures' README: losses rtol 1e-5, images atol 1e-4, tuned
weights atol 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generators.checkpoint import load_checkpoint
from common.tuned_weights import apply_delta
from inversion.pivotal_tuning import TuningSettings, morphed_code, tune, weight_delta
from tests.reference_checkpoints import REFERENCE, load_case, nvidia_kwargs, write_nvidia_snapshot

pytestmark = pytest.mark.skipif(not (REFERENCE / "pti_expected.npz").is_file(), reason="PTI fixtures not found")

# The reference run's settings (pti_config.json): PTI's defaults with the locality regulariser on, its LPIPS
# terms at 0 and no early stop (an LPIPS stand-in returning 0 would stop it before the first update).
REFERENCE_SETTINGS = TuningSettings(steps=5, lr=3e-4, lambda_l2=1.0, lambda_lpips=0.0, lpips_threshold=-1.0, locality=True,
                                    locality_alpha=30.0, locality_samples=1, locality_interval=1, locality_l2=0.1,
                                    locality_lpips=0.0, locality_psi=0.5)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    params, _, expected = load_case("pti")
    _, nvidia_config, _ = load_case("nvidia")
    folder = tmp_path_factory.mktemp("pti")
    path = write_nvidia_snapshot(folder / "network-snapshot.pkl", params, nvidia_kwargs(nvidia_config, "G"), None,
                                 folder / "PWNED")
    torch.manual_seed(0)
    generator = load_checkpoint(path).build_generator("cpu")
    return generator, expected


def test_tuning_matches_pti_step_by_step(reference):
    generator, expected = reference
    pivot = torch.from_numpy(expected["w_pivot"])
    target = torch.from_numpy(expected["target"])
    with torch.no_grad():
        np.testing.assert_allclose(generator.render(pivot).numpy(), expected["img_pivot_step0"], rtol=0, atol=1e-4)
    rng = np.random.RandomState(5101)  # PTI: np.random.seed(5101) just before train(), then np.random.randn
    np.testing.assert_array_equal(np.random.RandomState(5101).randn(5, 1, 128).reshape(5, 1, 128), expected["reg_z"])
    seen: dict[int, dict] = {}

    def after_step(step, tuned, losses):
        with torch.no_grad():
            seen[step] = {"image": tuned.render(pivot).numpy(),
                          "params": {name: value.detach().clone() for name, value in tuned.synthesis.named_parameters()}}

    result = tune(generator, pivot, target, REFERENCE_SETTINGS, perceptual=None, rng=rng, after_step=after_step)
    assert result.steps_run == 5 and not result.stopped_early
    for name, ours in (("loss_total", [s.total for s in result.losses]), ("loss_l2", [s.l2 for s in result.losses])):
        np.testing.assert_allclose(ours, expected[name], rtol=1e-5, atol=1e-12, err_msg=name)
    # The regulariser is the MSE between two renders that differ by a few Adam steps: a difference of nearly
    # equal images, so float32 rounding in either render shows up magnified (seen: 1.1e-5 relative at step 2).
    for name, ours in (("loss_reg", [s.locality for s in result.losses]), ("loss_reg_mse", [s.locality_mse for s in result.losses])):
        np.testing.assert_allclose(ours, expected[name], rtol=1e-4, atol=1e-12, err_msg=name)
    assert result.losses[0].locality == 0.0  # at step 1 the tuned copy equals the frozen generator
    for step in range(1, 6):
        np.testing.assert_allclose(seen[step]["image"], expected[f"img_pivot_step{step}"], rtol=0, atol=1e-4, err_msg=f"step {step}")
    for step in (1, 5):
        prefix = f"tuned_step{step}.G_ema.synthesis."
        names = [key[len(prefix):] for key in expected if key.startswith(prefix)]
        assert len(names) == 52 and set(names) == set(seen[step]["params"])
        for name in names:
            # Adam divides each gradient element by its own magnitude (plus eps 1e-8): an element whose gradient
            # is near eps gets a step that float rounding changes (seen: 1 of 36,864 off by 1.6e-5). So: nearly
            # all within 1e-5, and none further than a whole step in the wrong direction (2 x lr).
            difference = np.abs(seen[step]["params"][name].numpy() - expected[prefix + name])
            assert (difference > 1e-5).mean() <= 1e-3 and difference.max() <= 2 * REFERENCE_SETTINGS.lr, \
                f"{name} after step {step}: {(difference > 1e-5).sum()} elements off by more than 1e-5, max {difference.max()}"
    untouched = dict(generator.mapping.named_parameters())
    for name, value in result.generator.mapping.named_parameters():
        assert torch.equal(value, untouched[name])  # only what the render reads is tuned


def test_the_regulariser_codes_lie_at_alpha_from_the_pivot(reference):
    generator, expected = reference
    pivot = torch.from_numpy(expected["w_pivot"])
    z = torch.from_numpy(expected["reg_z"][0]).float()
    with torch.no_grad():
        code = morphed_code(pivot, generator.sample_codes(z, truncation_psi=0.5), 30.0)
    np.testing.assert_allclose(code.numpy(), expected["reg_w_morphed"][0], rtol=0, atol=1e-4)
    assert abs(torch.norm(code - pivot).item() - 30.0) < 1e-3


def test_a_stored_delta_rebuilds_the_tuned_generator(reference):
    generator, expected = reference
    pivot, target = torch.from_numpy(expected["w_pivot"]), torch.from_numpy(expected["target"])
    result = tune(generator, pivot, target, TuningSettings(steps=2, lambda_lpips=0, locality_lpips=0), perceptual=None)
    delta = weight_delta(generator, result.generator)
    assert delta and all(name.startswith("synthesis.") for name in delta)
    rebuilt = apply_delta(generator, delta)
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt.render(pivot).numpy(), result.generator.render(pivot).numpy(), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="does not have"):
        apply_delta(generator, {"synthesis.nothing": torch.zeros(1)})


def test_invert_tune_stores_a_delta_that_edit_renders_with(tmp_path):
    import json

    from safetensors import safe_open

    from common.images import read_rgb, save_rgb
    from tests.hardening_helpers import GENERATOR, assert_same_picture, cli

    crop = tmp_path / "crops" / "face.png"
    crop.parent.mkdir()
    save_rgb(crop, read_rgb(GENERATOR.parent / "examples" / "astronaut.jpg")[100:356, 130:386])
    base = ("invert", crop.parent, tmp_path / "codes", "-g", GENERATOR, "--steps", "2", "--device", "cpu", "--perceptual", "none")
    invert = (*base, "--tune", "8", "--tune-per", "face")
    first = cli(*invert)
    assert first.returncode == 0, first.stderr
    codes = tmp_path / "codes"
    metrics = json.loads((codes / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["tune_steps_run"] == 8 and metrics["tuned_psnr"] > metrics["psnr"] + 0.1, metrics
    delta_file = codes / "face_tuned.safetensors"
    with safe_open(str(delta_file), framework="pt") as opened:
        assert {opened.get_tensor(name).dtype for name in opened.keys()} == {__import__("torch").float16}
        assert all(name.startswith("synthesis.") for name in opened.keys())
    assert metrics["tuned_bytes"] == delta_file.stat().st_size
    record = json.loads(first.stdout.splitlines()[-1])
    assert record["tuned"] == str(delta_file.resolve())

    directions = tmp_path / "dirs"
    assert cli("factorize", GENERATOR, "--out", directions, "-K", "2").returncode == 0
    edit = ("edit", codes, tmp_path / "edits", "-g", GENERATOR, "-d", directions / "directions.npz", "--edit", "0=1",
            "--device", "cpu")
    edited = cli(*edit)
    assert edited.returncode == 0, edited.stderr
    # the edit stage renders this face with its tuned weights (the fp16 delta: within a grey level)
    assert_same_picture(read_rgb(tmp_path / "edits" / "face" / "reconstruction.png"), read_rgb(codes / "face_tuned.png"),
                        "the edit's reconstruction and the tuned one")

    stamp = delta_file.stat().st_mtime_ns
    again = cli(*invert)
    assert again.returncode == 0 and "already done" in again.stderr and delta_file.stat().st_mtime_ns == stamp
    untuned = cli(*base)  # the same without --tune: redone, delta gone
    assert untuned.returncode == 0, untuned.stderr
    assert not delta_file.exists() and not (codes / "face_tuned.png").exists()

    assert cli(*invert).returncode == 0  # tuned again, then the delta is damaged: that face is reported and skipped
    delta_file.write_bytes(b"\x00" * 64)
    broken = cli(*edit)
    assert broken.returncode == 1 and "not a readable tuning delta" in broken.stderr, broken.stderr
    assert "Traceback" not in broken.stderr


def test_multi_id_tuning_of_one_face_is_the_single_face_step(reference):
    from inversion.pivotal_tuning import tune_jointly

    generator, expected = reference
    pivot, target = torch.from_numpy(expected["w_pivot"]), torch.from_numpy(expected["target"])
    single = tune(generator, pivot, target, REFERENCE_SETTINGS, perceptual=None, rng=np.random.RandomState(5101))
    joint = tune_jointly(generator, [pivot], [target], REFERENCE_SETTINGS, perceptual=None, rng=np.random.RandomState(5101))
    np.testing.assert_allclose([s.total for s in joint.losses], expected["loss_total"], rtol=1e-5)
    for (name, a), (_, b) in zip(single.generator.named_parameters(), joint.generator.named_parameters()):
        assert torch.equal(a, b), name


def test_tune_per_photo_shares_one_delta_among_a_photos_faces(tmp_path):
    import json

    from alignment.stage import AlignOptions, run_align
    from common.images import read_rgb
    from tests.conftest import SHARED
    from tests.hardening_helpers import GENERATOR, assert_same_picture, cli

    run_align(str(SHARED / "photos" / "face-recognition" / "two_people.jpg"), tmp_path / "aligned", AlignOptions(),
              emit=lambda record: None, say=lambda message: None)
    invert = ("invert", tmp_path / "aligned", tmp_path / "codes", "-g", GENERATOR, "--steps", "1", "--tune", "3",
              "--device", "cpu", "--perceptual", "none")
    first = cli(*invert)
    assert first.returncode == 0, first.stderr
    shared = list((tmp_path / "codes" / "tuned").glob("*_photo_tuned.safetensors"))
    assert len(shared) == 1 and "1 tuned generator(s), one per photo" in first.stderr, first.stderr
    records = [json.loads(line) for line in first.stdout.splitlines()]
    assert len(records) == 2 and {r["tuned"] for r in records} == {str(shared[0].resolve())}
    assert not list((tmp_path / "codes").glob("*_0_tuned.safetensors"))  # no per-face deltas
    stamp = shared[0].stat().st_mtime_ns
    again = cli(*invert)
    assert again.returncode == 0 and "2 already done" in again.stderr and shared[0].stat().st_mtime_ns == stamp

    assert cli("factorize", GENERATOR, "--out", tmp_path / "dirs", "-K", "1").returncode == 0
    edited = cli("edit", tmp_path / "codes", tmp_path / "edits", "-g", GENERATOR, "-d", tmp_path / "dirs" / "directions.npz",
                 "--edit", "0=1", "--device", "cpu")
    assert edited.returncode == 0, edited.stderr
    for name in ("two_people_0", "two_people_1"):  # both faces render with the photo's tuned weights
        assert_same_picture(read_rgb(tmp_path / "edits" / name / "reconstruction.png"),
                            read_rgb(tmp_path / "codes" / f"{name}_tuned.png"), name)


def test_out_of_memory_while_tuning_is_one_line_per_face(tmp_path, monkeypatch):
    import json

    import inversion.worker as worker
    from common.images import save_rgb
    from inversion.optimize import InversionSettings
    from inversion.stage import run_invert
    from inversion.worker import Tuning
    from tests.hardening_helpers import GENERATOR

    def no_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(worker, "tune", no_memory)
    monkeypatch.setattr(worker, "tune_jointly", no_memory)
    crops = tmp_path / "crops"
    crops.mkdir()
    for name in ("a", "b"):
        save_rgb(crops / f"{name}.png", np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    for per in ("face", "photo"):
        said: list[str] = []
        summary = run_invert(str(crops), tmp_path / per, GENERATOR, None, InversionSettings(steps=1), perceptual="none",
                             device_name="cpu", say=said.append, tuning=Tuning(TuningSettings(steps=2), per=per))
        assert summary["failed"] == 2 and summary["inverted"] == 0, (per, summary)
        reasons = [json.loads(line)["reason"] for line in (tmp_path / per / "failures.jsonl").read_text().splitlines()]
        assert len(reasons) == 2 and all("out of device memory while tuning" in r and "\n" not in r for r in reasons)
