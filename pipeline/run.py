"""align -> invert -> factorize -> edit over a folder of photos, resumable, with an HTML report.

Layout under OUT: `aligned/` (crops + sidecars), `codes/` (W+ codes, reconstructions, metrics),
`directions/<generator sha256[:16]>_<layers>/` (cached: computed once per checkpoint and layers),
`edits/<face>/` (edited images, grids, sweeps), `photos/<face>/` (the original photos with the
edited face pasted back), and `index.html`. Every stage skips what an earlier run finished, so a
run that was interrupted picks up where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from alignment.stage import AlignOptions, run_align, summary_line
from common.errors import UserError
from common.layer_spec import format_layer_spec, parse_layer_spec
from editing.stage import EditOptions, run_edit
from factorization.stage import DIRECTIONS_NAME, run_factorize
from generators.checkpoint import load_checkpoint
from inversion.optimize import InversionSettings
from inversion.perceptual import find_vgg_weights
from inversion.stage import run_invert
from pipeline.report import write_index

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_GENERATOR = ASSETS / "example-stylegan2-64.pt"
DEFAULT_ENCODER = ASSETS / "example-encoder.pt"


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
    batch_size: int = 4
    largest: bool = False
    mask: str = "face"
    animate: str | None = None
    seed: int = 0


def run_pipeline(
    photos: str,
    out: Path,
    generator: Path,
    encoder: Path | None,
    options: RunOptions,
    device: str = "auto",
    say: Callable[[str], None] = lambda message: None,
    shared_dir: Path | None = None,
) -> dict:
    checkpoint = load_checkpoint(generator)
    if checkpoint.stylegan2_config is None:
        raise UserError(f"{generator}: `run` needs a StyleGAN2 generator to render edits")
    factorize_layers = format_layer_spec(parse_layer_spec(options.factorize_layers, checkpoint.num_latent_layers))
    perceptual = options.perceptual
    if perceptual == "auto":
        try:
            find_vgg_weights(options.vgg, shared_dir)
            perceptual = "lpips"
        except UserError:
            perceptual = "none"
            say("no VGG16 weights for LPIPS: inverting with pixel loss and the domain regulariser only "
                "(`sefa-edit models fetch vgg16` once to add LPIPS)")
    times: dict[str, float] = {}

    start = time.perf_counter()
    align_summary = run_align(photos, out / "aligned", AlignOptions(size=options.size, largest=options.largest),
                              emit=lambda record: None, say=say)
    times["align"] = time.perf_counter() - start
    say(summary_line(align_summary, out / "aligned"))
    if align_summary.crops == 0:
        raise UserError(f"{photos}: no face was aligned, nothing to edit (see {out / 'aligned' / 'failures.jsonl'})")

    start = time.perf_counter()
    settings = InversionSettings(steps=options.steps, lr=options.lr, lambda_perceptual=options.lambda_perceptual,
                                 lambda_encoder=options.lambda_encoder, seed=options.seed)
    invert_summary = run_invert(str(out / "aligned"), out / "codes", generator, encoder, settings, perceptual, options.vgg,
                                options.batch_size, device, say=say, shared_dir=shared_dir)
    times["invert"] = time.perf_counter() - start

    start = time.perf_counter()
    directions_dir = out / "directions" / f"{checkpoint.sha256[:16]}_{factorize_layers.replace(',', '+')}"
    if not (directions_dir / DIRECTIONS_NAME).is_file():
        run_factorize(generator, directions_dir, factorize_layers, options.num_directions, options.labels, None, device)
    times["factorize"] = time.perf_counter() - start

    start = time.perf_counter()
    edit_options = EditOptions(paste_back=True, mask=options.mask, animate=options.animate, photos_dir=out / "photos")
    edit_summary = run_edit(str(out / "codes"), out / "edits", generator, directions_dir / DIRECTIONS_NAME, list(options.edits),
                            edit_options, device, say=say)
    times["edit"] = time.perf_counter() - start

    start = time.perf_counter()
    index = write_index(out, title=f"sefa-edit run of {photos}")
    times["report"] = time.perf_counter() - start
    return {
        "index": str(index),
        "faces": align_summary.crops,
        "photos": align_summary.photos,
        "inverted": invert_summary["inverted"] + invert_summary["skipped"],
        "edited": edit_summary["edited"] + edit_summary["skipped"],
        "seconds": {k: round(v, 2) for k, v in times.items()},
    }
