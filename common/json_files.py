"""The one way the project reads JSON it did not just write: bounded in size and nesting, never a hang.

Sidecars, code records, recipes, labels and stdin lines may be hand-edited or crafted. `json.loads`
recurses once per nesting level, so `[` x 100000 raises RecursionError (a traceback, not a message);
a FIFO or device named as the file blocks a plain read forever; a huge file is read whole. Here the
file is opened as a regular file only (`common.regular_files`), its size is capped, the nesting depth
is measured before parsing (strings blanked out, brackets counted), and every failure is a BadJson
(a ValueError) with a plain-words reason that the caller puts after the file's name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from common.regular_files import read_limited

MAX_JSON_BYTES = 16 * 1024 * 1024  # a recipe with hundreds of 512-d vectors is ~10 MB; our own files are KBs
MAX_DEPTH = 64  # our files nest 4 levels; deeper is crafted

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


class BadJson(ValueError):
    """Not usable JSON; the message says why, without the file name (the caller adds it)."""


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text` (brackets inside strings do not count)."""
    structure = np.frombuffer(_STRING.sub('""', text).encode("utf-8", "replace"), dtype=np.uint8)
    steps = (np.isin(structure, (ord("["), ord("{"))).astype(np.int32)
             - np.isin(structure, (ord("]"), ord("}"))).astype(np.int32))
    return int(np.cumsum(steps).max(initial=0))


def parse_json_text(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads` with the nesting checked first; BadJson says what is wrong."""
    depth = nesting_depth(text)
    if depth > max_depth:
        raise BadJson(f"not usable JSON: nested {depth} levels deep, more than the {max_depth} allowed")
    try:
        return json.loads(text)
    except RecursionError:  # a backstop: the depth check above should always come first
        raise BadJson("not usable JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and int() of a number with thousands of digits
        raise BadJson(f"not valid JSON ({str(exc).splitlines()[0]})") from None


def read_json(path: Path | str, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON file that may be hostile. OSError when it cannot be opened (missing, or a folder,
    pipe or device: `common.regular_files.NotRegularFile`), BadJson when its contents are unusable."""
    try:
        data = read_limited(path, max_bytes)  # OSError passes through
    except ValueError as exc:
        raise BadJson(f"too large for a JSON file ({exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJson(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_json_text(text, max_depth)


def read_json_object(path: Path | str, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """`read_json` that must give an object (every file of ours is one)."""
    value = read_json(path, max_bytes)
    if not isinstance(value, dict):
        raise BadJson(f"holds a JSON {type(value).__name__}, not an object")
    return value
