"""Work spread over local processes, results handed back in input order: what `align --workers`, the
edit stage's image writing and paste-back use to keep every core busy.

Why processes and not threads: dlib's detector, the FFHQ crop's warps and blurs, PNG/JPEG encoding and
the face descriptor hold the GIL for much of their time. Why input order: the stages record their
outcomes (JSON lines, `failures.jsonl`, summaries) exactly as a one-process run does, so `--workers 4`
and `--workers 1` write the same files in the same order.

Workers are started with `spawn` (never `fork`: the parent may hold PyTorch's thread pools, which do
not survive a fork) and each is sized to one thread of OpenCV, OpenMP and BLAS, so N workers use N
cores and no more. At most `2 x workers` items are in flight, so a folder of thousands of photos never
sits in memory at once.

A worker that dies (a segfault in a native library on one crafted photo, the OOM killer) breaks the
whole pool in `concurrent.futures`; the items that were in flight are then redone one at a time in a
fresh pool, so the one that kills its process alone is reported (as a `WorkerDied` result for that
item) and the others finish. Nothing is fatal and nothing hangs.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
PR_SET_PDEATHSIG = 1  # prctl(2)
DEATH_WORDS = "its worker process ended without an answer (a crash in native code, or killed)"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


class WorkerDied(Exception):
    """The process working on this item ended without an answer (killed, or a crash in native code)."""


def usable_cores() -> int:
    """The cores this process may run on (a container's or `taskset`'s limit, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """--workers: None means every usable core."""
    from common.errors import UserError

    if workers is None:
        return usable_cores()
    if workers < 1:
        raise UserError(f"--workers {workers}: must be 1 or more")
    return workers


def start_worker(parent: int) -> None:
    """Worker initializer. One thread for every numeric library (set before they are imported). Ctrl-C is
    the driver's to handle (it stops the workers): a worker ignores it rather than print a traceback. And a
    worker ends with its driver, even a killed one (Linux's parent-death signal): an orphan would keep the
    driver's stderr open and its memory in use."""
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (AttributeError, OSError):  # not Linux: the driver's shutdown still ends its workers
        pass
    if os.getppid() != parent:  # the driver died before the signal was armed
        os._exit(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


class Ready:
    """A job whose result is already known (an item done before, or refused while planning): passed
    through `OrderedPool.map` in its place in the order, without a trip to a worker."""

    def __init__(self, value: Any) -> None:
        self.value = value


class OrderedPool:
    """Worker processes kept for a whole stage (starting one costs about a second: Python, OpenCV, dlib).
    `workers` 1 works in this process. Jobs go through an `OrderedQueue` (results in the order the jobs
    were put), or `map` for a whole list."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    @property
    def inline(self) -> bool:
        """Whether jobs run here, in the caller's process (one worker: no process is worth starting)."""
        return self.workers <= 1

    def queue(self, function: Callable[..., Any]) -> "OrderedQueue":
        return OrderedQueue(self, function)

    def map(self, function: Callable[..., T], jobs: Iterable[tuple | Ready], ahead: int | None = None
            ) -> Iterator[T | WorkerDied]:
        """`function(*job)` for each job, yielded in input order; the jobs are drawn lazily, at most
        `ahead` (default 2 x workers) ahead of the caller. Exceptions raised by `function` are re-raised
        here as they are (the stages catch what they expect); a job whose process died yields a
        `WorkerDied` instead."""
        queue = self.queue(function)
        for job in jobs:
            queue.put(job)
            if len(queue) >= (ahead or 2 * self.workers):
                yield from (result for _, result in queue.take(block=True, most=1))
        yield from (result for _, result in queue.take(block=True))

    def submit(self, function: Callable[..., Any], job: tuple) -> Future:
        return self._executor().submit(function, *job)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = _new_pool(self.workers)
        return self._pool

    def restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def close(self, abandon: bool = False) -> None:
        """Let the workers finish and end them; `abandon` (the driver is stopping on an error or Ctrl-C):
        end them now, whatever they are doing (their half-written outputs are temporaries, never kept)."""
        if self._pool is not None:
            if abandon:
                for process in list(getattr(self._pool, "_processes", {}).values()):
                    process.terminate()
            self._pool.shutdown(wait=not abandon, cancel_futures=True)
        self._pool = None

    def __enter__(self) -> "OrderedPool":
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        self.close(abandon=exc_type is not None)


class OrderedQueue:
    """Jobs put one at a time (each with a tag the caller gets back), results taken in the order the
    jobs were put, as soon as they are ready or waiting for them: how a stage keeps rendering or
    inverting while its workers write, and still records outcomes in order."""

    def __init__(self, pool: OrderedPool, function: Callable[..., Any]) -> None:
        self.pool, self.function = pool, function
        self.pending: deque[tuple[Any, tuple | Ready, Future]] = deque()

    def __len__(self) -> int:
        return len(self.pending)

    def put(self, job: tuple | Ready, tag: Any = None) -> None:
        """Queue `function(*job)`; with one worker it runs here and now (its exceptions raised here)."""
        done: Future = Future()
        if isinstance(job, Ready):
            done.set_result(job.value)
        elif self.pool.inline:
            done.set_result(self.function(*job))
        else:
            try:
                done = self.pool.submit(self.function, job)
            except BrokenProcessPool as exc:  # a worker died since the last job was put: found out by `take`
                done.set_exception(exc)
        self.pending.append((tag, job, done))

    def take(self, block: bool = True, most: int | None = None) -> Iterator[tuple[Any, Any]]:
        """(tag, result) of the jobs at the head of the queue, in order: while they are finished, or
        (`block`) waiting for each; at most `most` of them. A job whose process died gives WorkerDied."""
        taken = 0
        while self.pending and (most is None or taken < most):
            tag, job, future = self.pending[0]
            if not block and not future.done():
                return
            try:
                result = future.result()
            except BrokenProcessPool:
                yield from self._redo_one_by_one()
                taken += 1
                continue
            self.pending.popleft()
            taken += 1
            yield tag, result

    def _redo_one_by_one(self) -> Iterator[tuple[Any, Any]]:
        """The pool broke: every job still queued is redone alone in a fresh pool, so the one that kills
        its process by itself is found (WorkerDied) and the others finish."""
        redo = list(self.pending)
        self.pending.clear()
        self.pool.restart()
        for tag, job, future in redo:
            if isinstance(job, Ready) or (future.done() and not _broken(future)):
                yield tag, future.result()
                continue
            try:
                yield tag, self.pool.submit(self.function, job).result()
            except BrokenProcessPool:
                self.pool.restart()
                yield tag, WorkerDied(DEATH_WORDS)


def _broken(future: Future) -> bool:
    return future.exception() is not None and isinstance(future.exception(), BrokenProcessPool)


def ordered_map(function: Callable[..., T], jobs: Iterable[tuple | Ready], workers: int) -> Iterator[T | WorkerDied]:
    """`OrderedPool(workers).map(function, jobs)` with the pool closed when the iteration ends."""
    with OrderedPool(workers) as pool:
        yield from pool.map(function, jobs)


def _new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=start_worker, initargs=(os.getpid(),))
