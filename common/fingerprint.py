"""What made an output: a digest of its input file's bytes and of every setting that changes it.

Each stage stores this digest beside what it wrote. A rerun compares: the same digest and all files
present means the item is done; a different one (another generator, other steps, a replaced photo)
means the item is redone, never served stale.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from common.hashing import sha256_file

_content_cache: dict[tuple, str] = {}


def content_sha256(path: Path) -> str:
    """sha256 of a file's bytes, remembered per (path, inode, size, mtime) within the process."""
    path = Path(path)
    stat = os.stat(path)
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    digest = _content_cache.get(key)
    if digest is None:
        digest = _content_cache[key] = sha256_file(path)
    return digest


def fingerprint(**parts: Any) -> str:
    """A stable digest of JSON-able settings (key order does not matter)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
