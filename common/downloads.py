"""Fetching published weights for users: official URL, checksum, a cache folder, a clear error offline.

Nothing in sefa-edit downloads implicitly: `sefa-edit models fetch NAME` does, once, into the cache
(`$SEFA_EDIT_CACHE`, default `~/.cache/sefa-edit`); everything else loads local files only.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError


@dataclass(frozen=True)
class Published:
    name: str
    url: str
    filename: str
    sha256_prefix: str  # the checksum as published (torchvision names files by a sha256 prefix)
    description: str


PUBLISHED = {
    "vgg16": Published(
        "vgg16",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        "vgg16-397923af.pth",
        "397923af",
        "torchvision VGG16 (ImageNet), the backbone of the LPIPS perceptual loss",
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("SEFA_EDIT_CACHE", Path.home() / ".cache" / "sefa-edit"))


def fetch(name: str, timeout: float = 30.0) -> Path:
    """Download a published file into the cache (verified), or return it if it is already there."""
    if name not in PUBLISHED:
        raise UserError(f"unknown download {name!r}; known: {', '.join(sorted(PUBLISHED))}")
    item = PUBLISHED[name]
    target = cache_dir() / item.filename
    if target.is_file() and _sha256(target).startswith(item.sha256_prefix):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{item.filename}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle, urllib.request.urlopen(item.url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                handle.write(chunk)
        digest = _sha256(Path(tmp))
        if not digest.startswith(item.sha256_prefix):
            raise UserError(f"{item.url}: downloaded file has sha256 {digest[:16]}..., expected {item.sha256_prefix}...; try again")
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(
            f"{item.url}: download failed ({getattr(exc, 'reason', exc)}); without internet, copy {item.filename} "
            f"into {target.parent} by hand"
        ) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
