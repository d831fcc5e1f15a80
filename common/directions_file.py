"""The directions file (`.npz`) and its labels (`labels.json`): what `factorize` writes and `edit` reads.

Kept in shared I/O because two stages exchange it. The `.npz` holds:
`directions` [K, dim] (unit rows), `eigenvalues` [K], `all_eigenvalues` [dim], `layers` (the W+ or
layer indices the directions were computed on, and by default are applied to), `layer_names`,
`checkpoint_sha256`, `architecture`, `latent_space`, `method`, and, when not every direction is a plain
SeFa one, `scales` (what one unit of strength moves along each: GANSpace's standard deviations) and
`sources` (where each direction comes from, in words).
The labels file maps a name to a direction: {"age": {"index": 3, "sign": -1, "layers": [0, 1]}}
so that `--edit age=+2` means moving 2 units along -direction 3 on layers 0-1.

Published directions (`common/published_directions.py`: InterFaceGAN boundaries `.npy`, GANSpace
components `.npz`) are read by the same `load_directions`, with their own labels from the file names.
They are tied to no checkpoint (`checkpoint_sha256` empty) and act on every code entry (`layers` empty
until `for_code` is told how many entries the generator's codes have).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common import atomic
from common.errors import UserError
from common.json_files import BadJson, read_json
from common.published_directions import (
    NotPublishedDirections, PublishedDirections, is_ganspace_archive, read_ganspace_components, read_interfacegan_boundary,
)
from common.safe_arrays import BadArray, load_npz_member
from common.validate import require_label_name

LABELS_NAME = "labels.json"


@dataclass
class DirectionLabel:
    index: int
    sign: int = 1
    layers: list[int] | None = None  # None: the layers the directions were computed on


@dataclass
class DirectionsFile:
    directions: np.ndarray
    eigenvalues: np.ndarray
    all_eigenvalues: np.ndarray | None  # the whole spectrum: written by factorize, not read back by edit
    layers: list[int]
    layer_names: list[str]
    checkpoint_sha256: str
    architecture: str
    latent_space: str
    method: str = "sefa"
    labels: dict[str, DirectionLabel] = field(default_factory=dict)
    scales: np.ndarray | None = None  # [K]: strength unit of each direction; None: 1 (SeFa's unit vectors)
    sources: list[str] | None = None  # [K]: where each direction comes from; None: this file's method
    trained_for: str | None = None  # a published file's own name of its generator ("stylegan_ffhq")

    @property
    def published(self) -> bool:
        """Read from another method's file: not computed on any checkpoint sefa-edit knows."""
        return not self.checkpoint_sha256

    def vector(self, index: int) -> np.ndarray:
        """What an edit of strength 1 along direction `index` adds to a code entry."""
        scale = 1.0 if self.scales is None else float(self.scales[index])
        return self.directions[index] * scale

    def vectors(self) -> np.ndarray:
        """[K, dim]: every direction at strength 1 (previews and descriptions move along these)."""
        return self.directions if self.scales is None else self.directions * self.scales[:, None]

    def source_of(self, index: int) -> str:
        return self.sources[index] if self.sources else {"sefa": "SeFa"}.get(self.method, self.method)

    def for_code(self, num_ws: int) -> "DirectionsFile":
        """Published directions act on every entry of the code; a SeFa file keeps its layers."""
        if not self.layers:
            self.layers = list(range(num_ws))
        return self

    def save(self, path: Path) -> Path:
        extra = {}
        if self.scales is not None:
            extra["scales"] = np.asarray(self.scales, np.float64)
        if self.sources is not None:
            extra["sources"] = np.asarray(self.sources, dtype=np.str_)
        return atomic.save_npz(
            path,
            **extra,
            directions=self.directions.astype(np.float32),
            directions_float64=self.directions.astype(np.float64),
            eigenvalues=self.eigenvalues.astype(np.float64),
            all_eigenvalues=np.asarray(self.all_eigenvalues if self.all_eigenvalues is not None else self.eigenvalues, np.float64),
            layers=np.asarray(self.layers, dtype=np.int64),
            layer_names=np.asarray(self.layer_names, dtype=np.str_),
            checkpoint_sha256=np.asarray(self.checkpoint_sha256, dtype=np.str_),
            architecture=np.asarray(self.architecture, dtype=np.str_),
            latent_space=np.asarray(self.latent_space, dtype=np.str_),
            method=np.asarray(self.method, dtype=np.str_),
        )


def load_directions(path: Path) -> DirectionsFile:
    """Read what `edit` needs, member by member with each header checked (a damaged or hostile file
    costs nothing), and refuse directions that are not finite unit-scale vectors. An InterFaceGAN
    boundary (`.npy`) or GANSpace's components (`.npz` with `lat_comp`) are read as published."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such directions file; create one with `sefa-edit factorize`")
    if path.suffix.lower() == ".npy":
        try:
            return _from_published(read_interfacegan_boundary(path))
        except NotPublishedDirections as exc:
            raise UserError(f"{path}: {exc}") from None
    try:
        with zipfile.ZipFile(path) as archive:
            def member(name: str) -> np.ndarray:
                return load_npz_member(archive, name)

            names = {info.filename for info in archive.infolist()}
            if is_ganspace_archive(names):
                return _from_published(read_ganspace_components(path, archive))
            directions = member("directions_float64") if "directions_float64.npy" in names else member("directions")
            result = DirectionsFile(
                directions=np.asarray(directions, dtype=np.float64),
                eigenvalues=np.asarray(member("eigenvalues"), dtype=np.float64),
                all_eigenvalues=None,
                layers=[int(i) for i in member("layers").reshape(-1)],
                layer_names=[str(n) for n in member("layer_names").reshape(-1)],
                checkpoint_sha256=str(member("checkpoint_sha256")),
                architecture=str(member("architecture")),
                latent_space=str(member("latent_space")),
                method=str(member("method")),
                scales=np.asarray(member("scales"), np.float64).reshape(-1) if "scales.npy" in names else None,
                sources=[str(s) for s in member("sources").reshape(-1)] if "sources.npy" in names else None,
            )
    except NotPublishedDirections as exc:
        raise UserError(f"{path}: {exc}") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, BadArray) as exc:
        raise UserError(f"{path}: not a sefa-edit directions file ({exc}); regenerate it with `sefa-edit factorize`") from exc
    if result.directions.ndim != 2 or result.directions.shape[0] < 1:
        raise UserError(f"{path}: directions have shape {list(result.directions.shape)}, expected [K, latent size]; "
                        f"regenerate it with `sefa-edit factorize`")
    if not np.isfinite(result.directions).all():
        raise UserError(f"{path}: the directions hold NaN or infinite values; regenerate them with `sefa-edit factorize`")
    count = len(result.directions)
    if result.scales is not None and (result.scales.shape != (count,) or not np.isfinite(result.scales).all()
                                      or (result.scales <= 0).any()):
        raise UserError(f"{path}: its strength units (scales) are not {count} finite positive numbers; regenerate it")
    if result.sources is not None and len(result.sources) != count:
        raise UserError(f"{path}: it names the sources of {len(result.sources)} directions for {count}; regenerate it")
    labels_path = path.parent / LABELS_NAME
    if labels_path.exists():
        result.labels = load_labels(labels_path, num_directions=len(result.directions))
    return result


def check_directions_for(directions: DirectionsFile, directions_path: Path, checkpoint: Any, generator_path: Path,
                         force: bool = False) -> None:
    """Refuse, in one line, directions that cannot edit this generator's codes: computed for another
    checkpoint (SeFa's own files record which), in another latent space, or of another size."""
    if directions.published:
        if directions.latent_space != checkpoint.latent_space:
            space = "Z" if directions.latent_space == "Z" else "W"
            hint = ("use its W-space file (InterFaceGAN: ..._w_boundary.npy or the ..._w folder; GANSpace: a file "
                    "computed with use_w, ending in _w.npz)") if checkpoint.latent_space == "W+" else \
                "this generator's codes are z: use a Z-space file"
            raise UserError(f"{directions_path}: {directions.method} directions in {space} space cannot edit the "
                            f"{checkpoint.latent_space} codes of {generator_path}; {hint}")
    elif directions.checkpoint_sha256 != checkpoint.sha256 and not force:
        raise UserError(
            f"{directions_path}: directions were computed for another generator (sha256 {directions.checkpoint_sha256[:12]}..., "
            f"{generator_path} is {checkpoint.sha256[:12]}...); run factorize on this generator, or pass --force"
        )
    if directions.latent_space != checkpoint.latent_space:
        raise UserError(f"{directions_path}: {directions.latent_space}-space directions cannot edit the "
                        f"{checkpoint.latent_space} codes of {generator_path}; factorize this generator")
    if directions.directions.shape[1] != checkpoint.latent_dim:
        fix = "it was made for another generator" if directions.published else "factorize this generator"
        raise UserError(f"{directions_path}: directions are {directions.directions.shape[1]}-dimensional but {generator_path} "
                        f"has {checkpoint.latent_dim}-dimensional codes; {fix}")


def _from_published(published: PublishedDirections) -> DirectionsFile:
    """A published file as a directions file: no checkpoint, every code entry, labels from its name."""
    count, dim = published.vectors.shape
    return DirectionsFile(
        directions=published.vectors, eigenvalues=np.full(count, np.nan), all_eigenvalues=None, layers=[],
        layer_names=[], checkpoint_sha256="", architecture="", latent_space=published.latent_space,
        method=published.method, labels={name: DirectionLabel(index) for name, index in published.labels.items()},
        scales=published.scales, sources=published.sources, trained_for=published.trained_for)


def load_labels(path: Path, num_directions: int) -> dict[str, DirectionLabel]:
    """Read and validate a labels file; errors name the entry at fault."""
    try:
        raw = read_json(path)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the labels ({exc.strerror or exc}); pass a labels JSON file") from None
    except BadJson as exc:
        raise UserError(f"{path}: {exc}; expected {{\"age\": {{\"index\": 3, \"sign\": -1}}}}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a JSON object mapping names to directions")
    labels: dict[str, DirectionLabel] = {}
    for name, entry in raw.items():
        require_label_name(name, str(path))
        if _is_integer(entry):
            entry = {"index": entry}
        if not isinstance(entry, dict) or not _is_integer(entry.get("index")):
            raise UserError(f"{path}: label {name!r} needs an integer 'index'")
        index, sign = entry["index"], entry.get("sign", 1)
        if not 0 <= index < num_directions:
            raise UserError(f"{path}: label {name!r} index {index} is outside 0..{num_directions - 1}")
        if not _is_integer(sign) or sign not in (1, -1):
            raise UserError(f"{path}: label {name!r} sign must be 1 or -1, got {sign!r}")
        layers = entry.get("layers")
        if layers is not None and not (isinstance(layers, list) and all(_is_integer(i) and i >= 0 for i in layers)):
            raise UserError(f"{path}: label {name!r} 'layers' must be a list of layer indices (integers >= 0)")
        labels[str(name)] = DirectionLabel(index=index, sign=sign, layers=layers)
    return labels


def _is_integer(value: Any) -> bool:
    """JSON integers only: `true` is a bool in JSON, even though Python counts bool as int."""
    return isinstance(value, int) and not isinstance(value, bool)


def labels_to_json(labels: dict[str, DirectionLabel]) -> dict[str, Any]:
    return {
        name: {k: v for k, v in {"index": l.index, "sign": l.sign, "layers": l.layers}.items() if v is not None}
        for name, l in labels.items()
    }
