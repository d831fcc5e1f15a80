"""The user-facing download path: checksum verification, cache reuse, mirrors, Google Drive's confirmation
page, model names and the offline message."""

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
    item = downloads.Published("toy", (downloads.Location(source.as_uri(), "weights-abc.pth"),), digest[:8], "test file")
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
    monkeypatch.setitem(downloads.PUBLISHED, "toy", downloads.Published("toy", item.locations, "00000000", ""))
    with pytest.raises(UserError, match="expected 00000000"):
        downloads.fetch("toy")
    assert not (tmp_path / "cache" / "weights-abc.pth").exists()


def test_offline_gives_a_clear_error(published, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(downloads.urllib.request, "urlopen", offline)
    with pytest.raises(UserError, match="download failed .*copy weights-abc.pth into"):
        downloads.fetch("toy")


def test_dead_locations_are_skipped_and_first_use_is_trusted(tmp_path, monkeypatch):
    """A dead link and a web page instead of the file give way to the next mirror; with no published
    checksum the first download's sha256 is recorded and later uses are checked against it."""
    monkeypatch.setenv("SEFA_EDIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "page.html").write_text("<html><body>This link has expired</body></html>")
    (tmp_path / "mirror.pth").write_bytes(b"weights from the mirror")
    locations = (downloads.Location((tmp_path / "gone.pth").as_uri(), "model.pth"),
                 downloads.Location((tmp_path / "page.html").as_uri(), "model.pth"),
                 downloads.Location((tmp_path / "mirror.pth").as_uri(), "model_mirror.pth"))
    monkeypatch.setitem(downloads.PUBLISHED, "mirrored", downloads.Published("mirrored", locations, None, ""))
    path = downloads.fetch("mirrored")
    assert path.name == "model_mirror.pth" and path.read_bytes() == b"weights from the mirror"
    assert path.with_name("model_mirror.pth.sha256").read_text().strip() == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(b"tampered")
    with pytest.raises(UserError, match="does not match its checksum"):
        downloads.fetch("mirrored")


def test_google_drive_confirmation_pages_give_the_download_url():
    form_page = (
        '<form id="download-form" action="https://drive.usercontent.google.com/download" method="get">'
        '<input type="hidden" name="id" value="1SjWD4slw612z2cXa3-n38JwKZXqDUerG">'
        '<input type="hidden" name="export" value="download">'
        '<input type="hidden" name="confirm" value="t">'
        '<input type="hidden" name="uuid" value="0b5c-77aa"></form>'
    )
    url = downloads.google_drive_confirm_url("https://drive.google.com/uc?export=download&id=1SjWD4slw612z2cXa3-n38JwKZXqDUerG",
                                             form_page)
    assert url == ("https://drive.usercontent.google.com/download?id=1SjWD4slw612z2cXa3-n38JwKZXqDUerG&export=download"
                   "&confirm=t&uuid=0b5c-77aa")
    old_page = '<a id="uc-download-link" href="/uc?export=download&amp;confirm=AbC_9&amp;id=XYZ">Download anyway</a>'
    assert downloads.google_drive_confirm_url("https://drive.google.com/uc?export=download&id=XYZ", old_page) == \
        "https://drive.google.com/uc?export=download&confirm=AbC_9&id=XYZ"
    assert downloads.google_drive_confirm_url("https://drive.google.com/uc?id=XYZ", "<html>quota exceeded</html>") is None


def test_names_cover_the_seeds_zoo_and_idinvert_pairs():
    for name in ("stylegan-ffhq-1024", "stylegan-celebahq-1024", "stylegan-animeface-512", "stylegan-car-512",
                 "stylegan-cat-256", "pggan-celebahq-1024", "stylegan2-ffhq-1024", "idinvert-ffhq-256"):
        assert name in downloads.PUBLISHED
    assert len([item for item in downloads.PUBLISHED.values() if "sefa" in item.source]) == 57
    assert downloads.PUBLISHED["idinvert-ffhq-256"].encoder == "idinvert-ffhq-256-encoder"
    # NVIDIA's official pickle first, SeFa's genforce copy as the mirror
    assert [loc.filename for loc in downloads.PUBLISHED["stylegan2-ffhq-1024"].locations] == \
        ["stylegan2-ffhq-1024x1024.pkl", "stylegan2_ffhq1024.pth"]


def test_nvidias_stylegan3_pickles_are_named_at_their_published_locations():
    names = sorted(name for name, item in downloads.PUBLISHED.items() if item.architecture == "stylegan3")
    assert len(names) == 12 and {"stylegan3-t-ffhq-1024", "stylegan3-r-ffhqu-256", "stylegan3-r-afhqv2-512"} <= set(names)
    item = downloads.PUBLISHED["stylegan3-r-metfacesu-1024"]
    assert item.url == ("https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
                        "stylegan3-r-metfacesu-1024x1024.pkl")
    assert (item.resolution, item.filename) == (1024, "stylegan3-r-metfacesu-1024x1024.pkl")
    assert "rotation" in item.description and "rotation" not in downloads.PUBLISHED["stylegan3-t-ffhq-1024"].description


def test_the_encoder_beside_an_idinvert_generator_is_its_companion(tmp_path):
    generator = tmp_path / "styleganinv_ffhq256_generator.pth"
    generator.write_bytes(b"g")
    assert downloads.companion_encoder(str(generator), generator) is None
    (tmp_path / "styleganinv_ffhq256_encoder.pth").write_bytes(b"e")
    path, message = downloads.companion_encoder(str(generator), generator)
    assert path == tmp_path / "styleganinv_ffhq256_encoder.pth" and "beside" in message


def test_models_list_names_every_model_with_its_architecture():
    import json
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(__file__).resolve().parents[1] / "cli.py"
    result = subprocess.run([sys.executable, str(cli), "models", "list", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == set(downloads.PUBLISHED)
    assert (rows["pggan-celebahq-1024"]["architecture"], rows["pggan-celebahq-1024"]["resolution"]) == ("pggan", 1024)
    assert rows["idinvert-ffhq-256"]["encoder"] == "idinvert-ffhq-256-encoder"
    assert rows["stylegan-cat-256"]["source"] == "genforce/sefa model zoo" and rows["stylegan-cat-256"]["cached"] is False


def test_models_fetch_brings_the_published_encoder_along(tmp_path, monkeypatch, capsys):
    import cli

    monkeypatch.setenv("SEFA_EDIT_CACHE", str(tmp_path / "cache"))
    for name, data in (("pair", b"generator"), ("pair-encoder", b"encoder")):
        (tmp_path / f"{name}.pth").write_bytes(data)
        location = downloads.Location((tmp_path / f"{name}.pth").as_uri(), f"{name}_cached.pth")
        monkeypatch.setitem(downloads.PUBLISHED, name, downloads.Published(
            name, (location,), None, "", encoder="pair-encoder" if name == "pair" else None))
    cli.models_fetch("pair")
    fetched = [line for line in capsys.readouterr().out.splitlines()]
    assert len(fetched) == 2 and "pair-encoder" in fetched[1]
    assert (tmp_path / "cache" / "pair-encoder_cached.pth").read_bytes() == b"encoder"


def test_a_biggan_is_fetched_with_its_config_and_then_renders_from_the_cache(tmp_path, monkeypatch):
    """The published BigGAN names point at Hugging Face's files; fetching one brings its config.json along,
    under the published names, which the checkpoint reader then finds beside the weights."""
    import torch

    from generators.checkpoint import load_checkpoint
    from tests.test_biggan import write_checkpoint

    item = downloads.PUBLISHED["biggan-deep-256"]
    assert item.url == "https://s3.amazonaws.com/models.huggingface.co/biggan/biggan-deep-256-pytorch_model.bin"
    assert downloads.PUBLISHED["biggan-deep-256-config"].url.endswith("/biggan-deep-256-config.json")
    server = tmp_path / "server"
    write_checkpoint(server, "biggan-deep-256-pytorch_model.bin", "biggan-deep-256-config.json")
    for name in ("biggan-deep-256", "biggan-deep-256-config"):
        known = downloads.PUBLISHED[name]
        location = downloads.Location((server / known.filename).as_uri(), known.filename)
        monkeypatch.setitem(downloads.PUBLISHED, name, downloads.Published(
            name, (location,), None, known.description, known.architecture, known.resolution, known.source,
            kind=known.kind, companions=known.companions))
    monkeypatch.setenv("SEFA_EDIT_CACHE", str(tmp_path / "cache"))
    path = downloads.fetch("biggan-deep-256")
    assert (tmp_path / "cache" / "biggan-deep-256-config.json").is_file()
    generator = load_checkpoint(path).build_generator()
    assert generator.render(torch.zeros([1, 1, 32])).shape == (1, 3, 32, 32)
