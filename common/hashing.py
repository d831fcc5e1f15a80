"""File fingerprints: directions and caches are tied to the exact checkpoint bytes they came from."""

from __future__ import annotations

import hashlib
from pathlib import Path

from common.regular_files import open_regular


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open_regular(path) as handle:  # a FIFO or device raises NotRegularFile instead of hashing forever
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
