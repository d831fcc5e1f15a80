"""`--ray`: inversion batches on Ray workers, on a local Ray instance started by the test (2 CPUs).

The same crops inverted locally and on two Ray workers give the same codes and the same files, and a
rerun without Ray finds everything done (the fingerprints are the same). A worker that cannot see OUT
stops the run with a message that says so. A worker killed mid-batch is replaced, its batch redone,
and a line says so. Local references run on one thread, as the actors do, so codes match to 1e-6."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

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


@contextlib.contextmanager
def one_thread():
    """Torch on one thread meanwhile, as in a Ray actor with num_cpus=1: the same reduction order, so
    the same codes, where two threads would differ in the last bits and 40 steps would amplify that."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def files_of(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}


def test_ray_workers_give_the_local_codes_and_a_rerun_without_ray_does_nothing(local_ray, aligned, tmp_path):
    settings = InversionSettings(steps=3)
    with one_thread():
        local = run_invert(str(aligned), tmp_path / "local", GENERATOR, ENCODER, settings, "none", batch_size=1, device_name="cpu")
    messages = []
    remote = run_invert(str(aligned), tmp_path / "ray", GENERATOR, ENCODER, settings, "none", batch_size=1, device_name="cpu",
                        say=messages.append, ray=RaySettings("auto", workers=2))
    assert local["inverted"] == remote["inverted"] == 3
    assert any("on 2 Ray worker(s)" in m for m in messages)
    assert files_of(tmp_path / "ray") == files_of(tmp_path / "local")
    for code in (tmp_path / "local").glob("*.npy"):
        np.testing.assert_allclose(np.load(tmp_path / "ray" / code.name), np.load(code), atol=1e-6)
    assert not (tmp_path / "ray" / ".ray-storage-check").exists()
    again = run_invert(str(aligned), tmp_path / "ray", GENERATOR, ENCODER, settings, "none", batch_size=1, device_name="cpu")
    assert again["skipped"] == 3 and again["inverted"] == 0



def test_pivotal_tuning_on_ray_workers_gives_the_local_deltas(local_ray, aligned, tmp_path):
    from common.tuned_weights import read_delta
    from generators.checkpoint import load_checkpoint
    from inversion.pivotal_tuning import TuningSettings
    from inversion.worker import Tuning

    settings, tuning = InversionSettings(steps=1), Tuning(TuningSettings(steps=2), per="photo")
    with one_thread():
        local = run_invert(str(aligned), tmp_path / "local", GENERATOR, ENCODER, settings, "none", batch_size=1,
                           device_name="cpu", tuning=tuning)
    remote = run_invert(str(aligned), tmp_path / "ray", GENERATOR, ENCODER, settings, "none", batch_size=1, device_name="cpu",
                        ray=RaySettings("auto", workers=2), tuning=tuning)
    assert local["inverted"] == remote["inverted"] == 3
    shared = sorted(p.name for p in (tmp_path / "local" / "tuned").iterdir())
    assert len(shared) == 2 and shared == sorted(p.name for p in (tmp_path / "ray" / "tuned").iterdir())  # one per photo
    sha = load_checkpoint(GENERATOR).sha256
    for name in shared:
        ours, theirs = read_delta(tmp_path / "local" / "tuned" / name, sha), read_delta(tmp_path / "ray" / "tuned" / name, sha)
        assert set(ours) == set(theirs)
        for key in ours:
            torch.testing.assert_close(theirs[key], ours[key], rtol=0, atol=1e-4)

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


def test_run_on_ray_survives_a_killed_alignment_task_and_inversion_worker_with_the_local_outputs(local_ray, tmp_path):
    """`run --ray` streams: photos aligned and pasted back as Ray tasks, faces inverted on Ray actors. A
    test thread SIGKILLs the first process seen running an alignment task, then the first seen inverting;
    the run retries both (and says so) and writes what a local run writes."""
    import shutil
    import threading

    from pipeline.run import RunOptions, run_pipeline

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("two_people.jpg", "obama_small.jpg", "biden.jpg"):
        shutil.copy(PORTRAITS / name, photos / name)
    options = RunOptions(edits=("0=-1,1",), steps=20, perceptual="none", num_directions=3)
    killed: list[int] = []

    earlier = _earlier_ray_workers()

    def killer() -> None:
        _kill_the_first_process_titled("ray::align_photo", killed, earlier)
        _kill_the_first_worker_busy_inverting(killed, earlier)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    messages: list[str] = []
    remote = run_pipeline(str(photos), tmp_path / "ray", GENERATOR, ENCODER,
                          RunOptions(**{**options.__dict__, "ray": RaySettings(workers=2)}), "cpu", say=messages.append)
    thread.join(timeout=5)
    assert len(killed) == 2, f"killed {killed}: an alignment task or an inverting worker was never seen"
    assert any(m.startswith("ray: an alignment task (") and "lost its worker" in m and "retrying it" in m for m in messages), messages
    assert any(m.startswith("ray: worker ") and "redoes its batch" in m for m in messages), messages
    assert remote["faces"] == 4 and remote["edited"] == 4 and remote["failed"] == 0
    with one_thread():  # as each Ray actor inverts (num_cpus=1): the same sums in the same order
        run_pipeline(str(photos), tmp_path / "local", GENERATOR, ENCODER, options, "cpu")

    def outputs(out: Path) -> set[str]:
        return {p.relative_to(out).as_posix() for p in out.rglob("*")
                if p.is_file() and p.suffix in (".npy", ".png", ".jpg") and "report" not in p.parts}

    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local") and len(outputs(tmp_path / "local")) > 20
    for code in (tmp_path / "local" / "codes").glob("*.npy"):
        np.testing.assert_allclose(np.load(tmp_path / "ray" / "codes" / code.name), np.load(code), atol=1e-6)
    for crop in (tmp_path / "local" / "aligned").glob("*.png"):  # aligned by Ray tasks, byte for byte
        assert (tmp_path / "ray" / "aligned" / crop.name).read_bytes() == crop.read_bytes()


def _pids_titled(prefix: str) -> set[int]:
    """The processes whose title starts with `prefix` (a Ray worker sets its title to the task or method it
    is running)."""
    import os

    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith(prefix):
            found.add(int(entry))
    return found


def _kill_the_first_process_titled(prefix: str, killed: list[int], spare: set[int], deadline_s: float = 120) -> None:
    """SIGKILL the first process titled `prefix` that is not in `spare` (the processes of an earlier test's
    run, which may still be ending: killing one of those would kill nothing of this run)."""
    import os
    import signal
    import time

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for pid in _pids_titled(prefix) - spare:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.01)


def _kill_the_first_worker_busy_inverting(killed: list[int], spare: set[int], deadline_s: float = 120) -> None:
    """SIGKILL the first Ray actor process of this run seen running `invert_jobs` (its title while it works
    on a batch)."""
    _kill_the_first_process_titled("ray::InversionWorker.invert_jobs", killed, spare, deadline_s)


def _earlier_ray_workers() -> set[int]:
    """Inversion actors alive before this test's run starts: an earlier run's, never this run's (an actor
    keeps its process, and its title, until it ends; idle task workers, which this run may use, are not
    spared)."""
    return _pids_titled("ray::InversionWorker")


def test_a_killed_ray_worker_is_replaced_its_batch_redone_and_said_so(local_ray, aligned, tmp_path):
    import threading

    settings = InversionSettings(steps=25)
    killed: list[int] = []
    killer = threading.Thread(target=_kill_the_first_worker_busy_inverting, args=(killed, _earlier_ray_workers()), daemon=True)
    killer.start()
    messages: list[str] = []
    summary = run_invert(str(aligned), tmp_path / "ray", GENERATOR, ENCODER, settings, "none", batch_size=1, device_name="cpu",
                         say=messages.append, ray=RaySettings("auto", workers=2))
    killer.join(timeout=5)
    assert killed, "no Ray worker was seen inverting, so none was killed"
    retried = [m for m in messages if m.startswith("ray: worker ")]
    assert len(retried) == 1 and "died" in retried[0] and "redoes its batch of 1 crop(s)" in retried[0], messages
    assert summary["inverted"] == 3 and summary["failed"] == 0
    with one_thread():  # as a Ray actor computes (num_cpus=1), so both sum in the same order
        local = run_invert(str(aligned), tmp_path / "local", GENERATOR, ENCODER, settings, "none", batch_size=1, device_name="cpu")
    assert local["inverted"] == 3 and files_of(tmp_path / "ray") == files_of(tmp_path / "local")
    for code in (tmp_path / "local").glob("*.npy"):
        np.testing.assert_allclose(np.load(tmp_path / "ray" / code.name), np.load(code), atol=1e-6)
