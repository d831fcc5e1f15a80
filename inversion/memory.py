"""Running a batch that may not fit: on a GPU's out-of-memory error, the batch is split in half and
each half retried, down to one crop; the smaller size is kept for the batches that follow, so a
run that started too large settles instead of failing. Inversion is per image (each crop's loss
and Adam state are its own), so a split batch gives the same codes as the whole one.
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


class OutOfMemory(RuntimeError):
    """Even one item does not fit on the device."""


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _free_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def crops_that_fit(free_bytes: int, fixed_bytes: int, bytes_per_crop: int, most: int = 64) -> int:
    """`--batch-size auto` on a GPU: the largest batch whose measured peak (the fixed part, the models'
    working memory, plus so much per crop) stays within three quarters of the memory free now, leaving
    room for fragmentation and whatever else shares the device; at least 1, at most `most` (beyond that a
    batch is no faster per crop and a failure costs more)."""
    usable = free_bytes * 3 // 4 - max(fixed_bytes, 0)
    return max(1, min(most, usable // max(bytes_per_crop, 1)))


class HalvingRunner:
    """Runs `work(items)` for lists of items, splitting a list in half whenever the device runs out of memory."""

    def __init__(self, work: Callable[[Sequence[T]], list[R]], say: Callable[[str], None] = lambda message: None) -> None:
        self.work = work
        self.say = say
        self.limit: int | None = None  # the largest size that has had to be split below, once one has

    def __call__(self, items: Sequence[T]) -> list[R]:
        if self.limit is not None and len(items) > self.limit:
            return [result for start in range(0, len(items), self.limit)
                    for result in self(items[start : start + self.limit])]
        try:
            return self.work(items)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled; everything else is re-raised
            if not is_out_of_memory(exc):
                raise
        _free_cached_memory()
        if len(items) == 1:
            raise OutOfMemory("out of memory with a single crop; use a smaller --size or a device with more memory")
        half = (len(items) + 1) // 2
        self.limit = half
        self.say(f"out of device memory with {len(items)} crops at once: going on with batches of {half}")
        return self(items[:half]) + self(items[half:])
