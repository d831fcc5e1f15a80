"""Reruns honour what changed: fingerprints decide what is redone, records do not depend on the working
directory, two inputs never share an output, OUT inside INPUT is never input, OUT is locked, every
output is written atomically and a full disk marks nothing done."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import common.sweeps as sweeps
from alignment.stage import AlignOptions, run_align
from common.errors import OutputError, UserError
from common.naming import unique_stems
from common.output_folder import claimed_output_folder
from editing.stage import EditOptions, run_edit
from factorization.stage import run_factorize
from generators.checkpoint import load_checkpoint, save_native
from inversion.optimize import InversionSettings
from inversion.stage import auto_batch_size, run_invert
from pipeline.run import RunOptions, run_pipeline
from tests.conftest import SHARED
from tests.hardening_helpers import ENCODER, GENERATOR, REPO, cli

PORTRAITS = SHARED / "photos" / "face-recognition"
pytestmark = pytest.mark.skipif(not PORTRAITS.is_dir(), reason=f"real photos not found at {PORTRAITS}")
FAST_RUN = RunOptions(edits=("0=-1,1",), steps=2, perceptual="none", num_directions=3)


def align(source, out, **options):
    records, messages = [], []
    summary = run_align(str(source), out, AlignOptions(**options), emit=records.append, say=messages.append)
    return records, messages, summary


@pytest.fixture(scope="module")
def other_generator(tmp_path_factory) -> Path:
    """The bundled generator with every weight nudged: same architecture, other images, other sha256."""
    generator = load_checkpoint(GENERATOR).build_generator()
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return save_native(tmp_path_factory.mktemp("other") / "other.pt", generator)


def test_unique_stems_keep_every_input_apart():
    assert unique_stems(["a.jpg", "a.png", "a_jpg.png", "b.jpg"]) == ["a_jpg-2", "a_png", "a_jpg", "b"]
    assert unique_stems(["face.jpg", "face.jpg"]) == ["face_jpg", "face_jpg-2"]
    assert unique_stems(["x/a.jpg", "y/a.jpg"]) == ["x/a", "y/a"]


def test_a_rerun_with_other_settings_redoes_the_photo_and_drops_stale_crops(tmp_path):
    first, _, _ = align(PORTRAITS / "two_people.jpg", tmp_path)
    assert len(first) == 2
    again, messages, summary = align(PORTRAITS / "two_people.jpg", tmp_path)
    assert again == first and summary.skipped_photos == 1 and not any("redone" in m for m in messages)
    largest, messages, summary = align(PORTRAITS / "two_people.jpg", tmp_path, largest=True)
    assert summary.redone_photos == 1 and any("1 photo(s) redone" in m for m in messages)
    assert [Path(r["aligned"]).name for r in largest] == ["two_people_0.png"]
    assert not (tmp_path / "two_people_1.png").exists(), "a crop the new settings do not make was left behind"
    bigger, _, summary = align(PORTRAITS / "two_people.jpg", tmp_path, largest=True, size=512)
    assert summary.redone_photos == 1


def test_a_photo_without_a_face_stays_listed_on_reruns(tmp_path):
    for _ in range(2):
        _, messages, summary = align(SHARED / "photos" / "dlib-faces" / "dogs.jpg", tmp_path)
        assert summary.no_face == 1 and any("no face found" in m for m in messages)
        assert [json.loads(line)["error"] for line in (tmp_path / "failures.jsonl").read_text().splitlines()] == ["no_face"]


def test_a_replaced_photo_is_aligned_again(tmp_path):
    photo = tmp_path / "in" / "me.jpg"
    photo.parent.mkdir()
    shutil.copy(PORTRAITS / "obama_small.jpg", photo)
    first, _, _ = align(photo, tmp_path / "out")
    assert json.loads(Path(first[0]["meta"]).read_text())["source_size"] == [320, 240]
    shutil.copy(PORTRAITS / "biden.jpg", photo)
    second, _, summary = align(photo, tmp_path / "out")
    assert summary.redone_photos == 1
    assert json.loads(Path(second[0]["meta"]).read_text())["source_size"] == [970, 2204]


def test_clashing_names_get_their_own_crops(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(PORTRAITS / "obama_small.jpg", folder / "a.jpg")
    shutil.copy(PORTRAITS / "biden.jpg", folder / "a.png")  # a JPEG named .png: decoded from its bytes
    shutil.copy(PORTRAITS / "obama2.jpg", folder / "a_jpg.png")
    records, _, _ = align(folder, tmp_path / "out")
    assert len({r["aligned"] for r in records}) == 3
    assert {Path(json.loads(Path(r["meta"]).read_text())["source"]).name for r in records} == {"a.jpg", "a.png", "a_jpg.png"}
    again, _, summary = align(folder, tmp_path / "out")
    assert summary.skipped_photos == 3 and again == records


def test_two_same_named_photos_on_stdin_get_their_own_crops(tmp_path):
    for name, source in (("x", "obama_small.jpg"), ("y", "biden.jpg")):
        (tmp_path / name).mkdir()
        shutil.copy(PORTRAITS / source, tmp_path / name / "face.jpg")
    result = cli("align", "-", tmp_path / "out", stdin=f"{tmp_path / 'x' / 'face.jpg'}\n{tmp_path / 'y' / 'face.jpg'}\n")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len({r["aligned"] for r in records}) == 2
    # and the codes of same-named crops from two folders stay apart in invert and edit
    invert = cli("invert", "-", tmp_path / "codes", "-g", GENERATOR, "--steps", "0", "--perceptual", "none",
                 stdin="".join(json.dumps({"aligned": r["aligned"]}) + "\n" for r in records))
    codes = [json.loads(line)["code"] for line in invert.stdout.splitlines()]
    assert invert.returncode == 0 and len(set(codes)) == 2, invert.stderr
    (tmp_path / "c1").mkdir()
    (tmp_path / "c2").mkdir()
    shutil.copy(codes[0], tmp_path / "c1" / "face.npy")
    shutil.copy(codes[1], tmp_path / "c2" / "face.npy")
    directions = run_factorize(GENERATOR, tmp_path / "dirs", "all", 2).directions_path
    edit = cli("edit", "-", tmp_path / "edits", "-g", GENERATOR, "-d", directions, "--edit", "0=1",
               stdin=f"{tmp_path / 'c1' / 'face.npy'}\n{tmp_path / 'c2' / 'face.npy'}\n")
    grids = [json.loads(line)["grid"] for line in edit.stdout.splitlines()]
    assert edit.returncode == 0 and len(set(grids)) == 2, edit.stderr


def test_out_inside_the_input_folder_is_never_input(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PORTRAITS / "obama_small.jpg", photos / "me.jpg")
    for _ in range(2):
        records, _, summary = align(photos, photos / "out")
        assert summary.photos == 1 and len(records) == 1


def test_records_and_markers_do_not_depend_on_the_working_directory(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(PORTRAITS / "obama_small.jpg", tmp_path / "me.jpg")
    first = cli("align", "../me.jpg", "../out", cwd=tmp_path / "a")
    assert first.returncode == 0, first.stderr
    assert all(Path(json.loads(line)["aligned"]).is_absolute() for line in first.stdout.splitlines())
    second = cli("align", tmp_path / "me.jpg", tmp_path / "out", cwd=tmp_path / "b")
    assert second.returncode == 0 and "1 photo(s) already done" in second.stderr, second.stderr
    run_args = ("run", "../me.jpg", "../run", "--steps", "1", "--perceptual", "none", "--edit", "0=1")
    assert cli(*run_args, cwd=tmp_path / "a").returncode == 0
    again = cli("run", tmp_path / "me.jpg", tmp_path / "run", "--steps", "1", "--perceptual", "none", "--edit", "0=1",
                cwd=tmp_path / "b")
    assert again.returncode == 0, again.stderr
    assert "already done" in again.stderr and "redone" not in again.stderr


def test_run_with_another_generator_never_returns_the_old_codes(tmp_path, other_generator):
    photo = PORTRAITS / "obama_small.jpg"
    messages: list[str] = []
    run_pipeline(str(photo), tmp_path, GENERATOR, ENCODER, FAST_RUN, "cpu")
    old_code = np.load(tmp_path / "codes" / "obama_small_0.npy")
    old_edit = (tmp_path / "edits" / "obama_small_0" / "dir00_+1p00.png").read_bytes()
    run_pipeline(str(photo), tmp_path, other_generator, None, FAST_RUN, "cpu", say=messages.append)
    info = json.loads((tmp_path / "codes" / "obama_small_0.json").read_text())
    assert info["generator_sha256"] == load_checkpoint(other_generator).sha256
    assert not np.allclose(np.load(tmp_path / "codes" / "obama_small_0.npy"), old_code)
    assert (tmp_path / "edits" / "obama_small_0" / "dir00_+1p00.png").read_bytes() != old_edit
    assert any("crop(s) redone" in m for m in messages) and any("input(s) redone" in m for m in messages)
    messages.clear()
    run_pipeline(str(photo), tmp_path, other_generator, None, FAST_RUN, "cpu", say=messages.append)
    assert not any("redone" in m for m in messages)


def test_invert_redoes_exactly_the_crops_whose_settings_changed(tmp_path):
    align(PORTRAITS / "two_people.jpg", tmp_path / "aligned")
    def invert(**settings):
        messages = []
        summary = run_invert(str(tmp_path / "aligned"), tmp_path / "codes", GENERATOR, ENCODER,
                             InversionSettings(**{"steps": 1, **settings}), "none", device_name="cpu", say=messages.append)
        return summary, messages
    assert invert()[0]["inverted"] == 2
    assert invert()[0]["skipped"] == 2
    summary, messages = invert(lr=0.02)
    assert summary["redone"] == 2 and summary["inverted"] == 2 and any("2 crop(s) redone" in m for m in messages)
    shutil.copy(tmp_path / "aligned" / "two_people_0.png", tmp_path / "aligned" / "two_people_1.png")  # one crop changes
    summary, _ = invert(lr=0.02)
    assert summary["inverted"] == 1 and summary["skipped"] == 1


def test_edit_redoes_changed_edits_and_removes_outputs_no_longer_made(tmp_path):
    run_pipeline(str(PORTRAITS / "obama_small.jpg"), tmp_path, GENERATOR, ENCODER, FAST_RUN, "cpu")
    directions = next((tmp_path / "directions").glob("*/directions.npz"))
    target = tmp_path / "edits2"
    run_edit(str(tmp_path / "codes"), target, GENERATOR, directions, ["0=1,2"], EditOptions(animate="gif"), "cpu")
    summary = run_edit(str(tmp_path / "codes"), target, GENERATOR, directions, ["0=1,2"], EditOptions(animate="gif"), "cpu")
    assert summary["skipped"] == 1
    summary = run_edit(str(tmp_path / "codes"), target, GENERATOR, directions, ["0=3"], EditOptions(), "cpu")
    assert summary["redone"] == 1 and summary["edited"] == 1
    assert sorted(p.name for p in (target / "obama_small_0").iterdir() if not p.name.startswith(".")) == [
        "dir00_+3p00.png", "grid.png", "reconstruction.png"]


def test_run_labels_are_applied_when_the_directions_are_cached(tmp_path):
    photo = PORTRAITS / "obama_small.jpg"
    run_pipeline(str(photo), tmp_path, GENERATOR, ENCODER, FAST_RUN, "cpu")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"smile": {"index": 1, "sign": -1}}))
    options = RunOptions(edits=("smile=2",), steps=2, perceptual="none", num_directions=3, labels=labels)
    run_pipeline(str(photo), tmp_path, GENERATOR, ENCODER, options, "cpu")
    assert (tmp_path / "edits" / "obama_small_0" / "smile_+2p00.png").is_file()
    more = RunOptions(edits=("0=1",), steps=2, perceptual="none", num_directions=4)
    run_pipeline(str(photo), tmp_path, GENERATOR, ENCODER, more, "cpu")  # another -K: recomputed, not the cached 3
    cached = np.load(next((tmp_path / "directions").glob("*/directions.npz")))
    assert cached["directions"].shape[0] == 4


def test_a_second_process_on_the_same_out_is_refused(tmp_path):
    with claimed_output_folder(tmp_path / "out"):
        result = cli("align", PORTRAITS / "obama_small.jpg", tmp_path / "out")
        assert result.returncode == 2 and "another sefa-edit" in result.stderr, result.stderr
        with pytest.raises(UserError, match="another sefa-edit"):
            run_pipeline(str(PORTRAITS / "obama_small.jpg"), tmp_path / "out", GENERATOR, ENCODER, FAST_RUN, "cpu")
    assert align(PORTRAITS / "obama_small.jpg", tmp_path / "out")[2].crops == 1  # free again afterwards


def test_an_incomplete_mp4_is_never_kept_nor_counted_done(tmp_path, monkeypatch):
    run_pipeline(str(PORTRAITS / "obama_small.jpg"), tmp_path, GENERATOR, ENCODER, FAST_RUN, "cpu")
    directions = next((tmp_path / "directions").glob("*/directions.npz"))
    real_encoder = sweeps.encode_h264

    def disk_full_encoder(path, sequence):
        """Encodes the first two frames, then silently nothing, as a writer does when the disk fills up."""
        real_encoder(path, sequence[:2])

    monkeypatch.setattr(sweeps, "encode_h264", disk_full_encoder)
    with pytest.raises(OutputError, match=r"dir00\.mp4: cannot write"):
        run_edit(str(tmp_path / "codes"), tmp_path / "e", GENERATOR, directions, ["0=-1:1:3"], EditOptions(animate="mp4"), "cpu")
    folder = tmp_path / "e" / "obama_small_0"
    assert not (folder / "dir00.mp4").exists() and not (folder / ".edit.json").exists()
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp.mp4")]
    monkeypatch.setattr(sweeps, "encode_h264", real_encoder)
    summary = run_edit(str(tmp_path / "codes"), tmp_path / "e", GENERATOR, directions, ["0=-1:1:3"], EditOptions(animate="mp4"), "cpu")
    assert summary["edited"] == 1 and (folder / "dir00.mp4").stat().st_size > 0


def test_a_full_disk_is_one_line_naming_the_file_and_nothing_is_marked_done(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def full_disk(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp") and "obama_small_0.png" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OutputError) as caught:
        align(PORTRAITS / "obama_small.jpg", tmp_path)
    message = str(caught.value)
    assert "obama_small_0.png: cannot write: the disk is full" in message and "\n" not in message
    assert not list((tmp_path / ".done").glob("*.json")) if (tmp_path / ".done").exists() else True
    assert not list(tmp_path.glob(".*.tmp"))
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert align(PORTRAITS / "obama_small.jpg", tmp_path)[2].skipped_photos == 0


def test_full_disk_through_the_cli_exits_2_with_one_line(tmp_path):
    script = (
        "import errno, os, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "real = os.fsync\n"
        "def fsync(fd):\n"
        "    if os.readlink(f'/proc/self/fd/{fd}').endswith('.tmp'): raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "    return real(fd)\n"
        "os.fsync = fsync\n"
        "import cli\n"
        f"sys.argv = ['sefa-edit', 'align', {str(PORTRAITS / 'obama_small.jpg')!r}, {str(tmp_path / 'out')!r}]\n"
        "cli.main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 2 and "the disk is full" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_inversion_on_cpu_writes_each_crop_as_it_finishes_and_counts_images(monkeypatch, tmp_path):
    import common.progress as progress

    assert auto_batch_size(torch.device("cpu")) == 1 and auto_batch_size(torch.device("cuda")) == 4
    advanced: list[int] = []

    class Recorder:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def start(self):
            pass

        def stop(self):
            pass

        def add_task(self, description, total, **fields):
            advanced.append(total)
            return 0

        def update(self, task, completed=None, **fields):
            advanced.append(completed)

    monkeypatch.setattr(progress, "Progress", Recorder)
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    align(PORTRAITS / "two_people.jpg", tmp_path / "aligned")
    advanced.clear()
    run_invert(str(tmp_path / "aligned"), tmp_path / "codes", GENERATOR, ENCODER, InversionSettings(steps=0), "none",
               batch_size=3, device_name="cpu")
    assert advanced == [2, 2]  # total 2 images; one batch of 2 moves the bar to 2, not to 1


def test_out_of_memory_halves_the_batch_and_gives_the_same_codes(tmp_path, monkeypatch):
    """A device that fits one crop at a time: the batch of 3 is split (3 -> 2 + 1 -> 1 + 1 + 1), the run
    goes on with the smaller size, and the codes equal those of a batch-1 run."""
    import inversion.worker as stage

    aligned = tmp_path / "aligned"
    for name in ("obama_small.jpg", "biden.jpg", "obama2.jpg"):
        align(PORTRAITS / name, aligned)
    real_invert = stage.invert
    sizes = []

    def small_device(generator, targets, *args, **kwargs):
        sizes.append(len(targets))
        if len(targets) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_invert(generator, targets, *args, **kwargs)

    settings = InversionSettings(steps=3)
    reference = run_invert(str(aligned), tmp_path / "one", GENERATOR, ENCODER, settings, "none", batch_size=1, device_name="cpu")
    assert reference["inverted"] == 3
    monkeypatch.setattr(stage, "invert", small_device)
    messages = []
    summary = run_invert(str(aligned), tmp_path / "split", GENERATOR, ENCODER, settings, "none", batch_size=3,
                         device_name="cpu", say=messages.append)
    assert summary["inverted"] == 3 and summary["failed"] == 0
    assert sizes == [3, 2, 1, 1, 1] and any("batches of 2" in m for m in messages)
    for code in (tmp_path / "one").glob("*.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "split" / code.name), np.load(code))
