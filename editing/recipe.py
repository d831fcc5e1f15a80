"""Recipes: an edit found interactively (`sefa-edit ui`), written down so a whole folder can get it.

A recipe is several moves applied together: w' = w + sum_i s_i n_i on each move's layers. It is a
JSON file that carries its own direction vectors, so it means the same thing on any machine and with
any directions file; the hashes say what it was made with, and a recipe is refused for a generator
other than its own (the same direction means something else in another generator's W):

    {"format": "sefa-edit-recipe", "version": 1, "name": "older-smile",
     "generator_sha256": "...", "directions_sha256": "...", "latent_space": "W+", "num_ws": 18,
     "moves": [{"direction": 3, "label": "age", "strength": 2.0, "layers": [4, 5], "vector": [...]}]}
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from common.errors import UserError
from common.json_files import BadJson, read_json

if TYPE_CHECKING:  # torch only where a recipe is applied: processes that write a recipe's images never load it
    import torch

RECIPE_FORMAT = "sefa-edit-recipe"
RECIPE_VERSION = 1
MAX_MOVES = 64
MAX_RECIPE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class RecipeMove:
    direction: int  # index in the directions it came from (for people; the vector is what is applied)
    strength: float
    layers: tuple[int, ...]
    vector: np.ndarray  # [w_dim], unit length, the sign already folded in
    label: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"direction": self.direction, "label": self.label, "strength": self.strength, "layers": list(self.layers),
                "vector": [round(float(v), 8) for v in self.vector]}


@dataclass(frozen=True)
class Recipe:
    name: str
    moves: tuple[RecipeMove, ...]
    generator_sha256: str
    directions_sha256: str
    latent_space: str
    num_ws: int

    def to_json(self) -> dict[str, Any]:
        return {"format": RECIPE_FORMAT, "version": RECIPE_VERSION, "name": self.name,
                "generator_sha256": self.generator_sha256, "directions_sha256": self.directions_sha256,
                "latent_space": self.latent_space, "num_ws": self.num_ws, "moves": [move.to_json() for move in self.moves]}

    def fingerprint(self) -> list:
        """What changes the result, for the edit stage's reruns."""
        return [[m.strength, list(m.layers), [round(float(v), 8) for v in m.vector]] for m in self.moves]

    def apply(self, ws: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """ws [N, num_ws, w_dim] moved by every move (scaled by `scale`)."""
        import torch

        from generators.latent_edit import move_along

        for move in self.moves:
            direction = torch.as_tensor(move.vector, dtype=torch.float32, device=ws.device)
            ws = move_along(ws, direction, move.layers, scale * move.strength)
        return ws


def slug(text: str) -> str:
    """A file-name-safe name: letters, digits, - and _."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    return cleaned[:60] or "recipe"


def _fail(source: str, what: str) -> UserError:
    return UserError(f"{source}: {what}; make the recipe again with `sefa-edit ui` (Download recipe)")


def recipe_from_json(raw: Any, source: str = "recipe") -> Recipe:
    """Check every field; errors name the recipe and what is wrong in one line."""
    if not isinstance(raw, dict) or raw.get("format") != RECIPE_FORMAT:
        raise _fail(source, f"not a sefa-edit recipe (expected \"format\": \"{RECIPE_FORMAT}\")")
    if raw.get("version") != RECIPE_VERSION:
        raise _fail(source, f"recipe version {raw.get('version')!r}, this sefa-edit reads version {RECIPE_VERSION}")
    for key in ("generator_sha256", "directions_sha256"):
        if not isinstance(raw.get(key), str) or not re.fullmatch(r"[0-9a-f]{64}", raw[key]):
            raise _fail(source, f"'{key}' should be a sha256 (64 hex digits)")
    num_ws = raw.get("num_ws")
    if not isinstance(num_ws, int) or isinstance(num_ws, bool) or not 1 <= num_ws <= 64:
        raise _fail(source, "'num_ws' should be the generator's number of W+ entries")
    moves_raw = raw.get("moves")
    if not isinstance(moves_raw, list) or not 1 <= len(moves_raw) <= MAX_MOVES:
        raise _fail(source, f"'moves' should be a list of 1 to {MAX_MOVES} moves")
    moves, dim = [], None
    for k, move in enumerate(moves_raw):
        where = f"move {k}"
        if not isinstance(move, dict):
            raise _fail(source, f"{where} is not an object")
        strength, layers, vector = move.get("strength"), move.get("layers"), move.get("vector")
        if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not math.isfinite(strength) or abs(strength) > 100:
            raise _fail(source, f"{where}: 'strength' should be a finite number within ±100")
        if (not isinstance(layers, list) or not layers
                or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < num_ws for i in layers)):
            raise _fail(source, f"{where}: 'layers' should be W+ entries between 0 and {num_ws - 1}")
        try:
            array = np.asarray(vector, dtype=np.float64)
        except (TypeError, ValueError):
            raise _fail(source, f"{where}: 'vector' is not a list of numbers") from None
        if array.ndim != 1 or not 1 <= array.size <= 4096 or not np.isfinite(array).all() or abs(np.linalg.norm(array) - 1) > 1e-3:
            raise _fail(source, f"{where}: 'vector' should be a unit-length list of numbers")
        if dim is not None and array.size != dim:
            raise _fail(source, f"{where}: its vector has {array.size} values, the others {dim}")
        dim = array.size
        direction = move.get("direction", -1)
        label = move.get("label")
        moves.append(RecipeMove(int(direction) if isinstance(direction, int) else -1, float(strength),
                                tuple(sorted(set(layers))), array.astype(np.float32), label if isinstance(label, str) else None))
    name = raw.get("name") if isinstance(raw.get("name"), str) and raw.get("name") else "recipe"
    return Recipe(slug(name), tuple(moves), raw["generator_sha256"], raw["directions_sha256"],
                  str(raw.get("latent_space", "W+")), num_ws)


def load_recipe(path: Path) -> Recipe:
    path = Path(path)
    try:
        raw = read_json(path, max_bytes=MAX_RECIPE_BYTES)
    except OSError as exc:
        raise UserError(f"{path}: cannot read the recipe ({exc.strerror or exc}); pass the recipe file the editor saved") from None
    except BadJson as exc:
        raise _fail(str(path), str(exc)) from None
    return recipe_from_json(raw, str(path))


def check_recipe_for(recipe: Recipe, source: str, generator_sha256: str, num_ws: int, w_dim: int, force: bool = False) -> None:
    """A recipe is moves in one generator's W: refuse it for another (unless `force`) or another shape."""
    if recipe.generator_sha256 != generator_sha256 and not force:
        raise UserError(f"{source}: the recipe was made with another generator (sha256 {recipe.generator_sha256[:12]}..., "
                        f"this one is {generator_sha256[:12]}...); use its generator, or pass --force")
    if recipe.num_ws != num_ws or recipe.moves[0].vector.size != w_dim:
        raise UserError(f"{source}: the recipe moves [{recipe.num_ws}, {recipe.moves[0].vector.size}] codes, this generator "
                        f"has [{num_ws}, {w_dim}]")
