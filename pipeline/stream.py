"""`run`, streamed: a photo's faces are inverted as soon as the photo is aligned, and edited as soon as
they are inverted, while the next photos are still being aligned; each photo is pasted back as soon as
all its faces are edited.

Who does what: worker processes align (`alignment.stage.align_planned`, in photo order, ahead of the
driver), the driver inverts (its CPU threads or the GPU; or Ray workers, see `pipeline/ray_stages.py`)
and renders the edits, and worker processes write the edited images and paste photos back. Each stage
keeps its own records exactly as when it runs alone (markers, fingerprints, `failures.jsonl`,
`metrics.jsonl`, summaries), so resuming after a kill at any point, `--no-stream` and the report all
see the same folders. The directions are computed once, when the first face is ready to edit.

Inversion batches are formed in photo order and flushed only when full (or, with `--tune-per photo`,
one per photo), never by timing, so the same photos give the same batches however fast the aligner
runs: the outputs do not depend on the schedule.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from alignment.inputs import InputItem, list_inputs
from alignment.stage import AlignRecorder, AlignSummary, PhotoResult, align_planned, plan_photos
from common.errors import UserError
from common.output_folder import claimed_output_folder
from common.process_pool import OrderedPool
from common.progress import track
from editing.edit_run import CodeItem, EditRun
from editing.photo_composite import EditedFace, photo_folder_names
from editing.stage import prepare_edit
from inversion.stage import CropItem, InvertRun
from inversion.worker import CropJob
from pipeline.plan import say_stream_estimate


@dataclass
class PhotoState:
    """A photo between its alignment and its paste-back: which of its faces are still in the stages."""

    waiting: set[str]  # crop names not yet edited (or failed)
    faces: list[EditedFace] = field(default_factory=list)


@dataclass
class StreamOutcome:
    align: AlignSummary
    invert: dict
    edit: dict
    directions_file: Path | None
    seconds: float


class Streamer:
    """The streamed schedule of one `run` (see the module docstring); `go()` runs it."""

    def __init__(self, photos: str, out: Path, generator: Path, encoder: Path | None, options, perceptual: str,
                 device, say: Callable[[str], None], shared_dir: Path | None, workers: int,
                 ensure_directions: Callable[[], Path], invert_notice: str | None) -> None:
        self.photos, self.out, self.generator, self.encoder = photos, Path(out), generator, encoder
        self.options, self.perceptual, self.device, self.say = options, perceptual, device, say
        self.shared_dir, self.workers, self.ensure_directions = shared_dir, workers, ensure_directions
        self.invert_notice = invert_notice
        self.aligned, self.codes, self.edits = self.out / "aligned", self.out / "codes", self.out / "edits"
        self.photo_of: dict[str, Path] = {}  # crop name -> its photo
        self.states: dict[Path, PhotoState] = {}
        self.buffer: list[CropJob] = []  # pending crops of consecutive photos, not yet a full batch
        self.ready_codes: list[CodeItem] = []  # inverted (or done before), waiting to be edited
        self.edit_run: EditRun | None = None
        self.directions_file: Path | None = None

    def go(self) -> StreamOutcome:
        start = time.perf_counter()
        items = _inputs(self.photos, self.out)
        align_options = self.options.align_options()
        with ExitStack() as stack:
            for folder in (self.aligned, self.codes, self.edits):
                stack.enter_context(claimed_output_folder(folder))
            # One pool for aligning, writing and pasting: the photos are handed to it first, all at once (on a CPU
            # the driver's PyTorch threads and the workers share the cores; measured, a second pool only adds contention)
            self.pool = stack.enter_context(self._pool())
            recorder = AlignRecorder(self.aligned, lambda record: None, self.say)
            self.invert_run = InvertRun(self.codes, self.generator, self.encoder, self.options.inversion_settings(),
                                        self.perceptual, self.options.vgg, self.options.batch_size,
                                        self.device, False, self._code_ready, self.say, self.shared_dir, self.options.ray,
                                        self.invert_notice, self.options.tuning)
            stack.callback(self.invert_run.close)  # Ray's inversion actors end with the run, however it ends
            self.group_names = photo_folder_names([item.path for item in items])
            if not items:
                self.say(f"no images found in {self.photos} (looked for .jpg .jpeg .png .webp .bmp .tif .tiff)")
            planned = plan_photos(items, self.aligned, align_options)
            self._say_plan(planned)

            def through_the_stages():  # the work runs inside the tracked loop's step, so the inversion's steps show
                for result in align_planned(planned, self.pool, run_ahead=True):
                    recorder.record(result)
                    self._take_photo(result)
                    self._advance(block=False)
                    yield result

            for _ in track(through_the_stages(), "run", total=len(planned), unit="photos"):
                pass
            self._flush_batch()
            self._advance(block=True)
            edit_summary = {"edited": 0, "skipped": 0, "failed": 0}
            if self.edit_run is not None:
                self.edit_run.collect_pastes(block=True)
                edit_summary = self.edit_run.finish()
            self.invert_run.say_redone()
            invert_summary = self.invert_run.finish()
        if recorder.summary.redone_photos:
            self.say(f"{recorder.summary.redone_photos} photo(s) redone: the photo, the settings or the earlier outputs changed")
        return StreamOutcome(recorder.summary, invert_summary, edit_summary, self.directions_file, time.perf_counter() - start)

    def _pool(self):
        """Where alignment, image writing and paste-back run: local processes, or Ray tasks with `--ray`."""
        if self.options.ray is not None:
            from pipeline.ray_stages import RayPool

            return RayPool(self.options.ray, self.say)
        return OrderedPool(self.workers)

    def _say_plan(self, planned) -> None:
        self.to_align = to_align = sum(not isinstance(entry, PhotoResult) for entry in planned)
        self.say(f"plan: {len(planned)} photo(s), {to_align} to align ({len(planned) - to_align} done before); each face is "
                 f"inverted ({self.options.steps} optimisation step(s) on {self.device}) as soon as its photo is aligned, "
                 f"edited as soon as it is inverted, and its photo pasted back as soon as all its faces are edited")

    # --- a photo's faces through the stages ------------------------------------------------------------------

    def _take_photo(self, result: PhotoResult) -> None:
        source = Path(result.item.path).resolve()
        crops = [CropItem(Path(record["aligned"]), self._name(record["aligned"]), Path(record["meta"]))
                 for record in result.crops]
        if not crops:
            return
        self.states[source] = PhotoState({str(crop.name) for crop in crops})
        for crop in crops:
            self.photo_of[str(crop.name)] = source
        pending = self.invert_run.plan(crops)  # crops done before come back at once through _code_ready
        failed = {str(item.name) for item in crops} - {str(job.name) for job in pending} - \
            {str(code.name) for code in self.ready_codes}
        self._resolve(failed)  # unreadable crops
        if self.invert_run.per_photo:
            self._flush_batch()
            for batch in self.invert_run.batches(pending):
                self._submit(batch)
            return
        self.buffer.extend(pending)
        while len(self.buffer) >= self.invert_run.batch_size:
            batch, self.buffer = self.buffer[: self.invert_run.batch_size], self.buffer[self.invert_run.batch_size :]
            self._submit(batch)

    def _name(self, aligned: str) -> Path:
        """The crop's output name, as `invert` names the crops of a folder: its path under OUT/aligned."""
        return Path(aligned).resolve().relative_to(self.aligned.resolve()).with_suffix("")

    def _flush_batch(self) -> None:
        if self.buffer:
            self._submit(self.buffer)
            self.buffer = []

    def _submit(self, batch: list[CropJob]) -> None:
        self.invert_run.start(say_stream_estimate(self.say, self.to_align, self.options.steps, self.device.type), len(batch))
        self.invert_run.submit(batch)

    def _code_ready(self, record: dict) -> None:
        """An inverted (or done before) face: queued for editing."""
        code = Path(record["code"])
        name = code.resolve().relative_to(self.codes.resolve()).with_suffix("")
        self.ready_codes.append(CodeItem(code, str(name), Path(record["meta"]) if record.get("meta") else None))

    def _advance(self, block: bool) -> None:
        """Move every stage on: inverted batches recorded, ready codes edited, finished photos pasted."""
        while True:
            for outcomes in self.invert_run.results(block):
                self.invert_run.record(outcomes)
                self._resolve({str(self._name(str(o.aligned))) for o in outcomes if o.kind != "inverted"})
            if self.ready_codes:
                self._edit(self.ready_codes)
                self.ready_codes = []
            if self.edit_run is not None:
                for item, face in self.edit_run.collect(block):
                    if face is not None:
                        self.states[self.photo_of[item.name]].faces.append(face)
                    self._resolve({item.name})
                self.edit_run.collect_pastes(block=False)
            if not block or not (self.invert_run.busy or self.ready_codes):
                return

    def _edit(self, codes: list[CodeItem]) -> None:
        if self.edit_run is None:
            self.directions_file = self.ensure_directions()
            prepared = prepare_edit(self.edits, self.generator, self.directions_file, list(self.options.edits),
                                    self.options.edit_options(self.out / "photos"), str(self.device), self.say,
                                    self.options.recipe)
            self.edit_run = EditRun(prepared, self.edits, self.pool, lambda record: None, self.say, self.group_names)
        self.edit_run.submit(codes)

    def _resolve(self, names: set[str]) -> None:
        """These faces are through (edited or failed): a photo with none left is pasted back."""
        for name in names:
            source = self.photo_of.get(name)
            state = self.states.get(source)
            if state is None:
                continue
            state.waiting.discard(name)
            if not state.waiting:
                del self.states[source]
                if state.faces and self.edit_run is not None:
                    self.edit_run.submit_paste(sorted(state.faces, key=lambda face: face.name))


def _inputs(photos: str, out: Path) -> list[InputItem]:
    try:
        return list_inputs(photos, None, exclude=out)
    except ValueError as exc:  # a bad stdin line
        raise UserError(str(exc)) from exc
