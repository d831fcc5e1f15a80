"""Reading the previous stage's output from stdin: JSON lines (or bare paths), so stages chain in pipes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable, Iterator

from common.errors import UserError


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
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"stdin: not a JSON line ({exc.msg}): {line[:80]}") from None
        path = next((record[key] for key in keys if record.get(key)), None)
        if path is None:
            raise UserError(f"stdin: JSON line without any of {', '.join(repr(k) for k in keys)}: {line[:80]}")
        yield Path(path), record
