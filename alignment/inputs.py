"""Which photos to align: one file, a folder tree, or a list on stdin (paths or JSON lines)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from common.errors import UserError
from common.photo_io import find_images
from common.regular_files import problem_with
from common.stdin_records import stdin_records


@dataclass(frozen=True)
class InputItem:
    path: Path
    relative: Path  # where its outputs go under OUT (keeps sub-folders apart)


def list_inputs(source: str, stdin: Iterable[str] | None = None, exclude: Path | None = None) -> list[InputItem]:
    """Resolve INPUT: one image file, a folder (recursive, by suffix, case-insensitive; `exclude`, the
    OUT folder, left out), or `-`: stdin lines that are paths or JSON objects with a
    "path"/"source"/"aligned" key."""
    if source == "-":
        try:
            return [InputItem(path, Path(path.name)) for path, _ in stdin_records(("path", "source", "aligned"), stdin)]
        except UserError as exc:
            raise ValueError(str(exc)) from None
    root = Path(source)
    if root.is_dir():
        return [InputItem(p, p.relative_to(root)) for p in find_images(root, exclude=exclude)]
    problem = problem_with(root)
    if problem is not None:
        raise UserError(f"{source}: {problem}; pass a photo, a folder of photos, or - for stdin")
    return [InputItem(root, Path(root.name))]
