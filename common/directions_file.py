"""The directions file (`.npz`) and its labels (`labels.json`): what `factorize` writes and `edit` reads.

Kept in shared I/O because two stages exchange it. The `.npz` holds:
`directions` [K, dim] (unit rows), `eigenvalues` [K], `all_eigenvalues` [dim], `layers` (the W+ or
layer indices the directions were computed on, and by default are applied to), `layer_names`,
`checkpoint_sha256`, `architecture`, `latent_space`, `method`.
The labels file maps a name to a direction: {"age": {"index": 3, "sign": -1, "layers": [0, 1]}}
so that `--edit age=+2` means moving 2 units along -direction 3 on layers 0-1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common import atomic
from common.errors import UserError

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
    all_eigenvalues: np.ndarray
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
            all_eigenvalues=self.all_eigenvalues.astype(np.float64),
            layers=np.asarray(self.layers, dtype=np.int64),
            layer_names=np.asarray(self.layer_names, dtype=np.str_),
            checkpoint_sha256=np.asarray(self.checkpoint_sha256, dtype=np.str_),
            architecture=np.asarray(self.architecture, dtype=np.str_),
            latent_space=np.asarray(self.latent_space, dtype=np.str_),
            method=np.asarray(self.method, dtype=np.str_),
        )


def load_directions(path: Path) -> DirectionsFile:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such directions file; create one with `sefa-edit factorize`")
    try:
        with np.load(path, allow_pickle=False) as data:
            directions = data["directions_float64"] if "directions_float64" in data else data["directions"]
            result = DirectionsFile(
                directions=np.asarray(directions, dtype=np.float64),
                eigenvalues=np.asarray(data["eigenvalues"]),
                all_eigenvalues=np.asarray(data["all_eigenvalues"]),
                layers=[int(i) for i in data["layers"]],
                layer_names=[str(n) for n in data["layer_names"]],
                checkpoint_sha256=str(data["checkpoint_sha256"]),
                architecture=str(data["architecture"]),
                latent_space=str(data["latent_space"]),
                method=str(data["method"]),
            )
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{path}: not a sefa-edit directions file ({exc}); regenerate it with `sefa-edit factorize`") from exc
    labels_path = path.parent / LABELS_NAME
    if labels_path.exists():
        result.labels = load_labels(labels_path, num_directions=len(result.directions))
    return result


def load_labels(path: Path, num_directions: int) -> dict[str, DirectionLabel]:
    """Read and validate a labels file; errors name the entry at fault."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); expected {{\"age\": {{\"index\": 3, \"sign\": -1}}}}") from exc
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a JSON object mapping names to directions")
    labels: dict[str, DirectionLabel] = {}
    for name, entry in raw.items():
        if isinstance(entry, int):
            entry = {"index": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("index"), int):
            raise UserError(f"{path}: label {name!r} needs an integer 'index'")
        index, sign = entry["index"], entry.get("sign", 1)
        if not 0 <= index < num_directions:
            raise UserError(f"{path}: label {name!r} index {index} is outside 0..{num_directions - 1}")
        if sign not in (1, -1):
            raise UserError(f"{path}: label {name!r} sign must be 1 or -1, got {sign!r}")
        layers = entry.get("layers")
        if layers is not None and not (isinstance(layers, list) and all(isinstance(i, int) for i in layers)):
            raise UserError(f"{path}: label {name!r} 'layers' must be a list of integers")
        labels[str(name)] = DirectionLabel(index=index, sign=sign, layers=layers)
    return labels


def labels_to_json(labels: dict[str, DirectionLabel]) -> dict[str, Any]:
    return {
        name: {k: v for k, v in {"index": l.index, "sign": l.sign, "layers": l.layers}.items() if v is not None}
        for name, l in labels.items()
    }
