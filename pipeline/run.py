"""align -> invert -> factorize -> edit over a folder of photos, resumable, with an HTML report.

Layout under OUT: `aligned/` (crops + sidecars), `codes/` (W+ codes, reconstructions, metrics),
`directions/<generator sha256[:16]>_<layers>/` (cached: computed once per checkpoint, layers and K),
`edits/<face>/` (edited images, grids, sweeps), `photos/<face>/` (the original photos with the
edited face pasted back), and `index.html`. Every option is checked before the first slow stage.
Each stage redoes exactly the items whose fingerprint (input bytes, models, settings) changed, so a
run that was interrupted picks up where it stopped, and a run with another generator or other
settings into the same OUT never returns the old results. OUT is locked while a run works in it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from alignment.inputs import list_inputs
from alignment.stage import AlignOptions, run_align, summary_line
from common.devices import resolve_device
from common.directions_file import load_directions, load_labels
from common.errors import UserError
from common.layer_spec import format_layer_spec, parse_layer_spec
from common.output_folder import check_output_path, claimed_output_folder
from common.photo_io import DEFAULT_MAX_PIXELS
from editing.edit_spec import parse_edit_for
from common.photo_output import DEFAULT_QUALITY
from editing.photo_composite import MIN_FACE_SIZE, photo_folder_names
from editing.recipe import check_recipe_for, load_recipe
from editing.stage import EditOptions, run_edit
from factorization.stage import DESCRIPTION_NAME, DIRECTIONS_NAME, previews_made_with, run_factorize, store_labels
from generators.checkpoint import load_checkpoint
from inversion.optimize import InversionSettings
from inversion.ray_pool import RaySettings
from inversion.perceptual import PERCEPTUAL_CHOICES, choose_perceptual
from inversion.stage import require_invertible, run_invert
from inversion.worker import Tuning
from common.fingerprint import content_sha256
from factorization.describe import DescribeSettings
from factorization.preview import SMALL_PREVIEW, PreviewSettings
from common.demo_models import DEMO_ENCODER, DEMO_GENERATOR, DEMO_WARNING, is_demo_generator
from pipeline.plan import say_plan
from pipeline.stream import Streamer
from pipeline.report import ReportHeader, write_index

DEFAULT_GENERATOR = DEMO_GENERATOR
DEFAULT_ENCODER = DEMO_ENCODER


@dataclass(frozen=True)
class RunOptions:
    edits: tuple[str, ...] = ("0=-3:3:5", "1=-3:3:5", "2=-3:3:5")
    factorize_layers: str = "all"
    num_directions: int = 5
    labels: Path | None = None
    size: int = 256
    steps: int = 100
    lr: float = 0.01
    lambda_perceptual: float = 1.0
    lambda_encoder: float = 2.0
    perceptual: str = "auto"  # lpips when VGG16 weights are found, else none
    vgg: Path | None = None
    batch_size: int | None = None  # None: chosen for the device
    largest: bool = False
    mask: str = "face"
    per_face: bool = False
    min_face_size: int = MIN_FACE_SIZE
    quality: int = DEFAULT_QUALITY
    animate: str | None = None
    recipe: Path | None = None  # a recipe from `sefa-edit ui`, applied as one more edit
    ray: RaySettings | None = None  # invert on Ray workers
    tuning: Tuning | None = None  # pivotal tuning after inversion (invert --tune)
    preview: bool = False  # the directions page's full sample grids (factorize --preview); else SMALL_PREVIEW
    seed: int = 0
    max_pixels: int = DEFAULT_MAX_PIXELS
    workers: int = 1  # local processes aligning, writing images and pasting back (not the Ray inversion workers)
    stream: bool = True  # each photo goes on to inversion and editing as soon as it is aligned (pipeline/stream.py)
    precision: str = "fp32"  # render precision of inversion and editing (generators/precision.py)

    def inversion_settings(self) -> InversionSettings:
        return InversionSettings(steps=self.steps, lr=self.lr, lambda_perceptual=self.lambda_perceptual,
                                 lambda_encoder=self.lambda_encoder, seed=self.seed, precision=self.precision)

    def edit_options(self, photos_dir: Path) -> EditOptions:
        return EditOptions(paste_back=True, mask=self.mask, animate=self.animate, photos_dir=photos_dir,
                           max_pixels=self.max_pixels, quality=self.quality, min_face_size=self.min_face_size,
                           per_face=self.per_face, workers=self.workers, precision=self.precision)

    def align_options(self) -> AlignOptions:
        return AlignOptions(size=self.size, largest=self.largest, max_pixels=self.max_pixels)


def validate_run_options(options: RunOptions, latent_dim: int) -> None:
    """Every option of `run`, checked before the first slow stage: a typo must not cost an alignment
    and an inversion before it is found."""
    options.align_options().validate()
    options.inversion_settings().validate()
    if options.perceptual not in PERCEPTUAL_CHOICES:
        raise UserError(f"--perceptual {options.perceptual!r}: expected auto, lpips or none")
    options.edit_options(Path(".")).validate()
    if not 1 <= options.num_directions <= latent_dim:
        raise UserError(f"-K {options.num_directions}: must be between 1 and the latent size {latent_dim}")
    if options.batch_size is not None and options.batch_size < 1:
        raise UserError(f"--batch-size {options.batch_size}: must be 1 or more, or auto")
    if not options.edits and options.recipe is None:
        raise UserError("no --edit or --recipe given")
    if options.recipe is not None:
        load_recipe(options.recipe)
    labels = load_labels(options.labels, options.num_directions) if options.labels is not None else {}
    for text in options.edits:
        parse_edit_for(text, options.num_directions, labels,
                       no_labels_hint="pass --labels FILE to name directions, e.g. {\"age\": {\"index\": 3}}")


def run_pipeline(
    photos: str,
    out: Path,
    generator: Path,
    encoder: Path | None,
    options: RunOptions,
    device: str = "auto",
    say: Callable[[str], None] = lambda message: None,
    shared_dir: Path | None = None,
    generator_label: str | None = None,
) -> dict:
    check_output_path(out)
    resolve_device(device)  # a wrong --device is said now, not after every photo has been aligned
    if photos != "-" and not Path(photos).exists():
        raise UserError(f"{photos}: no such file or folder; pass a photo, a folder of photos, or - for stdin")
    checkpoint = load_checkpoint(generator)
    if not checkpoint.can_render:
        raise UserError(f"{generator}: `run` needs a generator it can render with (StyleGAN2, StyleGAN or PGGAN), "
                        f"not {checkpoint.architecture}")
    require_invertible(checkpoint, generator)
    validate_run_options(options, checkpoint.latent_dim)
    checkpoint.require_precision(options.precision)
    if options.recipe is not None:
        check_recipe_for(load_recipe(options.recipe), str(options.recipe), checkpoint.sha256, checkpoint.num_latent_layers,
                         checkpoint.latent_dim)
    factorize_layers = format_layer_spec(parse_layer_spec(options.factorize_layers, checkpoint.num_latent_layers))
    perceptual, fallback = choose_perceptual(options.perceptual, options.vgg, shared_dir)  # invert says it, if it inverts
    demo = is_demo_generator(generator)
    if demo:
        say(f"warning: {DEMO_WARNING}")
    header = ReportHeader(
        generator=generator_label or str(generator), generator_sha256=checkpoint.sha256, generator_format=checkpoint.format,
        resolution=checkpoint.resolution, encoder=str(encoder) if encoder is not None else None,
        encoder_sha256=content_sha256(encoder) if encoder is not None and Path(encoder).is_file() else None,
        settings=_settings_shown(options, factorize_layers, perceptual, encoder is not None, fallback is not None), demo=demo)
    with claimed_output_folder(out):
        return _run_stages(photos, out, generator, checkpoint.sha256, encoder, options, factorize_layers, perceptual, device,
                           say, shared_dir, header)


def losses_in_words(steps: int, perceptual: str, lambda_perceptual: float, lambda_encoder: float, has_encoder: bool,
                    vgg_missing: bool) -> str:
    """What the inversion minimised, as a reader of the report would say it (not option names)."""
    if steps == 0:
        return "none: the codes are the encoder's output (no optimisation, --steps 0)" if has_encoder \
            else "none: the codes are the generator's mean code (no encoder, no optimisation)"
    terms = ["pixel difference (mean squared error)"]
    if perceptual == "lpips" and lambda_perceptual > 0:
        terms.append(f"LPIPS perceptual distance \u00d7 {lambda_perceptual:g}")
    if has_encoder and lambda_encoder > 0:
        terms.append(f"the encoder's domain regulariser ||w \u2212 E(G(w))||\u00b2 \u00d7 {lambda_encoder:g} (keeps codes editable)")
    text = " + ".join(terms)
    if perceptual != "lpips":
        text += "; no LPIPS: " + ("VGG16 weights not found (`sefa-edit models fetch vgg16` adds it)" if vgg_missing
                                  else "turned off (--perceptual none)")
    if not has_encoder:
        text += "; no encoder, so no domain regulariser (optimised from the mean code)"
    return text


def _settings_shown(options: RunOptions, factorize_layers: str, perceptual: str, has_encoder: bool = True,
                    vgg_missing: bool = False) -> dict[str, str]:
    """Every setting that changes what the report shows, as the user would write it."""
    return {
        "aligned size": f"{options.size} px", "inversion": f"{options.steps} steps, lr {options.lr}, seed {options.seed}"
                        + (f"; pivotal tuning up to {options.tuning.settings.steps} steps ({options.tuning.precision} deltas)"
                           if options.tuning is not None else ""),
        "losses": losses_in_words(options.steps, perceptual, options.lambda_perceptual, options.lambda_encoder, has_encoder,
                                  vgg_missing),
        "directions": f"top {options.num_directions} of layers {factorize_layers}" + (f", labels {options.labels}" if options.labels else ""),
        "edits": " ".join([f"--edit {text}" for text in options.edits] + ([f"--recipe {options.recipe}"] if options.recipe else [])),
        "paste-back": f"{options.mask} mask, " + ("one photo per face" if options.per_face else "every face per photo")
                      + f", faces under {options.min_face_size} px untouched, JPEG quality {options.quality}",
    }


def _run_stages(photos, out, generator, generator_sha256, encoder, options, factorize_layers, perceptual, device, say,
                shared_dir, header: ReportHeader) -> dict:
    if options.stream:
        return _run_streamed(photos, out, generator, generator_sha256, encoder, options, factorize_layers, perceptual, device,
                             say, shared_dir, header)
    times: dict[str, float] = {}

    start = time.perf_counter()
    align_summary = run_align(photos, out / "aligned", options.align_options(), emit=lambda record: None, say=say, exclude=out,
                              workers=options.workers)
    times["align"] = time.perf_counter() - start
    say(summary_line(align_summary, out / "aligned"))
    invert_summary = {"inverted": 0, "skipped": 0, "failed": 0, "unreadable": 0}
    edit_summary = {"edited": 0, "skipped": 0, "failed": 0}
    directions_dir = None
    if align_summary.crops == 0:
        say(f"{photos}: no face was aligned, nothing to edit (see {out / 'aligned' / 'failures.jsonl'})")
    else:
        start = time.perf_counter()
        invert_summary = run_invert(str(out / "aligned"), out / "codes", generator, encoder, options.inversion_settings(), options.perceptual,
                                    options.vgg, options.batch_size, device, say=say, shared_dir=shared_dir, ray=options.ray,
                                    plan=say_plan(say, align_summary.photos, options.steps, str(resolve_device(device))),
                                    tuning=options.tuning)
        times["invert"] = time.perf_counter() - start

        start = time.perf_counter()
        directions_file = ensure_directions(out, generator, generator_sha256, factorize_layers, options.num_directions,
                                            options.labels, PreviewSettings() if options.preview else SMALL_PREVIEW, device,
                                            any_preview_will_do=not options.preview,
                                            describe=DescribeSettings() if options.preview else None)
        directions_dir = directions_file.parent
        times["factorize"] = time.perf_counter() - start

        start = time.perf_counter()
        edit_options = options.edit_options(out / "photos")
        edit_summary = run_edit(str(out / "codes"), out / "edits", generator, directions_file, list(options.edits),
                                edit_options, device, say=say, recipe_path=options.recipe,
                                group_names=_photo_folders(photos, out))
        times["edit"] = time.perf_counter() - start
    return _finish(photos, out, header, align_summary, invert_summary, edit_summary,
                   directions_dir if align_summary.crops else None, times)


def _photo_folders(photos: str, out: Path) -> dict[Path, str] | None:
    """The folder under OUT/photos of every photo of the run, named from all of them (as the streamed
    schedule names them before knowing which have faces); None for stdin, which cannot be read twice."""
    if photos == "-":
        return None
    try:
        return photo_folder_names([item.path for item in list_inputs(photos, None, exclude=out)])
    except (UserError, ValueError):
        return None


def _run_streamed(photos, out, generator, generator_sha256, encoder, options, factorize_layers, perceptual, device, say,
                  shared_dir, header: ReportHeader) -> dict:
    """Every stage at once, photo by photo (`pipeline/stream.py`)."""
    preview = PreviewSettings() if options.preview else SMALL_PREVIEW
    notice = choose_perceptual(options.perceptual, options.vgg, shared_dir)[1]

    def directions() -> Path:
        return ensure_directions(out, generator, generator_sha256, factorize_layers, options.num_directions, options.labels,
                                 preview, device, any_preview_will_do=not options.preview,
                                 describe=DescribeSettings() if options.preview else None)

    streamer = Streamer(photos, out, generator, encoder, options, perceptual, resolve_device(device), say, shared_dir,
                        options.workers, directions, notice)
    outcome = streamer.go()
    say(summary_line(outcome.align, out / "aligned"))
    if outcome.align.crops == 0:
        say(f"{photos}: no face was aligned, nothing to edit (see {out / 'aligned' / 'failures.jsonl'})")
    directions_dir = outcome.directions_file.parent if outcome.directions_file is not None else None
    if directions_dir is None and outcome.align.crops:  # every face failed before editing: the page still has its directions
        directions_dir = directions().parent
    return _finish(photos, out, header, outcome.align, outcome.invert, outcome.edit, directions_dir,
                   {"stream": outcome.seconds})


def _finish(photos, out, header: ReportHeader, align_summary, invert_summary, edit_summary, directions_dir: Path | None,
            times: dict[str, float]) -> dict:
    """The report, and what `run` prints as its result."""
    start = time.perf_counter()
    if directions_dir is not None:
        header = replace(header, directions_page=directions_dir / "index.html")
    index = write_index(out, title=f"sefa-edit run of {photos}", header=header)
    times["report"] = time.perf_counter() - start
    return {
        "index": str(index.resolve()),
        "faces": align_summary.crops,
        "photos": align_summary.photos,
        # done by this run, and found done by an earlier one: a no-op rerun says 0 and 36, not 36
        "inverted": invert_summary["inverted"], "already_inverted": invert_summary["skipped"],
        "edited": edit_summary["edited"], "already_edited": edit_summary["skipped"],
        "failed": align_summary.unreadable + invert_summary["failed"] + invert_summary["unreadable"] + edit_summary["failed"],
        "seconds": {k: round(v, 2) for k, v in times.items()},
    }


def ensure_directions(out: Path, generator: Path, generator_sha256: str, layers_text: str, num_directions: int,
                      labels: Path | None = None, preview: PreviewSettings | None = None, device: str = "auto",
                      any_preview_will_do: bool = False, describe: DescribeSettings | None = None) -> Path:
    """OUT/directions/<sha256[:16]>_<layers>/directions.npz, computed once per generator, layers and K,
    and redone when `preview` asks for grids other than the ones there (`any_preview_will_do`: grids of any
    settings are kept, so the small default does not replace the full grids of an earlier --preview);
    `run` and `ui` share it. `describe`: also measure what each direction does (redone when missing)."""
    directions_dir = out / "directions" / f"{generator_sha256[:16]}_{layers_text.replace(',', '+')}"
    directions_file = directions_dir / DIRECTIONS_NAME
    cached = directions_file.is_file() and _count(directions_file) == num_directions
    made_with = previews_made_with(directions_dir)
    if preview is not None and (made_with is None or (made_with != asdict(preview) and not any_preview_will_do)):
        cached = False
    if describe is not None and not (directions_dir / DESCRIPTION_NAME).is_file():
        cached = False
    if not cached:
        run_factorize(generator, directions_dir, layers_text, num_directions, labels, preview, device, describe=describe)
    elif labels is not None:
        store_labels(labels, directions_dir)
    return directions_file


def _count(directions_file: Path) -> int:
    """How many directions a cached file holds (a cache made with another -K is recomputed)."""
    try:
        return len(load_directions(directions_file).directions)
    except UserError:
        return -1
