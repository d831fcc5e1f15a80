"""Atomic writes: a crash or Ctrl-C never leaves a half-written output behind.

Every output goes to a temporary file in the destination folder and is then renamed over the final
name (`os.replace` is atomic on POSIX and Windows within one file system), so a rerun can trust that
any file that exists is complete and skip it.
"""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from common.errors import OutputError


def _default_file_mode() -> int:
    """0o666 minus the process umask: what `open(path, "w")` would have given (mkstemp uses 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _output_error(path: Path, exc: OSError) -> OutputError:
    """One line naming the file and what to do: the batch stops here, nothing is marked done."""
    advice = {
        errno.ENOSPC: "the disk is full; free some space and rerun (finished outputs are kept)",
        errno.EDQUOT: "the disk quota is exceeded; free some space and rerun (finished outputs are kept)",
        errno.EROFS: "the file system is read-only; choose another OUT",
        errno.EACCES: "permission denied; choose a writable OUT",
    }.get(exc.errno, f"{exc.strerror or exc}; check the output folder and rerun")
    return OutputError(f"{path}: cannot write: {advice}")


def write_with(path: Path, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Run `write(handle)` on a temporary file beside `path`, then atomically rename it to `path`."""
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _default_file_mode())
        os.replace(tmp_name, path)
    except BaseException as exc:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
        if isinstance(exc, OSError):
            raise _output_error(path, exc) from exc
        raise
    return path


def write_by_name(path: Path, produce: Callable[[Path], None], verify: Callable[[Path], None]) -> Path:
    """For writers that only take a file name (OpenCV's video writer): `produce(tmp)` writes a hidden
    temporary file beside `path`, `verify(tmp)` must raise OSError if it is incomplete (such writers
    fail silently on a full disk), then the bytes are synced and renamed over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        produce(tmp)
        verify(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _output_error(path, exc) from exc
        raise
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    return write_with(path, lambda handle: handle.write(data))


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json_object(path: Path) -> dict | None:
    """A JSON object written by `write_json` (a marker, a record), or None when the file is missing,
    unreadable or not an object: to a rerun, all three mean "not done"."""
    from common.json_files import read_json

    try:
        value = read_json(path)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def save_npy(path: Path, array: np.ndarray) -> Path:
    return write_with(path, lambda handle: np.save(handle, array, allow_pickle=False))


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    return write_with(path, lambda handle: np.savez(handle, **arrays))


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line. A single short `write` on an O_APPEND file is not torn by a crash in practice,
    and a reader skips a malformed last line, so logs (failures, metrics) use plain appends."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
    except OSError as exc:
        raise _output_error(path, exc) from exc
