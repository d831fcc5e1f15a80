"""Checkpoints whose tensors cannot say everything: what we assume is said, and can be overridden.

- genforce StyleGAN v1: `fused_scale` changes the images but not the state dict. The assumption is
  stated once on stderr and in `models info`; a settings file beside the checkpoint overrides it, and
  each setting renders exactly what a network built with that setting renders (and not the other's).
- Conditional NVIDIA generators: `sample --class K` picks the one-hot label; without it, one warning.
- genforce StyleGAN2 of another architecture than 'skip' is refused naming that architecture.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import UserError
from generators import stylegan
from generators.checkpoint import load_checkpoint, save_native
from generators.readers.genforce import fused_resolutions
from tests import checkpoint_factories as factories
from tests.hardening_helpers import cli


def _render_with(path: Path, fused: tuple[int, ...], z: torch.Tensor) -> torch.Tensor:
    """The images of the checkpoint's weights in a network built with `fused` up-layers, by hand."""
    state = torch.load(path, weights_only=True)["generator_smooth"]
    config = factories.stylegan1_config(64)
    network = stylegan.Generator(stylegan.StyleGANConfig(**{**config.__dict__, "fused_resolutions": fused}))
    network.load_state_dict({k: v for k, v in state.items() if k != "truncation.w_avg"}, strict=False)
    network.truncation.w_avg.copy_(state["truncation.w_avg"])
    with torch.no_grad():
        return network.eval()(z, 1.0)


def _render_loaded(path: Path, z: torch.Tensor) -> torch.Tensor:
    generator = load_checkpoint(path).build_generator()
    with torch.no_grad():
        return generator(z, 1.0)


def test_fused_scale_is_assumed_aloud_and_a_settings_file_reads_the_other_setting(tmp_path):
    path = factories.write_genforce_stylegan1(tmp_path / "stylegan_64.pth", resolution=64)
    z = torch.randn([2, 16], generator=torch.Generator().manual_seed(3))
    auto = _render_with(path, fused_resolutions(64, "auto"), z)  # () at 64 px: nearest up + conv
    fused = _render_with(path, fused_resolutions(64, True), z)  # (8, 16, 32, 64): transposed convs
    assert fused_resolutions(64, "auto") == () and fused_resolutions(64, True) == (8, 16, 32, 64)
    assert fused_resolutions(256, "auto") == (128, 256) and fused_resolutions(256, False) == ()
    assert (auto - fused).abs().max() > 0.05  # the setting matters: the two read the same tensors differently

    info = cli("models", "info", path, "--json")
    assert info.returncode == 0, info.stderr
    warnings = [line for line in info.stderr.splitlines() if "fused_scale" in line]
    assert len(warnings) == 1 and "assuming fused_scale='auto'" in warnings[0] and "stylegan_64.pth.json" in warnings[0]
    assert any("assuming fused_scale='auto'" in note for note in json.loads(info.stdout)["notes"])
    default = load_checkpoint(path)
    torch.testing.assert_close(_render_loaded(path, z), auto, atol=1e-5, rtol=0)

    (tmp_path / "stylegan_64.pth.json").write_text('{"fused_scale": true}')
    overridden = load_checkpoint(path)
    assert overridden.synthesis_config.fused_resolutions == (8, 16, 32, 64)
    assert overridden.sha256 != default.sha256  # outputs made under the other reading are redone
    torch.testing.assert_close(_render_loaded(path, z), fused, atol=1e-5, rtol=0)
    assert (_render_loaded(path, z) - auto).abs().max() > 0.05
    info = cli("models", "info", path, "--json")
    assert "assuming" not in info.stderr and json.loads(info.stdout)["fused_upsampling"] == [8, 16, 32, 64]

    (tmp_path / "stylegan_64.pth.json").write_text('{"fused_scale": "yes"}')
    with pytest.raises(UserError, match='fused_scale \'yes\': expected one of "auto", true, false'):
        load_checkpoint(path)


def _conditional(tmp_path: Path) -> Path:
    # lr multiplier 1: random mapping weights at full gain, so the label visibly moves the codes
    generator = factories.random_generator(factories.small_config(c_dim=4, mapping_lr_multiplier=1.0))
    return save_native(tmp_path / "conditional.pt", generator)


def test_sample_class_picks_the_one_hot_label_and_no_class_is_said(tmp_path):
    path = _conditional(tmp_path)
    generator = load_checkpoint(path).build_generator()
    z = torch.from_numpy(np.random.RandomState(0).randn(1, 16)).float()
    result = cli("sample", path, tmp_path / "c2", "-n", "1", "--class", "2", "--device", "cpu")
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
    with torch.no_grad():
        expected = generator.mapping(z, torch.tensor([[0.0, 0.0, 1.0, 0.0]]))[0].numpy()
        zero_label = generator.mapping(z, torch.zeros([1, 4]))[0].numpy()
    np.testing.assert_allclose(np.load(tmp_path / "c2" / "seed0000.npy"), expected, atol=1e-6)
    assert json.loads((tmp_path / "c2" / "seed0000.json").read_text())["class"] == 2
    assert np.abs(expected - zero_label).max() > 1e-3

    unlabelled = cli("sample", path, tmp_path / "none", "-n", "2", "--device", "cpu")
    assert unlabelled.returncode == 0
    warnings = [line for line in unlabelled.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "conditional (4 classes)" in warnings[0] and "--class K (0..3)" in warnings[0]
    np.testing.assert_allclose(np.load(tmp_path / "none" / "seed0000.npy"), zero_label, atol=1e-6)

    out_of_range = cli("sample", path, tmp_path / "bad", "-n", "1", "--class", "4")
    assert out_of_range.returncode == 2 and "has 4 classes, 0..3" in out_of_range.stderr
    unconditional = save_native(tmp_path / "plain.pt", factories.random_generator())
    refused = cli("sample", unconditional, tmp_path / "plain", "-n", "1", "--class", "1")
    assert refused.returncode == 2 and "is unconditional" in refused.stderr


def test_the_editor_samples_the_chosen_class(tmp_path):
    from pipeline.editor_session import EditorSession

    path = _conditional(tmp_path)
    session = EditorSession(tmp_path / "ui", path, None, None, "cpu", 3, "all")
    assert session.num_classes == 4
    generator = load_checkpoint(path).build_generator()
    z = torch.from_numpy(np.random.RandomState(5).randn(1, 16)).float()
    with torch.no_grad():
        expected = generator.mapping(z, torch.tensor([[0.0, 1.0, 0.0, 0.0]]), truncation_psi=0.7)
    torch.testing.assert_close(session.sample(5, 0.7, class_index=1), expected, atol=1e-6, rtol=0)
    with pytest.raises(UserError, match="classes 0..3"):
        session.sample(5, 0.7, class_index=9)


@pytest.mark.parametrize("variant, words", [("resnet", "'resnet'"), ("origin", "'origin'")])
def test_a_genforce_stylegan2_of_another_architecture_is_refused_by_name(tmp_path, variant, words):
    state = factories.genforce_state(factories.random_generator())
    last = max(int(key.split(".")[1][len("output"):]) for key in state if key.startswith("synthesis.output"))
    other = OrderedDict()
    for key, tensor in state.items():
        if key.startswith("synthesis.output") and not key.startswith(f"synthesis.output{last}."):
            continue  # resnet and origin draw RGB only at the last resolution
        other[key] = tensor
        if variant == "resnet" and key == "synthesis.layer2.bias":
            other["synthesis.skip_layer1.weight"] = torch.randn(tensor.shape[0], tensor.shape[0], 1, 1)
    torch.save({"generator_smooth": other}, tmp_path / f"{variant}.pth")
    with pytest.raises(UserError, match=f"its architecture is {words}.*only genforce's 'skip'") as refused:
        load_checkpoint(tmp_path / f"{variant}.pth")
    assert "missing" not in str(refused.value)
