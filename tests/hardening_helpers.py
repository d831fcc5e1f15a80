"""Shared pieces of the hardening tests: the CLI as a subprocess, the bundled model, crafted files."""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "assets" / "example-stylegan2-64.pt"
ENCODER = REPO / "assets" / "example-encoder.pt"


def cli(*args: str, stdin: str | None = None, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *map(str, args)], input=stdin, capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


def sigint_as_on_a_terminal() -> None:
    """For a child's preexec_fn: SIGINT as a terminal's foreground job has it, at its default disposition (a
    shell's background job starts with it ignored) and not blocked (a harness may start its jobs with it
    masked; both are inherited across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height and whose pixel data is a few bytes: what a
    decompression bomb looks like before anything is decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """A .npy header (version 1.0) declaring `shape`, without the data it promises."""
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape!r}, }}".encode("latin1")
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def assert_same_picture(actual, expected, what: str = "the images") -> None:
    """Two renders of the same code and weights: what the product promises is the same picture, i.e.
    at most 1 grey level apart (and on almost no pixels). Exact equality is not promised: batches of
    another size, another thread count or another process sum in another order, and a value that
    lands on x.5 after scaling then rounds the other way."""
    import numpy as np

    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shapes {actual.shape} and {expected.shape}"
    difference = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    assert difference.max() <= 1, f"{what}: {int(difference.max())} grey levels apart at most, 1 allowed"
    assert (difference > 0).mean() <= 0.01, f"{what}: {(difference > 0).mean():.2%} of values differ, at most 1% allowed"
