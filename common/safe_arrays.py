"""Reading `.npy` codes and `.npz` members that may be damaged or hostile, without trusting their headers.

`np.load` believes the header: an empty or truncated file gives a cryptic error, and a header that
declares a huge shape makes NumPy try to allocate it. Here the header is read and checked first
(dtype, shape, element limit, that the file really holds that many bytes), and only then the data.
Values must be finite: a NaN code renders as noise and poisons every edit made from it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from common.regular_files import open_regular

DEFAULT_MAX_ELEMENTS = 64 * 1024 * 1024  # 256 MB of float32: far above any code or directions file
NUMBER_KINDS = "fiub"  # codes: numbers only
MEMBER_KINDS = "fiubUS"  # directions files also keep short strings (sha256, names)


class BadArray(ValueError):
    """The file is not a usable array; the message says why in plain words."""


def _read_checked(handle: BinaryIO, available_bytes: int | None, max_elements: int, kinds: str) -> np.ndarray:
    """The array behind a `.npy` header, checked before any allocation; byte order made native (a
    big-endian `>f4` file from another machine is a legitimate code, converted rather than refused)."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise BadArray(f"unsupported .npy version {version}")
    except BadArray:
        raise
    except (ValueError, EOFError, OSError) as exc:
        raise BadArray(f"not a .npy array (header unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if dtype.hasobject:
        raise BadArray("holds Python objects, not numbers")
    if dtype.kind not in kinds:
        raise BadArray(f"holds {_dtype_words(dtype)} values, expected numbers")
    if not all(isinstance(side, int) and side >= 0 for side in shape):
        raise BadArray(f"declares an impossible shape {list(shape)} (negative size)")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count > max_elements:
        raise BadArray(f"declares shape {list(shape)} ({count:,} values), over the limit of {max_elements:,}")
    needed = count * dtype.itemsize
    header_end = handle.tell()
    if available_bytes is not None and available_bytes - header_end < needed:
        raise BadArray(f"truncated: shape {list(shape)} needs {needed:,} bytes of data, the file has {max(0, available_bytes - header_end):,}")
    data = handle.read(needed)
    if len(data) < needed:
        raise BadArray(f"truncated: shape {list(shape)} needs {needed:,} bytes of data, found {len(data):,}")
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
    native = dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype
    return array.astype(native, order="C", copy=True)  # 0-d stays 0-d, native byte order, owns its memory


def _dtype_words(dtype: np.dtype) -> str:
    return {"U": "text (unicode string)", "S": "text (byte string)", "c": "complex", "M": "date", "m": "time-delta",
            "V": "raw (void)"}.get(dtype.kind, str(dtype))


def load_npy(path: Path, max_elements: int = DEFAULT_MAX_ELEMENTS, finite: bool = True) -> np.ndarray:
    """Read one `.npy` file with its header checked before any allocation; BadArray says what is wrong."""
    path = Path(path)
    try:
        handle = open_regular(path)
    except OSError as exc:
        raise BadArray(exc.strerror or str(exc)) from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise BadArray("empty file (0 bytes)")
        array = _read_checked(handle, size, max_elements, NUMBER_KINDS)
    if finite and array.dtype.kind == "f" and not np.isfinite(array).all():
        raise BadArray(f"holds {int((~np.isfinite(array)).sum())} NaN or infinite value(s)")
    return array


def load_npz_member(archive: zipfile.ZipFile, name: str, max_elements: int = DEFAULT_MAX_ELEMENTS,
                    kinds: str = MEMBER_KINDS) -> np.ndarray:
    """Read one member of an `.npz` (a zip of `.npy`s), expanding only that member, within the limit."""
    member = f"{name}.npy"
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise BadArray(f"has no '{name}' array") from None
    with archive.open(info) as handle:
        return _read_checked(handle, info.file_size, max_elements, kinds)
