"""The directions file (`.npz`) and its labels (`labels.json`): what `factorize` writes and `edit` reads.

Kept in shared I/O because two stages exchange it. The `.npz` holds:
`directions` [K, dim] (unit rows), `eigenvalues` [K], `all_eigenvalues` [dim], `layers` (the W+ or
layer indices the directions were computed on, and by default are applied to), `layer_names`,
`checkpoint_sha256`, `architecture`, `latent_space`, `method`.
The labels file maps a name to a direction: {"age": {"index": 3, "sign": -1, "layers": [0, 1]}}
so that `--edit age=+2` means moving 2 units along -direction 3 on layers 0-1.
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

    def save(self, path: Path) -> Path:
        return atomic.save_npz(
            path,
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
    costs nothing), and refuse directions that are not finite unit-scale vectors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such directions file; create one with `sefa-edit factorize`")
    try:
        with zipfile.ZipFile(path) as archive:
            def member(name: str) -> np.ndarray:
                return load_npz_member(archive, name)

            names = {info.filename for info in archive.infolist()}
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
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, BadArray) as exc:
        raise UserError(f"{path}: not a sefa-edit directions file ({exc}); regenerate it with `sefa-edit factorize`") from exc
    if result.directions.ndim != 2 or result.directions.shape[0] < 1:
        raise UserError(f"{path}: directions have shape {list(result.directions.shape)}, expected [K, latent size]; "
                        f"regenerate it with `sefa-edit factorize`")
    if not np.isfinite(result.directions).all():
        raise UserError(f"{path}: the directions hold NaN or infinite values; regenerate them with `sefa-edit factorize`")
    labels_path = path.parent / LABELS_NAME
    if labels_path.exists():
        result.labels = load_labels(labels_path, num_directions=len(result.directions))
    return result


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
