"""The user-facing download path: checksum verification, cache reuse, and the offline message."""

from __future__ import annotations

import hashlib
import urllib.error

import pytest

from common import downloads
from common.errors import UserError


@pytest.fixture()
def published(tmp_path, monkeypatch):
    source = tmp_path / "server" / "weights.pth"
    source.parent.mkdir()
    source.write_bytes(b"pretend weights" * 100)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    monkeypatch.setenv("SEFA_EDIT_CACHE", str(tmp_path / "cache"))
    item = downloads.Published("toy", source.as_uri(), "weights-abc.pth", digest[:8], "test file")
    monkeypatch.setitem(downloads.PUBLISHED, "toy", item)
    return item, source


def test_fetch_verifies_and_caches(published, tmp_path):
    item, source = published
    path = downloads.fetch("toy")
    assert path == tmp_path / "cache" / "weights-abc.pth" and path.read_bytes() == source.read_bytes()
    source.unlink()  # served from the cache now
    assert downloads.fetch("toy") == path


def test_fetch_rejects_a_wrong_checksum(published, monkeypatch, tmp_path):
    item, _ = published
    monkeypatch.setitem(downloads.PUBLISHED, "toy", downloads.Published("toy", item.url, item.filename, "00000000", ""))
    with pytest.raises(UserError, match="expected 00000000"):
        downloads.fetch("toy")
    assert not (tmp_path / "cache" / "weights-abc.pth").exists()


def test_offline_gives_a_clear_error(published, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(downloads.urllib.request, "urlopen", offline)
    with pytest.raises(UserError, match="download failed .*copy weights-abc.pth into"):
        downloads.fetch("toy")
