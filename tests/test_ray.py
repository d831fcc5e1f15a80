"""`--ray`: inversion batches on Ray workers, on a local Ray instance started by the test (2 CPUs).

The same crops inverted locally and on two Ray workers give the same codes and the same files, and a
rerun without Ray finds everything done (the fingerprints are the same). A worker that cannot see OUT
stops the run with a message that says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alignment.stage import AlignOptions, run_align
from inversion.optimize import InversionSettings
from inversion.ray_pool import RaySettings
from inversion.stage import run_invert
from inversion.worker import SharedStorageError, check_shared_storage
from tests.conftest import SHARED
from tests.hardening_helpers import ENCODER, GENERATOR, cli

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e .[ray] (setup.sh does)")
PORTRAITS = SHARED / "photos" / "face-recognition"
pytestmark = pytest.mark.skipif(not PORTRAITS.is_dir(), reason=f"real photos not found at {PORTRAITS}")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def aligned(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("aligned")
    for name in ("two_people.jpg", "obama_small.jpg"):
        run_align(str(PORTRAITS / name), out, AlignOptions(), emit=lambda record: None, say=lambda message: None)
    return out


def files_of(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}


def test_ray_workers_give_the_local_codes_and_a_rerun_without_ray_does_nothing(local_ray, aligned, tmp_path):
    settings = InversionSettings(steps=3)
    local = run_invert(str(aligned), tmp_path / "local", GENERATOR, ENCODER, settings, "none", batch_size=1, device_name="cpu")
    messages = []
    remote = run_invert(str(aligned), tmp_path / "ray", GENERATOR, ENCODER, settings, "none", batch_size=1, device_name="cpu",
                        say=messages.append, ray=RaySettings("auto", workers=2))
    assert local["inverted"] == remote["inverted"] == 3
    assert any("on 2 Ray worker(s)" in m for m in messages)
    assert files_of(tmp_path / "ray") == files_of(tmp_path / "local")
    for code in (tmp_path / "local").glob("*.npy"):
        np.testing.assert_allclose(np.load(tmp_path / "ray" / code.name), np.load(code), atol=1e-4)
    assert not (tmp_path / "ray" / ".ray-storage-check").exists()
    again = run_invert(str(aligned), tmp_path / "ray", GENERATOR, ENCODER, settings, "none", batch_size=1, device_name="cpu")
    assert again["skipped"] == 3 and again["inverted"] == 0


def test_a_worker_that_cannot_see_out_says_so(tmp_path):
    marker = tmp_path / ".ray-storage-check"
    marker.write_text("token-a")
    check_shared_storage(marker, "token-a")
    with pytest.raises(SharedStorageError, match="OUT must be on storage every Ray worker sees"):
        check_shared_storage(marker, "token-b")
    with pytest.raises(SharedStorageError, match="not visible from worker host"):
        check_shared_storage(tmp_path / "elsewhere" / ".ray-storage-check", "token-a")


def test_ray_options_are_checked_in_one_line(aligned, tmp_path):
    result = cli("invert", aligned, tmp_path / "out", "-g", GENERATOR, "--ray", "auto", "--workers", "0")
    assert result.returncode == 2 and "--workers 0: must be 1 or more" in result.stderr


def test_run_with_ray_makes_the_same_outputs_as_without(local_ray, tmp_path):
    import shutil

    from pipeline.run import RunOptions, run_pipeline

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PORTRAITS / "two_people.jpg", photos / "two_people.jpg")
    options = RunOptions(edits=("0=-1,1",), steps=2, perceptual="none", num_directions=3)
    run_pipeline(str(photos), tmp_path / "local", GENERATOR, ENCODER, options, "cpu")
    run_pipeline(str(photos), tmp_path / "ray", GENERATOR, ENCODER, RunOptions(**{**options.__dict__, "ray": RaySettings(workers=2)}),
                 "cpu")

    def outputs(out: Path) -> set[str]:
        return {p.relative_to(out).as_posix() for p in out.rglob("*")
                if p.is_file() and p.suffix in (".npy", ".png", ".jpg") and "report" not in p.parts}

    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local") and len(outputs(tmp_path / "local")) > 10
    for code in (tmp_path / "local" / "codes").glob("*.npy"):
        np.testing.assert_allclose(np.load(tmp_path / "ray" / "codes" / code.name), np.load(code), atol=1e-4)
