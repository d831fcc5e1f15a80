"""Progress for long loops, on stderr so stdout stays clean JSON.

On a terminal: a rich progress bar. Anywhere else (a log file, CI, `nohup`): a status line every
`STATUS_SECONDS` (environment `SEFA_EDIT_STATUS_SECONDS`, default 5), such as
    [inverting] 12/40 crops (30%), 0.80 crops/s, ETA 35 s
    [inverting] 0/36 crops (1%), optimising step 20/100, 7.5 s/crop, ETA 4 min 30 s
and one closing line, so that a 30-minute batch in a log is never silent. On CPU one crop can take
minutes, so the work inside an item (an inversion's optimisation steps, via `report_progress`) moves
the line too, and the first ETA comes after the first steps rather than after the first item. Loops
shorter than the interval print nothing.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterable, Iterator, TextIO, TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from common.interrupt import raise_if_interrupted

T = TypeVar("T")
DEFAULT_STATUS_SECONDS = 5.0
Listener = Callable[[str, int, "int | None"], None]
_listener: ContextVar[Listener | None] = ContextVar("sefa_edit_progress_listener", default=None)
_trackers = threading.local()  # .stack: the loops being tracked in this thread, innermost last


@contextmanager
def listen(callback: Listener) -> Iterator[None]:
    """Within this block, every `track` item and every `report_progress` call goes to `callback(description,
    done, total)` too: how a caller that is not a terminal (the web UI's progress bar) follows a stage."""
    token = _listener.set(callback)
    try:
        yield
    finally:
        _listener.reset(token)


def report_progress(description: str, done: int, total: int | None, units: int = 1) -> None:
    """Progress inside one item (an inversion's steps): for a listener if there is one, and for the
    innermost `track` loop of this thread, whose next item this work is; `units` is how many of that
    loop's units the work covers (the crops of a batch)."""
    raise_if_interrupted()
    callback = _listener.get()
    if callback is not None:
        callback(description, done, total)
    stack = getattr(_trackers, "stack", None)
    if stack:
        stack[-1].inner(description, done, total, units)


def status_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("SEFA_EDIT_STATUS_SECONDS", DEFAULT_STATUS_SECONDS)))
    except ValueError:
        return DEFAULT_STATUS_SECONDS


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _singular(unit: str) -> str:
    return unit[:-1] if unit.endswith("s") and len(unit) > 1 else unit


def rate_text(progress: float, elapsed: float, unit: str) -> str:
    """`2.5 crops/s` when at least one per second, else `7.5 s/crop`: "0.01/s" is unreadable."""
    if progress <= 0 or elapsed <= 0:
        return f"- s/{_singular(unit)}"
    rate = progress / elapsed
    if rate >= 1:
        return f"{rate:.1f} {unit}/s" if rate < 10 else f"{rate:.0f} {unit}/s"
    seconds = 1 / rate
    return f"{seconds:.1f} s/{_singular(unit)}" if seconds < 10 else f"{seconds:.0f} s/{_singular(unit)}"


def status_line(description: str, done: int, total: int | None, elapsed: float, unit: str,
                within: str | None = None, progress: float | None = None) -> str:
    """`[stage] done/total unit (pct), [within,] rate, ETA t` (parts without a total are left out).
    `progress` counts the finished part of the current item too (done + a fraction), for the rate and ETA."""
    progress = done if progress is None else progress
    count = f"{done}/{total} {unit}" if total else f"{done} {unit}"
    parts = [f"[{description}] {count}" + (f" ({100 * progress / total:.0f}%)" if total else "")]
    if within:
        parts.append(within)
    parts.append(rate_text(progress, elapsed, unit))
    if total and progress > 0 and done < total:
        parts.append(f"ETA {format_duration((total - progress) * elapsed / progress)}")
    elif total and done >= total:
        parts.append(f"done in {format_duration(elapsed)}")
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
        tracker: _Tracker = _Bar(description, total, unit)
    else:
        tracker = _StatusLines(description, total, unit, sys.stderr, status_seconds())
    yield from _tracked(items, tracker, weight)


def _reporting(items: Iterable[T], description: str, total: int | None, weight: Callable[[T], int]) -> Iterator[T]:
    done = 0
    report_progress(description, 0, total)
    for item in items:
        yield item
        done += weight(item)
        report_progress(description, done, total)


def _tracked(items: Iterable[T], tracker: "_Tracker", weight: Callable[[T], int]) -> Iterator[T]:
    """Drive `tracker` over `items`. The tracker is on this thread's stack only while the next item is
    being produced (that is when an item's inner steps run), not while the caller holds the item."""
    stack = _trackers.__dict__.setdefault("stack", [])
    iterator = iter(items)
    with tracker:
        while True:
            raise_if_interrupted()
            stack.append(tracker)
            try:
                item = next(iterator)
            except StopIteration:
                break
            finally:
                stack.remove(tracker)
            tracker.advance(weight(item))
            yield item


class _Tracker:
    """Counts finished units and the current item's inner progress; subclasses show them."""

    def __init__(self, description: str, total: int | None, unit: str, clock: Callable[[], float] = time.monotonic):
        self.description, self.total, self.unit, self.clock = description, total, unit, clock
        self.start = clock()
        self.done = 0
        self.within: str | None = None  # "optimising step 20/100" while an item is in progress
        self.fraction = 0.0  # of `within_units` units of the current item, finished
        self.within_units = 1

    def __enter__(self) -> "_Tracker":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def progress(self) -> float:
        return self.done + self.fraction * self.within_units

    def advance(self, units: int) -> None:
        self.done += units
        self.within, self.fraction = None, 0.0
        self.show()

    def inner(self, description: str, done: int, total: int | None, units: int) -> None:
        if not total:
            return
        self.within, self.fraction, self.within_units = f"{description} step {done}/{total}", min(1.0, done / total), max(1, units)
        self.show()

    def show(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _StatusLines(_Tracker):
    """A status line at most every `interval` seconds, and a closing one if the last count went unsaid."""

    def __init__(self, description: str, total: int | None, unit: str, stream: TextIO, interval: float,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(description, total, unit, clock)
        self.stream, self.interval = stream, interval
        self.last = self.start
        self.spoken: int | None = None  # the count of the latest line, None before the first

    def show(self) -> None:
        now = self.clock()
        if now - self.last >= self.interval:
            self._print(now)

    def _print(self, now: float) -> None:
        print(status_line(self.description, self.done, self.total, now - self.start, self.unit, self.within, self.progress),
              file=self.stream, flush=True)
        self.last, self.spoken = now, self.done

    def close(self) -> None:
        finished = self.total is None or self.done >= self.total
        if self.spoken is not None and self.spoken != self.done and finished:
            self._print(self.clock())


class _Bar(_Tracker):
    """rich's bar on a terminal; the inner steps move it between items."""

    def __init__(self, description: str, total: int | None, unit: str):
        super().__init__(description, total, unit)
        columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"), TimeRemainingColumn())
        self.bar = Progress(*columns, console=Console(stderr=True), transient=True)
        self.bar.start()
        self.task = self.bar.add_task(description, total=total, count="")

    def show(self) -> None:
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        count += f" {self.unit}" + (f", {self.within}" if self.within else "")
        self.bar.update(self.task, completed=self.progress, count=count)

    def close(self) -> None:
        self.bar.stop()
