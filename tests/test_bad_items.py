"""One bad item never stops a batch: it is listed with a plain reason on stderr and in the stage's
failures.jsonl, skipped, and the rest finishes. Problems with the whole batch (directions) are one
line and exit 2."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import common.photo_io as photo_io
from alignment.stage import AlignOptions, run_align
from common.errors import UserError
from editing.stage import EditOptions, run_edit
from factorization.stage import run_factorize
from inversion.optimize import InversionSettings
from inversion.stage import run_invert
from tests.conftest import SHARED
from tests.hardening_helpers import ENCODER, GENERATOR, cli, npy_header, png_header_only

PORTRAITS = SHARED / "photos" / "face-recognition"
pytestmark = pytest.mark.skipif(not PORTRAITS.is_dir(), reason=f"real photos not found at {PORTRAITS}")


def failures_of(out: Path) -> dict[str, dict]:
    records = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    return {Path(next(v for k, v in r.items() if k in ("source", "aligned", "code"))).name: r for r in records}


@pytest.fixture(scope="module")
def aligned(tmp_path_factory) -> Path:
    """Two real aligned faces (and their sidecars), made once."""
    out = tmp_path_factory.mktemp("aligned")
    summary = run_align(str(PORTRAITS / "two_people.jpg"), out, AlignOptions(), emit=lambda r: None, say=lambda m: None)
    assert summary.crops == 2
    return out


@pytest.fixture(scope="module")
def codes(aligned, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("codes")
    summary = run_invert(str(aligned), out, GENERATOR, ENCODER, InversionSettings(steps=0), perceptual="none", device_name="cpu")
    assert summary["inverted"] == 2
    return out


@pytest.fixture(scope="module")
def directions(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dirs")
    return run_factorize(GENERATOR, out, "all", 3).directions_path


def test_align_lists_and_skips_every_kind_of_bad_photo(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(PORTRAITS / "obama_small.jpg", folder / "good.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "huge.png").write_bytes(png_header_only(30000, 30000))
    (folder / "odd.png").write_bytes((PORTRAITS / "obama_small.jpg").read_bytes())
    real_open = Image.open

    odd = (folder / "odd.png").stat().st_ino

    def open_with_a_decoder_bug(source, *args, **kwargs):
        # read_photo hands Pillow the file it opened (and checked to be a regular file), not the path
        if os.fstat(source.fileno()).st_ino == odd:
            raise MemoryError("decoder bug")  # any exception a decoder may raise
        return real_open(source, *args, **kwargs)

    monkeypatch.setattr(photo_io.Image, "open", open_with_a_decoder_bug)
    monkeypatch.setattr(photo_io, "_read_with_opencv", lambda path: None)
    messages: list[str] = []
    summary = run_align(str(folder), tmp_path / "out", AlignOptions(), emit=lambda r: None, say=messages.append)
    assert summary.crops == 1 and summary.unreadable == 3
    failures = failures_of(tmp_path / "out")
    assert set(failures) == {"empty.jpg", "huge.png", "odd.png"}
    assert "empty file" in failures["empty.jpg"]["reason"]
    assert "30000x30000" in failures["huge.png"]["reason"] and "--max-pixels" in failures["huge.png"]["reason"]
    assert "decoder bug" in failures["odd.png"]["reason"]
    assert all(any(name in m and "skipped" in m for m in messages) for name in failures)


def test_a_huge_declared_photo_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(30000, 30000))
    assert path.stat().st_size < 1000
    with pytest.raises(photo_io.UnreadableImage, match="900 MP, over the 100 MP limit"):
        photo_io.read_photo(path)
    with pytest.raises(photo_io.UnreadableImage, match="not a readable image"):  # allowed by size, then truncated
        photo_io.read_photo(path, max_pixels=10**9)


def test_align_from_stdin_skips_a_fifo_and_an_empty_file(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    stdin = f"{fifo}\n{empty}\n{PORTRAITS / 'obama_small.jpg'}\n"
    result = cli("align", "-", tmp_path / "out", stdin=stdin, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    failures = failures_of(tmp_path / "out")
    assert "not a regular file" in failures["pipe.jpg"]["reason"] and "empty file" in failures["empty.jpg"]["reason"]


def test_invert_skips_empty_and_undecodable_crops(aligned, tmp_path):
    folder = tmp_path / "crops"
    folder.mkdir()
    shutil.copy(aligned / "two_people_0.png", folder / "good.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "garbage.png").write_bytes(b"\x89PNG not really")
    result = cli("invert", folder, tmp_path / "codes", "-g", GENERATOR, "--steps", "0", "--perceptual", "none", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert [Path(json.loads(line)["code"]).name for line in result.stdout.splitlines()] == ["good.npy"]
    failures = failures_of(tmp_path / "codes")
    assert set(failures) == {"empty.png", "garbage.png"} and "empty file" in failures["empty.png"]["reason"]
    assert all("error" not in line for line in (tmp_path / "codes" / "metrics.jsonl").read_text().splitlines())


def _bad_codes(codes: Path, folder: Path) -> dict[str, str]:
    """Each kind of damaged code beside one good one; returns file name -> expected words in the reason."""
    folder.mkdir()
    good = np.load(codes / "two_people_0.npy")
    shutil.copy(codes / "two_people_0.npy", folder / "good.npy")
    shutil.copy(codes / "two_people_0.json", folder / "good.json")
    (folder / "empty.npy").write_bytes(b"")
    (folder / "truncated.npy").write_bytes((codes / "two_people_0.npy").read_bytes()[:200])
    (folder / "huge.npy").write_bytes(npy_header((100000, 100000, 100)))
    np.save(folder / "nan.npy", np.where(np.arange(good.size).reshape(good.shape) == 5, np.nan, good).astype(np.float32))
    np.save(folder / "inf.npy", np.full_like(good, np.inf))
    np.save(folder / "shape.npy", good[:3])
    np.save(folder / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return {"empty.npy": "empty file", "truncated.npy": "truncated", "huge.npy": "over the limit", "nan.npy": "NaN",
            "inf.npy": "infinite", "shape.npy": "code of shape [3, ", "objects.npy": "Python objects"}


def test_edit_lists_and_skips_every_kind_of_bad_code(codes, directions, tmp_path):
    expected = _bad_codes(codes, tmp_path / "codes")
    messages: list[str] = []
    summary = run_edit(str(tmp_path / "codes"), tmp_path / "out", GENERATOR, directions, ["0=1"], EditOptions(), "cpu",
                       say=messages.append)
    assert summary["edited"] == 1 and summary["failed"] == len(expected)
    failures = failures_of(tmp_path / "out")
    assert set(failures) == set(expected)
    for name, words in expected.items():
        assert words in failures[name]["reason"], (name, failures[name]["reason"])
    assert (tmp_path / "out" / "good" / "grid.png").is_file()


@pytest.mark.parametrize("sidecar, words", [
    ("{broken", "not valid JSON"),
    ("[1, 2]", "JSON list"),
    ('{"quad": [[0,0],[0,1],[1,1],[1,0]], "source_size": [4, 4]}', "lacks 'source'"),
    ('{"source": "SOURCE", "source_size": [4, 4]}', "lacks 'quad'"),
    ('{"source": "SOURCE", "quad": [[0,0],[0,1],[1,1],[1,0]]}', "lacks 'source_size'"),
    ('{"source": "FIFO", "quad": [[0,0],[0,1],[1,1],[1,0]], "source_size": [4, 4]}', "not a regular file"),
])
def test_edit_lists_and_skips_a_bad_sidecar(codes, aligned, directions, tmp_path, sidecar, words):
    folder = tmp_path / "codes"
    folder.mkdir()
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    meta = tmp_path / "bad_meta.json"
    meta.write_text(sidecar.replace("SOURCE", str(PORTRAITS / "two_people.jpg")).replace("FIFO", str(fifo)))
    for index, sidecar_path in ((0, meta), (1, aligned / "two_people_1.json")):
        shutil.copy(codes / f"two_people_{index}.npy", folder / f"face{index}.npy")
        info = json.loads((codes / f"two_people_{index}.json").read_text())
        info["record"]["meta"] = str(sidecar_path)
        (folder / f"face{index}.json").write_text(json.dumps(info))
    summary = run_edit(str(folder), tmp_path / "out", GENERATOR, directions, ["0=1"], EditOptions(paste_back=True), "cpu")
    assert summary["edited"] == 1 and summary["failed"] == 1
    assert words in failures_of(tmp_path / "out")["face0.npy"]["reason"]
    assert (tmp_path / "out" / "photos" / "two_people" / "photo_dir00_+1p00.jpg").is_file()


def test_bad_directions_stop_edit_in_one_line(codes, directions, tmp_path):
    data = dict(np.load(directions))
    nan = dict(data)
    nan["directions_float64"] = np.where(np.arange(data["directions_float64"].size).reshape(data["directions_float64"].shape) == 3,
                                         np.nan, data["directions_float64"])
    np.savez(tmp_path / "nan.npz", **nan)
    narrow = {**data, "directions": data["directions"][:, :8], "directions_float64": data["directions_float64"][:, :8]}
    np.savez(tmp_path / "narrow.npz", **narrow)
    for name, words in (("nan.npz", "NaN or infinite"), ("narrow.npz", "8-dimensional")):
        result = cli("edit", codes, tmp_path / name.replace(".npz", ""), "-g", GENERATOR, "-d", tmp_path / name, "--edit", "0=1",
                     "--force")
        assert result.returncode == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_edit_exit_status_follows_the_shared_rule(codes, directions, tmp_path):
    _bad_codes(codes, tmp_path / "codes")
    some = cli("edit", tmp_path / "codes", tmp_path / "a", "-g", GENERATOR, "-d", directions, "--edit", "0=1", "--device", "cpu")
    assert some.returncode == 0, some.stderr  # partly done: the good code is edited, the bad ones listed
    (tmp_path / "codes" / "good.npy").unlink()
    none = cli("edit", tmp_path / "codes", tmp_path / "b", "-g", GENERATOR, "-d", directions, "--edit", "0=1", "--device", "cpu")
    assert none.returncode == 1, none.stderr  # nothing produced


@pytest.mark.parametrize("labels, words", [
    ({"../x": 0}, "not a valid name"),
    ({"a/b": 0}, "not a valid name"),
    ({"age": {"index": True}}, "integer 'index'"),
    ({"age": {"index": 0, "sign": True}}, "sign must be 1 or -1"),
    ({"age": {"index": 0, "layers": [True]}}, "layer indices"),
])
def test_labels_are_names_and_integers(tmp_path, labels, words):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(labels))
    with pytest.raises(UserError, match=words.replace("(", r"\(")):
        run_factorize(GENERATOR, tmp_path / "dirs", "all", 3, path)
    assert not (tmp_path / "x").exists() and not (tmp_path / "dirs").exists()


def test_strengths_closer_than_a_hundredth_get_their_own_files(codes, directions, tmp_path):
    summary = run_edit(str(codes / "two_people_0.npy"), tmp_path / "out", GENERATOR, directions, ["0=0.001,0.004,2"],
                       EditOptions(), "cpu")
    assert summary["edited"] == 1
    names = sorted(p.name for p in (tmp_path / "out" / "two_people_0").glob("dir00_*.png"))
    assert names == ["dir00_+0p001.png", "dir00_+0p004.png", "dir00_+2p00.png"]
