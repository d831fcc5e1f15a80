"""Untrusted files cannot change the process or exhaust it: BUILD on real objects is refused, declared
sizes are checked before anything is allocated, compressed files are not expanded beyond need."""

from __future__ import annotations

import dataclasses
import io
import pickle
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from common.directions_file import load_directions
from common.errors import UserError
from factorization.stage import run_factorize
from generators.checkpoint import NATIVE_FORMAT, load_checkpoint
from tests import checkpoint_factories as factories
from tests.hardening_helpers import GENERATOR, npy_header

# GLOBAL torch._utils._rebuild_tensor_v2; state (None, {"__doc__": "PWNED"}); BUILD; POP: sets an attribute
# of a real torch function, then leaves the stack as it found it for the legitimate pickle that follows.
SET_DOC_PREFIX = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x07\x00\x00\x00__doc__X\x05\x00\x00\x00PWNEDs\x86b0")


def _defaults_prefix() -> bytes:
    """The same with `__defaults__`: the attribute whose change negates every tensor torch.load reads later."""
    return (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x0c\x00\x00\x00__defaults__"
            + pickle.dumps(torch._utils._rebuild_tensor_v2.__defaults__, protocol=2)[2:-1] + b"s\x86b0")


@pytest.fixture()
def legit_pickle(tmp_path) -> Path:
    return factories.write_nvidia_pkl(tmp_path / "legit.pkl", factories.random_generator(), tmp_path / "marker")


def test_the_prefix_is_real_plain_pickle_runs_it():
    """Control: without our unpickler the prefix does change torch."""
    original = torch._utils._rebuild_tensor_v2.__doc__
    try:
        pickle.loads(SET_DOC_PREFIX + b"N.")
        assert torch._utils._rebuild_tensor_v2.__doc__ == "PWNED"
    finally:
        torch._utils._rebuild_tensor_v2.__doc__ = original


@pytest.mark.parametrize("prefix", [SET_DOC_PREFIX, _defaults_prefix()], ids=["__doc__", "__defaults__"])
def test_build_on_a_real_object_is_refused(tmp_path, legit_pickle, prefix):
    function = torch._utils._rebuild_tensor_v2
    before = (function.__doc__, function.__defaults__)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(prefix + legit_pickle.read_bytes())
    with pytest.raises(UserError, match="set attributes on _rebuild_tensor_v2"):
        load_checkpoint(evil)
    assert (function.__doc__, function.__defaults__) == before
    assert load_checkpoint(legit_pickle).format == "nvidia-pkl"  # the legitimate file still loads


class _Wide:
    """Pickles as a persistent NVIDIA network whose conv1 weight is a stride-0 view: 6000 channels in a few bytes."""

    def __reduce__(self):
        persistence = factories._install_fake_nvidia_modules()[0]
        params = {"weight": torch.zeros(1).expand(6000, 512, 3, 3)}
        state = {"_parameters": params, "_buffers": {}, "_modules": {}}
        meta = dict(type="class", version=6, module_src="", class_name="Generator", state=state)
        return (persistence._reconstruct_persistent_obj, (meta,))


def test_a_tiny_pickle_declaring_6000_channels_is_refused_at_once(tmp_path):
    factories._install_fake_nvidia_modules()
    path = tmp_path / "wide.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Wide()}, protocol=4))
    assert path.stat().st_size < 2000
    started = time.perf_counter()
    with pytest.raises(UserError) as caught:
        load_checkpoint(path)
    assert time.perf_counter() - started < 1.0
    message = str(caught.value)
    assert "[6000, 512, 3, 3]" in message and "download" not in message and "\n" not in message


def _native_payload(channels_at_4: int | None = None, expanded: bool = False) -> dict:
    generator = factories.random_generator()
    config = dataclasses.asdict(generator.config)
    config["resample_taps"] = list(config["resample_taps"])
    state = {k: v.clone() for k, v in generator.state_dict().items()}
    if channels_at_4 is not None:
        config["channels"] = {**config["channels"], 4: channels_at_4}
    if expanded:
        state["synthesis.b4.conv1.weight"] = torch.zeros(1).expand(6000, 32, 3, 3)
    return {"format": NATIVE_FORMAT, "config": config, "G_ema": state}


@pytest.mark.parametrize("payload, words", [
    (lambda: _native_payload(expanded=True), "[6000, 32, 3, 3] needs 6,912,000 bytes but only 4 are stored"),
    (lambda: _native_payload(channels_at_4=6000), "declares 6000 channels at 4 px"),
], ids=["stride-0 tensor", "declared config"])
def test_a_small_pt_declaring_6000_channels_is_refused_at_once(tmp_path, payload, words):
    path = tmp_path / "wide.pt"
    torch.save(payload(), path)
    started = time.perf_counter()
    with pytest.raises(UserError) as caught:
        load_checkpoint(path)
    assert time.perf_counter() - started < 1.0
    assert words in str(caught.value) and "download" not in str(caught.value)


def test_a_zip_bomb_pt_is_not_expanded(tmp_path):
    plain = io.BytesIO()
    torch.save({"g_ema": {"big": torch.zeros(16 << 20)}}, plain)  # 64 MB of zeros
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(io.BytesIO(plain.getvalue())) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename))
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(UserError, match="expands from .* which torch.save never does"):
        load_checkpoint(bomb)


def _rebuilt_npz(path: Path, data: dict[str, np.ndarray], replaced: dict[str, bytes]) -> Path:
    """A compressed .npz with some members replaced by raw bytes (e.g. a header promising 10^12 values)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in data.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{name}.npy", replaced.get(name, buffer.getvalue()))
    return path


def test_the_directions_reader_reads_only_what_edit_needs(tmp_path):
    directions = run_factorize(GENERATOR, tmp_path / "dirs", "all", 3).directions_path
    data = dict(np.load(directions))
    unused_is_bomb = _rebuilt_npz(tmp_path / "a.npz", data, {"all_eigenvalues": npy_header((10**12,), "<f8")})
    loaded = load_directions(unused_is_bomb)
    np.testing.assert_array_equal(loaded.directions, data["directions_float64"])
    used_is_bomb = _rebuilt_npz(tmp_path / "b.npz", data, {"directions_float64": npy_header((10**6, 10**6), "<f8")})
    with pytest.raises(UserError, match="over the limit"):
        load_directions(used_is_bomb)


def test_an_encoder_declaring_an_absurd_architecture_is_refused_before_allocation(tmp_path):
    from inversion.encoder import load_encoder, load_encoder_file

    payload = load_encoder_file(Path(GENERATOR).parent / "example-encoder.pt")
    payload["config"] = {**payload["config"], "max_channels": 100_000, "base_channels": 100_000}
    path = tmp_path / "wide-encoder.pt"
    torch.save(payload, path)
    started = time.perf_counter()
    with pytest.raises(UserError, match="not a usable encoder: declares an absurd architecture"):
        load_encoder(path, payload["config"]["num_ws"], payload["config"]["w_dim"])
    assert time.perf_counter() - started < 1.0
