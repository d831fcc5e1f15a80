"""The compute half of `invert`: models held once, batches of crops in, each crop's files out.

`InversionWorker` loads the generator, the encoder and VGG (for LPIPS) once and inverts whatever
batches it is given, writing each crop's own files (`<name>.npy`, `_rec.png`, `_encoder.png`,
`<name>.json`) atomically. Everything shared by the batch (the failure list, `metrics.jsonl`, the
JSON lines on stdout, the counts) stays with the caller, which gets one `Outcome` per crop. The same
class runs in-process for a local run and as a Ray actor per worker (`inversion.ray_pool`), so both
write byte-identical files for the same crops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from common import atomic, images
from common.identity import IDENTITY_OFF, NO_FACE_IN_PHOTO, descriptor, identity_distance, prefetch, stored_descriptor
from common.identity import enabled as identity_enabled
from common.devices import resolve_device
from generators.checkpoint import LoadedCheckpoint, load_checkpoint
from inversion.encoder import load_encoder
from inversion.memory import HalvingRunner, OutOfMemory, crops_that_fit, is_out_of_memory
from inversion.optimize import InversionResult, InversionSettings, invert, psnr_from_mse
from inversion.perceptual import LPIPS
from inversion.pivotal_tuning import TuningSettings, tune, tune_jointly, weight_delta
from common.tuned_weights import tuned_path, write_delta


@dataclass(frozen=True)
class Tuning:
    """What `invert --tune` asks: PTI's settings and how the delta is stored."""

    settings: TuningSettings
    precision: str = "fp16"
    per: str = "photo"  # photo: one tuned generator shared by a photo's faces (PTI's multi-ID mode); face: one each


# Tuning holds the generator, its tuned copy and Adam's two moments: four times the weights, whatever the batch.
TUNING_OUT_OF_MEMORY = ("out of device memory while tuning (the generator, its tuned copy and Adam's state: 4x its "
                        "weights); free the device, use --device cpu, or leave --tune out")


@dataclass(frozen=True)
class CropJob:
    aligned: Path
    name: Path  # output stem relative to the OUT folder
    meta: Path | None
    crop_print: str
    tune_group: Path | None = None  # with --tune-per photo: the delta file shared by the faces of this crop's photo
    group_print: str | None = None  # the fingerprint of that photo's tuning (all its faces' prints)


@dataclass(frozen=True)
class Outcome:
    aligned: Path
    kind: str  # inverted | failed | unreadable | out_of_memory
    reason: str | None = None
    record: dict | None = None
    metrics: dict | None = None


def load_target(path: Path, resolution: int) -> torch.Tensor:
    if not Path(path).is_file():
        raise ValueError("not a regular file")
    rgb = images.read_rgb(path)
    if rgb.shape[0] != resolution or rgb.shape[1] != resolution:
        interpolation = cv2.INTER_AREA if rgb.shape[0] > resolution else cv2.INTER_CUBIC
        rgb = cv2.resize(rgb, (resolution, resolution), interpolation=interpolation)
    return images.uint8_to_tensor(rgb)[0]


def output_paths(out_dir: Path, name: Path) -> tuple[Path, Path, Path]:
    base = Path(out_dir) / name
    return base.with_suffix(".npy"), base.parent / f"{base.name}_rec.png", base.with_suffix(".json")


def merge_results(parts: list[InversionResult]) -> InversionResult:
    """One result from the results of a split batch, in order."""
    if len(parts) == 1:
        return parts[0]

    def cat(name: str) -> torch.Tensor | None:
        values = [getattr(part, name) for part in parts]
        return None if values[0] is None else torch.cat(values)

    tensors = ("ws", "reconstructions", "start_reconstructions", "start_mse", "start_lpips", "mse", "lpips")
    return InversionResult(**{name: cat(name) for name in tensors},
                           failure=[entry for part in parts for entry in part.failure],
                           seconds=sum(part.seconds for part in parts))


class InversionWorker:
    def __init__(self, out_dir: Path, generator_path: Path, encoder_path: Path | None, settings: InversionSettings,
                 vgg_file: Path | None, device_name: str = "auto", storage_check: tuple[Path, str] | None = None,
                 checkpoint: LoadedCheckpoint | None = None, tuning: Tuning | None = None) -> None:
        """`checkpoint`: the generator already read by the caller (a local run), so it is not read twice.
        `tuning`: pivotal tuning after the inversion (PTI), its delta stored beside each code."""
        self.tuning = tuning
        if storage_check is not None:
            check_shared_storage(*storage_check)
        self.out_dir = Path(out_dir)
        self.generator_path, self.encoder_path, self.settings = Path(generator_path), encoder_path, settings
        self.device = resolve_device(device_name)
        checkpoint = checkpoint if checkpoint is not None else load_checkpoint(self.generator_path)
        self.generator_sha256 = checkpoint.sha256
        self.generator = checkpoint.build_generator(self.device, settings.precision)
        self.encoder = None
        if encoder_path is not None:
            self.encoder = load_encoder(encoder_path, self.generator.num_ws, self.generator.w_dim, checkpoint.sha256).to(self.device)
            self.encoder.requires_grad_(False)
        self.lpips = LPIPS(vgg_file).to(self.device) if vgg_file is not None else None
        self.say: Callable[[str], None] = lambda message: None
        prefetch()  # the identity models load while the crops are inverted
        self.run_batch = HalvingRunner(self._invert_targets, lambda message: self.say(message))

    def seconds_per_crop(self, batch: int = 1) -> float:
        """A short measured warm-up: how long one crop will take with these settings on this device, from
        the fixed cost (encoder, first and last render) and two optimisation steps on stand-in targets (renders
        of the mean code), after one step that warms the device up. What `run`'s plan shows before a long job."""
        with torch.no_grad():
            target = self.generator.render(self.generator.mean_code().to(self.device).unsqueeze(0)).clamp(-1, 1)
        targets = target.repeat(batch, 1, 1, 1)

        def timed(steps: int) -> float:
            start = time.perf_counter()
            invert(self.generator, targets, self.encoder, self.lpips, replace(self.settings, steps=steps))
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            return time.perf_counter() - start

        timed(1)
        fixed = timed(0)
        per_step = max(0.0, timed(2) - fixed) / 2
        return (fixed + per_step * self.settings.steps) / batch

    def batch_size_that_fits(self) -> tuple[int, int]:
        """(crops at once, bytes per crop) on this CUDA device: the peak memory of one optimisation step
        measured on 1 and on 2 stand-in crops gives the fixed part and the part per crop, and the free
        memory says how many crops fit (`crops_that_fit`). Tuning's memory does not grow with the batch."""
        with torch.no_grad():
            target = self.generator.render(self.generator.mean_code().to(self.device).unsqueeze(0)).clamp(-1, 1)
        torch.cuda.synchronize(self.device)
        base = torch.cuda.memory_allocated(self.device)
        peaks = []
        for count in (1, 2):
            torch.cuda.reset_peak_memory_stats(self.device)
            invert(self.generator, target.repeat(count, 1, 1, 1), self.encoder, self.lpips, replace(self.settings, steps=1))
            torch.cuda.synchronize(self.device)
            peaks.append(torch.cuda.max_memory_allocated(self.device) - base)
        per_crop = max(peaks[1] - peaks[0], 1)
        torch.cuda.empty_cache()
        free, _ = torch.cuda.mem_get_info(self.device)
        return crops_that_fit(free, peaks[0] - per_crop, per_crop), per_crop

    def _tune(self, job: CropJob, pivot: torch.Tensor, target: torch.Tensor, code_path: Path, photo_descriptor) -> dict:
        """PTI on this crop around its pivot: the delta written beside the code, the tuned reconstruction and
        its metrics (PSNR, LPIPS, identity, steps run, seconds, bytes on disk)."""
        target = target[None].to(self.device)
        pivot = pivot.to(self.device)
        result = tune(self.generator, pivot, target, self.tuning.settings, self.lpips)
        delta = weight_delta(self.generator, result.generator)
        path = write_delta(tuned_path(code_path), delta, self.generator_sha256, job.crop_print, self.tuning.precision)
        metrics, rgb = self._tuned_metrics(result.generator, pivot, target, photo_descriptor)
        metrics.update({"tune_steps": self.tuning.settings.steps, "tune_steps_run": result.steps_run,
                        "tune_stopped_early": result.stopped_early, "tune_seconds": round(result.seconds, 3),
                        "tuned_bytes": path.stat().st_size, "tuned_faces": 1})
        return {"image": rgb, "metrics": metrics}

    def _invert_targets(self, targets) -> list[InversionResult]:
        return [invert(self.generator, torch.stack(list(targets)).to(self.device), self.encoder, self.lpips, self.settings)]

    def invert_jobs(self, jobs: list[CropJob]) -> list[Outcome]:
        """Invert one batch and write each crop's files; one Outcome per job, in order."""
        outcomes: dict[int, Outcome] = {}
        targets, kept = [], []
        for index, job in enumerate(jobs):
            try:
                targets.append(load_target(job.aligned, self.generator.img_resolution))
                kept.append((index, job))
            except (ValueError, OSError) as exc:
                outcomes[index] = Outcome(job.aligned, "unreadable", str(exc))
        if kept:
            try:
                result = merge_results(self.run_batch(targets))
            except OutOfMemory as exc:
                for index, job in kept:
                    outcomes[index] = Outcome(job.aligned, "out_of_memory", str(exc))
            else:
                for position, (index, job) in enumerate(kept):
                    outcomes[index] = self._write(job, result, position, len(kept), targets[position])
                if self.tuning is not None and any(job.tune_group is not None for _, job in kept):
                    self._tune_photos(kept, result, targets, outcomes)
        return [outcomes[index] for index in range(len(jobs))]

    def _tune_photos(self, kept: list[tuple[int, CropJob]], result: InversionResult, targets: list[torch.Tensor],
                     outcomes: dict[int, Outcome]) -> None:
        """PTI's multi-ID mode per photo: one tuned generator for all the inverted faces of a photo, its delta
        written once, each face's tuned reconstruction, metrics and record updated."""
        groups: dict[Path, list[tuple[int, int, CropJob]]] = {}
        for position, (index, job) in enumerate(kept):
            if job.tune_group is not None and outcomes[index].kind == "inverted":
                groups.setdefault(job.tune_group, []).append((position, index, job))
        for group_file, members in groups.items():
            pivots = [result.ws[position : position + 1].detach().to(self.device) for position, _, _ in members]
            group_targets = [targets[position][None].to(self.device) for position, _, _ in members]
            try:
                tuned = tune_jointly(self.generator, pivots, group_targets, self.tuning.settings, self.lpips)
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled; everything else is re-raised
                if not is_out_of_memory(exc):
                    raise
                for _, index, job in members:
                    outcomes[index] = Outcome(job.aligned, "out_of_memory", TUNING_OUT_OF_MEMORY)
                continue
            delta = weight_delta(self.generator, tuned.generator)
            path = write_delta(group_file, delta, self.generator_sha256, members[0][2].group_print, self.tuning.precision)
            for (position, index, job), pivot, target in zip(members, pivots, group_targets):
                extra, rgb = self._tuned_metrics(tuned.generator, pivot, target, self._stored_person(job))
                extra.update({"tune_steps": self.tuning.settings.steps, "tune_steps_run": tuned.steps_run,
                              "tune_stopped_early": False, "tune_seconds": round(tuned.seconds / len(members), 3),
                              "tuned_bytes": path.stat().st_size, "tuned_faces": len(members)})
                outcomes[index] = self._record_tuning(job, outcomes[index], extra, rgb, path)

    def _stored_person(self, job: CropJob):
        return stored_descriptor(atomic.read_json_object(output_paths(self.out_dir, job.name)[2]) or {})

    def _tuned_metrics(self, generator, pivot: torch.Tensor, target: torch.Tensor, person) -> tuple[dict, np.ndarray]:
        with torch.no_grad():
            image = generator.render(pivot)
            mse = ((image - target) ** 2).mean()
            lpips = self.lpips(image, target).mean().item() if self.lpips is not None else None
        rgb = images.tensor_to_uint8(image)[0]
        return {"tuned_psnr": round(psnr_from_mse(mse).item(), 3), "tuned_mse": round(mse.item(), 6),
                "tuned_lpips": round(lpips, 5) if lpips is not None else None,
                "tuned_identity": IDENTITY_OFF if not identity_enabled()
                else NO_FACE_IN_PHOTO if person is None else identity_distance(None, rgb, person)}, rgb

    def _record_tuning(self, job: CropJob, outcome: Outcome, extra: dict, rgb: np.ndarray, delta_file: Path) -> Outcome:
        """The face's tuned reconstruction written, its info JSON and outcome updated to point at the delta."""
        code_path, rec_path, info_path = output_paths(self.out_dir, job.name)
        tuned_png = rec_path.with_name(rec_path.name.replace("_rec.png", "_tuned.png"))
        images.save_rgb(tuned_png, rgb)
        metrics = {**outcome.metrics, **extra}
        record = {**outcome.record, "tuned": str(delta_file.resolve()), "tuned_reconstruction": str(tuned_png.resolve())}
        info = atomic.read_json_object(info_path) or {}
        atomic.write_json(info_path, {**info, "record": record, "metrics": metrics})
        return Outcome(outcome.aligned, outcome.kind, outcome.reason, record, metrics)

    def _write(self, job: CropJob, result: InversionResult, index: int, batch: int, target: torch.Tensor) -> Outcome:
        if result.failure[index] is not None:
            return Outcome(job.aligned, "failed", f"inversion failed ({result.failure[index]}); no code written")
        code_path, rec_path, info_path = output_paths(self.out_dir, job.name)
        reconstruction = images.tensor_to_uint8(result.reconstructions[index : index + 1])[0]
        encoder_only = images.tensor_to_uint8(result.start_reconstructions[index : index + 1])[0] if self.encoder is not None else None
        photo_descriptor = descriptor(images.read_rgb(job.aligned)) if identity_enabled() else None

        def identity(render):
            if not identity_enabled():
                return IDENTITY_OFF
            return NO_FACE_IN_PHOTO if photo_descriptor is None else identity_distance(None, render, photo_descriptor)

        metrics = {
            "aligned": str(Path(job.aligned).resolve()),
            "mse": round(result.mse[index].item(), 6),
            "psnr": round(psnr_from_mse(result.mse[index]).item(), 3),
            "start_mse": round(result.start_mse[index].item(), 6),
            "start_psnr": round(psnr_from_mse(result.start_mse[index]).item(), 3),
            "start_lpips": round(result.start_lpips[index].item(), 5) if result.start_lpips is not None else None,
            "lpips": round(result.lpips[index].item(), 5) if result.lpips is not None else None,
            "seconds": round(result.seconds / batch, 3),
            "steps": self.settings.steps,
            "encoder": self.encoder_path is not None,
            # dlib face-descriptor distance to the photo's crop (under 0.6: the same person), or why there is none
            "identity": identity(reconstruction),
            "start_identity": identity(encoder_only) if encoder_only is not None else None,
        }
        tuned_png = rec_path.with_name(rec_path.name.replace("_rec.png", "_tuned.png"))
        if self.tuning is not None and job.tune_group is None:
            try:
                tuned = self._tune(job, result.ws[index : index + 1].detach(), target, code_path, photo_descriptor)
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled; everything else is re-raised
                if not is_out_of_memory(exc):
                    raise
                return Outcome(job.aligned, "out_of_memory", TUNING_OUT_OF_MEMORY)
            metrics.update(tuned.pop("metrics"))
            images.save_rgb(tuned_png, tuned.pop("image"))
        else:  # tuned with its photo below, or not at all: a face's own earlier delta no longer belongs to this code
            tuned_path(code_path).unlink(missing_ok=True)
            if self.tuning is None:
                tuned_png.unlink(missing_ok=True)
        atomic.save_npy(code_path, result.ws[index].detach().cpu().numpy().astype(np.float32))
        images.save_rgb(rec_path, reconstruction)
        encoder_png = rec_path.with_name(rec_path.name.replace("_rec.png", "_encoder.png"))
        if encoder_only is not None:
            images.save_rgb(encoder_png, encoder_only)
        else:
            encoder_png.unlink(missing_ok=True)
        record = {"code": str(code_path.resolve()), "reconstruction": str(rec_path.resolve()),
                  "encoder_reconstruction": str(encoder_png.resolve()) if self.encoder is not None else None,
                  "aligned": metrics["aligned"], "meta": str(Path(job.meta).resolve()) if job.meta else None,
                  "psnr": metrics["psnr"], "identity": metrics["identity"],
                  "tuned": str(tuned_path(code_path).resolve()) if tuned_path(code_path).is_file() and self.tuning else None,
                  "tuned_reconstruction": str(tuned_png.resolve()) if tuned_png.is_file() and self.tuning
                  and job.tune_group is None else None}
        atomic.write_json(info_path, {"record": record, "metrics": metrics, "fingerprint": job.crop_print,
                                      # the person in the photo's crop, so `edit` scores its edits without redoing it
                                      "photo_descriptor": [round(float(v), 6) for v in photo_descriptor]
                                      if photo_descriptor is not None else None,
                                      "generator_sha256": self.generator_sha256,
                                      "generator": str(self.generator_path.resolve()), "time": time.time()})
        return Outcome(job.aligned, "inverted", record=record, metrics=metrics)


class SharedStorageError(RuntimeError):
    """A worker cannot see the OUT folder the driver writes to."""


def check_shared_storage(marker: Path, token: str) -> None:
    """The driver wrote `token` into `marker` under OUT; a worker that cannot read it back is on other storage."""
    import socket

    try:
        seen = Path(marker).read_text()
    except OSError:
        seen = None
    if seen != token:
        raise SharedStorageError(f"{marker.parent}: not visible from worker host {socket.gethostname()}; OUT must be on "
                                 f"storage every Ray worker sees (NFS, a cluster file system)")
