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

from common import atomic
from common.errors import UserError


@dataclass(frozen=True)
class Published:
    name: str
    url: str
    filename: str
    sha256_prefix: str | None  # as published (torchvision names files by a sha256 prefix); None: not published
    description: str


PUBLISHED = {
    # NVIDIA's official StyleGAN2 FFHQ generators (pickles read with the restricted unpickler). NVIDIA
    # publishes no checksums for them: the first download's sha256 is recorded beside the file and every
    # later use of the cache is checked against it.
    "stylegan2-ffhq-1024": Published(
        "stylegan2-ffhq-1024",
        "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/stylegan2-ffhq-1024x1024.pkl",
        "stylegan2-ffhq-1024x1024.pkl", None, "StyleGAN2 config-f, FFHQ 1024x1024 (NVIDIA)",
    ),
    "stylegan2-ada-ffhq-1024": Published(
        "stylegan2-ada-ffhq-1024",
        "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl",
        "stylegan2-ada-ffhq.pkl", None, "StyleGAN2-ADA, FFHQ 1024x1024 (NVIDIA)",
    ),
    "stylegan2-ffhqu-256": Published(
        "stylegan2-ffhqu-256",
        "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/stylegan2-ffhqu-256x256.pkl",
        "stylegan2-ffhqu-256x256.pkl", None, "StyleGAN2, unaligned FFHQ 256x256 (NVIDIA, stylegan3 release)",
    ),
    "vgg16": Published(
        "vgg16",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        "vgg16-397923af.pth",
        "397923af",
        "torchvision VGG16 (ImageNet), the backbone of the LPIPS perceptual loss",
    ),
}


def resolve_weights(name_or_path: str | Path) -> Path:
    """A local file as is; a published model's name from the cache, downloading it the first time."""
    path = Path(name_or_path)
    if path.exists():
        return path
    if str(name_or_path) in PUBLISHED:
        return fetch(str(name_or_path))
    known = ", ".join(sorted(k for k in PUBLISHED if k != "vgg16"))
    raise UserError(f"{name_or_path}: neither a file nor a known model name (known: {known})")


def cache_dir() -> Path:
    return Path(os.environ.get("SEFA_EDIT_CACHE", Path.home() / ".cache" / "sefa-edit"))


def fetch(name: str, timeout: float = 30.0) -> Path:
    """Download a published file into the cache (verified), or return it if it is already there."""
    if name not in PUBLISHED:
        raise UserError(f"unknown download {name!r}; known: {', '.join(sorted(PUBLISHED))}")
    item = PUBLISHED[name]
    target = cache_dir() / item.filename
    recorded = target.with_name(target.name + ".sha256")
    expected = item.sha256_prefix or (recorded.read_text().strip() if recorded.is_file() else None)
    if target.is_file():
        digest = _sha256(target)
        if expected is None or digest.startswith(expected):
            return target
        raise UserError(f"{target}: cached file does not match its checksum ({digest[:12]}... vs {expected[:12]}...); delete it and fetch again")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{item.filename}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle, urllib.request.urlopen(item.url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                handle.write(chunk)
        digest = _sha256(Path(tmp))
        if expected is not None and not digest.startswith(expected):
            raise UserError(f"{item.url}: downloaded file has sha256 {digest[:16]}..., expected {expected}...; try again")
        os.replace(tmp, target)
        if item.sha256_prefix is None:
            atomic.write_text(recorded, digest + "\n")
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
