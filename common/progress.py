"""Progress bars for long loops: shown on a terminal (stderr), silent in pipes and CI logs."""

from __future__ import annotations

import sys
from typing import Callable, Iterable, Iterator, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.console import Console

T = TypeVar("T")


def track(items: Iterable[T], description: str, total: int | None = None,
          weight: Callable[[T], int] = lambda item: 1) -> Iterator[T]:
    """Yield `items`, drawing a bar on stderr only when stderr is a terminal, so stdout stays clean JSON.

    `weight` is how many units an item counts for: batches of images advance the bar by their images."""
    if not sys.stderr.isatty():
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = sum(weight(item) for item in items)  # type: ignore[union-attr]
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task, weight(item))
