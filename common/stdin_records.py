"""Reading the previous stage's output from stdin: JSON lines (or bare paths), so stages chain in pipes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from common.errors import UserError
from common.json_files import BadJson, parse_json_text
from common.naming import unique_stems

T = TypeVar("T")


def stdin_records(keys: tuple[str, ...], stdin: Iterable[str] | None = None) -> Iterator[tuple[Path, dict]]:
    """Yield (path, record) per non-empty line: a JSON object whose first present key in `keys` is the
    path, or a bare path (record {}). A malformed line is a UserError naming it."""
    for line in stdin if stdin is not None else sys.stdin:
        line = line.strip()
        if not line:
            continue
        if not line.startswith("{"):
            yield Path(line), {}
            continue
        try:
            record = parse_json_text(line)
        except BadJson as exc:
            raise UserError(f"stdin: {exc}: {line[:80]}") from None
        if not isinstance(record, dict):
            raise UserError(f"stdin: a JSON line that is not an object: {line[:80]}")
        path = next((record[key] for key in keys if record.get(key)), None)
        if not isinstance(path, str):
            raise UserError(f"stdin: JSON line without a path under any of {', '.join(repr(k) for k in keys)}: {line[:80]}")
        yield Path(path), record


def distinct_stdin_inputs(keys: tuple[str, ...], extra: Callable[[Path, dict], T],
                          stdin: Iterable[str] | None = None) -> list[tuple[Path, str, T]]:
    """(resolved path, output name, extra(path, record)) per distinct file named on stdin: the same file
    twice is one input, and files that share a name (two `face.png` from different folders) get
    different output names."""
    found: dict[Path, T] = {}
    for path, record in stdin_records(keys, stdin):
        found.setdefault(path.resolve(), extra(path, record))
    names = unique_stems([path.name for path in found])
    return [(path, name, value) for (path, value), name in zip(found.items(), names)]
