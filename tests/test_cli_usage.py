"""Usage mistakes get typer's usage message and exit 2, never a traceback; Ctrl-C exits 130 in one
line; `run` checks every option before its first slow stage; an OUT that is a file is refused by every
command before any work."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import SHARED
from tests.hardening_helpers import GENERATOR, REPO, cli, sigint_as_on_a_terminal

PORTRAIT = SHARED / "photos" / "face-recognition" / "obama_small.jpg"


@pytest.mark.parametrize("args", [
    [],
    ["align"],
    ["align", "photos"],
    ["align", "photos", "out", "--bogus"],
    ["nope"],
    ["invert", "a", "b", "-g", "G.pt", "--steps", "abc"],
    ["align", "photos", "out", "--largest", "true"],
    ["run", "photos", "out", "-K", "many"],
    ["models", "nope"],
], ids=lambda a: " ".join(a) or "no-arguments")
def test_usage_mistakes_print_usage_and_exit_2(args):
    result = cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Usage:" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "ModuleNotFoundError" not in result.stderr


def test_version():
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("sefa-edit ") and result.stdout.split()[1][0].isdigit()


@pytest.mark.skipif(not PORTRAIT.is_file(), reason=f"real photo not found at {PORTRAIT}")
def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "run", str(PORTRAIT), str(out), "--steps", "100000",
                                "--device", "cpu", "--perceptual", "none"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=sigint_as_on_a_terminal)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list((out / "aligned").glob("*.png")):
            time.sleep(0.1)
        time.sleep(1.0)  # into the inversion
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            pytest.fail(f"still running 60 s after Ctrl-C; its stderr ends: {stderr[-2000:]}")
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted; finished outputs are kept, rerun to continue"
    assert "Traceback" not in stderr


@pytest.mark.parametrize("option, message", [
    (["--edit", "0=nan"], "finite"),
    (["--edit", "age=1"], "--labels"),
    (["--edit", "7=1"], "direction 7 does not exist"),
    (["--edit", "0"], "expected DIRECTION=STRENGTHS"),
    (["--mask", "circle"], "--mask 'circle'"),
    (["--animate", "avi"], "--animate 'avi'"),
    (["-K", "0"], "-K 0"),
    (["--steps", "-1"], "--steps -1"),
    (["--perceptual", "ssim"], "--perceptual 'ssim'"),
    (["--size", "300"], "--size 300"),
    (["--batch-size", "0"], "--batch-size"),
    (["--precision", "fp8"], "--precision 'fp8'"),
    (["--layers", "0-99"], "--layers"),
    (["--labels", "MISSING_LABELS"], "not valid JSON"),
])
def test_run_checks_every_option_before_any_stage(tmp_path, option, message):
    option = [str(tmp_path / "labels.json") if part == "MISSING_LABELS" else part for part in option]
    (tmp_path / "labels.json").write_text("{broken")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "p.jpg").write_bytes(b"whatever")
    out = tmp_path / "out"
    result = cli("run", photos, out, *option)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (out / "aligned").exists(), "a stage ran before the options were checked"


def test_every_command_refuses_an_out_that_is_a_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    code = tmp_path / "code.npy"
    code.write_bytes(b"")
    commands = [
        ("align", str(PORTRAIT), blocker),
        ("invert", str(PORTRAIT), blocker, "-g", GENERATOR),
        ("edit", str(code), blocker, "-g", GENERATOR, "-d", tmp_path / "dirs.npz", "--edit", "0=1"),
        ("factorize", GENERATOR, "--out", blocker),
        ("run", str(PORTRAIT), blocker),
    ]
    for command in commands:
        started = time.perf_counter()
        result = cli(*command)
        assert result.returncode == 2, (command[0], result.stderr)
        assert "is an existing file" in result.stderr and len(result.stderr.strip().splitlines()) == 1, (command[0], result.stderr)
        assert time.perf_counter() - started < 20
    assert blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "code.npy"]


@pytest.mark.parametrize("command", [
    ["invert", "CROP", "OUT", "-g", "GEN", "--lr", "nan"],
    ["invert", "CROP", "OUT", "-g", "GEN", "--lambda-encoder", "nan"],
    ["invert", "CROP", "OUT", "-g", "GEN", "--lambda-perceptual", "inf"],
    ["factorize", "GEN", "--out", "OUT", "--preview", "--distance", "inf"],
    ["align", "CROP", "OUT", "--min-score", "nan"],
    ["train-encoder", "GEN", "--out", "OUT/e.pt", "--lr", "nan"],
])
def test_numeric_options_reject_nan_and_inf(tmp_path, command):
    names = {"CROP": str(PORTRAIT), "OUT": str(tmp_path / "out"), "GEN": str(GENERATOR), "OUT/e.pt": str(tmp_path / "e.pt")}
    result = cli(*[names.get(part, part) for part in command])
    assert result.returncode == 2 and "must be a finite number" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
