"""One list of what a stage could not do: a line on stderr and a record in `OUT/failures.jsonl`.

Each run of a stage starts the file anew, so it lists what failed in the latest run (a file that was
fixed and then succeeded is no longer listed). Every stage uses this one writer, so the file has the
same fields everywhere: the item's absolute path (under the stage's key: `source`, `aligned` or
`code`), `error` (a short kind), `reason` (plain words) and `time`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from common import atomic
from common.regular_files import absolute

FAILURES_NAME = "failures.jsonl"


class FailureLog:
    def __init__(self, out_dir: Path, say: Callable[[str], None], key: str = "input") -> None:
        self.path = Path(out_dir) / FAILURES_NAME
        self.say = say
        self.key = key
        self.path.unlink(missing_ok=True)

    def add(self, item: Path | str, error: str, reason: str) -> None:
        """Report one skipped item (stages count their own failures by kind in their summaries)."""
        self.say(f"{item}: {reason}; skipped")
        full_path = str(absolute(item))  # the log means the same from any working directory
        atomic.append_jsonl(self.path, {self.key: full_path, "error": error, "reason": reason, "time": time.time()})
