"""Crafted sidecars, codes, recipes, labels and paths never stop or hang a batch (issue 19).

Each crafted file is built here. Commands that could hang run as subprocesses with a timeout, so a
regression fails the test instead of stalling the suite."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common import images
from common.json_files import BadJson, nesting_depth, parse_json_text, read_json
from common.output_folder import claimed_output_folder
from common.regular_files import NotRegularFile, open_regular
from common.safe_arrays import BadArray, load_npy
from editing.stage import EditOptions, run_edit
from tests.hardening_helpers import GENERATOR, cli, npy_header, png_header_only
from tests.test_bad_items import PORTRAITS, aligned, codes, directions, failures_of  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not PORTRAITS.is_dir(), reason=f"real photos not found at {PORTRAITS}")
DEEP = "[" * 100000 + "]" * 100000


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    return lines[0]


# --- the JSON reader -------------------------------------------------------------------------------

def test_nesting_is_measured_outside_strings_and_refused_before_parsing(tmp_path):
    assert nesting_depth('{"a": [1, {"b": "[[[[["}]}') == 3
    assert parse_json_text('{"a": "]]]["}') == {"a": "]]]["}
    with pytest.raises(BadJson, match="nested 100000 levels deep"):
        parse_json_text(DEEP)
    with pytest.raises(BadJson, match="not valid JSON"):
        parse_json_text('{"a": ' + "9" * 5000 + "}")  # past Python's int-digits limit: a ValueError, not a traceback
    (tmp_path / "big.json").write_bytes(b" " * 2048)
    with pytest.raises(BadJson, match="too large"):
        read_json(tmp_path / "big.json", max_bytes=1024)
    (tmp_path / "latin.json").write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(BadJson, match="not UTF-8"):
        read_json(tmp_path / "latin.json")


def test_a_fifo_or_device_opens_at_once_and_is_refused(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    start = time.monotonic()
    for path, kind in ((fifo, "a pipe"), (Path("/dev/zero"), "a device"), (tmp_path, "a folder")):
        with pytest.raises(NotRegularFile, match=kind):
            open_regular(path)
        with pytest.raises(OSError):
            read_json(path)
    assert time.monotonic() - start < 5


def paste_back_edit(codes: Path, out: Path, directions: Path):
    """`edit --paste-back` as a user runs it, in a subprocess that a hang would time out."""
    return cli("edit", codes, out, "-g", GENERATOR, "-d", directions, "--edit", "0=1", "--paste-back", "--device", "cpu",
               timeout=300)


def _codes_with_records(codes: Path, folder: Path, meta_for_first: Path | None = None, info_for_first: str | None = None) -> None:
    """face0 and face1: the two real codes; face0's record names `meta_for_first`, or is `info_for_first`."""
    folder.mkdir()
    for index in (0, 1):
        shutil.copy(codes / f"two_people_{index}.npy", folder / f"face{index}.npy")
        info = json.loads((codes / f"two_people_{index}.json").read_text())
        if index == 0 and meta_for_first is not None:
            info["record"]["meta"] = str(meta_for_first)
        text = info_for_first if index == 0 and info_for_first is not None else json.dumps(info)
        (folder / f"face{index}.json").write_text(text)


def test_a_deeply_nested_sidecar_or_code_record_is_one_skipped_item(codes, directions, tmp_path):
    deep_meta = tmp_path / "deep_meta.json"
    deep_meta.write_text(DEEP)
    _codes_with_records(codes, tmp_path / "a", meta_for_first=deep_meta)
    result = paste_back_edit(tmp_path / "a", tmp_path / "out_a", directions)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "nested 100000 levels deep" in failures_of(tmp_path / "out_a")["face0.npy"]["reason"]
    assert (tmp_path / "out_a" / "photos" / "two_people").is_dir()  # the other face still pasted
    # A code record that is itself [[[...]]]: no sidecar is known, the code is still edited.
    _codes_with_records(codes, tmp_path / "b", info_for_first=DEEP)
    summary = run_edit(str(tmp_path / "b"), tmp_path / "out_b", GENERATOR, directions, ["0=1"], EditOptions(paste_back=True), "cpu")
    assert summary["edited"] == 2 and summary["failed"] == 0


def test_deep_labels_recipes_and_stdin_lines_are_one_error_line(codes, directions, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    assert "nested" in one_error_line(cli("factorize", GENERATOR, "--out", tmp_path / "f", "--labels", deep))
    assert "nested" in one_error_line(cli("edit", codes, tmp_path / "e", "-g", GENERATOR, "--recipe", deep))
    assert "nested" in one_error_line(cli("edit", "-", tmp_path / "s", "-g", GENERATOR, "-d", directions, "--edit", "0=1",
                                          stdin='{"code": ' + DEEP + "}\n"))


def test_a_fifo_named_anywhere_never_blocks(codes, directions, tmp_path):
    fifo = tmp_path / "meta_pipe.json"
    os.mkfifo(fifo)
    _codes_with_records(codes, tmp_path / "codes", meta_for_first=fifo)
    result = paste_back_edit(tmp_path / "codes", tmp_path / "out", directions)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "not a regular file but a pipe" in failures_of(tmp_path / "out")["face0.npy"]["reason"]
    recipe = tmp_path / "recipe.json"
    os.mkfifo(recipe)
    assert "a pipe" in one_error_line(cli("edit", codes, tmp_path / "r", "-g", GENERATOR, "--recipe", recipe, timeout=120))
    labels = tmp_path / "labels.json"
    os.mkfifo(labels)
    assert "a pipe" in one_error_line(cli("factorize", GENERATOR, "--out", tmp_path / "f", "--labels", labels, timeout=120))
    generator = tmp_path / "gen.pt"
    os.mkfifo(generator)
    assert "a pipe" in one_error_line(cli("models", "info", generator, timeout=120))


# --- codes -------------------------------------------------------------------------------------------

def test_a_big_endian_code_is_converted_and_edits_like_the_native_one(codes, directions, tmp_path):
    folder = tmp_path / "codes"
    folder.mkdir()
    native = np.load(codes / "two_people_0.npy")
    np.save(folder / "native.npy", native)
    np.save(folder / "big.npy", native.astype(">f4"))
    loaded = load_npy(folder / "big.npy")
    assert loaded.dtype == np.float32 and loaded.dtype.isnative and np.array_equal(loaded, native)
    summary = run_edit(str(folder), tmp_path / "out", GENERATOR, directions, ["0=1"], EditOptions(), "cpu")
    assert summary["edited"] == 2 and summary["failed"] == 0
    for name in ("grid.png", "dir00_+1p00.png"):
        assert (tmp_path / "out" / "big" / name).read_bytes() == (tmp_path / "out" / "native" / name).read_bytes()


def test_text_codes_and_negative_shapes_are_listed_and_skipped(codes, directions, tmp_path):
    folder = tmp_path / "codes"
    folder.mkdir()
    shutil.copy(codes / "two_people_0.npy", folder / "good.npy")
    np.save(folder / "unicode.npy", np.array(["a", "bc"]))
    np.save(folder / "bytes.npy", np.array([b"a", b"bc"]))
    (folder / "negative.npy").write_bytes(npy_header((-3, 512)) + b"\0" * 64)
    with pytest.raises(BadArray, match="negative"):
        load_npy(folder / "negative.npy")
    summary = run_edit(str(folder), tmp_path / "out", GENERATOR, directions, ["0=1"], EditOptions(), "cpu")
    assert summary["edited"] == 1 and summary["failed"] == 3
    failures = failures_of(tmp_path / "out")
    assert "text (unicode string)" in failures["unicode.npy"]["reason"]
    assert "text (byte string)" in failures["bytes.npy"]["reason"]
    assert "impossible shape [-3, 512]" in failures["negative.npy"]["reason"]


# --- sidecar quads -----------------------------------------------------------------------------------

@pytest.mark.parametrize("quad, words", [
    ([[0, 0], [0, 1e9], [1e9, 1e9], [1e9, 0]], "more than 4x"),
    ([[0, 0], [0, 1e308], [1e308, 1e308], [1e308, 0]], "more than 4x"),
    ([[5e6, 5e6], [5e6, 5e6 + 100], [5e6 + 100, 5e6 + 100], [5e6 + 100, 5e6]], "far outside"),
    ([[10, 10], [10, 10], [10, 10], [10, 10]], "degenerate"),
])
def test_a_quad_that_does_not_fit_the_photo_is_refused_before_any_warp(codes, aligned, directions, tmp_path, quad, words):
    meta = json.loads((aligned / "two_people_0.json").read_text())
    meta["quad"] = quad
    bad = tmp_path / "bad_meta.json"
    bad.write_text(json.dumps(meta))
    _codes_with_records(codes, tmp_path / "codes", meta_for_first=bad)
    start = time.monotonic()
    result = paste_back_edit(tmp_path / "codes", tmp_path / "out", directions)
    assert result.returncode == 0, result.stderr[-2000:]
    assert words in failures_of(tmp_path / "out")["face0.npy"]["reason"]
    assert time.monotonic() - start < 120


# --- paths given or found ----------------------------------------------------------------------------

def test_a_fifo_or_device_given_as_input_is_one_line(tmp_path):
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    assert "a pipe (FIFO)" in one_error_line(cli("align", fifo, tmp_path / "out", timeout=120))
    assert "a device" in one_error_line(cli("align", tmp_path / "zero.jpg", tmp_path / "out", timeout=120))
    assert "a pipe (FIFO)" in one_error_line(cli("invert", fifo, tmp_path / "codes", "-g", GENERATOR, timeout=120))


def test_a_folder_scan_lists_what_it_cannot_read(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PORTRAITS / "obama_small.jpg", photos / "good.jpg")
    os.mkfifo(photos / "fifo.jpg")
    (photos / "folder.jpg").mkdir()
    (photos / "loop.jpg").symlink_to("loop.jpg")
    (photos / "dangling.jpg").symlink_to("nowhere.jpg")
    (photos / "zero.jpg").symlink_to("/dev/zero")
    result = cli("align", photos, tmp_path / "out", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    failures = failures_of(tmp_path / "out")
    expected = {"fifo.jpg": "a pipe (FIFO)", "folder.jpg": "a folder", "loop.jpg": "symbolic link loop",
                "dangling.jpg": "dangling symbolic link", "zero.jpg": "a device"}
    assert set(failures) == set(expected)
    for name, words in expected.items():
        assert words in failures[name]["reason"], (name, failures[name])
        assert any(name in line and words in line and "skipped" in line for line in result.stderr.splitlines())
    assert len(result.stdout.splitlines()) == 1  # the good photo's crop


def _jpeg_declaring(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 120, 90)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    start = data.find(b"\xff\xc0")
    data[start + 5 : start + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_photos_over_the_limit_get_our_words_and_nothing_else_reaches_stderr(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "huge.jpg").write_bytes(_jpeg_declaring(65000, 65000))
    (photos / "huge.png").write_bytes(png_header_only(100000, 100000))
    (photos / "allowed.png").write_bytes(png_header_only(12000, 12000))  # over Pillow's own default limit, under ours
    source = (PORTRAITS / "obama_small.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(source[: len(source) // 2])
    png = bytearray(images.encode_png(np.full((64, 64, 3), 128, np.uint8)))
    start = png.find(b"IDAT")
    png[start + 6 : start + 20] = b"\x00" * 14  # Pillow refuses it, then OpenCV's libpng complains on stderr
    (photos / "damaged.png").write_bytes(bytes(png))
    result = cli("align", photos, tmp_path / "out", "--max-pixels", "1600000000", timeout=300)
    failures = failures_of(tmp_path / "out")
    assert "65000x65000 is 4225 MP, over the 1600 MP limit" in failures["huge.jpg"]["reason"]
    assert "100000x100000 is 10000 MP, over the 1600 MP limit" in failures["huge.png"]["reason"]
    assert "not a readable image" in failures["allowed.png"]["reason"]
    assert "not a readable image" in failures["damaged.png"]["reason"]
    lines = result.stderr.strip().splitlines()
    assert all(line.endswith("; skipped") or line.startswith("aligned 0 face") for line in lines), result.stderr
    assert "Warning" not in result.stderr and "libpng" not in result.stderr and "JPEG" not in result.stderr
    assert "expected 1 to 1,600,000,000" in one_error_line(cli("align", photos, tmp_path / "x", "--max-pixels", "2000000000"))


# --- temporaries of killed runs ----------------------------------------------------------------------

def test_a_rerun_removes_the_temporaries_a_killed_run_left(tmp_path):
    out = tmp_path / "out"
    (out / "face" / "deeper").mkdir(parents=True)
    stale = [out / ".grid.png.k3j2h1.tmp", out / "face" / ".dir00_+1p00.png.a8d7f6.tmp",
             out / "face" / "deeper" / ".photo_sweep.1234.tmp.mp4", out / ".write-test-x1y2"]
    for path in stale:
        path.write_bytes(b"half")
    kept = [out / "face" / "grid.png", out / "face" / "notes.tmp.txt", out / "face" / "visible.tmp"]
    for path in kept:
        path.write_bytes(b"mine")
    other = out / "other_out"  # another process's OUT, locked right now: not ours to clean
    with claimed_output_folder(other):
        (other / ".busy.png.zz.tmp").write_bytes(b"being written")
        with claimed_output_folder(out):
            pass
        assert (other / ".busy.png.zz.tmp").exists()
    assert not any(path.exists() for path in stale) and all(path.exists() for path in kept)
