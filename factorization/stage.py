"""`sefa-edit factorize`: checkpoint -> directions.npz (+ labels.json, spectrum.png, previews, index.html)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from common import atomic, images
from common.demo_models import is_demo_generator
from common.devices import resolve_device
from common.directions_file import LABELS_NAME, DirectionLabel, DirectionsFile, labels_to_json, load_directions, load_labels
from common.errors import UserError
from common.fingerprint import fingerprint
from common.json_files import MAX_JSON_BYTES
from common.layer_spec import format_layer_spec, parse_layer_spec
from common.output_folder import check_output_path, claimed_output_folder
from common.regular_files import read_limited
from factorization.describe import LABELS as _LABEL_MEASURES
from factorization.describe import DescribeSettings, describe_directions
from factorization.preview import PreviewSettings, strengths, write_previews
from factorization.report import write_report
from factorization.ganspace import DEFAULT_SAMPLES, best_matches, ganspace_directions
from factorization.imported import imported_directions
from factorization.sefa import SefaResult, factorize, factorize_stacked, stack_normalised
from factorization.spectrum import spectrum_png
from generators.checkpoint import LoadedCheckpoint, load_checkpoint
from generators.latent_layers import latent_layers

DIRECTIONS_NAME = "directions.npz"
PREVIEW_MARKER = ".preview.json"
PREVIEW_VERSION = 1
DESCRIPTION_NAME = "description.json"
DESCRIPTION_VERSION = 1
METHODS = ("sefa", "ganspace")
ACCEPT_CONFIDENCE = 0.5  # `--accept-labels` writes suggestions at least this confident


@dataclass(frozen=True)
class FactorizeResult:
    directions_path: Path
    num_directions: int
    layers: list[int]
    seconds: float  # the eigen-decomposition itself, load excluded
    report_path: Path
    descriptions: list[dict] | None = None  # `--describe`: what each direction measurably does
    accepted: dict[str, int] | None = None  # `--accept-labels`: label -> direction written to labels.json


def factorize_checkpoint(checkpoint: LoadedCheckpoint, layer_spec: str, num_directions: int) -> tuple[DirectionsFile, float]:
    """Pure computation: select the layers, factorise, package (timed without the file load)."""
    all_layers = latent_layers(checkpoint)
    layers = parse_layer_spec(layer_spec, len(all_layers))
    dim = all_layers[0].weight.shape[1]
    if not 1 <= num_directions <= dim:
        raise UserError(f"-K {num_directions}: must be between 1 and the latent size {dim}")
    start = time.perf_counter()
    result = factorize([all_layers[i].weight for i in layers], num_directions)
    seconds = time.perf_counter() - start
    return (
        DirectionsFile(
            directions=result.directions,
            eigenvalues=result.eigenvalues,
            all_eigenvalues=result.all_eigenvalues,
            layers=layers,
            layer_names=[all_layers[i].name for i in layers],
            checkpoint_sha256=checkpoint.sha256,
            architecture=checkpoint.architecture,
            latent_space=checkpoint.latent_space,
        ),
        seconds,
    )


def run_factorize(
    checkpoint_path: Path,
    out_dir: Path,
    layer_spec: str = "all",
    num_directions: int = 5,
    labels_path: Path | None = None,
    preview: PreviewSettings | None = None,
    device_name: str = "auto",
    describe: DescribeSettings | None = None,
    accept_labels: bool = False,
    method: str = "sefa",
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    imports: Sequence[Path] = (),
    say: Callable[[str], None] = lambda message: None,
) -> FactorizeResult:
    """SeFa (`method` "sefa"), GANSpace's PCA of W computed here ("ganspace", `samples` z of `seed`), or the
    directions of other methods' files (`imports`: InterFaceGAN boundaries, GANSpace components)."""
    check_output_path(out_dir, "--out")
    if num_directions < 1:
        raise UserError(f"-K {num_directions}: must be 1 or more")
    if method not in METHODS:
        raise UserError(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    if imports and method != "sefa":
        raise UserError("--from imports other methods' directions; it does not go with --method ganspace")
    if method == "ganspace" and samples < 2:
        raise UserError(f"--samples {samples}: GANSpace needs at least 2 samples")
    device = resolve_device(device_name)
    checkpoint = load_checkpoint(checkpoint_path)
    if accept_labels and describe is None:
        raise UserError("--accept-labels takes the labels --describe suggests; add --describe")
    rendering_flags = [flag for flag, given in (("--preview", preview), ("--describe", describe),
                                                ("--method ganspace", "ganspace" if method == "ganspace" else None))
                       if given is not None]
    if rendering_flags and not checkpoint.can_render:
        flags = " and ".join(rendering_flags)
        raise UserError(
            f"{checkpoint_path}: {flags} run{'s' if len(rendering_flags) == 1 else ''} the generator, and this "
            f"{checkpoint.architecture} checkpoint cannot "
            f"({'; '.join(checkpoint.notes) or 'read for factorisation only'}); drop {flags}"
        )
    comparison: list[str] = []
    if imports:
        directions, notes = _imported(checkpoint, checkpoint_path, layer_spec, list(imports), num_directions)
        for note in notes:
            say(note)
        seconds = 0.0
    elif method == "ganspace":
        directions, seconds, comparison = _ganspace(checkpoint, layer_spec, num_directions, samples, seed, device)
        for line in comparison:
            say(line)
    else:
        directions, seconds = factorize_checkpoint(checkpoint, layer_spec, num_directions)
    num_directions = len(directions.directions)
    labels = load_labels(labels_path, num_directions=num_directions) if labels_path is not None else {}
    directions.labels = {**directions.labels, **labels}  # the user's own names win over the files'
    with claimed_output_folder(out_dir, "--out"):
        return _write_outputs(checkpoint, checkpoint_path, directions, seconds, out_dir, num_directions, labels_path, preview, device,
                              describe, accept_labels, comparison)


def _layers_of(checkpoint: LoadedCheckpoint, layer_spec: str) -> tuple[list[int], list[str], np.ndarray, SefaResult]:
    """The chosen layers, their names, SeFa's stacked row-normalised weights A over them and SeFa on them
    (every direction, the spectrum of AᵀA): what every method's page sets its directions beside."""
    all_layers = latent_layers(checkpoint)
    layers = parse_layer_spec(layer_spec, len(all_layers))
    rows = stack_normalised([all_layers[i].weight for i in layers])
    return layers, [all_layers[i].name for i in layers], rows, factorize_stacked(rows)


def _ganspace(checkpoint: LoadedCheckpoint, layer_spec: str, num_directions: int, samples: int, seed: int,
              device) -> tuple[DirectionsFile, float, list[str]]:
    """GANSpace on this generator, and how its components compare with SeFa's on the same layers."""
    if checkpoint.latent_space != "W+":
        raise UserError(f"--method ganspace: a {checkpoint.architecture} generator has no mapping network, so no W to "
                        f"sample (its codes are z, a plain Gaussian with no principal directions); GANSpace's "
                        f"activation-space variant is not implemented here: use SeFa")
    generator = checkpoint.build_generator(device)
    if not generator.has_shared_w:
        raise UserError(f"--method ganspace: this {checkpoint.architecture} generator maps z to each W+ entry separately, "
                        f"so there is no one W to take principal components of; use SeFa")
    if not 1 <= num_directions <= generator.w_dim:
        raise UserError(f"-K {num_directions}: must be between 1 and the latent size {generator.w_dim}")
    layers, names, rows, sefa = _layers_of(checkpoint, layer_spec)
    start = time.perf_counter()
    directions, result = ganspace_directions(checkpoint, generator, layers, names, rows, sefa.all_eigenvalues, num_directions,
                                             samples, seed)
    seconds = time.perf_counter() - start
    lines = []
    for k, (match, cosine) in enumerate(best_matches(directions.directions, sefa.directions[:num_directions])):
        lines.append(f"GANSpace component {k}: std {result.stdevs[k]:.3g} in W; SeFa objective {directions.eigenvalues[k]:.4g} "
                     f"(SeFa's direction {k}: {sefa.eigenvalues[k]:.4g}); closest SeFa direction {match}, |cos| {cosine:.2f}")
    return directions, seconds, lines


def _imported(checkpoint: LoadedCheckpoint, checkpoint_path: Path, layer_spec: str, paths: list[Path],
              per_file: int) -> tuple[DirectionsFile, list[str]]:
    layers, names, rows, sefa = _layers_of(checkpoint, layer_spec)
    return imported_directions(checkpoint, checkpoint_path, paths, layers, names, rows, sefa.all_eigenvalues, per_file)


def store_labels(labels_path: Path, directions_dir: Path) -> None:
    """Keep a validated copy of the labels beside the directions, which `edit` reads."""
    load_labels(labels_path, num_directions=len(load_directions(directions_dir / DIRECTIONS_NAME).directions))
    atomic.write_bytes(directions_dir / LABELS_NAME, read_limited(labels_path, MAX_JSON_BYTES))


def previews_made_with(out_dir: Path) -> dict | None:
    """The preview settings of the grids in `out_dir/preview`, None when there are none: how a caller that
    wants previews tells whether a cached factorisation already has the ones it wants."""
    marker = atomic.read_json_object(Path(out_dir) / "preview" / PREVIEW_MARKER) or {}
    return marker.get("settings") if isinstance(marker.get("settings"), dict) else None


def _previews(checkpoint: LoadedCheckpoint, directions: DirectionsFile, folder: Path, settings: PreviewSettings, device) -> list[Path]:
    """The preview grids, rendered only when what makes them changed: the generator, the directions,
    their layers or the preview settings (minutes for a 1024 px generator, so a rerun reuses them)."""
    marker = folder / PREVIEW_MARKER
    made_by = fingerprint(version=PREVIEW_VERSION, generator=checkpoint.sha256, layers=list(directions.layers),
                          directions=hashlib.sha256(np.ascontiguousarray(directions.vectors(), np.float64).tobytes()).hexdigest(),
                          settings=asdict(settings))
    previous = atomic.read_json_object(marker) or {}
    planned = [folder / f"direction_{k:02d}.png" for k in range(len(directions.directions))]
    if previous.get("fingerprint") == made_by and all(path.is_file() for path in planned):
        return planned
    marker.unlink(missing_ok=True)
    paths = write_previews(checkpoint.build_generator(device), directions.vectors(), directions.layers, folder, settings, device)
    written = {path.name for path in paths}
    for old in previous.get("outputs", []) if isinstance(previous.get("outputs"), list) else []:
        if isinstance(old, str) and Path(old).name not in written:
            (folder / Path(old).name).unlink(missing_ok=True)  # a direction this run does not preview
    atomic.write_json(marker, {"version": PREVIEW_VERSION, "fingerprint": made_by, "settings": asdict(settings),
                               "outputs": [path.name for path in paths]})
    return paths


def _descriptions(checkpoint: LoadedCheckpoint, directions: DirectionsFile, path: Path, settings: DescribeSettings,
                  device) -> list[dict]:
    """What each direction does (`factorization/describe.py`), measured again only when the generator,
    the directions, their layers or the settings changed (it renders 2 x samples images per direction)."""
    made_by = fingerprint(version=DESCRIPTION_VERSION, generator=checkpoint.sha256, layers=list(directions.layers),
                          directions=hashlib.sha256(np.ascontiguousarray(directions.vectors(), np.float64).tobytes()).hexdigest(),
                          settings=asdict(settings))
    previous = atomic.read_json_object(path) or {}
    if previous.get("fingerprint") == made_by and isinstance(previous.get("directions"), list):
        return previous["directions"]
    found = describe_directions(checkpoint.build_generator(device), directions.vectors(), directions.layers, settings, device)
    described = [description.as_json() for description in found]
    atomic.write_json(path, {"version": DESCRIPTION_VERSION, "fingerprint": made_by, "settings": asdict(settings),
                             "directions": described})
    return described


METHOD_TITLES = {"sefa": "SeFa directions", "ganspace": "GANSpace components", "interfacegan": "InterFaceGAN boundaries",
                 "mixed": "Imported directions"}


def _origins(directions: DirectionsFile) -> list[str] | None:
    """Per direction, where it comes from and its unit of strength, for the page (None: plain SeFa)."""
    if directions.method == "sefa" and directions.sources is None:
        return None
    lines = []
    for k in range(len(directions.directions)):
        unit = "" if directions.scales is None or directions.scales[k] == 1.0 else \
            f"; one unit of strength = {directions.scales[k]:.3g} (its standard deviation in W)" \
            if "GANSpace" in directions.source_of(k) else f"; one unit of strength = {directions.scales[k]:.3g}"
        lines.append(directions.source_of(k) + unit)
    return lines


def accept_suggestions(labels: dict[str, DirectionLabel], descriptions: list[dict]) -> dict[str, int]:
    """Add each confident suggestion (>= ACCEPT_CONFIDENCE) to `labels` as name -> direction, signed so
    that + strength increases the measure, unless the direction already has a label or the name is taken
    (a user's own labels always win; of two directions suggesting one name, the more confident gets it).
    Returns what was added."""
    labelled = {label.index for label in labels.values()}
    added: dict[str, int] = {}
    ranked = sorted((d for d in descriptions if d.get("suggested_label")), key=lambda d: -d["suggested_label"]["confidence"])
    for description in ranked:
        name, confidence = description["suggested_label"]["label"], description["suggested_label"]["confidence"]
        if confidence < ACCEPT_CONFIDENCE or name in labels or description["direction"] in labelled:
            continue
        measure = next(key for key, value in _LABEL_MEASURES.items() if value == name) if name in _LABEL_MEASURES.values() else name
        sign = 1 if description["measures"][measure]["per_unit"] >= 0 else -1
        labels[name] = DirectionLabel(index=description["direction"], sign=sign)
        labelled.add(description["direction"])
        added[name] = description["direction"]
    return added


def _write_outputs(checkpoint, checkpoint_path: Path, directions: DirectionsFile, seconds: float, out_dir: Path, num_directions: int,
                   labels_path: Path | None, preview: PreviewSettings | None, device, describe: DescribeSettings | None = None,
                   accept_labels: bool = False, comparison: Sequence[str] = ()) -> FactorizeResult:
    directions_path = directions.save(out_dir / DIRECTIONS_NAME)
    if directions.labels:  # the user's labels, with the names imported files carry (InterFaceGAN's attributes)
        atomic.write_json(out_dir / LABELS_NAME, labels_to_json(directions.labels))
    else:
        (out_dir / LABELS_NAME).unlink(missing_ok=True)  # labels of earlier directions do not name these
    images.save_rgb(out_dir / "spectrum.png", spectrum_png(directions.all_eigenvalues, highlight=num_directions))

    preview_paths: list[Path] = []
    if preview is not None:
        preview_paths = _previews(checkpoint, directions, out_dir / "preview", preview, device)
    descriptions = _descriptions(checkpoint, directions, out_dir / DESCRIPTION_NAME, describe, device) if describe else None
    if describe is None:
        (out_dir / DESCRIPTION_NAME).unlink(missing_ok=True)  # it described other directions
    accepted = None
    if accept_labels and descriptions is not None:
        labels = load_labels(out_dir / LABELS_NAME, num_directions) if (out_dir / LABELS_NAME).is_file() else {}
        accepted = accept_suggestions(labels, descriptions)
        if accepted:
            atomic.write_json(out_dir / LABELS_NAME, labels_to_json(labels))
    report = write_report(
        out_dir / "index.html",
        title=f"{METHOD_TITLES.get(directions.method, 'Directions')} of {checkpoint_path.name}",
        checkpoint_info={k: v for k, v in checkpoint.describe().items() if k not in ("channels", "notes")},
        layers_text=format_layer_spec(directions.layers),
        eigenvalues=directions.eigenvalues,
        all_eigenvalues=directions.all_eigenvalues,
        preview_paths=preview_paths,
        strengths=list(strengths(preview)) if preview else [],
        labels=load_labels(out_dir / LABELS_NAME, num_directions) if (out_dir / LABELS_NAME).is_file() else None,
        demo=is_demo_generator(checkpoint_path),
        preview_hint=f"sefa-edit factorize {checkpoint_path} --out {out_dir} --preview",
        descriptions=descriptions,
        origins=_origins(directions),
        comparison=comparison,
    )
    return FactorizeResult(directions_path, num_directions, directions.layers, seconds, report, descriptions, accepted)
