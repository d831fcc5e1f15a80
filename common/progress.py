"""Progress for long loops, on stderr so stdout stays clean JSON.

On a terminal: a rich progress bar. Anywhere else (a log file, CI, `nohup`): a status line every
`STATUS_SECONDS` (environment `SEFA_EDIT_STATUS_SECONDS`, default 5), such as
    [inverting] 12/40 images (30%), 0.80/s, ETA 35 s
and one closing line, so that a 30-minute batch in a log is never silent. Loops shorter than the
interval print nothing.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterable, Iterator, TextIO, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

T = TypeVar("T")
DEFAULT_STATUS_SECONDS = 5.0
Listener = Callable[[str, int, "int | None"], None]
_listener: ContextVar[Listener | None] = ContextVar("sefa_edit_progress_listener", default=None)


@contextmanager
def listen(callback: Listener) -> Iterator[None]:
    """Within this block, every `track` item and every `report_progress` call goes to `callback(description,
    done, total)` too: how a caller that is not a terminal (the web UI's progress bar) follows a stage."""
    token = _listener.set(callback)
    try:
        yield
    finally:
        _listener.reset(token)


def report_progress(description: str, done: int, total: int | None) -> None:
    """Progress inside one item (an inversion's steps), for a listener if there is one."""
    callback = _listener.get()
    if callback is not None:
        callback(description, done, total)


def status_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("SEFA_EDIT_STATUS_SECONDS", DEFAULT_STATUS_SECONDS)))
    except ValueError:
        return DEFAULT_STATUS_SECONDS


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def status_line(description: str, done: int, total: int | None, elapsed: float, unit: str) -> str:
    """`[stage] done/total unit (pct), rate/s, ETA t` (parts without a total are left out)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    count = f"{done}/{total} {unit}" if total else f"{done} {unit}"
    parts = [f"[{description}] {count}" + (f" ({100 * done / total:.0f}%)" if total else "")]
    parts.append(f"{rate:.2f}/s" if rate < 10 else f"{rate:.0f}/s")
    if total and rate > 0 and done < total:
        parts.append(f"ETA {_duration((total - done) / rate)}")
    elif total and done >= total:
        parts.append(f"done in {_duration(elapsed)}")
    return ", ".join(parts)


def track(items: Iterable[T], description: str, total: int | None = None,
          weight: Callable[[T], int] = lambda item: 1, unit: str = "items") -> Iterator[T]:
    """Yield `items`, showing progress on stderr. `weight` is how many units an item counts for:
    batches of images advance the count by their images."""
    if total is None and hasattr(items, "__len__"):
        total = sum(weight(item) for item in items)  # type: ignore[union-attr]
    if _listener.get() is not None:
        items = _reporting(items, description, total, weight)
    if sys.stderr.isatty():
        yield from _bar(items, description, total, weight)
    else:
        yield from _status_lines(items, description, total, weight, unit, sys.stderr, status_seconds())


def _reporting(items: Iterable[T], description: str, total: int | None, weight: Callable[[T], int]) -> Iterator[T]:
    done = 0
    report_progress(description, 0, total)
    for item in items:
        yield item
        done += weight(item)
        report_progress(description, done, total)


def _bar(items: Iterable[T], description: str, total: int | None, weight: Callable[[T], int]) -> Iterator[T]:
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task, weight(item))


def _status_lines(items: Iterable[T], description: str, total: int | None, weight: Callable[[T], int], unit: str,
                  stream: TextIO, interval: float, clock: Callable[[], float] = time.monotonic) -> Iterator[T]:
    start = last = clock()
    done, spoken = 0, None  # spoken: the count of the latest line, None before the first
    for item in items:
        yield item
        done += weight(item)
        now = clock()
        if now - last >= interval:
            print(status_line(description, done, total, now - start, unit), file=stream, flush=True)
            last, spoken = now, done
    if spoken is not None and spoken != done and (total is None or done >= total):
        print(status_line(description, done, total if total else None, clock() - start, unit), file=stream, flush=True)
