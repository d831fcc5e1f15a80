"""Fetching published weights for users: official locations, checksums, a cache folder, a clear error offline.

Nothing in sefa-edit downloads implicitly except a model *name* given where a checkpoint is expected
(`-g stylegan-ffhq-1024`): the file is fetched once into the cache (`$SEFA_EDIT_CACHE`, default
`~/.cache/sefa-edit`) and read from there afterwards; paths are always read as they are.

A model may be published in several places (an official server and mirrors, some of them dead by now):
each location is tried in turn. Google Drive answers large files with a "can't scan for viruses" page
first; its confirm token is read from that page (or cookie) and the request repeated. Where no
checksum is published, the first download's sha256 is recorded beside the file and every later use is
checked against it (trust on first use). When every location fails, the error names the file and the
folder to put it in by hand.
"""

from __future__ import annotations

import hashlib
import html
import http.cookiejar
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from common import atomic
from common.errors import UserError
from common.model_zoo import SEFA_ZOO
from common.model_zoo import SOURCE as SEFA_SOURCE
from common.regular_files import read_limited


@dataclass(frozen=True)
class Location:
    url: str
    filename: str  # cache file name of what this location serves (mirrors may serve another format)


@dataclass(frozen=True)
class Published:
    name: str
    locations: tuple[Location, ...]
    sha256_prefix: str | None  # as published (torchvision names files by a sha256 prefix); None: not published
    description: str
    architecture: str = ""
    resolution: int | None = None
    source: str = ""
    encoder: str | None = None  # the published encoder that goes with this generator (`-g NAME` loads both)
    kind: str = "generator"  # generator | encoder | weights | config
    companions: tuple[str, ...] = ()  # published files that must lie beside this one (BigGAN's config.json)

    @property
    def url(self) -> str:
        return self.locations[0].url

    @property
    def filename(self) -> str:
        return self.locations[0].filename


def _drive(file_id: str, filename: str) -> Location:
    return Location(f"https://drive.google.com/uc?export=download&id={file_id}", filename)


_CUHK = "https://mycuhk-my.sharepoint.com/:u:/g/personal/1155082926_link_cuhk_edu_hk/"
_NVIDIA_FFHQ = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/stylegan2-ffhq-1024x1024.pkl"

_NGC_STYLEGAN3 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
_STYLEGAN3_DATASETS = {
    "ffhq": "FFHQ", "ffhqu": "unaligned FFHQ", "metfaces": "MetFaces", "metfacesu": "unaligned MetFaces", "afhqv2": "AFHQv2",
}
_STYLEGAN3_PUBLISHED = (  # (config, dataset, resolution), as listed in NVlabs/stylegan3's README
    ("t", "ffhq", 1024), ("t", "ffhqu", 1024), ("t", "ffhqu", 256), ("r", "ffhq", 1024), ("r", "ffhqu", 1024),
    ("r", "ffhqu", 256), ("t", "metfaces", 1024), ("t", "metfacesu", 1024), ("r", "metfaces", 1024),
    ("r", "metfacesu", 1024), ("t", "afhqv2", 512), ("r", "afhqv2", 512),
)


def _stylegan3_models() -> list["Published"]:
    equivariance = {"t": "translation-equivariant", "r": "translation- and rotation-equivariant"}
    return [Published(f"stylegan3-{config}-{dataset}-{resolution}",
                      (Location(f"{_NGC_STYLEGAN3}stylegan3-{config}-{dataset}-{resolution}x{resolution}.pkl",
                                f"stylegan3-{config}-{dataset}-{resolution}x{resolution}.pkl"),), None,
                      f"StyleGAN3-{config.upper()} ({equivariance[config]}), {_STYLEGAN3_DATASETS[dataset]} "
                      f"{resolution}x{resolution} (NVIDIA)", "stylegan3", resolution, "NVIDIA")
            for config, dataset, resolution in _STYLEGAN3_PUBLISHED]


_BIGGAN = "https://s3.amazonaws.com/models.huggingface.co/biggan/"


def _biggan_models() -> list["Published"]:
    """pytorch-pretrained-biggan's three BigGAN-deep generators (its PRETRAINED_MODEL_ARCHIVE_MAP): weights
    and the config.json that says how to build the network, fetched together."""
    models = []
    for resolution in (128, 256, 512):
        name = f"biggan-deep-{resolution}"
        models += [
            Published(name, (Location(f"{_BIGGAN}{name}-pytorch_model.bin", f"{name}-pytorch_model.bin"),), None,
                      f"BigGAN-deep, ImageNet {resolution}x{resolution}, 1000 classes (DeepMind, converted by Hugging Face)",
                      "biggan", resolution, "huggingface/pytorch-pretrained-BigGAN", companions=(f"{name}-config",)),
            Published(f"{name}-config", (Location(f"{_BIGGAN}{name}-config.json", f"{name}-config.json"),), None,
                      f"the config.json of {name} (fetched with it)", "biggan", resolution,
                      "huggingface/pytorch-pretrained-BigGAN", kind="config"),
        ]
    return models


_CURATED = [
    # NVIDIA's official StyleGAN2 FFHQ generators (pickles read with the restricted unpickler), no checksums
    # published. stylegan2-ffhq-1024 is also in SeFa's zoo, converted to genforce's format: the mirror.
    Published("stylegan2-ffhq-1024", (Location(_NVIDIA_FFHQ, "stylegan2-ffhq-1024x1024.pkl"),), None,
              "StyleGAN2 config-f, FFHQ 1024x1024 (NVIDIA)", "stylegan2", 1024, "NVIDIA"),
    Published("stylegan2-ada-ffhq-1024",
              (Location("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl", "stylegan2-ada-ffhq.pkl"),),
              None, "StyleGAN2-ADA, FFHQ 1024x1024 (NVIDIA)", "stylegan2", 1024, "NVIDIA"),
    Published("stylegan2-ffhqu-256",
              (Location("https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/stylegan2-ffhqu-256x256.pkl",
                        "stylegan2-ffhqu-256x256.pkl"),),
              None, "StyleGAN2, unaligned FFHQ 256x256 (NVIDIA, stylegan3 release)", "stylegan2", 256, "NVIDIA"),
    # NVIDIA's StyleGAN3 generators (NVlabs/stylegan3 README: NGC catalogue), configs T and R; no checksums published.
    *_stylegan3_models(),
    *_biggan_models(),
    # In-Domain GAN Inversion (genforce/idinvert_pytorch README and Colab notebook; Dropbox before ce866b0).
    Published("idinvert-ffhq-256", (
        _drive("1SjWD4slw612z2cXa3-n38JwKZXqDUerG", "styleganinv_ffhq256_generator.pth"),
        Location(_CUHK + "EbuzMQ3ZLl1AqvKJzeeBq7IBoQD-C1LfMIC8USlmOMPt3Q?e=CMXn8W&download=1", "styleganinv_ffhq256_generator.pth"),
        Location("https://www.dropbox.com/s/i0tj94zhpgqsxso/styleganinv_ffhq256_generator.pth?dl=1",
                 "styleganinv_ffhq256_generator.pth"),
    ), None, "In-Domain GAN Inversion's StyleGAN, FFHQ 256x256, with its domain-guided encoder", "stylegan", 256,
        "genforce/idinvert_pytorch", encoder="idinvert-ffhq-256-encoder"),
    Published("idinvert-ffhq-256-encoder", (
        _drive("1gij7xy05crnyA-tUTQ2F3yYlAlu6p9bO", "styleganinv_ffhq256_encoder.pth"),
        Location(_CUHK + "EXqix_JIEgtLl1FXI4uCkr8B5GPaiJyiLXL6cFbdcIKqEA?e=WYesel&download=1", "styleganinv_ffhq256_encoder.pth"),
        Location("https://www.dropbox.com/s/a7ftqt9rmdpkzou/styleganinv_ffhq256_encoder.pth?dl=1", "styleganinv_ffhq256_encoder.pth"),
    ), None, "In-Domain GAN Inversion's encoder for idinvert-ffhq-256 (image -> W+ [14, 512])", "idinvert-encoder", 256,
        "genforce/idinvert_pytorch", kind="encoder"),
    Published("idinvert-tower-256", (_drive("1lI_OA_aN4-O3mXEPQ1Nv-6tdg_3UWcyN", "styleganinv_tower256_generator.pth"),), None,
              "In-Domain GAN Inversion's StyleGAN, LSUN tower 256x256, with its encoder", "stylegan", 256,
              "genforce/idinvert_pytorch", encoder="idinvert-tower-256-encoder"),
    Published("idinvert-tower-256-encoder", (_drive("1Pzkgdi3xctdsCZa9lcb7dziA_UMIswyS", "styleganinv_tower256_encoder.pth"),), None,
              "In-Domain GAN Inversion's encoder for idinvert-tower-256", "idinvert-encoder", 256, "genforce/idinvert_pytorch",
              kind="encoder"),
    Published("idinvert-bedroom-256", (_drive("1ka583QwvMOtcFZJcu29ee8ykZdyOCcMS", "styleganinv_bedroom256_generator.pth"),), None,
              "In-Domain GAN Inversion's StyleGAN, LSUN bedroom 256x256, with its encoder", "stylegan", 256,
              "genforce/idinvert_pytorch", encoder="idinvert-bedroom-256-encoder"),
    Published("idinvert-bedroom-256-encoder", (_drive("1ebuiaQ7xI99a6ZrHbxzGApEFCu0h0X2s", "styleganinv_bedroom256_encoder.pth"),),
              None, "In-Domain GAN Inversion's encoder for idinvert-bedroom-256", "idinvert-encoder", 256,
              "genforce/idinvert_pytorch", kind="encoder"),
    # pSp and e4e (README tables of eladrich/pixel2style2pixel and omertov/encoder4editing): one file holds the
    # encoder and the rosinality StyleGAN2 FFHQ-1024 generator it was trained for; `-g NAME` uses both.
    Published("e4e-ffhq-1024", (_drive("1cUv_reLE6k3604or78EranS7XzuVMWeO", "e4e_ffhq_encode.pt"),), None,
              "e4e encoder (Encoder4Editing, built for editability) + its StyleGAN2 FFHQ 1024x1024 generator", "stylegan2",
              1024, "omertov/encoder4editing"),
    Published("psp-ffhq-1024", (_drive("1bMTNWkh5LArlaWSc_wa8VKyq2V42T2z0", "psp_ffhq_encode.pt"),), None,
              "pSp encoder (GradualStyleEncoder) + its StyleGAN2 FFHQ 1024x1024 generator", "stylegan2", 1024,
              "eladrich/pixel2style2pixel"),
    Published("vgg16", (Location("https://download.pytorch.org/models/vgg16-397923af.pth", "vgg16-397923af.pth"),), "397923af",
              "torchvision VGG16 (ImageNet), the backbone of the LPIPS perceptual loss", "vgg16", None, "torchvision",
              kind="weights"),
]


def _with_sefa_zoo(curated: list[Published]) -> dict[str, Published]:
    table = {item.name: item for item in curated}
    for name, architecture, resolution, sefa_name, url in SEFA_ZOO:
        location = Location(url, f"{sefa_name}.pth")
        if name in table:  # the same model from another source: SeFa's copy is a mirror
            known = table[name]
            table[name] = Published(known.name, known.locations + (location,), known.sha256_prefix, known.description,
                                    known.architecture, known.resolution, known.source + f", {SEFA_SOURCE}", known.encoder, known.kind)
            continue
        title = sefa_name[len(architecture) + 1 :]
        table[name] = Published(name, (location,), None, f"{architecture} {title} ({SEFA_SOURCE})", architecture, resolution,
                                SEFA_SOURCE)
    return table


PUBLISHED: dict[str, Published] = _with_sefa_zoo(_CURATED)


def resolve_weights(name_or_path: str | Path) -> Path:
    """A local file as is; a published model's name from the cache, downloading it the first time."""
    path = Path(name_or_path)
    if path.exists():
        return path
    if str(name_or_path) in PUBLISHED:
        return fetch(str(name_or_path))
    if path.suffix or os.sep in str(name_or_path):
        raise UserError(f"{name_or_path}: no such checkpoint file; pass the path of a .pkl/.pt/.pth checkpoint, or a model "
                        f"name (`sefa-edit models list`)")
    raise UserError(f"{name_or_path}: neither a file nor a known model name (`sefa-edit models list` shows the names)")


def companion_encoder(generator: str | Path, generator_path: Path) -> tuple[Path, str] | None:
    """The encoder published with a generator, for `-g` alone: by name (fetched like the generator), or an
    In-Domain GAN Inversion `<model>_generator.pth` with its `<model>_encoder.pth` beside it.
    Returns the encoder's path and a sentence saying where it came from."""
    item = PUBLISHED.get(str(generator))
    if item is not None and item.encoder is not None:
        return fetch(item.encoder), f"using {item.encoder}, the encoder published with {item.name}"
    name = generator_path.name
    if name.endswith("_generator.pth"):
        beside = generator_path.with_name(name[: -len("_generator.pth")] + "_encoder.pth")
        if beside.is_file():
            return beside, f"using {beside.name}, the encoder beside {name}"
    return None


def cache_dir() -> Path:
    return Path(os.environ.get("SEFA_EDIT_CACHE", Path.home() / ".cache" / "sefa-edit"))


def fetch(name: str, timeout: float = 30.0) -> Path:
    """The published file in the cache (verified), downloading it from the first location that works."""
    if name not in PUBLISHED:
        raise UserError(f"unknown model name {name!r}; `sefa-edit models list` shows the names")
    item = PUBLISHED[name]
    for companion in item.companions:
        fetch(companion, timeout)
    folder = cache_dir()
    for location in item.locations:
        cached = _verified_cache(item, folder / location.filename)
        if cached is not None:
            return cached
    folder.mkdir(parents=True, exist_ok=True)
    reasons = []
    for location in item.locations:
        try:
            return _download(item, location, folder / location.filename, timeout)
        except _LocationFailed as exc:
            reasons.append(f"{_host(location.url)}: {exc}")
    by_hand = " or ".join(sorted({location.filename for location in item.locations}))
    raise UserError(f"{name}: download failed ({'; '.join(reasons)}); without internet, copy {by_hand} into {folder} by hand")


class _LocationFailed(Exception):
    """This location did not give the file (network error, dead link, an HTML page instead of weights)."""


def _verified_cache(item: Published, target: Path) -> Path | None:
    if not target.is_file():
        return None
    expected = _expected_digest(item, target)
    digest = _sha256(target)
    if expected is None or digest.startswith(expected):
        return target
    raise UserError(f"{target}: cached file does not match its checksum ({digest[:12]}... vs {expected[:12]}...); "
                    f"delete it and fetch again")


def _expected_digest(item: Published, target: Path) -> str | None:
    recorded = target.with_name(target.name + ".sha256")
    return item.sha256_prefix or (read_limited(recorded, 1024).decode("ascii", "replace").strip() if recorded.is_file() else None)


def _download(item: Published, location: Location, target: Path, timeout: float) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{location.filename}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            try:
                response = _open(location.url, timeout)
                with response:
                    while chunk := response.read(1 << 20):
                        handle.write(chunk)
            except (urllib.error.URLError, OSError) as exc:
                raise _LocationFailed(str(getattr(exc, "reason", exc))) from exc
        digest = _sha256(Path(tmp))
        expected = _expected_digest(item, target)
        if expected is not None and not digest.startswith(expected):
            raise UserError(f"{location.url}: downloaded file has sha256 {digest[:16]}..., expected {expected}...; try again")
        os.replace(tmp, target)
        if item.sha256_prefix is None:
            atomic.write_text(target.with_name(target.name + ".sha256"), digest + "\n")
        return target
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _open(url: str, timeout: float):
    """urlopen, through Google Drive's confirmation page for large files; an HTML answer is a failure."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    response = _urlopen(opener, url, timeout)
    if not _is_html(response):
        return response
    page = response.read(1 << 20).decode("utf-8", "replace")
    response.close()
    confirm = google_drive_confirm_url(url, page)
    if confirm is None:
        raise _LocationFailed("the server answered with a web page, not the file (the link may be dead)")
    response = _urlopen(opener, confirm, timeout)
    if _is_html(response):
        response.close()
        raise _LocationFailed("Google Drive refused the download (quota exceeded or the file was removed)")
    return response


def _urlopen(opener, url: str, timeout: float):
    """Through `urllib.request.urlopen` for plain URLs (so it can be replaced in tests), the cookie-keeping
    opener for Google Drive (its confirmation is tied to a cookie)."""
    if "google.com" in urllib.parse.urlsplit(url).netloc:
        return opener.open(url, timeout=timeout)
    return urllib.request.urlopen(url, timeout=timeout)


def _is_html(response) -> bool:
    content_type = response.headers.get("Content-Type", "") if getattr(response, "headers", None) else ""
    return content_type.startswith("text/html")


def google_drive_confirm_url(url: str, page: str) -> str | None:
    """The second request Google Drive's "can't scan this file for viruses" page asks for, or None.

    Newer pages hold a form (action drive.usercontent.google.com/download, hidden id/export/confirm/uuid
    inputs); older ones a link with `confirm=<token>`."""
    form = re.search(r'<form[^>]*id="download-form"[^>]*action="([^"]+)"', page)
    if form:
        fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
        if fields:
            return html.unescape(form.group(1)) + "?" + urllib.parse.urlencode(fields)
    token = re.search(r"confirm=([0-9A-Za-z_-]+)", page)
    if token:
        file_id = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("id", [""])[0]
        if file_id:
            return f"https://drive.google.com/uc?export=download&confirm={token.group(1)}&id={file_id}"
    return None


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
