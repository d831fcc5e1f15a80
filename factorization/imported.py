"""`factorize --from FILE ...`: directions of other methods (InterFaceGAN boundaries, GANSpace components,
or another sefa-edit directions file) gathered into one directions file for this generator.

Why: a published boundary edits like SeFa's directions with `edit -d`, but the page that shows what
directions do (previews, `--describe`, labels) is made by `factorize`. Imported, the boundaries of
several attributes become one file whose labels come from their names (`age`, `smile`), that the
editor's sliders and its "keep unchanged" choice can use together, and whose page says where each
direction comes from and how strongly this generator's layers respond to it (SeFa's objective
||A n||^2, beside SeFa's own eigenvalues).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from common.directions_file import DirectionLabel, DirectionsFile, check_directions_for, load_directions
from common.errors import UserError
from factorization.ganspace import sefa_objective


def imported_directions(checkpoint, checkpoint_path: Path, paths: Sequence[Path], layers: list[int], layer_names: list[str],
                        stacked_rows: np.ndarray, sefa_spectrum: np.ndarray, per_file: int) -> tuple[DirectionsFile, list[str]]:
    """One directions file of every imported direction (at most `per_file` of each multi-direction file:
    GANSpace's components come by variance, SeFa's by eigenvalue), and notes to say (the generator each
    published file was made for, which sefa-edit cannot check)."""
    vectors, scales, sources, methods, notes = [], [], [], [], []
    labels: dict[str, DirectionLabel] = {}
    owners: dict[str, Path] = {}
    for path in paths:
        found = load_directions(Path(path))
        check_directions_for(found, Path(path), checkpoint, checkpoint_path)
        take = min(len(found.directions), per_file)
        offset = len(vectors)
        for index in range(take):
            vectors.append(found.directions[index])
            scales.append(1.0 if found.scales is None else float(found.scales[index]))
            sources.append(found.source_of(index) if found.published or found.sources else f"{found.source_of(index)} "
                           f"direction {index} of {Path(path).name}")
        for name, label in found.labels.items():
            if label.index >= take:
                continue
            if name in labels:
                raise UserError(f"--from {path}: the label {name!r} is also given by {owners[name]}; import one of them, "
                                f"or rename a file")
            labels[name], owners[name] = DirectionLabel(label.index + offset, label.sign, label.layers), Path(path)
        methods.append(found.method)
        if found.published and found.trained_for:
            notes.append(f"note: {Path(path).name} was published for {found.trained_for}; nothing in the file lets "
                         f"sefa-edit check that {Path(checkpoint_path).name} is that generator")
    directions = np.stack(vectors)
    method = methods[0] if len(set(methods)) == 1 else "mixed"
    return DirectionsFile(
        directions=directions, eigenvalues=sefa_objective(stacked_rows, directions), all_eigenvalues=sefa_spectrum,
        layers=layers, layer_names=layer_names, checkpoint_sha256=checkpoint.sha256, architecture=checkpoint.architecture,
        latent_space=checkpoint.latent_space, method=method, labels=labels, scales=np.asarray(scales), sources=sources,
    ), notes
