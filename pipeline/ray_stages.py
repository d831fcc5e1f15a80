"""`run --ray`: alignment, image writing and paste-back as Ray tasks, beside the inversion actors, so a
cluster's CPUs align and paste while its GPUs invert.

`RayPool` offers what `common/process_pool.OrderedPool` offers (the stages cannot tell them apart):
`queue(function)` and `map(function, jobs)`, results in the order the jobs were put. Each job is one
Ray task (one CPU); the window of tasks in flight is twice the CPUs the inversion actors leave free.

Faults: Ray's own silent task retries are off. A task whose worker process dies (killed, out of
memory, its node lost) is resubmitted here, with one line on stderr naming the task and the photo or
face it was working on, up to `MAX_TASK_ATTEMPTS` times; after that the item is reported as failed
(`WorkerDied`) and the run goes on. A rerun redoes exactly what is missing, as everywhere else.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Callable

from common.process_pool import OrderedPool, WorkerDied
from inversion.ray_pool import RaySettings, connect, worker_count

MAX_TASK_ATTEMPTS = 3
TASK_WORDS = {"align_photo": "an alignment", "write_face_outputs": "an image-writing", "paste_group": "a paste-back"}


class RayPool(OrderedPool):
    def __init__(self, settings: RaySettings, say: Callable[[str], None]) -> None:
        """Tasks take the CPUs the inversion actors leave (each actor holds one for its lifetime). When the
        actors hold them all (`--workers` as many as the CPUs), the tasks run beside them without
        reserving a CPU, two at a time, rather than wait for CPUs that never come free."""
        settings.validate()
        self.ray = connect(settings)
        self.say = say
        free = int(self.ray.cluster_resources().get("CPU", 1)) - worker_count(self.ray, settings)
        self.task_cpus = 1 if free >= 1 else 0
        if not self.task_cpus:
            say("ray: the inversion workers hold every CPU of the cluster; alignment and paste-back run beside them "
                "without a CPU of their own (fewer --workers leaves CPUs for them)")
        super().__init__(max(1, free))
        self._remotes: dict[Callable, Any] = {}

    @property
    def inline(self) -> bool:
        return False  # always Ray tasks, however few CPUs they may use at once

    def submit(self, function: Callable[..., Any], job: tuple) -> Future:
        """A Future of `function(*job)` run as a Ray task, retried (and said) when its worker dies."""
        remote = self._remotes.get(function)
        if remote is None:
            remote = self._remotes[function] = self.ray.remote(num_cpus=self.task_cpus, max_retries=0)(function)
        result: Future = Future()
        self._launch(remote, function, job, result, 1)
        return result

    def _launch(self, remote, function: Callable, job: tuple, result: Future, attempt: int) -> None:
        ref = remote.remote(*job)
        crashes = (self.ray.exceptions.WorkerCrashedError, self.ray.exceptions.ObjectLostError,
                   self.ray.exceptions.NodeDiedError)

        def finished(done: Future) -> None:
            try:
                result.set_result(done.result())
            except crashes as exc:
                what = f"{TASK_WORDS.get(function.__name__, 'a')} task ({_subject(job)})"
                if attempt < MAX_TASK_ATTEMPTS:
                    self.say(f"ray: {what} lost its worker ({_gist(exc)}); retrying it "
                             f"(attempt {attempt + 1} of {MAX_TASK_ATTEMPTS})")
                    self._launch(remote, function, job, result, attempt + 1)
                else:
                    result.set_result(WorkerDied(f"its Ray worker died {attempt} times ({_gist(exc)})"))
            except BaseException as exc:  # the function's own exception, raised where the stage expects it
                result.set_exception(exc)

        ref.future().add_done_callback(finished)

    def restart(self) -> None:
        """Nothing to restart: a dead Ray worker costs only its task, retried in `submit`."""

    def close(self, abandon: bool = False) -> None:
        self._remotes.clear()


def _subject(job: tuple) -> str:
    """The photo or face a task works on, for the retry line."""
    first = job[0] if job else None
    for attribute in ("item", "code", "source"):
        value = getattr(first, attribute, None)
        value = getattr(value, "path", value)
        if value is not None:
            return str(value)
    return type(first).__name__


def _gist(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] + ("..." if len(text) > 160 else "")
