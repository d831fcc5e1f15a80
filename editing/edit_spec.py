"""`--edit` values: which direction, which sign, which strengths.

    0=-3:3:7      direction 0, seven strengths from -3 to 3
    age=+2        the labelled direction "age" (labels.json), strength +2
    1=-2,0,2      direction 1 at -2, 0 and 2
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.directions_file import DirectionLabel, DirectionsFile
from common.errors import UserError
from editing.recipe import Recipe


@dataclass(frozen=True)
class EditSpec:
    name: str  # as the user wrote it: "0" or "age"
    index: int
    sign: int
    strengths: tuple[float, ...]
    layers: tuple[int, ...] | None  # None: the directions' own layers
    recipe: Recipe | None = None  # a recipe's combined moves instead of one direction (index -1)

    @property
    def slug(self) -> str:
        return self.name if not self.name.isdigit() else f"dir{int(self.name):02d}"


MAX_STRENGTHS = 1000


def parse_strengths(text: str, context: str) -> tuple[float, ...]:
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 1:
                raise ValueError
            values = np.linspace(start, stop, min(count, MAX_STRENGTHS + 1))
        else:
            values = [float(part) for part in text.split(",") if part.strip()]
            if not values:
                raise ValueError
    except ValueError:
        raise UserError(f"--edit {context!r}: strengths must be a number (+2), a list (-2,0,2) or a range start:stop:count (-3:3:7)") from None
    if len(values) > MAX_STRENGTHS:
        raise UserError(f"--edit {context!r}: too many strengths (at most {MAX_STRENGTHS})")
    if not all(math.isfinite(float(v)) for v in values):
        raise UserError(f"--edit {context!r}: strengths must be finite numbers (not nan or inf)")
    return tuple(dict.fromkeys(round(float(v), 6) + 0.0 for v in values))  # + 0.0 turns -0.0 into 0.0


def strength_text(value: float) -> str:
    """File-name form of a strength: `+2p00`, `-0p50`; values finer than 1/100 keep every digit
    (`+0p001`, `+0p004`), so distinct strengths never share a file."""
    two = f"{value:+.2f}"
    text = two if float(two) == value else np.format_float_positional(value, precision=6, trim="-", sign=True)
    return text.replace(".", "p")


def parse_edit(text: str, directions: DirectionsFile) -> EditSpec:
    """An `--edit` against a directions file (its count and its labels)."""
    return parse_edit_for(text, len(directions.directions), directions.labels)


def parse_edit_for(text: str, num_directions: int, labels: dict[str, DirectionLabel],
                   no_labels_hint: str = "add a labels.json beside the directions") -> EditSpec:
    """An `--edit` against what the directions will be: `run` checks its edits with this before the
    directions exist, `edit` through `parse_edit` once they do."""
    if "=" not in text:
        raise UserError(f"--edit {text!r}: expected DIRECTION=STRENGTHS, e.g. 0=-3:3:7 or age=+2")
    name, strengths_text = (part.strip() for part in text.split("=", 1))
    strengths = parse_strengths(strengths_text, text)
    if name.isdigit():
        index = int(name)
        if index >= num_directions:
            raise UserError(f"--edit {text!r}: direction {index} does not exist (there are {num_directions}: "
                            f"0..{num_directions - 1})")
        return EditSpec(name, index, 1, strengths, None)
    label = labels.get(name)
    if label is None:
        known = ", ".join(sorted(labels)) or f"none: {no_labels_hint}"
        raise UserError(f"--edit {text!r}: no direction labelled {name!r} (labels: {known})")
    return EditSpec(name, label.index, label.sign, strengths, tuple(label.layers) if label.layers else None)
