"""`sefa-edit`: the command-line face of the four stages (align, invert, factorize, edit) and `run`.

Each command parses options, calls its stage, prints machine-readable JSON lines on stdout and
human messages on stderr. Exit status, the same rule for every command:
  0    the batch finished and produced output (items that could not be used are listed and skipped);
  1    the batch finished but produced nothing (every item failed, or there was nothing to do);
  2    a usage mistake, or a problem with the whole batch (generator, directions, OUT, full disk):
       typer's usage message or one `error: ...` line;
  130  interrupted (Ctrl-C): finished outputs are kept and a rerun continues.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from common import interrupt
from common.demo_models import DEMO_ENCODER, DEMO_GENERATOR, DEMO_WARNING
from common.errors import UserError
from common.output_folder import check_output_path
from common.validate import require_finite

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Edit real face photos with StyleGAN + SeFa.")
models_app = typer.Typer(no_args_is_help=True, help="Published models by name, and what a checkpoint holds.")
app.add_typer(models_app, name="models")

INTERRUPTED = "interrupted; finished outputs are kept, rerun to continue"
DEVICE_HELP = "auto (CUDA when a device is visible, else CPU), cpu or cuda; checked before any work."
PRECISION_HELP = ("Render precision: fp32 (exact), or bf16 / fp16 in the highest-resolution blocks as NVIDIA's mixed "
                  "precision (faster on a recent GPU, slower on a CPU; StyleGAN2 generators).")
GENERATOR_HELP = "Generator: a name from `models list` or a file (NVIDIA .pkl, rosinality .pt, genforce .pth, pSp/e4e .pt)."
VGG_HELP = "torchvision VGG16 weights for LPIPS (vgg16-397923af.pth; default: the cache, torch hub, ../shared)."
MAX_PIXELS_HELP = "Largest photo accepted, in pixels (read from the file header before decoding)."


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sefa-edit")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"sefa-edit {_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", metavar="", callback=_print_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Edit real face photos with StyleGAN + SeFa."""


def _batch_size(text: str) -> int | None:
    """`auto` (None: chosen for the device) or a positive integer."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"--batch-size {text!r}: expected a positive integer or auto") from None
    if value < 1:
        raise UserError(f"--batch-size {value}: must be 1 or more, or auto")
    return value


def _finish(produced: int) -> None:
    """The shared exit rule: a batch that produced nothing exits 1."""
    if produced == 0:
        raise typer.Exit(1)


def _emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
    sys.stdout.flush()


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _weights(path: Path) -> Path:
    """A published model's name (see `models list`) stands for its cached file; existing paths pass through,
    anything else is an error saying it is neither."""
    from common.downloads import resolve_weights

    return resolve_weights(path)


def _generator_and_encoder(generator: Path | str, encoder: Path | None) -> tuple[Path, Path | None]:
    """-g, and -e or else the encoder published with the generator (`-g idinvert-ffhq-256` loads both; a pSp/e4e
    file holds both)."""
    from common.downloads import companion_encoder

    generator_path = _weights(Path(generator))
    if encoder is not None:
        return generator_path, _weights(encoder)
    companion = companion_encoder(str(generator), generator_path)
    if companion is None:
        from generators.checkpoint import load_checkpoint

        inside = load_checkpoint(generator_path).extra.get("encoder") if generator_path.is_file() else None
        if inside is None:
            return generator_path, None
        companion = generator_path, f"using the {inside} encoder stored in {generator_path.name} with its generator"
    _say(companion[1])
    return generator_path, companion[0]


def _generator_or_demo(generator: str | None, encoder: Path | None) -> tuple[Path, Path | None]:
    """-g/-e as given (with the published encoder), or the bundled demo pair when no -g is given."""
    if generator:
        return _generator_and_encoder(generator, encoder)
    if encoder is not None:
        return DEMO_GENERATOR, _weights(encoder)
    return DEMO_GENERATOR, DEMO_ENCODER if DEMO_ENCODER.is_file() else None


@models_app.command("info")
def models_info(
    checkpoint: Path = typer.Argument(..., metavar="NAME|FILE", help="A generator (NVIDIA .pkl, rosinality .pt, genforce .pth, BigGAN .bin, pSp/e4e .pt) or an encoder (ours, IDInvert's), by file or model name."),
    as_json: bool = typer.Option(False, "--json", metavar="", help="Print one JSON object instead of a table."),
) -> None:
    """Format, architecture, resolution, W+ layers and parameter count of a generator; codes, input size and parameters of an encoder."""
    from generators.checkpoint import load_checkpoint
    from inversion.encoder import read_encoder

    path = _weights(checkpoint)
    try:
        info = load_checkpoint(path).describe()
    except UserError as not_a_generator:
        try:  # an encoder file: described as one (a pSp/e4e file holds both and is described as a generator above)
            info = {"path": str(path), **read_encoder(path).describe()}
        except UserError:
            raise not_a_generator from None
    if as_json:
        _emit(info)
        return
    width = max(len(k) for k in info)
    for key, value in info.items():
        typer.echo(f"{key:<{width}}  {value}")


@models_app.command("fetch")
def models_fetch(
    name: str = typer.Argument(..., metavar="NAME", help="A name from `models list` (e.g. idinvert-ffhq-256, stylegan-ffhq-1024, vgg16)."),
) -> None:
    """Download published weights once into the cache ($SEFA_EDIT_CACHE or ~/.cache/sefa-edit); a generator published
    with its encoder brings the encoder too.

    Files with a published checksum (the VGG16 weights) are checked against it. For the others no checksum is
    published: the first download's sha256 is recorded beside the file, and every later use is checked against
    that record (trust on first use)."""
    from common.downloads import PUBLISHED, fetch

    path = fetch(name)
    _emit({"name": name, "path": str(path)})
    companion = PUBLISHED[name].encoder
    if companion is not None:
        _emit({"name": companion, "path": str(fetch(companion))})


@models_app.command("list")
def models_list(
    as_json: bool = typer.Option(False, "--json", metavar="", help="One JSON object per model instead of a table."),
) -> None:
    """The published models -g/-e accept by name: architecture, resolution, source, and whether it is cached."""
    from common.downloads import PUBLISHED, cache_dir

    if not as_json:
        typer.echo(_model_row("NAME", "KIND", "ARCHITECTURE", "SIZE", "CACHED", "SOURCE"))
    for item in PUBLISHED.values():
        cached = any((cache_dir() / location.filename).is_file() for location in item.locations)
        row = {"name": item.name, "kind": item.kind, "architecture": item.architecture, "resolution": item.resolution,
               "source": item.source, "encoder": item.encoder, "cached": cached, "description": item.description}
        if as_json:
            _emit(row)
            continue
        extra = f"  (+ encoder {item.encoder})" if item.encoder else ""
        typer.echo(_model_row(item.name, item.kind, item.architecture, str(item.resolution or ""), "yes" if cached else "",
                              item.source + extra))


def _model_row(name: str, kind: str, architecture: str, size: str, cached: str, source: str) -> str:
    """One row of `models list`'s table (its header row too)."""
    return f"{name:<34} {kind:<9} {architecture:<16} {size:>5}  {cached:<6}  {source}"


@app.command()
def factorize(
    checkpoint: Path = typer.Argument(..., metavar="NAME|FILE", help=GENERATOR_HELP),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Output folder for directions.npz, spectrum.png, index.html."),
    layers: str = typer.Option("all", "--layers", "-l", metavar="LAYERS", help="Layers whose latent weights are factorised: all, 0-1, 2-5, 6-, 0,3,5."),
    num_directions: int = typer.Option(5, "-K", "--num-directions", metavar="K", help="How many top directions to keep."),
    labels: Optional[Path] = typer.Option(None, "--labels", metavar="FILE", help="JSON naming directions: {\"age\": {\"index\": 3, \"sign\": -1}}."),
    preview: bool = typer.Option(False, "--preview", metavar="", help="Render a grid of samples x strengths per direction into the HTML page (cached)."),
    num_samples: int = typer.Option(5, "-N", "--num-samples", metavar="N", help="Preview rows: random samples."),
    distance: float = typer.Option(3.0, "--distance", metavar="D", help="Preview strengths run from -distance to +distance."),
    steps: int = typer.Option(7, "--steps", metavar="N", help="Preview columns: strengths."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed of the preview samples."),
    describe: bool = typer.Option(False, "--describe", metavar="", help="Measure what each direction does (pose, mouth, eyes, framing, colours) and suggest a label."),
    as_json: bool = typer.Option(False, "--json", metavar="", help="With --describe: print each direction's measures as a JSON line."),
    accept_labels: bool = typer.Option(False, "--accept-labels", metavar="", help="With --describe: write confident suggestions to labels.json (never over your own labels)."),
    method: str = typer.Option("sefa", "--method", metavar="sefa|ganspace", help="sefa (closed form, from the weights) or ganspace (PCA of sampled W, to compare with SeFa)."),
    samples: int = typer.Option(100_000, "--samples", metavar="N", help="--method ganspace: how many z are mapped to W (seeded by --seed)."),
    imports: Optional[list[Path]] = typer.Option(None, "--from", metavar="FILE", help="Import another method's directions instead: an InterFaceGAN boundary (.npy) or GANSpace components (.npz); repeat to gather several."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="auto, cpu or cuda (previews, --describe, ganspace)."),
) -> None:
    """SeFa: closed-form semantic directions from the generator's weights (no data, no training); or GANSpace's, or published ones."""
    from factorization.describe import DescribeSettings
    from factorization.preview import PreviewSettings
    from factorization.stage import run_factorize

    require_finite("--distance", distance)
    settings = PreviewSettings(num_samples=num_samples, distance=distance, steps=steps, seed=seed) if preview else None
    if settings is not None and (num_samples < 1 or steps < 2 or distance <= 0):
        raise UserError("--preview needs -N >= 1, --steps >= 2 and --distance > 0")
    if distance <= 0:
        raise UserError(f"--distance {distance}: must be more than 0")
    if as_json and not describe:
        raise UserError("--json prints what --describe measured; add --describe")
    description = DescribeSettings(distance=distance, seed=seed) if describe else None
    result = run_factorize(_weights(checkpoint), out, layers, num_directions, labels, settings, device,
                           describe=description, accept_labels=accept_labels, method=method, samples=samples, seed=seed,
                           imports=list(imports or []), say=_say)
    if as_json:
        for row in result.descriptions or []:
            typer.echo(json.dumps(row, sort_keys=True))
        _say(f"{result.num_directions} directions described -> {out}")
        return
    for row in result.descriptions or []:
        suggested = row.get("suggested_label")
        _say(f"direction {row['direction']}: " + (row.get("note") or (f"{suggested['label']} (confidence {suggested['confidence']:.0%})"
                                                                        if suggested else "no clear measure")))
    for name, index in (result.accepted or {}).items():
        _say(f"labels.json: {name} = direction {index}")
    _emit(
        {
            "directions": str(result.directions_path),
            "num_directions": result.num_directions,
            "layers": result.layers,
            "report": str(result.report_path),
            "seconds": round(result.seconds, 6),
        }
    )
    what = {"ganspace": "GANSpace components", "sefa": "directions"}.get(method, "directions") if not imports else "imported directions"
    _say(f"{result.num_directions} {what} over layers {result.layers} in {result.seconds * 1000:.1f} ms -> {out}")


LOCAL_WORKERS_HELP = "Processes working in parallel (default: one per usable core); the outputs are the same for any N."


@app.command()
def align(
    input: str = typer.Argument(..., metavar="PHOTOS", help="A photo, a folder of photos (recursive), or - for paths / JSON lines on stdin."),
    out: Path = typer.Argument(..., metavar="OUT", help="Output folder for aligned crops and their sidecar JSON."),
    size: int = typer.Option(256, "--size", metavar="PX", help="Crop size: 256, 512 or 1024."),
    detector: str = typer.Option("hog", "--detector", metavar="hog|cnn", help="hog (fast) or cnn (dlib's mmod detector: slower, finds more)."),
    landmarks: str = typer.Option("68", "--landmarks", metavar="68|5", help="68 (exact FFHQ definition) or 5 (faster; mouth estimated)."),
    largest: bool = typer.Option(False, "--largest", metavar="", help="Keep only the largest face of each photo."),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Redo photos that an earlier run finished."),
    upsample: int = typer.Option(1, "--upsample", metavar="N", help="Detector upsampling: 1 finds faces down to ~40 px, 0 is faster."),
    min_score: float = typer.Option(0.2, "--min-score", metavar="SCORE", help="Detector score below which a hit is not taken for a face."),
    max_pixels: int = typer.Option(100_000_000, "--max-pixels", metavar="N", help=MAX_PIXELS_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", metavar="N", help=LOCAL_WORKERS_HELP),
) -> None:
    """Detect faces, fit landmarks and cut FFHQ-aligned crops (with the transform kept for paste-back)."""
    from alignment.stage import AlignOptions, run_align, summary_line
    from common.process_pool import resolve_workers

    require_finite("--min-score", min_score)
    options = AlignOptions(size=size, detector=detector, landmarks=landmarks, largest=largest, overwrite=overwrite, upsample=upsample,
                           min_score=min_score, max_pixels=max_pixels)
    summary = run_align(input, out, options, emit=_emit, say=_say, workers=resolve_workers(workers))
    _say(summary_line(summary, out))
    _finish(summary.crops)


TUNE_HELP = ("Pivotal tuning (PTI) after inversion: up to N steps tuning a copy of the generator around each face's code, "
             "stored beside it (0: off).")
TUNE_PRECISION_HELP = "How the tuned weights are stored: fp16 (half the disk) or fp32."


TUNE_PER_HELP = "photo: one tuned generator shared by a photo's faces (PTI's multi-ID mode, less disk); face: one per face."


def _tuning(steps: int, precision: str, per: str):
    """--tune / --tune-precision / --tune-per as the stages take them (None: no tuning)."""
    from inversion.pivotal_tuning import TuningSettings
    from inversion.worker import Tuning

    if precision not in ("fp16", "fp32"):
        raise UserError(f"--tune-precision {precision!r}: expected fp16 or fp32")
    if per not in ("photo", "face"):
        raise UserError(f"--tune-per {per!r}: expected photo or face")
    settings = TuningSettings(steps=steps)
    settings.validate()
    return Tuning(settings, precision, per) if steps > 0 else None


RAY_HELP = "Invert on Ray workers: auto (this machine) or a cluster address (ray://HOST:10001); OUT must be on storage every worker sees."
WORKERS_HELP = "Ray workers (default: one per GPU with --gpus-per-worker, else one per 2 CPUs)."


def _ray_settings(address: str | None, workers: int | None, gpus_per_worker: float):
    if address is None:
        given = [flag for flag, value in (("--workers", workers is not None), ("--gpus-per-worker", bool(gpus_per_worker))) if value]
        if given:
            raise UserError(f"{' and '.join(given)} {'go' if len(given) > 1 else 'goes'} with --ray auto|ADDRESS")
        return None
    from inversion.ray_pool import RaySettings

    settings = RaySettings(address, workers, gpus_per_worker)
    settings.validate()
    return settings


@app.command()
def invert(
    aligned: str = typer.Argument(..., metavar="ALIGNED", help="Folder of aligned crops (from `align`), one crop, or - for align's JSON lines."),
    out: Path = typer.Argument(..., metavar="OUT", help="Output folder for codes (.npy), reconstructions and metrics."),
    generator: Path = typer.Option(..., "--generator", "-g", metavar="NAME|FILE", help=GENERATOR_HELP),
    encoder: Optional[Path] = typer.Option(None, "--encoder", "-e", metavar="NAME|FILE", help="Domain-guided encoder: from train-encoder, IDInvert's styleganinv_*_encoder.pth, or a name (default: the one published with -g; without any, start from mean W)."),
    steps: int = typer.Option(100, "--steps", metavar="N", help="Optimisation steps per image (0: encoder output only)."),
    lr: float = typer.Option(0.01, "--lr", metavar="RATE", help="Adam learning rate on the W+ code."),
    lambda_perceptual: float = typer.Option(1.0, "--lambda-perceptual", metavar="WEIGHT", help="Weight of the LPIPS term."),
    lambda_encoder: float = typer.Option(2.0, "--lambda-encoder", metavar="WEIGHT", help="Weight of the domain regulariser ||w - E(G(w))||^2."),
    perceptual: str = typer.Option("auto", "--perceptual", metavar="auto|lpips|none", help="auto (LPIPS when VGG16 weights are found, else pixel loss, with a warning), lpips or none."),
    vgg: Optional[Path] = typer.Option(None, "--vgg", metavar="FILE", help=VGG_HELP),
    batch_size: str = typer.Option("auto", "--batch-size", metavar="N|auto", help="Crops optimised together: auto (1 on a CPU; on a GPU as many as fit in its free memory, measured) or a number."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help=DEVICE_HELP),
    precision: str = typer.Option("fp32", "--precision", metavar="fp32|bf16|fp16", help=PRECISION_HELP),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Random seed of the optimisation (the same seed and inputs give the same codes)."),
    space: str = typer.Option("w+", "--space", metavar="w+|w", help="w+ (a code per layer, editable in depth) or w (one shared code)."),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Redo crops that an earlier run finished."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="auto|ADDRESS", help=RAY_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", metavar="N", help=WORKERS_HELP),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", metavar="N", help="GPUs reserved per Ray worker (e.g. 1)."),
    tune_steps: int = typer.Option(0, "--tune", metavar="N", help=TUNE_HELP),
    tune_precision: str = typer.Option("fp16", "--tune-precision", metavar="fp16|fp32", help=TUNE_PRECISION_HELP),
    tune_per: str = typer.Option("photo", "--tune-per", metavar="photo|face", help=TUNE_PER_HELP),
) -> None:
    """In-domain GAN inversion: encoder start + regularised optimisation of each crop's W+ code (+ pivotal tuning)."""
    from inversion.optimize import InversionSettings
    from inversion.stage import run_invert

    settings = InversionSettings(steps=steps, lr=lr, lambda_perceptual=lambda_perceptual, lambda_encoder=lambda_encoder, seed=seed,
                                 space=space, precision=precision)
    settings.validate()
    generator_path, encoder_path = _generator_and_encoder(generator, encoder)
    summary = run_invert(aligned, out, generator_path, encoder_path, settings, perceptual, vgg, _batch_size(batch_size), device,
                         overwrite, emit=_emit, say=_say, shared_dir=_shared_dir(),
                         ray=_ray_settings(ray, workers, gpus_per_worker), tuning=_tuning(tune_steps, tune_precision, tune_per))
    _say(f"inverted {summary['inverted']} crop(s), {summary['skipped']} already done, {summary['failed']} failed, "
         f"{summary['unreadable']} unreadable (metrics in {out / 'metrics.jsonl'})")
    _finish(summary["inverted"] + summary["skipped"])


PER_FACE_HELP = "One pasted photo per face (only that face edited) instead of one per photo with every face edited."
MIN_FACE_HELP = "Faces whose aligned square is smaller than this many photo pixels are left untouched (and listed); 0 pastes all."
QUALITY_HELP = "JPEG quality of pasted-back photos from JPEG sources (PNG and others give lossless PNG, alpha kept)."


@app.command()
def edit(
    codes: str = typer.Argument(..., metavar="CODES", help="Folder of codes from `invert`, one .npy, or - for invert's JSON lines."),
    out: Path = typer.Argument(..., metavar="OUT", help="Output folder: one sub-folder of edits per input."),
    generator: Path = typer.Option(..., "--generator", "-g", metavar="NAME|FILE", help="The generator the codes were inverted with (name or file)."),
    directions: Optional[Path] = typer.Option(None, "--directions", "-d", metavar="FILE", help="directions.npz from `factorize` (labels.json beside it), an InterFaceGAN boundary .npy or GANSpace components .npz; needed by --edit."),
    edits: Optional[List[str]] = typer.Option(None, "--edit", metavar="SPEC", help="DIRECTION=STRENGTHS: 0=-3:3:7, age=+2, 1=-2,0,2 (repeatable)."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", metavar="FILE", help="A recipe from `sefa-edit ui` (several moves at once), applied to every code."),
    layers: Optional[str] = typer.Option(None, "--layers", "-l", metavar="LAYERS", help="Layers to move (default: the directions' own)."),
    keep: Optional[str] = typer.Option(None, "--keep", metavar="DIRS", help="Conditional edit: move orthogonally to these directions (labels, indices or .npy files, comma-separated), e.g. yaw,age."),
    paste_back: bool = typer.Option(False, "--paste-back", metavar="", help="Also write each original photo with its faces edited (OUT/photos)."),
    mask: str = typer.Option("face", "--mask", metavar="face|crop", help="Paste-back region: face (landmark hull) or crop (the whole aligned square)."),
    per_face: bool = typer.Option(False, "--per-face", metavar="", help=PER_FACE_HELP),
    min_face_size: int = typer.Option(64, "--min-face-size", metavar="PX", help=MIN_FACE_HELP),
    quality: int = typer.Option(95, "--quality", metavar="1-100", help=QUALITY_HELP),
    animate: Optional[str] = typer.Option(None, "--animate", metavar="gif|mp4", help="Also write a sweep per edit (of the crop, and of the photo with --paste-back): gif or mp4 (H.264)."),
    force: bool = typer.Option(False, "--force", metavar="", help="Use directions computed for another checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", metavar="", help="Redo inputs that an earlier run finished."),
    max_pixels: int = typer.Option(100_000_000, "--max-pixels", metavar="N", help=MAX_PIXELS_HELP + " Applies to paste-back."),
    workers: Optional[int] = typer.Option(None, "--workers", metavar="N", help=LOCAL_WORKERS_HELP + " They write the images and paste photos back; rendering stays here."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help=DEVICE_HELP),
    precision: str = typer.Option("fp32", "--precision", metavar="fp32|bf16|fp16", help=PRECISION_HELP),
) -> None:
    """Move codes along SeFa directions on chosen layers and resynthesise; grids, sweeps, pasted-back photos."""
    from common.process_pool import resolve_workers
    from editing.stage import EditOptions, run_edit

    kept = tuple(part.strip() for part in (keep or "").split(",") if part.strip())
    options = EditOptions(layers=layers, paste_back=paste_back, mask=mask, animate=animate, force=force, overwrite=overwrite,
                          max_pixels=max_pixels, quality=quality, min_face_size=min_face_size, per_face=per_face, keep=kept,
                          workers=resolve_workers(workers), precision=precision)
    summary = run_edit(codes, out, _weights(generator), directions, list(edits or []), options, device, emit=_emit, say=_say,
                       recipe_path=recipe)
    if summary["edited"] or summary["skipped"] or summary["failed"]:
        _say(f"edited {summary['edited']} code(s), {summary['skipped']} already done, {summary['failed']} failed")
    _finish(summary["edited"] + summary["skipped"])


@app.command()
def run(
    photos: str = typer.Argument(..., metavar="PHOTOS", help="A photo, a folder of photos, or - for a list on stdin."),
    out: Path = typer.Argument(..., metavar="OUT", help="Output folder (aligned/, codes/, directions/, edits/, photos/, index.html)."),
    generator: Optional[str] = typer.Option(None, "--generator", "-g", metavar="NAME|FILE", help="Checkpoint file or model name (default: the bundled example)."),
    encoder: Optional[Path] = typer.Option(None, "--encoder", "-e", metavar="NAME|FILE", help="Encoder for this generator (default: the one published with -g, or the bundled one for the example)."),
    edits: Optional[List[str]] = typer.Option(None, "--edit", metavar="SPEC", help="DIRECTION=STRENGTHS, repeatable (default: directions 0-2 at -3..3)."),
    layers: str = typer.Option("all", "--layers", "-l", metavar="LAYERS", help="Layers to factorise (and to move)."),
    num_directions: int = typer.Option(5, "-K", "--num-directions", metavar="K", help="How many top SeFa directions to compute (--edit picks among them)."),
    labels: Optional[Path] = typer.Option(None, "--labels", metavar="FILE", help="Labels file naming directions (for --edit age=+2)."),
    size: int = typer.Option(256, "--size", metavar="PX", help="Aligned crop size."),
    steps: int = typer.Option(100, "--steps", metavar="N", help="Inversion optimisation steps."),
    batch_size: str = typer.Option("auto", "--batch-size", metavar="N|auto", help="Crops inverted together: auto (1 on a CPU; on a GPU as many as fit in its free memory, measured) or a number."),
    perceptual: str = typer.Option("auto", "--perceptual", metavar="auto|lpips|none", help="auto (LPIPS when VGG16 weights are found, else pixel loss, with a warning), lpips or none."),
    vgg: Optional[Path] = typer.Option(None, "--vgg", metavar="FILE", help=VGG_HELP),
    largest: bool = typer.Option(False, "--largest", metavar="", help="Only the largest face of each photo."),
    mask: str = typer.Option("face", "--mask", metavar="face|crop", help="Paste-back region: face or crop."),
    per_face: bool = typer.Option(False, "--per-face", metavar="", help=PER_FACE_HELP),
    min_face_size: int = typer.Option(64, "--min-face-size", metavar="PX", help=MIN_FACE_HELP),
    quality: int = typer.Option(95, "--quality", metavar="1-100", help=QUALITY_HELP),
    animate: Optional[str] = typer.Option(None, "--animate", metavar="gif|mp4", help="Also write sweeps of the crops and the photos: gif or mp4 (H.264)."),
    preview: bool = typer.Option(False, "--preview", metavar="", help="Render the directions page's full grids: samples x strengths per direction, to pick and label directions."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", metavar="FILE", help="A recipe from `sefa-edit ui`: its moves together on every face (instead of the default edits)."),
    max_pixels: int = typer.Option(100_000_000, "--max-pixels", metavar="N", help=MAX_PIXELS_HELP),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help=DEVICE_HELP),
    precision: str = typer.Option("fp32", "--precision", metavar="fp32|bf16|fp16", help=PRECISION_HELP),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="auto|ADDRESS", help=RAY_HELP + " Alignment and paste-back then run as Ray tasks."),
    workers: Optional[int] = typer.Option(None, "--workers", metavar="N", help="Local processes aligning, writing images and pasting back (default: one per usable core); with --ray, the Ray inversion workers (default: one per GPU with --gpus-per-worker, else one per 2 CPUs)."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", metavar="N", help="GPUs reserved per Ray worker (e.g. 1)."),
    stream: bool = typer.Option(True, "--stream/--no-stream", metavar="", help="Stream: invert each photo's faces as soon as it is aligned, edit them as soon as they are inverted (default); --no-stream runs the stages one after the other over the whole folder."),
    tune_steps: int = typer.Option(0, "--tune", metavar="N", help=TUNE_HELP),
    tune_precision: str = typer.Option("fp16", "--tune-precision", metavar="fp16|fp32", help=TUNE_PRECISION_HELP),
    tune_per: str = typer.Option("photo", "--tune-per", metavar="photo|face", help=TUNE_PER_HELP),
) -> None:
    """The whole job: align -> invert -> factorize (cached) -> edit, with paste-back and an HTML report."""
    from common.process_pool import resolve_workers
    from pipeline.run import RunOptions, run_pipeline

    generator_path, encoder = _generator_or_demo(generator, encoder)
    options = RunOptions(
        edits=tuple(edits) if edits else () if recipe is not None else RunOptions.edits, recipe=recipe, factorize_layers=layers, num_directions=num_directions,
        labels=labels, size=size, steps=steps, batch_size=_batch_size(batch_size), perceptual=perceptual, vgg=vgg, largest=largest,
        mask=mask, animate=animate, max_pixels=max_pixels, quality=quality, min_face_size=min_face_size, per_face=per_face,
        preview=preview, ray=_ray_settings(ray, workers if ray is not None else None, gpus_per_worker),
        tuning=_tuning(tune_steps, tune_precision, tune_per), stream=stream,
        workers=resolve_workers(workers if ray is None else None), precision=precision,
    )
    result = run_pipeline(photos, out, generator_path, encoder, options, device, say=_say, shared_dir=_shared_dir(),
                          generator_label=generator or "the bundled demo generator")
    _emit(result)
    _say(f"done: {result['index']}")
    _finish(result["edited"] + result["already_edited"])


@app.command()
def sample(
    generator: Path = typer.Argument(..., metavar="NAME|FILE", help="Generator that renders (StyleGAN2, StyleGAN3, StyleGAN, PGGAN, BigGAN, IDInvert's): a name or a file."),
    out: Path = typer.Argument(..., metavar="OUT", help="Output folder: seed<N>.npy codes, seed<N>.png images, records for `edit`."),
    count: int = typer.Option(8, "-n", "--count", metavar="N", help="How many samples."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="First seed; sample k uses seed + k."),
    truncation: Optional[float] = typer.Option(None, "--truncation", metavar="PSI", help="Truncation psi (e.g. 0.7); default none."),
    truncation_cutoff: Optional[int] = typer.Option(None, "--truncation-cutoff", metavar="N", help="Code entries truncated (default: 8 for StyleGAN, all for StyleGAN2)."),
    batch_size: int = typer.Option(8, "--batch-size", metavar="N", help="Images rendered together."),
    class_index: Optional[int] = typer.Option(None, "--class", metavar="K", help="Class label K of a conditional generator (NVIDIA c_dim > 0)."),
    translate: str = typer.Option("0,0", "--translate", metavar="X,Y", help="StyleGAN3: shift every image by X,Y half-image units (gen_images.py --translate); kept for `edit`."),
    rotate: float = typer.Option(0.0, "--rotate", metavar="DEG", help="StyleGAN3: rotate every image by DEG degrees (gen_images.py --rotate); kept for `edit`."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help=DEVICE_HELP),
    precision: str = typer.Option("fp32", "--precision", metavar="fp32|bf16|fp16", help=PRECISION_HELP),
) -> None:
    """Random codes and their images, which `edit` accepts: how SeFa edits samples, and the way to edit with PGGAN."""
    from editing.sample import SampleSettings, parse_translate, run_sample
    from generators.interface import InputTransform

    settings = SampleSettings(count=count, seed=seed, truncation_psi=truncation, truncation_cutoff=truncation_cutoff,
                              batch_size=batch_size, class_index=class_index,
                              transform=InputTransform(parse_translate(translate), rotate), precision=precision)
    settings.validate()
    written = run_sample(_weights(generator), out, settings, device, emit=_emit, say=_say)
    _say(f"wrote {written} sample(s) to {out}")
    _finish(written)


@app.command()
def ui(
    out: Path = typer.Argument(Path("sefa-edit-ui"), metavar="OUT", help="Working folder: aligned crops, codes, directions, uploads, saved photos and recipes (an existing `run` OUT works)."),
    generator: Optional[str] = typer.Option(None, "--generator", "-g", metavar="NAME|FILE", help="Checkpoint file or model name (default: the bundled demo)."),
    encoder: Optional[Path] = typer.Option(None, "--encoder", "-e", metavar="NAME|FILE", help="Encoder (default: the one published with -g, or the bundled one)."),
    directions: Optional[Path] = typer.Option(None, "--directions", "-d", metavar="FILE", help="directions.npz, an InterFaceGAN boundary .npy or GANSpace components .npz (default: SeFa's, computed into OUT, as `run` does)."),
    num_directions: int = typer.Option(10, "-K", "--num-directions", metavar="K", help="Sliders (directions computed when -d is not given)."),
    layers: str = typer.Option("all", "--layers", "-l", metavar="LAYERS", help="Layers to factorise when -d is not given."),
    steps: int = typer.Option(100, "--steps", metavar="N", help="Default inversion steps (settable in the page)."),
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS", help="Address to serve on (127.0.0.1: this machine only)."),
    port: Optional[int] = typer.Option(None, "--port", metavar="PORT", help="Port (default: a free one, printed)."),
    share: bool = typer.Option(False, "--share", metavar="", help="Also publish through a public gradio.live link (off unless asked)."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help=DEVICE_HELP),
    precision: str = typer.Option("fp32", "--precision", metavar="fp32|bf16|fp16", help=PRECISION_HELP),
) -> None:
    """The interactive editor: sliders over your own photo, in a local web page (Gradio)."""
    from pipeline.editor_session import EditorSession

    generator_path, encoder = _generator_or_demo(generator, encoder)
    check_output_path(out)
    session = EditorSession(out, generator_path, encoder, directions, device, num_directions, layers,
                            generator_label=generator or "the bundled demo generator", shared_dir=_shared_dir(),
                            precision=precision)
    if session.demo:
        _say(f"warning: {DEMO_WARNING}")
    from pipeline.ui_app import launch

    launch(session, host=host, port=port, share=share, steps=steps, say=_say)


@app.command("train-encoder")
def train_encoder_command(
    generator: Path = typer.Argument(..., metavar="NAME|FILE", help="The generator whose W+ codes the encoder learns to predict (name or file)."),
    out: Path = typer.Option(..., "--out", "-o", metavar="FILE", help="Encoder checkpoint to write (resumed if it exists)."),
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR", help="Folder of aligned real photos for the real-image terms."),
    steps: int = typer.Option(1000, "--steps", metavar="N", help="Total training steps."),
    batch_size: int = typer.Option(8, "--batch-size", metavar="N", help="Generator samples (and real photos) per training step."),
    lr: float = typer.Option(1e-4, "--lr", metavar="RATE", help="Adam learning rate of the encoder."),
    lambda_perceptual: float = typer.Option(0.8, "--lambda-perceptual", metavar="WEIGHT", help="Weight of the LPIPS term (0: pixel and code losses only)."),
    perceptual: str = typer.Option("auto", "--perceptual", metavar="auto|lpips|none", help="auto (LPIPS when VGG16 weights are found, else pixel loss, with a warning), lpips or none."),
    vgg: Optional[Path] = typer.Option(None, "--vgg", metavar="FILE", help=VGG_HELP),
    checkpoint_every: int = typer.Option(100, "--checkpoint-every", metavar="N", help="Steps between checkpoints."),
    restart: bool = typer.Option(False, "--restart", metavar="", help="Start from scratch even if --out exists."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help=DEVICE_HELP),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed of the generator samples and of the initial weights."),
) -> None:
    """Train the domain-guided encoder (image -> W+) on generator samples and, with --data, real photos."""
    from inversion.train import TrainSettings, train_encoder

    require_finite("--lr", lr)
    require_finite("--lambda-perceptual", lambda_perceptual)
    settings = TrainSettings(steps=steps, batch_size=batch_size, lr=lr, lambda_perceptual=lambda_perceptual,
                             checkpoint_every=checkpoint_every, seed=seed)
    result = train_encoder(_weights(generator), out, settings, data, perceptual, vgg, device, restart, say=_say, shared_dir=_shared_dir())
    _emit(result)


def _shared_dir() -> Path:
    """`../shared/` beside the project checkout, where shared weights may be found."""
    return Path(__file__).resolve().parent.parent / "shared"


def build_command():
    """The click command tree of `app`, with `--help` shown as the flag it is: typer names every option's
    value type (`<bool>` for flags) unless given a metavar, and the help option it adds has none."""
    root = typer.main.get_command(app)

    def quiet_help(command) -> None:
        help_option = command.get_help_option(command.context_class(command))
        if help_option is not None:
            help_option.metavar = ""
        for child in getattr(command, "commands", {}).values():
            quiet_help(child)

    quiet_help(root)
    return root


def _say_interrupted() -> None:
    """The one line of a Ctrl-C, then an exit that cannot hang (see `common.interrupt`)."""
    typer.echo(INTERRUPTED, err=True)
    interrupt.exit_soon(130)


def main() -> None:
    """Console entry point: the exit-status rule of the module docstring, and never a traceback for a
    mistake the user can fix."""
    interrupt.install()
    try:
        code = build_command()(standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C into Exit(130), returned in this mode
            _say_interrupted()
        if isinstance(code, int) and code != 0:  # typer.Exit(n) is returned, not raised, in this mode
            raise SystemExit(code)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2)
    except (KeyboardInterrupt, typer.Abort):
        _say_interrupted()
        raise SystemExit(130)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code)
    except typer.TyperException as exc:  # usage mistakes: typer's own copy of click's UsageError and kin
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"error: {exc.format_message()}", err=True)
        raise SystemExit(exc.exit_code)
    except BrokenPipeError:  # `sefa-edit ... | head`: the reader left; nothing more to say
        sys.stderr.close()
        raise SystemExit(1)


if __name__ == "__main__":
    main()
