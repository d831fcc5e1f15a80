"""`invert --ray` / `run --ray`: the inversion's batches on Ray workers (the optional `ray` extra).

Each worker is a Ray actor holding one `InversionWorker` (generator, encoder and VGG loaded once), with
`gpus_per_worker` GPUs reserved for it (Ray sets CUDA_VISIBLE_DEVICES, so each actor sees its own).
The driver keeps everything else: the plan (which crops need work, by fingerprint), the OUT lock, the
failure list, `metrics.jsonl` and the counts, so a Ray run and a local run write the same files and a
rerun with or without Ray does only the missing work. Batches go to whichever actor is free.

A worker that dies (killed, out of host memory, its node lost) is replaced by a new actor and its
batch is redone there, with one line on stderr that names the worker and the crops redone; Ray's own
silent retries are off so that this is never hidden. A batch whose worker dies `MAX_BATCH_ATTEMPTS`
times stops the run in one line; crops whose files were written before are kept (a rerun skips them).

OUT must be on storage that every worker sees: the driver writes a marker with a random token under
OUT and every actor reads it back before it loads anything, or the run stops with a clear message.
`--ray auto` starts (or joins) a Ray instance on this machine; `--ray ray://HOST:10001` or
`--ray HOST:6379` joins a cluster whose workers have sefa-edit installed.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from common.errors import UserError
from inversion.optimize import InversionSettings
from inversion.worker import CropJob, InversionWorker, Outcome, SharedStorageError

MARKER_NAME = ".ray-storage-check"
MAX_BATCH_ATTEMPTS = 3  # a batch that kills three workers in a row is the batch's fault, not bad luck


@dataclass(frozen=True)
class RaySettings:
    address: str = "auto"  # auto: this machine's Ray (started if none runs); else a cluster address
    workers: int | None = None  # None: one per GPU of the cluster, or per 2 CPUs without GPUs
    gpus_per_worker: float = 0.0

    def validate(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UserError(f"--workers {self.workers}: must be 1 or more")
        if self.gpus_per_worker < 0:
            raise UserError(f"--gpus-per-worker {self.gpus_per_worker}: must be 0 or more")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install -e .[ray] (setup.sh installs it)") from None
    return ray


def connect(settings: RaySettings):
    ray = _import_ray()
    if not ray.is_initialized():
        try:
            if settings.address == "auto":
                ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=settings.address, ignore_reinit_error=True, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"--ray {settings.address}: cannot connect to Ray ({str(exc).splitlines()[0]})") from None
    return ray


def worker_count(ray, settings: RaySettings) -> int:
    if settings.workers is not None:
        return settings.workers
    resources = ray.cluster_resources()
    if settings.gpus_per_worker > 0:
        return max(1, int(resources.get("GPU", 0) // settings.gpus_per_worker))
    return max(1, int(resources.get("CPU", 1) // 2))


class RayInverters:
    """Inversion actors on Ray, fed batches as they come (`submit`) and handing back finished batches
    (`results`, in completion order). Dead workers are replaced and their batch redone, said in one line."""

    def __init__(self, out_dir: Path, generator_path: Path, encoder_path: Path | None, settings: InversionSettings,
                 vgg_file: Path | None, ray_settings: RaySettings, say: Callable[[str], None], tuning=None,
                 expected_batches: int | None = None) -> None:
        ray_settings.validate()
        self.ray = connect(ray_settings)
        self.say, self.ray_settings = say, ray_settings
        count = worker_count(self.ray, ray_settings)
        if expected_batches is not None:
            count = max(1, min(count, expected_batches))
        self.marker = Path(out_dir) / MARKER_NAME
        token = secrets.token_hex(16)
        self.marker.write_text(token)
        device = "cuda" if ray_settings.gpus_per_worker > 0 else "cpu"
        remote_worker = self.ray.remote(num_gpus=ray_settings.gpus_per_worker, num_cpus=1, max_restarts=0,
                                        max_task_retries=0)(InversionWorker)

        def new_actor():
            return remote_worker.remote(Path(out_dir).resolve(), Path(generator_path).resolve(),
                                        Path(encoder_path).resolve() if encoder_path is not None else None, settings, vgg_file,
                                        device, (self.marker.resolve(), token), tuning=tuning)

        self.new_actor = new_actor
        self.actors = {number: new_actor() for number in range(1, count + 1)}
        say(f"inverting on {count} Ray worker(s) ({ray_settings.address})")
        self.waiting: list[tuple[int, list[CropJob]]] = []  # (batch number, batch), in order
        self.attempts: dict[int, int] = {}
        self.running: dict = {}  # Ray object ref -> (worker number, batch number, batch)

    @property
    def busy(self) -> bool:
        return bool(self.waiting or self.running)

    def submit(self, batch: list[CropJob]) -> None:
        number = len(self.attempts)
        self.attempts[number] = 0
        self.waiting.append((number, batch))
        self._dispatch()

    def _dispatch(self) -> None:
        idle = [number for number in self.actors if number not in {job[0] for job in self.running.values()}]
        for worker in idle[: len(self.waiting)]:
            batch_number, batch = self.waiting.pop(0)
            self.attempts[batch_number] += 1
            self.running[self.actors[worker].invert_jobs.remote(batch)] = (worker, batch_number, batch)

    def results(self, block: bool = True) -> Iterator[list[Outcome]]:
        """Finished batches' outcomes; with `block`, until every submitted batch is back."""
        while self.running or self.waiting:
            self._dispatch()
            done, _ = self.ray.wait(list(self.running), num_returns=1, timeout=None if block else 0)
            if not done:
                return
            worker, batch_number, batch = self.running.pop(done[0])
            try:
                outcomes = self.ray.get(done[0])
            except self.ray.exceptions.RayActorError as exc:
                _stop_if_not_a_worker_death(exc)
                reason = _death_reason(exc)
                if self.attempts[batch_number] >= MAX_BATCH_ATTEMPTS:
                    raise UserError(f"Ray workers died {self.attempts[batch_number]} times on the same batch "
                                    f"({_crop_names(batch)}; last: {reason}); finished crops are kept, rerun to redo the rest") from None
                self.ray.kill(self.actors[worker])
                self.actors[worker] = self.new_actor()
                self.say(f"ray: worker {worker} died ({reason}); a new worker redoes its batch of {len(batch)} crop(s): "
                         f"{_crop_names(batch)}")
                self.waiting.insert(0, (batch_number, batch))
                continue
            yield outcomes

    def close(self) -> None:
        for actor in self.actors.values():
            self.ray.kill(actor)
        self.marker.unlink(missing_ok=True)


def _stop_if_not_a_worker_death(exc) -> None:
    """A worker that cannot see OUT is the setup's fault: retrying elsewhere would fail the same way."""
    cause = exc.args[0] if exc.args else exc
    if isinstance(getattr(exc, "cause", None), SharedStorageError) or "not visible from worker" in str(cause):
        raise UserError(str(getattr(exc, "cause", cause)).splitlines()[0]) from None


def _death_reason(exc) -> str:
    """Ray's paragraph cut to its gist: which process ended, and Ray's word for how."""
    text = " ".join(str(exc).split())
    pid = re.search(r"Worker PID: (\d+)", text) or re.search(r"\bpid=(\d+)", text)
    kind = re.search(r"Worker exit type: (\w+)", text)
    words = f"its process{f' (pid {pid.group(1)})' if pid else ''} ended unexpectedly"
    if kind:
        words += f", {kind.group(1)}"
    if "OOM" in text and "killed" not in text.lower():
        words += ", out of memory"
    return words


def _crop_names(batch: list[CropJob]) -> str:
    names = [Path(job.aligned).name for job in batch]
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
