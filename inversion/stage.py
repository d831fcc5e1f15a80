"""`sefa-edit invert`: aligned crops -> W+ codes (`NAME.npy`), reconstructions, metrics.

Per crop: `OUT/<name>.npy` (float32 [num_ws, w_dim]), `OUT/<name>_rec.png`, `OUT/<name>.json` (what the
code came from: aligned crop, its sidecar for paste-back, generator sha256, metrics, and the fingerprint
of everything that made the code), one line in `OUT/metrics.jsonl`, and one JSON line on stdout for
`edit`. Crops that cannot be used are listed in `OUT/failures.jsonl`. A rerun skips the crops whose
fingerprint is unchanged and redoes the others (another generator, encoder, crop or setting).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from common import atomic
from common.devices import resolve_device
from common.errors import UserError
from common.failures import FailureLog
from common.fingerprint import content_sha256, fingerprint
from common.naming import unique_stems
from common.output_folder import check_output_path, claimed_output_folder
from common.photo_io import find_images
from common.progress import track
from common.regular_files import problem_with
from common.stdin_records import distinct_stdin_inputs
from generators.checkpoint import load_checkpoint
from generators.precision import fingerprint_part
from inversion.encoder import load_encoder
from inversion.optimize import InversionSettings
from inversion.ray_pool import RaySettings
from inversion.worker import CropJob, InversionWorker, Tuning, output_paths
from common.tuned_weights import SUFFIX, delta_fingerprint, tuned_path
from inversion.perceptual import choose_perceptual, find_vgg_weights

INFO_VERSION = 3  # 3: the encoder-only reconstruction is kept beside the optimised one

# Told, before the first batch: how many crops will be inverted, of how many, and a warm-up measurement of
# seconds per crop (None on Ray workers, where the driver cannot time the workers' devices).
Plan = Callable[[int, int, "Callable[[], float] | None"], None]


@dataclass(frozen=True)
class CropItem:
    aligned: Path
    name: Path  # output stem relative to OUT
    meta: Path | None  # the alignment sidecar, when known


def list_crops(input_spec: str, stdin: Iterator[str] | None = None, exclude: Path | None = None) -> list[CropItem]:
    """A folder of aligned crops (recursive; `exclude`, the OUT folder, left out), one crop, or `-`
    (align's JSON lines, or paths). Every crop gets its own output name, however the stems clash."""
    if input_spec == "-":
        inputs = distinct_stdin_inputs(("aligned",), lambda path, record: Path(record["meta"])
                                       if isinstance(record.get("meta"), str) and record["meta"] else _sidecar(path), stdin)
        return [CropItem(path, Path(name), meta) for path, name, meta in inputs]
    root = Path(input_spec)
    if root.is_file():
        return [CropItem(root, Path(root.stem), _sidecar(root))]
    if not root.is_dir():
        problem = problem_with(root) if root.exists() or root.is_symlink() else "no such file or folder"
        raise UserError(f"{root}: {problem}; pass the output folder of `sefa-edit align`, a crop, or -")
    crops = find_images(root, exclude=exclude)
    names = unique_stems([p.relative_to(root).as_posix() for p in crops])
    return [CropItem(p, Path(name), _sidecar(p)) for p, name in zip(crops, names)]


def _sidecar(crop: Path) -> Path | None:
    meta = crop.with_suffix(".json")
    return meta if meta.is_file() else None


def _outputs(out_dir: Path, item: CropItem) -> tuple[Path, Path, Path]:
    return output_paths(out_dir, item.name)


def auto_batch_size(device: torch.device) -> int:
    """`--batch-size auto` where nothing is measured. On a CPU a batch is no faster per image than one
    crop, and one crop at a time means a kill loses at most one crop's work. A local GPU's size is
    measured from its free memory instead (`InversionWorker.batch_size_that_fits`); Ray workers on GPUs,
    whose memory the driver cannot see, get 4."""
    return 4 if device.type == "cuda" else 1


def run_invert(
    input_spec: str,
    out_dir: Path,
    generator_path: Path,
    encoder_path: Path | None,
    settings: InversionSettings,
    perceptual: str = "auto",
    vgg_path: Path | None = None,
    batch_size: int | None = None,
    device_name: str = "auto",
    overwrite: bool = False,
    emit: Callable[[dict], None] = lambda record: None,
    say: Callable[[str], None] = lambda message: None,
    stdin: Iterator[str] | None = None,
    shared_dir: Path | None = None,
    ray: RaySettings | None = None,
    plan: "Plan | None" = None,
    tuning: Tuning | None = None,
) -> dict:
    """Invert every crop; `batch_size` None picks one for the device (see `auto_batch_size`);
    `ray` runs the batches on Ray workers (`inversion.ray_pool`); `plan` is told what is about to be
    done before the first batch (see `Plan`); `tuning` runs pivotal tuning after each crop's inversion."""
    if tuning is not None:
        tuning.settings.validate()
        tuning = tuning if tuning.settings.steps > 0 else None
    perceptual, notice = choose_perceptual(perceptual, vgg_path, shared_dir)
    settings.validate()
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be 1 or more, or auto")
    check_output_path(out_dir)
    device = resolve_device(device_name)
    items = list_crops(input_spec, stdin, exclude=out_dir)
    with claimed_output_folder(out_dir):
        return _invert_all(items, out_dir, generator_path, encoder_path, settings, perceptual, vgg_path,
                           batch_size, device, overwrite, emit, say, shared_dir, ray, notice, plan,
                           tuning)


def photo_groups(out_dir: Path, items: list[CropItem]) -> dict[Path, Path]:
    """{crop name: the delta file its photo's faces share} for `--tune-per photo`: faces are grouped by the
    photo their alignment sidecar names (a crop without one is a photo of its own)."""
    import hashlib

    groups: dict[Path, Path] = {}
    for item in items:
        meta = atomic.read_json_object(item.meta) if item.meta is not None else None
        source = meta.get("source") if isinstance(meta, dict) and isinstance(meta.get("source"), str) else str(item.aligned)
        key = hashlib.sha1(str(Path(source).resolve()).encode()).hexdigest()[:10]
        groups[item.name] = Path(out_dir) / "tuned" / f"{Path(source).stem}_{key}_photo{SUFFIX}"
    return groups


def require_invertible(checkpoint, generator_path: Path, space: str = "w+") -> None:
    """PGGAN has only z: no per-layer code to invert a photo into; IDInvert's generator has no shared W."""
    if checkpoint.latent_space != "W+":
        raise UserError(f"{generator_path}: a {checkpoint.architecture} generator has no W+ space to invert photos into "
                        f"(its only code is z); use a StyleGAN or StyleGAN2 generator, or `sefa-edit sample` to edit "
                        f"random samples of this one")
    config = checkpoint.synthesis_config
    if space == "w" and config is not None and not getattr(config, "repeat_w", True):
        raise UserError(f"{generator_path}: --space w needs one w shared by all layers, but this generator's mapping "
                        f"outputs every W+ entry separately (repeat_w=False); use --space w+")


def _invert_all(items, out_dir, generator_path, encoder_path, settings, perceptual, vgg_path, batch_size, device,
                overwrite, emit, say, shared_dir, ray: RaySettings | None = None, notice: str | None = None,
                plan: "Plan | None" = None, tuning: Tuning | None = None) -> dict:
    """Plan (fingerprints: which crops need work), run the batches (here, or on Ray workers), record
    (failures, metrics, JSON lines, counts) as the outcomes come back."""
    run = InvertRun(out_dir, generator_path, encoder_path, settings, perceptual, vgg_path, batch_size, device, overwrite,
                    emit, say, shared_dir, ray, notice, tuning)
    pending = run.plan(items)
    run.say_redone()
    batches = run.batches(pending)
    try:
        if batches:
            run.start(plan, len(pending), len(items), expected_batches=len(batches))
            for batch in batches:
                run.submit(batch)
            for outcomes in track(run.results(block=True), "inverting", total=len(pending), weight=len, unit="crops"):
                run.record(outcomes)
    finally:
        run.close()
    return run.finish()


class InvertRun:
    """The inversion stage prepared once and fed crops in any number of chunks: `invert` gives it a whole
    folder, `run` gives it each photo's faces as soon as the photo is aligned. `plan` checks fingerprints
    (done crops are recorded at once), `submit` sends a batch (inverted here at once, or queued on Ray
    workers), `results` hands back finished batches, `record` writes what the driver keeps (failures,
    metrics, JSON lines, counts), `finish` closes the workers and says the disk cost of tuning."""

    def __init__(self, out_dir, generator_path, encoder_path, settings, perceptual, vgg_path, batch_size, device, overwrite,
                 emit, say, shared_dir, ray: RaySettings | None = None, notice: str | None = None,
                 tuning: Tuning | None = None) -> None:
        self.out_dir, self.generator_path, self.encoder_path = Path(out_dir), generator_path, encoder_path
        self.settings, self.device, self.overwrite = settings, device, overwrite
        self._batch_size: int | None = batch_size  # None: auto, chosen when first needed (`batch_size`)
        self.emit, self.say, self.ray, self.notice, self.tuning = emit, say, ray, notice, tuning
        self.checkpoint = load_checkpoint(generator_path)
        require_invertible(self.checkpoint, generator_path, settings.space)
        self.checkpoint.require_precision(settings.precision)
        if encoder_path is not None and ray is not None:  # a wrong encoder: one line before any worker starts
            load_encoder(encoder_path, self.checkpoint.num_latent_layers, self.checkpoint.latent_dim, self.checkpoint.sha256)
        self.vgg_file = find_vgg_weights(vgg_path, shared_dir) if perceptual == "lpips" else None
        # Everything that changes a code, except the crop itself (added per item). The VGG file is 528 MB:
        # its name and size identify it well enough without hashing it on every run.
        self.common_settings = {
            "version": INFO_VERSION, "generator": self.checkpoint.sha256,
            "encoder": content_sha256(encoder_path) if encoder_path is not None else None,
            "perceptual": perceptual,
            "vgg": [self.vgg_file.name, self.vgg_file.stat().st_size] if self.vgg_file is not None else None,
            **{key: value for key, value in asdict(settings).items() if key != "precision"},
            **fingerprint_part(settings.precision),  # nothing for fp32: codes made before --precision keep their prints
        }
        if tuning is not None:  # only then: codes inverted without --tune keep their fingerprints
            self.common_settings["tuning"] = {**asdict(tuning.settings), "precision": tuning.precision}
        self.failures = FailureLog(out_dir, say, key="aligned")
        self.summary = {"inverted": 0, "skipped": 0, "failed": 0, "unreadable": 0, "redone": 0}
        self.tuned_files: dict[str, int] = {}  # delta file -> bytes, to say the disk cost of tuning
        self._local: InversionWorker | None = None
        self._ray = None
        self._finished: list[list] = []  # batches submitted here, inverted when `results` asks for them
        self._started = False

    @property
    def batch_size(self) -> int:
        """The crops inverted together: as asked, or for `--batch-size auto` 1 on a CPU and, on a local GPU,
        as many as its free memory holds (measured once, said once)."""
        if self._batch_size is None:
            if self.device.type == "cuda" and self.ray is None:
                worker = self._local_worker()
                self._batch_size, per_crop = worker.batch_size_that_fits()
                self.say(f"--batch-size auto: {self._batch_size} crop(s) at once ({per_crop / 2**20:.0f} MB each, measured, "
                         f"in the free memory of {torch.cuda.get_device_name(self.device)})")
            else:
                self._batch_size = auto_batch_size(self.device)
        return self._batch_size

    def _local_worker(self) -> "InversionWorker":
        if self._local is None:
            self._local = InversionWorker(self.out_dir, self.generator_path, self.encoder_path, self.settings, self.vgg_file,
                                          str(self.device), checkpoint=self.checkpoint, tuning=self.tuning)
            self._local.say = self.say
        return self._local

    @property
    def per_photo(self) -> bool:
        return self.tuning is not None and self.tuning.per == "photo"

    def plan(self, items: list[CropItem]) -> list[CropJob]:
        """The jobs of the crops that need inverting; the others are recorded now (done: their JSON line)."""
        planned: list[tuple[CropItem, str, dict | None, bool]] = []  # item, its print, its info, whether it is done
        for item in items:
            code_path, rec_path, info_path = _outputs(self.out_dir, item)
            try:
                crop_print = fingerprint(crop=content_sha256(item.aligned), **self.common_settings)
            except OSError as exc:
                self.summary["unreadable"] += 1
                self.failures.add(item.aligned, "unreadable", f"cannot read ({exc.strerror or exc})")
                continue
            info = atomic.read_json_object(info_path)
            done = not self.overwrite and info is not None and info.get("fingerprint") == crop_print and code_path.is_file() \
                and rec_path.is_file()
            planned.append((item, crop_print, info, done))
        groups = photo_groups(self.out_dir, [entry[0] for entry in planned]) if self.per_photo else {}
        group_prints = {key: fingerprint(faces=[entry[1] for entry in planned if groups.get(entry[0].name) == key])
                        for key in set(groups.values())}
        stale_groups = {key for key, made_by in group_prints.items() if delta_fingerprint(key) != made_by
                        or not all(entry[3] for entry in planned if groups.get(entry[0].name) == key)}
        pending: list[CropJob] = []
        redone = 0
        for item, crop_print, info, done in planned:
            group = groups.get(item.name)
            if self.tuning is not None and not self.per_photo:
                done = done and delta_fingerprint(tuned_path(_outputs(self.out_dir, item)[0])) == crop_print
            if group is not None:
                done = group not in stale_groups  # a photo's faces are tuned together: redone together
            if done:
                self.summary["skipped"] += 1
                self.emit(info["record"])
                continue
            if info is not None:
                redone += 1
            pending.append(CropJob(item.aligned, item.name, item.meta, crop_print, group, group_prints.get(group)))
        self.summary["redone"] += redone
        return pending

    def say_redone(self) -> None:
        if self.summary["redone"]:
            self.say(f"{self.summary['redone']} crop(s) redone: the crop, generator, encoder or settings changed since "
                     f"they were inverted")

    def batches(self, pending: list[CropJob]) -> list[list[CropJob]]:
        if self.per_photo:  # one batch per photo: its faces are inverted together, then tuned together
            return [[job for job in pending if job.tune_group == key] for key in dict.fromkeys(job.tune_group for job in pending)]
        return [pending[i : i + self.batch_size] for i in range(0, len(pending), self.batch_size)]

    def start(self, plan: "Plan | None" = None, to_invert: int = 0, crops: int = 0, expected_batches: int | None = None) -> None:
        """Load the models here (or start the Ray workers, no more than `expected_batches` when that is
        known) before the first batch, and say the plan."""
        if self._started:
            return
        self._started = True
        if self.notice and self.settings.steps > 0:  # said by a command that optimises with it, not by a no-op rerun
            self.say(self.notice)
        if self.ray is not None:
            from inversion.ray_pool import RayInverters

            if plan is not None:
                plan(to_invert, crops, None)
            self._ray = RayInverters(self.out_dir, self.generator_path, self.encoder_path, self.settings, self.vgg_file,
                                     self.ray, self.say, self.tuning, expected_batches)
            return
        self._local_worker()
        if plan is not None:
            plan(to_invert, crops, lambda: self._local.seconds_per_crop(min(self.batch_size, max(1, to_invert))))

    def submit(self, batch: list[CropJob]) -> None:
        """Queue one batch: on Ray it starts on a free worker; here it is inverted when `results` asks."""
        self.start()
        if self._ray is not None:
            self._ray.submit(batch)
        else:
            self._finished.append(batch)

    def results(self, block: bool = True) -> Iterator[list]:
        """Outcomes of submitted batches: here, each inverted in turn as it is asked for; on Ray, those
        finished (all of them, waiting, with `block`)."""
        if self._ray is not None:
            yield from self._ray.results(block)
            return
        while self._finished:
            yield self._local.invert_jobs(self._finished.pop(0))

    @property
    def busy(self) -> bool:
        """Batches submitted and not yet handed back."""
        return bool(self._finished) or (self._ray is not None and self._ray.busy)

    def record(self, outcomes) -> list[dict]:
        """What the driver keeps of a batch; returns the records of the crops inverted."""
        inverted = []
        for outcome in outcomes:
            if outcome.kind == "inverted" and outcome.record.get("tuned"):
                self.tuned_files[outcome.record["tuned"]] = int(outcome.metrics.get("tuned_bytes") or 0)
            if outcome.kind == "inverted":
                atomic.append_jsonl(self.out_dir / "metrics.jsonl", outcome.metrics)
                self.summary["inverted"] += 1
                self.emit(outcome.record)
                inverted.append(outcome.record)
            else:
                self.summary["unreadable" if outcome.kind == "unreadable" else "failed"] += 1
                self.failures.add(outcome.aligned, "inversion_failed" if outcome.kind == "failed" else outcome.kind,
                                  outcome.reason)
        return inverted

    def close(self) -> None:
        """End the Ray workers, if any (also when the run stops on an error or Ctrl-C)."""
        if self._ray is not None:
            self._ray.close()
            self._ray = None

    def finish(self) -> dict:
        self.close()
        if self.tuned_files:
            each = sum(self.tuned_files.values()) / len(self.tuned_files) / 2**20
            self.say(f"pivotal tuning: {len(self.tuned_files)} tuned generator(s), one per {self.tuning.per}, {each:.1f} MB "
                     f"each on disk ({self.tuning.precision}; {sum(self.tuned_files.values()) / 2**20:.1f} MB in all)")
        return self.summary
