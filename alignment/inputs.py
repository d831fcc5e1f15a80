"""Which photos to align: one file, a folder tree, or a list on stdin (paths or JSON lines)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from common.photo_io import IMAGE_SUFFIXES


@dataclass(frozen=True)
class InputItem:
    path: Path
    relative: Path  # where its outputs go under OUT (keeps sub-folders apart)


def list_inputs(source: str, stdin: Iterator[str] | None = None) -> list[InputItem]:
    """Resolve INPUT: one image file, a folder (recursive, by suffix, case-insensitive), or `-`:
    stdin lines that are paths or JSON objects with a "path"/"source"/"aligned" key."""
    if source == "-":
        items = []
        for line in stdin if stdin is not None else sys.stdin:
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"stdin: not a JSON line ({exc.msg}): {line[:80]}") from None
                line = record.get("path") or record.get("source") or record.get("aligned") or ""
            if line:
                path = Path(line)
                items.append(InputItem(path, Path(path.name)))
        return items
    root = Path(source)
    if root.is_file():
        return [InputItem(root, Path(root.name))]
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        return [InputItem(p, p.relative_to(root)) for p in files if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    raise FileNotFoundError(source)
